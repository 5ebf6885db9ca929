//! The deploy repository's gates (`tollgate hook pre-push`, `tollgate ci`): the settings a
//! commit carries (`.tollgate.yaml` and the policy it names), and the check of the files a
//! change touches, each read whole from the commit so that findings keep their file:line.

use std::sync::Mutex;

use git2::Oid;

use crate::check::files;
use crate::check::values;
use crate::check::{self, Options};
use crate::config::repo::{self, FileKind, RepoConfig, RepoConfigError};
use crate::policy::{self, Policy, PolicyError};
use crate::report::{InputError, Report};

use super::{ChangedFile, DeployRepo, GitError};

/// Why the gate could not run.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The repository could not be read.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The commit's `.tollgate.yaml` is invalid; the second field is the commit's short sha.
    #[error("{0} (in commit {1})")]
    Config(RepoConfigError, String),
    /// The policy the commit's `.tollgate.yaml` names is invalid; the second field is the
    /// commit's short sha.
    #[error("{0} (in commit {1})")]
    Policy(PolicyError, String),
    /// `.tollgate.yaml` names a policy file the commit does not have.
    #[error(
        "{config} names the policy {path}, which is not in commit {commit}: add it, or fix \
         `policy:` in {config}"
    )]
    MissingPolicy {
        /// The config file that names it ([`repo::FILE_NAME`]).
        config: String,
        /// The policy path as the config writes it, relative to the repository's root.
        path: String,
        /// The commit's short sha.
        commit: String,
    },
    /// The config or policy file in the commit is not UTF-8.
    #[error("{path} in commit {commit} is not UTF-8 text")]
    NotText {
        /// The file, relative to the repository's root.
        path: String,
        /// The commit's short sha.
        commit: String,
    },
}

/// What a commit says about how to check it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The commit's `.tollgate.yaml`, or the defaults when it has none.
    pub config: RepoConfig,
    /// The policy in force: `--policy`, else the one the config names (read from the same
    /// commit), else the embedded default.
    pub policy: Policy,
    /// Blob ids of `.tollgate.yaml`, the policy file and the files the policy names, so that
    /// refs sharing them share one load (and a changed trusted root is a new load).
    pub key: (Option<Oid>, Option<Oid>, Vec<Oid>),
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
    let (policy, policy_blob, named) = match (policy_override, config.policy()) {
        (Some(p), _) => (p.clone(), None, Vec::new()),
        (None, None) => (policy::default_policy(), None, Vec::new()),
        (None, Some(path)) => {
            let blob = repo
                .file_at(commit, path)?
                .ok_or_else(|| GateError::MissingPolicy {
                    config: repo::FILE_NAME.to_owned(),
                    path: path.to_owned(),
                    commit: short.clone(),
                })?;
            let text = text(repo, blob, path, &short)?;
            // The files the policy names are read from the same commit, beside it.
            let named = std::cell::RefCell::new(Vec::new());
            let read = |name: &str| -> Result<Vec<u8>, String> {
                let at = tree_path_beside(path, name)?;
                match repo.file_at(commit, &at) {
                    Ok(Some(blob)) => {
                        named.borrow_mut().push(blob);
                        repo.blob(blob).map_err(|e| e.to_string())
                    }
                    Ok(None) => Err(format!("{at} is not in commit {short}")),
                    Err(e) => Err(e.to_string()),
                }
            };
            let policy = policy::parse_policy_with(&text, path, &read)
                .map_err(|e| GateError::Policy(e, short.clone()))?;
            (policy, Some(blob), named.into_inner())
        }
    };
    Ok(Settings {
        config,
        policy,
        key: (config_blob, policy_blob, named),
    })
}

/// The path in a commit's tree of `name`, which the policy at `policy` names: relative to
/// the policy's directory, and never outside the tree.
fn tree_path_beside(policy: &str, name: &str) -> Result<String, String> {
    if name.starts_with('/') {
        return Err(format!(
            "{name} is absolute; in a repository, name it relative to the policy"
        ));
    }
    let mut parts: Vec<&str> = policy.split('/').collect();
    parts.pop();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("{name} points outside the repository"));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
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
    /// `/`-separated, relative to the repository's root; what `.tollgate.yaml`'s globs match.
    pub path: String,
    /// `path`, or `REF:path` when several pushed refs carry different versions of it.
    pub display: String,
    /// The content to check: the file's blob in the commit being checked.
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
/// their images, other files not at all. Each file is read from the commit and checked on
/// every core: a git2 repository cannot be shared between threads, so each worker reads blobs
/// through its own handle on the repository (reading 500 blobs one by one before checking
/// them took about a fifth of the hook's time). `report.files` counts the files checked; the
/// policy's own findings (expired exemptions) are added once.
pub fn check_files(
    repo: &DeployRepo,
    settings: &Settings,
    files: &[FileToCheck],
    opts: &Options,
) -> Report {
    enum Work<'a> {
        Manifest(&'a FileToCheck),
        Values(&'a FileToCheck, &'a repo::ValuesSpec),
    }
    let work: Vec<Work<'_>> = files
        .iter()
        .filter_map(|f| match settings.config.classify(&f.path) {
            FileKind::Other => None,
            FileKind::Values(spec) => Some(Work::Values(f, spec)),
            FileKind::Manifest => Some(Work::Manifest(f)),
        })
        .collect();
    let git_dir = repo.git_dir().to_owned();
    // Handles not in use; a worker takes one (or opens one) per file and puts it back.
    let handles: Mutex<Vec<DeployRepo>> = Mutex::new(Vec::new());
    let read = |f: &FileToCheck| -> Result<String, InputError> {
        let idle = handles
            .lock()
            .expect("no panic while holding the lock")
            .pop();
        let handle = match idle {
            Some(h) => h,
            None => DeployRepo::open_git_dir(&git_dir).map_err(|e| input_error(f, e))?,
        };
        let bytes = handle.blob(f.blob).map_err(|e| input_error(f, e));
        handles
            .lock()
            .expect("no panic while holding the lock")
            .push(handle);
        files::utf8_text(&f.display, bytes?)
    };
    let policy = &settings.policy;
    let mut report = files::in_parallel(policy, &work, |w| {
        let (Work::Manifest(f) | Work::Values(f, _)) = w;
        match (read(f), w) {
            (Err(e), _) => {
                let mut r = Report::new(check::policy_info(policy));
                r.files = 1;
                r.errors.push(e);
                r
            }
            (Ok(text), Work::Manifest(_)) => check::check_text(policy, &f.display, &text, opts),
            (Ok(text), Work::Values(_, spec)) => {
                values::check_values_text(policy, &f.display, &text, spec, opts)
            }
        }
    });
    report.findings.extend(check::policy_findings(policy, opts));
    report
}

fn input_error(f: &FileToCheck, e: GitError) -> InputError {
    InputError {
        file: f.display.clone(),
        line: None,
        column: None,
        message: crate::report::error_text(&e),
    }
}

/// The check options for a commit's settings.
pub fn options(settings: &Settings, now: jiff::Timestamp, collect_sites: bool) -> Options {
    let mut opts = Options::enforce(
        settings.config.namespace().unwrap_or("default").to_owned(),
        now,
    );
    opts.collect_sites = collect_sites;
    opts.require_objects = settings.config.require_objects();
    opts
}
