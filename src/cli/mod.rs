//! Command-line parsing and the subcommands. Each subcommand is a thin adapter: read inputs,
//! call the library, render, and return an [`Exit`] code.

mod args;
mod audit;
mod catalog;
mod catalog_packages;
mod catalog_record;
mod catalog_sync;
mod certs;
mod check;
mod ci;
mod explain;
mod gate;
mod hook;
mod policy;
mod registry;
mod rollout;
mod serve;
mod verify;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

pub use args::{LiveArgs, RegistryArgs, ReportArgs, ReportFormat, load_policy};

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  no deny-level finding (warnings alone give 0 unless --fail-on-warn)
  1  deny-level findings (policy violations)
  2  usage error, unreadable or unparsable input, invalid policy, or runtime error
     (an input error wins over findings: the check is incomplete)";

pub const EXPLAIN_EXIT_CODES_HELP: &str = "\
Exit codes:
  0  no image fails a deny-level rule (warnings and rules that need the registry do not count;
     `tollgate verify` and `check --resolve` evaluate those)
  1  an image fails a deny-level rule
  2  usage error or invalid policy";

pub const AUDIT_EXIT_CODES_HELP: &str = "\
Exit codes:
  0  nothing running fails a deny-level rule, and no merged commit is overdue (--repo)
  1  a running image fails a deny-level rule, or a merged commit waits past --grace
  2  usage error, invalid policy, or the API server or a registry could not answer";

pub const VERIFY_EXIT_CODES_HELP: &str = "\
Exit codes:
  0  every image resolves end to end and passes the policy (warnings allowed)
  1  an image is broken (something behind it is missing or corrupt) or violates the policy
  2  usage error, invalid policy, or a registry that could not answer (timeout, refused, TLS)";

/// The exit code contract, documented in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Clean = 0,
    Violations = 1,
    Error = 2,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Keep broken or non-compliant container images out of Kubernetes.",
    after_help = EXIT_CODES_HELP,
)]
pub struct Args {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct Global {
    /// Log format on stderr (logs are filtered by RUST_LOG, default `warn`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

// Parsed once at start; the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check Kubernetes manifests (files, directories, or - for stdin) against the policy.
    #[command(after_help = EXIT_CODES_HELP)]
    Check(check::CheckArgs),
    /// Show how tollgate reads image references and which rules they pass or fail.
    #[command(after_help = EXPLAIN_EXIT_CODES_HELP)]
    Explain(explain::ExplainArgs),
    /// Walk images end to end in the registry (index, every child manifest, config, every layer)
    /// and evaluate every policy rule, including the registry-backed ones.
    #[command(after_help = VERIFY_EXIT_CODES_HELP)]
    Verify(verify::VerifyArgs),
    /// Validate or print policies.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Whole-registry operations.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Check what a change to the deploy repository touches, between a base and a head revision
    /// (the pre-merge check).
    #[command(after_help = EXIT_CODES_HELP)]
    Ci(ci::CiArgs),
    /// Git hooks for the deploy repository.
    #[command(subcommand)]
    Hook(hook::HookCommand),
    /// Run the validating (and optional mutating) admission webhook over HTTPS.
    Serve(serve::ServeArgs),
    /// Certificates for the admission webhook.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// What the cluster really runs, checked against the policy and the registry.
    #[command(after_help = AUDIT_EXIT_CODES_HELP)]
    Audit(audit::AuditArgs),
    /// Deploy-repo commits that were merged but never rolled out.
    Rollout(rollout::RolloutArgs),
    /// The image catalog's database (SQLite or PostgreSQL): its schema and what it holds.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
}

/// Logs on stderr, filtered by RUST_LOG; without it, warnings and errors only, except for
/// `serve`, whose one line per admission decision is its access log.
pub fn init_tracing(global: &Global, command: &Command) {
    let default = match command {
        Command::Serve(_) => "warn,tollgate=info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only for a person at a terminal: a redirected log (a file, journald, a pod's log)
    // must not carry escape codes. NO_COLOR turns it off there too.
    let ansi = args::ColorChoice::Auto.enabled_on_stderr();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    match args.command {
        Command::Check(a) => check::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Policy(c) => policy::run(c),
        Command::Registry(c) => registry::run(c),
        Command::Ci(a) => ci::run(a),
        Command::Hook(c) => hook::run(c),
        Command::Serve(a) => serve::run(a),
        Command::Certs(c) => certs::run(c),
        Command::Audit(a) => audit::run(a),
        Command::Rollout(a) => rollout::run(a),
        Command::Catalog(c) => catalog::run(c),
    }
}

/// Write to stdout; a closed pipe surfaces as an `io::Error` that `main` treats as success.
fn print(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The current time: the one clock read, at the edge.
fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// The async runtime for the registry-backed commands (the offline ones never start one).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
