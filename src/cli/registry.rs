//! `tollgate registry scan`: the periodic integrity probe over a whole registry
//! ([`tollgate::registry::scan`]).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use globset::GlobMatcher;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tollgate::reference::RegistryHost;
use tollgate::registry::scan::{self, Progress, ScanReport};
use tollgate::report::json::SCHEMA_VERSION;
use tollgate::report::plural;

use super::RegistryArgs;
use super::{Exit, load_policy, print};

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Walk the catalog and every tag, verify each end to end, and report broken tags, orphan
    /// indexes, and tags a signature rule covers that are not signed as it requires. Exit 0 all
    /// pullable (and signed), 1 something broken or unsigned under a deny rule, 2 something
    /// could not be checked.
    Scan(ScanArgs),
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// The registry, host[:port]; the policy must approve it.
    pub registry: String,
    /// Only repositories matching these globs (`team/*`, `**`); default all.
    #[arg(long = "repository", value_name = "PATTERN")]
    pub repositories: Vec<String>,
    /// Policy file (default: the embedded policy).
    #[arg(long, env = "TOLLGATE_POLICY")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// A progress bar on stderr when it is a terminal; nothing otherwise. Shared with `catalog
/// sync`, which walks a registry the same way.
pub(super) struct Bar(pub(super) ProgressBar);

impl Bar {
    /// An empty bar counting tags, `{pos}/{len} tags VERB`.
    pub(super) fn tags(verb: &str) -> Bar {
        Bar::counting("tags", verb)
    }

    /// An empty bar counting `unit`, `{pos}/{len} UNIT VERB`.
    pub(super) fn counting(unit: &str, verb: &str) -> Bar {
        let bar = ProgressBar::new(0);
        bar.set_draw_target(if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {{pos}}/{{len}} {unit} {verb} {{wide_bar}} {{eta}}"
            ))
            .expect("valid template"),
        );
        Bar(bar)
    }
}

/// `--repository` globs: `*` stays inside one path segment, `**` crosses them.
pub(super) fn repository_patterns(patterns: &[String]) -> anyhow::Result<Vec<GlobMatcher>> {
    patterns
        .iter()
        .map(|p| {
            globset::GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map(|g| g.compile_matcher())
        })
        .collect::<Result<Vec<_>, _>>()
        .context("--repository")
}

impl Progress for Bar {
    fn found(&self, n: u64) {
        self.0.inc_length(n);
    }
    fn checked(&self) {
        self.0.inc(1);
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScanDoc<'a> {
    schema_version: u32,
    #[serde(flatten)]
    report: &'a ScanReport,
}

pub fn run(cmd: RegistryCommand) -> anyhow::Result<Exit> {
    let RegistryCommand::Scan(args) = cmd;
    let policy = Arc::new(load_policy(args.policy.as_deref())?);
    let host: RegistryHost = args
        .registry
        .parse()
        .with_context(|| format!("registry {:?}", args.registry))?;
    let patterns = repository_patterns(&args.repositories)?;
    let resolver = args.registry_args.resolver(policy)?;
    let bar = Bar::tags("checked");
    let runtime = super::runtime()?;
    let report = runtime.block_on(scan::scan(
        &resolver,
        &host,
        &patterns,
        args.registry_args.jobs,
        &bar,
    ))?;
    bar.0.finish_and_clear();
    match args.format {
        Format::Json => print(
            &(serde_json::to_string_pretty(&ScanDoc {
                schema_version: SCHEMA_VERSION,
                report: &report,
            })? + "\n"),
        )?,
        Format::Text => print(&render_text(&report))?,
    }
    Ok(if !report.errors.is_empty() {
        Exit::Error
    } else if !report.broken.is_empty()
        || report
            .unsigned
            .iter()
            .any(|u| u.level == tollgate::policy::Level::Deny)
    {
        Exit::Violations
    } else {
        Exit::Clean
    })
}

fn render_text(r: &ScanReport) -> String {
    let mut out = String::new();
    for b in &r.broken {
        let orphan = if b.orphan_index {
            " ORPHAN INDEX (every child manifest is gone)"
        } else {
            ""
        };
        let _ = writeln!(out, "{}: broken{orphan}", b.image);
        if let Some(u) = &b.unresolved {
            let _ = writeln!(out, "  not found: {u}");
        }
        for p in &b.problems {
            let _ = writeln!(out, "  missing: {}", p.path);
        }
    }
    for u in &r.unsigned {
        let _ = writeln!(out, "{}: unsigned ({}): {}", u.image, u.level, u.message);
    }
    for e in &r.errors {
        let _ = writeln!(out, "error: {}: {}", e.subject, e.message);
    }
    let _ = writeln!(
        out,
        "{}: {}, {}, {} pullable, {} broken, {} not checked ({})",
        r.registry,
        plural(r.repositories, "repository", "repositories"),
        plural(r.tags, "tag", "tags"),
        r.pullable,
        r.broken.len(),
        r.errors.len(),
        plural(r.requests as usize, "request", "requests")
    );
    if !r.unsigned.is_empty() {
        let _ = writeln!(
            out,
            "{} not signed as the policy's signature rules require",
            plural(r.unsigned.len(), "tag", "tags")
        );
    }
    out
}
