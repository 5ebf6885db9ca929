//! What `tollgate ci` and `tollgate hook pre-push` share: check the files that one or more
//! changes (a head commit and what to compare it with) touch, under the settings each head
//! commit carries, with the registry-backed rules when the repository config asks for them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use git2::Oid;
use tollgate::git::DeployRepo;
use tollgate::git::gate::{self, FileToCheck, Settings};
use tollgate::policy::Policy;
use tollgate::registry::{RegistryClient, Resolver, sites};
use tollgate::report::{InputError, Report};

use super::{RegistryArgs, now};

/// One change to check.
#[derive(Debug, Clone)]
pub struct Target {
    /// The ref's short name (`main`, `v1.2`), for file names when refs disagree.
    pub label: String,
    pub head: Oid,
    /// `None`: every file of `head`.
    pub base: Option<Oid>,
}

/// How the gate runs.
pub struct GateOptions<'a> {
    /// `--policy`: wins over the repository's policy.
    pub policy: Option<&'a Policy>,
    /// `--resolve`: the registry-backed rules even when the repository config leaves them off.
    pub resolve: bool,
    pub registry: &'a RegistryArgs,
    /// `--require-objects`: even when the repository config does not ask for it.
    pub require_objects: bool,
}

/// The outcome: the report, and warnings that do not change the exit code (a registry that
/// could not answer, when the config says that does not block).
pub struct Outcome {
    pub report: Report,
    pub warnings: Vec<String>,
}

/// Check every target's changed files. Files are deduplicated by content: a file pushed on
/// two refs at the same version is checked once; at different versions, each is shown as
/// `REF:path`.
pub fn check(
    repo: &DeployRepo,
    targets: &[Target],
    opts: &GateOptions<'_>,
) -> anyhow::Result<Outcome> {
    let mut settings: Vec<Settings> = Vec::new();
    // (settings index, path) -> versions (label, blob)
    let mut files: BTreeMap<(usize, String), Vec<(String, Oid)>> = BTreeMap::new();
    for t in targets {
        let s = gate::load_settings(repo, t.head, opts.policy)?;
        let idx = match settings.iter().position(|x| x.key == s.key) {
            Some(i) => i,
            None => {
                settings.push(s);
                settings.len() - 1
            }
        };
        for f in repo.changed_files(t.base, t.head)? {
            let versions = files.entry((idx, f.path)).or_default();
            if !versions.iter().any(|(_, b)| *b == f.blob) {
                versions.push((t.label.clone(), f.blob));
            }
        }
    }
    let now = now();
    let mut report: Option<Report> = None;
    let mut warnings = Vec::new();
    for (idx, s) in settings.iter().enumerate() {
        warnings.extend(
            s.config
                .notes()
                .iter()
                .map(|n| n.located(s.config.origin())),
        );
        let to_check: Vec<FileToCheck> = files
            .range((idx, String::new())..(idx + 1, String::new()))
            .flat_map(|((_, path), versions)| {
                let several = versions.len() > 1;
                versions.iter().map(move |(label, blob)| FileToCheck {
                    path: path.clone(),
                    display: if several {
                        format!("{label}:{path}")
                    } else {
                        path.clone()
                    },
                    blob: *blob,
                })
            })
            .collect();
        let resolve = opts.resolve || s.config.registry().resolve;
        let mut check_opts = gate::options(s, now, resolve);
        check_opts.require_objects |= opts.require_objects;
        let mut r = gate::check_files(repo, s, &to_check, &check_opts);
        if resolve && !r.sites.is_empty() {
            let unanswered = registry_rules(s, opts.registry, &check_opts, &mut r)?;
            if s.config.registry().block_when_unreachable {
                r.errors.extend(unanswered);
            } else {
                warnings.extend(unanswered.into_iter().map(|e| {
                    format!(
                        "{}: {} (not blocking: {} sets registry.blockWhenUnreachable to false)",
                        e.file,
                        e.message,
                        s.config.origin()
                    )
                }));
            }
        }
        match &mut report {
            None => report = Some(r),
            Some(all) => all.merge(r),
        }
    }
    let mut report = report.unwrap_or_else(|| {
        let policy = opts
            .policy
            .cloned()
            .unwrap_or_else(tollgate::policy::default_policy);
        Report::new(tollgate::check::policy_info(&policy))
    });
    report.sites.clear();
    report.sort();
    Ok(Outcome { report, warnings })
}

/// The registry-backed rules over `report`'s image sites, under the repository's deadline.
/// Returns the images the registry could not answer for.
fn registry_rules(
    settings: &Settings,
    args: &RegistryArgs,
    opts: &tollgate::check::Options,
    report: &mut Report,
) -> anyhow::Result<Vec<InputError>> {
    let deadline = settings.config.registry().deadline;
    let policy = Arc::new(settings.policy.clone());
    let client = RegistryClient::new(args.client_options(&policy)?)?;
    let resolver = Arc::new(Resolver::new(
        Arc::new(client),
        policy.clone(),
        args.resolve_options_with(deadline)?,
    ));
    let first_site = report.sites.first().map(|s| s.location.clone());
    let runtime = super::runtime()?;
    // `apply` adds the images the registry could not answer for to the errors, after the
    // ones already there.
    let before = report.errors.len();
    // Each walk has the deadline; the whole stage gets a little more, as a safety net.
    let result = runtime.block_on(async {
        tokio::time::timeout(
            deadline + Duration::from_secs(2),
            sites::apply(&policy, &resolver, args.jobs, opts, report),
        )
        .await
    });
    let unanswered = report.errors.split_off(before.min(report.errors.len()));
    Ok(result.map(|()| unanswered).unwrap_or_else(|_| {
        let at = first_site.unwrap_or_default();
        vec![InputError {
            file: at.file.unwrap_or_default(),
            line: at.line,
            column: at.column,
            message: format!(
                "the registry checks did not finish within {}s",
                deadline.as_secs_f64()
            ),
        }]
    }))
}
