//! The deploy repository's gates (`tollgate hook pre-push`, `tollgate ci`): the settings a
//! commit carries (`.tollgate.yaml` and the policy it names), and the check of the files a
//! change touches, each read whole from the commit so that findings keep their file:line.

use git2::Oid;

use crate::check::{self, Options};
use crate::manifest;
use crate::policy::{self, Policy, PolicyError};
use crate::repo::{self, FileKind, RepoConfig, RepoConfigError};
use crate::report::{InputError, Report};
use crate::values;

use super::{ChangedFile, DeployRepo, GitError};

/// Why the gate could not run.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{0} (in commit {1})")]
    Config(#[source] RepoConfigError, String),
    #[error("{0} (in commit {1})")]
    Policy(#[source] PolicyError, String),
    #[error(
        "{config} names the policy {path}, which is not in commit {commit}: add it, or fix \
         `policy:` in {config}"
    )]
    MissingPolicy {
        config: String,
        path: String,
        commit: String,
    },
    #[error("{path} in commit {commit} is not UTF-8 text")]
    NotText { path: String, commit: String },
}

/// What a commit says about how to check it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: RepoConfig,
    pub policy: Policy,
    /// Blob ids of `.tollgate.yaml` and the policy file, so that refs sharing them share one
    /// load.
    pub key: (Option<Oid>, Option<Oid>),
}

/// Load `.tollgate.yaml` and its policy from `commit` (the defaults and the embedded policy when
/// absent). `policy_override` (`--policy`) wins over the repository's policy. A broken config or
/// policy in the commit is an error: a change that breaks them must not pass unchecked.
pub fn load_settings(
    repo: &DeployRepo,
    commit: Oid,
    policy_override: Option<&Policy>,
) -> Result<Settings, GateError> {
    let short = repo.short(commit);
    let config_blob = repo.file_at(commit, repo::FILE_NAME)?;
    let config = match config_blob {
        None => RepoConfig::default(),
        Some(blob) => {
            let text = text(repo, blob, repo::FILE_NAME, &short)?;
            RepoConfig::parse(&text, repo::FILE_NAME)
                .map_err(|e| GateError::Config(e, short.clone()))?
        }
    };
    let (policy, policy_blob) = match (policy_override, config.policy()) {
        (Some(p), _) => (p.clone(), None),
        (None, None) => (policy::default_policy(), None),
        (None, Some(path)) => {
            let blob = repo
                .file_at(commit, path)?
                .ok_or_else(|| GateError::MissingPolicy {
                    config: repo::FILE_NAME.to_owned(),
                    path: path.to_owned(),
                    commit: short.clone(),
                })?;
            let text = text(repo, blob, path, &short)?;
            let policy = policy::parse_policy(&text, path)
                .map_err(|e| GateError::Policy(e, short.clone()))?;
            (policy, Some(blob))
        }
    };
    Ok(Settings {
        config,
        policy,
        key: (config_blob, policy_blob),
    })
}

fn text(repo: &DeployRepo, blob: Oid, path: &str, commit: &str) -> Result<String, GateError> {
    String::from_utf8(repo.blob(blob)?).map_err(|_| GateError::NotText {
        path: path.to_owned(),
        commit: commit.to_owned(),
    })
}

/// A file to check: where it is in the repository, the name to show, and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileToCheck {
    pub path: String,
    /// `path`, or `REF:path` when several pushed refs carry different versions of it.
    pub display: String,
    pub blob: Oid,
}

impl From<&ChangedFile> for FileToCheck {
    fn from(f: &ChangedFile) -> Self {
        FileToCheck {
            path: f.path.clone(),
            display: f.path.clone(),
            blob: f.blob,
        }
    }
}

/// Check `files` under `settings`: manifests whole (every document), Helm values files for
/// their images, other files not at all. Blobs are read here, one at a time (a git2 repository
/// is not shared between threads), then checked on every core. `report.files` counts the files
/// checked; the policy's own findings (expired exemptions) are added once.
pub fn check_files(
    repo: &DeployRepo,
    settings: &Settings,
    files: &[FileToCheck],
    opts: &Options,
) -> Report {
    enum Work<'a> {
        Manifest(String, String),
        Values(String, String, &'a repo::ValuesSpec),
        Failed(InputError),
    }
    let mut work = Vec::new();
    for f in files {
        let kind = settings.config.classify(&f.path);
        if matches!(kind, FileKind::Other) {
            continue;
        }
        let text = repo
            .blob(f.blob)
            .map_err(|e| InputError {
                file: f.display.clone(),
                line: None,
                column: None,
                message: e.to_string(),
            })
            .and_then(|bytes| manifest::utf8_text(&f.display, bytes));
        work.push(match (text, kind) {
            (Err(e), _) => Work::Failed(e),
            (Ok(t), FileKind::Values(spec)) => Work::Values(f.display.clone(), t, spec),
            (Ok(t), _) => Work::Manifest(f.display.clone(), t),
        });
    }
    let policy = &settings.policy;
    let mut report = manifest::in_parallel(policy, &work, |w| match w {
        Work::Manifest(name, text) => check::check_text(policy, name, text, opts),
        Work::Values(name, text, spec) => values::check_values_text(policy, name, text, spec, opts),
        Work::Failed(e) => {
            let mut r = Report::new(check::policy_info(policy));
            r.files = 1;
            r.errors.push(e.clone());
            r
        }
    });
    report.findings.extend(check::policy_findings(policy, opts));
    report
}

/// The check options for a commit's settings.
pub fn options(settings: &Settings, now: jiff::Timestamp, collect_sites: bool) -> Options {
    let mut opts = Options::enforce(
        settings.config.namespace().unwrap_or("default").to_owned(),
        now,
    );
    opts.collect_sites = collect_sites;
    opts
}
