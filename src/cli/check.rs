//! `tollgate check`.

use std::path::PathBuf;

use clap::ValueEnum;
use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt as _;
use tollgate::check::{self, Options};
use tollgate::manifest;
use tollgate::policy::eval::{self, Context};
use tollgate::policy::{Policy, RuleId};
use tollgate::reference::ImageRef;
use tollgate::registry::base::BaseChecker;
use tollgate::registry::rules;
use tollgate::report::{self, ImageSite, InputError, Report};

use super::RegistryArgs;
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
    /// Also evaluate the registry-backed rules (image-unavailable, tag-moved,
    /// base-not-approved): each distinct image of an approved registry is walked end to end once.
    #[arg(long)]
    pub resolve: bool,
    /// Registry access, with --resolve.
    #[command(flatten)]
    pub registry: RegistryArgs,
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
    let mut opts = Options::enforce(args.namespace, now());
    opts.collect_sites = args.resolve;
    let mut report = manifest::check_inputs(&policy, &inputs, &opts);
    report.files += input_errors.len();
    report.errors.extend(input_errors);
    if args.resolve {
        resolve_sites(&policy, &args.registry, &opts, &mut report)?;
    }
    report.sort();
    print(&render(&report, args.format, args.color.enabled()))?;
    Ok(exit_code(&report, args.fail_on_warn))
}

/// Walk each distinct image once and place the registry-backed findings at every use of it.
/// Images that do not parse or whose registry is not approved already have their findings, and
/// are never contacted.
fn resolve_sites(
    policy: &Policy,
    registry: &RegistryArgs,
    opts: &Options,
    report: &mut Report,
) -> anyhow::Result<()> {
    let policy = Arc::new(policy.clone());
    let resolver = Arc::new(registry.resolver(policy.clone())?);
    let bases = BaseChecker::new(resolver.clone(), policy.clone());
    let mut by_image: BTreeMap<String, Vec<ImageSite>> = BTreeMap::new();
    for site in std::mem::take(&mut report.sites) {
        by_image.entry(site.image.clone()).or_default().push(site);
    }
    let todo: Vec<(ImageRef, Vec<ImageSite>)> = by_image
        .into_values()
        .filter_map(|sites| {
            let r = sites[0].image.parse::<ImageRef>().ok()?;
            policy.approved_registry(&r)?;
            Some((r, sites))
        })
        .collect();
    let runtime = super::runtime()?;
    let results = runtime.block_on(
        futures_util::stream::iter(todo.iter())
            .map(|(r, _)| rules::evaluate(&policy, &resolver, &bases, r))
            .buffered(registry.jobs.max(1))
            .collect::<Vec<_>>(),
    );
    for ((reference, sites), result) in todo.iter().zip(results) {
        let facts = match result {
            Ok(facts) => facts,
            Err(e) => {
                let first = &sites[0];
                report.errors.push(InputError {
                    file: first.location.file.clone().unwrap_or_default(),
                    line: first.location.line,
                    column: first.location.column,
                    message: format!("cannot check {} in the registry: {e}", first.image),
                });
                continue;
            }
        };
        if let Some(pinned) = facts.pinned_form(reference) {
            for f in &mut report.findings {
                if f.rule_id == RuleId::DigestMissing
                    && f.image.as_deref() == Some(sites[0].image.as_str())
                {
                    f.hint = format!("pin it by digest: {pinned}");
                }
            }
        }
        for site in sites {
            let ctx = Context {
                namespace: &site.namespace,
                now: opts.now,
            };
            for (rule, status) in &facts.statuses {
                let outcome =
                    eval::registry_outcome(&policy, *rule, status.clone(), reference, ctx);
                check::record_outcome(&policy, outcome, site, opts, report);
            }
        }
    }
    Ok(())
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
