//! `tollgate check`.

use std::path::PathBuf;

use clap::ValueEnum;
use tollgate::check::Options;
use tollgate::manifest;
use tollgate::report::{self, Report};

use super::{ColorChoice, Exit, load_policy, now, print};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Files, directories (searched recursively for *.yaml, *.yml, *.json), or - for stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Policy file (default: the embedded policy; see `tollgate policy default`).
    #[arg(long, env = "TOLLGATE_POLICY")]
    pub policy: Option<PathBuf>,
    /// Namespace of objects that do not set metadata.namespace.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit 1 on warn-level findings too.
    #[arg(long)]
    pub fail_on_warn: bool,
    /// Colour the text output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// `--format` of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
    Junit,
    Github,
}

pub fn run(args: CheckArgs) -> anyhow::Result<Exit> {
    let policy = load_policy(args.policy.as_deref())?;
    let (inputs, input_errors) = manifest::collect_inputs(&args.paths);
    let opts = Options::enforce(args.namespace, now());
    let mut report = manifest::check_inputs(&policy, &inputs, &opts);
    report.files += input_errors.len();
    report.errors.extend(input_errors);
    report.sort();
    print(&render(&report, args.format, args.color.enabled()))?;
    Ok(exit_code(&report, args.fail_on_warn))
}

pub fn render(report: &Report, format: Format, color: bool) -> String {
    match format {
        Format::Text => report::text::render(report, color),
        Format::Json => report::json::render(report),
        Format::Sarif => report::sarif::render(report),
        Format::Junit => report::junit::render(report),
        Format::Github => report::github::render(report),
    }
}

/// The one place a report becomes an exit code.
pub fn exit_code(report: &Report, fail_on_warn: bool) -> Exit {
    let s = report.summary();
    if s.errors > 0 {
        Exit::Error
    } else if s.deny > 0 || (fail_on_warn && s.warn > 0) {
        Exit::Violations
    } else {
        Exit::Clean
    }
}
