//! `tollgate check`.

use std::path::PathBuf;

use std::sync::Arc;

use tollgate::check::Options;
use tollgate::check::files;
use tollgate::git::DeployRepo;
use tollgate::policy::Policy;
use tollgate::registry::sites;
use tollgate::report::sarif::{Paths, SarifOptions as Sarif};
use tollgate::report::{self, Report};

use super::RegistryArgs;
use super::{Exit, ReportArgs, ReportFormat as Format, load_policy, now, print};

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
    #[command(flatten)]
    pub output: ReportArgs,
    /// Also evaluate the registry-backed rules (image-unavailable, tag-moved,
    /// base-not-approved): each distinct image of an approved registry is walked end to end once.
    #[arg(long)]
    pub resolve: bool,
    /// An input that holds no Kubernetes object (an empty stream from a failed `helm
    /// template`), or a document that is not one, is an input error (exit 2) rather than a
    /// no-objects or not-an-object warning.
    #[arg(long)]
    pub require_objects: bool,
    /// The name stdin (`-`) is shown as in findings, instead of <stdin>: the file it was rendered
    /// from, so that SARIF and annotations point at it.
    #[arg(long, value_name = "PATH", default_value = files::STDIN_NAME)]
    pub stdin_name: String,
    /// Registry access, with --resolve.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: CheckArgs) -> anyhow::Result<Exit> {
    let policy = load_policy(args.policy.as_deref())?;
    let (inputs, input_errors) = files::collect_inputs(&args.paths, &args.stdin_name);
    let mut opts = Options::enforce(args.namespace, now());
    opts.collect_sites = args.resolve;
    opts.require_objects = args.require_objects;
    let mut report = files::check_inputs(&policy, &inputs, &opts);
    report.files += input_errors.len();
    report.errors.extend(input_errors);
    if args.resolve {
        resolve_sites(&policy, &args.registry, &opts, &mut report)?;
    }
    report.sort();
    // Only SARIF names files as URIs: the git repository is looked up for it alone.
    let roots = (args.output.format == Format::Sarif)
        .then(sarif_roots)
        .transpose()?;
    print(&render(
        &report,
        args.output.format,
        args.output.color.enabled(),
        &Sarif {
            command: "check",
            help_base_uri: args.output.help_base_uri.as_deref(),
            paths: roots
                .as_ref()
                .map(|(cwd, src_root)| Paths { cwd, src_root }),
        },
    ))?;
    Ok(exit_code(&report, args.output.fail_on_warn))
}

/// The directory file names are relative to, and the root SARIF writes them from: the git
/// repository the directory is in, else the directory itself. Both canonical, so that a
/// symlinked path still lies under its root.
fn sarif_roots() -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let cwd = std::env::current_dir()?;
    let cwd = cwd.canonicalize().unwrap_or(cwd);
    let src_root = DeployRepo::discover(&cwd)
        .ok()
        .and_then(|r| r.root().canonicalize().ok())
        .unwrap_or_else(|| cwd.clone());
    Ok((cwd, src_root))
}

/// The registry-backed rules, through the one shared implementation.
fn resolve_sites(
    policy: &Policy,
    registry: &RegistryArgs,
    opts: &Options,
    report: &mut Report,
) -> anyhow::Result<()> {
    let policy = Arc::new(policy.clone());
    let resolver = Arc::new(registry.resolver(policy.clone())?);
    super::runtime()?.block_on(sites::apply(
        &policy,
        &resolver,
        registry.jobs,
        opts,
        report,
    ));
    Ok(())
}

pub fn render(report: &Report, format: Format, color: bool, sarif: &Sarif<'_>) -> String {
    match format {
        Format::Text => report::text::render(report, color),
        Format::Json => report::json::render(report),
        Format::Sarif => report::sarif::render(report, sarif),
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

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use tollgate::policy::{Level, RuleId};
    use tollgate::report::{Finding, InputError, Location, PolicyInfo, Report};

    use super::*;

    fn report(levels: &[Level], errors: usize) -> Report {
        let mut r = Report::new(PolicyInfo {
            name: "p".into(),
            origin: "p.yaml".into(),
        });
        for &level in levels {
            r.findings.push(Finding {
                rule_id: RuleId::TagLatest,
                level,
                message: String::new(),
                hint: String::new(),
                location: Location::default(),
                object: None,
                container: None,
                image: None,
            });
        }
        for _ in 0..errors {
            r.errors.push(InputError {
                file: "f".into(),
                line: None,
                column: None,
                message: String::new(),
            });
        }
        r
    }

    #[rstest]
    #[case::nothing(&[], 0, false, Exit::Clean)]
    #[case::warnings_pass(&[Level::Warn], 0, false, Exit::Clean)]
    #[case::warnings_fail_when_asked(&[Level::Warn], 0, true, Exit::Violations)]
    #[case::denial(&[Level::Deny, Level::Warn], 0, false, Exit::Violations)]
    #[case::input_error_alone(&[], 1, false, Exit::Error)]
    #[case::input_error_wins_over_denials(&[Level::Deny], 1, false, Exit::Error)]
    fn exit_code_mapping(
        #[case] levels: &[Level],
        #[case] errors: usize,
        #[case] fail_on_warn: bool,
        #[case] expected: Exit,
    ) {
        assert_eq!(exit_code(&report(levels, errors), fail_on_warn), expected);
    }

    #[test]
    fn exit_codes_are_the_documented_numbers() {
        assert_eq!(
            [Exit::Clean as u8, Exit::Violations as u8, Exit::Error as u8],
            [0, 1, 2]
        );
    }
}
