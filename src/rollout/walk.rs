//! The walk over the deploy repository: what the branch's head declares, compared with live
//! state, and for each workload that differs, one first-parent walk of history (newest first,
//! diffing only the files that declare an out-of-sync workload) back to the deployed revision.
//!
//! git is read through [`DeployRepo`]; the clock comes from the caller ([`Options::now`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::ControlFlow;

use git2::Oid;

use super::{
    DesiredImage, ReportCommit, RolloutReport, Status, WorkloadKey, WorkloadReport, declared,
    live_images, matches_live, pair,
};
use crate::cluster::LiveState;
use crate::config::repo::{FileKind, RepoConfig};
use crate::git::gate::{self, GateError};
use crate::git::history::{CommitInfo, FileChange};
use crate::git::{DeployRepo, GitError};
use crate::reference::WrittenImage;

/// Why the report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The repository or its history could not be read.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The head's `.tollgate.yaml` or its policy cannot be used.
    #[error(transparent)]
    Settings(#[from] GateError),
}

/// What to compare.
pub struct Options<'a> {
    /// The name shown for the branch.
    pub branch: String,
    /// The branch's head commit: what it declares, and where the history walk starts.
    pub head: Oid,
    /// The clock, read once by the caller, for the commits' ages.
    pub now: jiff::Timestamp,
    /// How long a merged commit may wait for its rollout before it is overdue (counted in
    /// whole seconds).
    pub grace: std::time::Duration,
    /// Only workloads in these namespaces (all when empty).
    pub namespaces: &'a [String],
}

/// Compare the workloads the branch declares at `opts.head` with `live`, and walk history for
/// those that differ.
pub fn report(
    repo: &DeployRepo,
    live: &LiveState,
    opts: &Options<'_>,
) -> Result<RolloutReport, RolloutError> {
    let settings = gate::load_settings(repo, opts.head, None)?;
    let config = &settings.config;

    // What the head declares, file by file.
    let mut files_of: BTreeMap<WorkloadKey, BTreeMap<String, Vec<DesiredImage>>> = BTreeMap::new();
    for f in repo.changed_files(None, opts.head)? {
        if matches!(config.classify(&f.path), FileKind::Other) {
            continue;
        }
        let Some(found) = read_declared(repo, config, &f.path, f.blob)? else {
            continue;
        };
        for (key, images) in found {
            files_of
                .entry(key)
                .or_default()
                .insert(f.path.clone(), images);
        }
    }
    files_of.retain(|k, _| opts.namespaces.is_empty() || opts.namespaces.contains(&k.namespace));

    let mut workloads = Vec::new();
    // Out-of-sync workloads being traced back: their images as of the commit being visited.
    let mut tracing: HashMap<WorkloadKey, Trace> = HashMap::new();
    for (key, files) in &files_of {
        let desired = combine(files);
        if desired.as_deref().is_none_or(<[DesiredImage]>::is_empty) {
            // Only partial overrides (a tag without its repository): nothing to compare.
            continue;
        }
        let desired = desired.unwrap_or_default();
        let live_images = live_images(live, key);
        let status = match &live_images {
            None => Status::NotLive,
            Some(l) if matches_live(Some(&desired), Some(l)) => Status::InSync,
            Some(_) => Status::Behind,
        };
        if status != Status::InSync {
            tracing.insert(
                key.clone(),
                Trace {
                    index: workloads.len(),
                    files: files.clone(),
                    live: live_images.clone(),
                    found_live: false,
                },
            );
        }
        workloads.push(WorkloadReport {
            workload: key.clone(),
            status,
            files: files.keys().cloned().collect(),
            images: pair(&desired, live_images.as_deref().unwrap_or_default()),
            not_rolled_out: Vec::new(),
            deployed_revision: None,
        });
    }

    if !tracing.is_empty() {
        let mut watchers: HashMap<String, Vec<WorkloadKey>> = HashMap::new();
        for (key, t) in &tracing {
            for path in t.files.keys() {
                watchers.entry(path.clone()).or_default().push(key.clone());
            }
        }
        let watched: HashSet<String> = watchers.keys().cloned().collect();
        let mut parsed: HashMap<Oid, BTreeMap<WorkloadKey, Vec<DesiredImage>>> = HashMap::new();
        repo.watch_history(opts.head, &watched, |commit, changes| {
            visit(
                repo,
                config,
                opts,
                commit,
                changes,
                &watchers,
                &mut tracing,
                &mut parsed,
                &mut workloads,
            )
        })?;
    }

    Ok(RolloutReport {
        branch: opts.branch.clone(),
        head: opts.head.to_string(),
        grace_seconds: opts.grace.as_secs(),
        workloads,
    })
}

/// A workload being traced back through history.
struct Trace {
    index: usize,
    /// Its images per declaring file, as of the commit being visited.
    files: BTreeMap<String, Vec<DesiredImage>>,
    live: Option<Vec<(String, WrittenImage)>>,
    /// Seen a state that matches live: now looking for the commit that introduced it.
    found_live: bool,
}

/// The images of a workload across its files; `None` when no file declares it.
fn combine(files: &BTreeMap<String, Vec<DesiredImage>>) -> Option<Vec<DesiredImage>> {
    if files.is_empty() {
        return None;
    }
    let mut all: Vec<DesiredImage> = files.values().flatten().cloned().collect();
    all.sort();
    all.dedup();
    Some(all)
}

#[allow(clippy::too_many_arguments)]
fn visit(
    repo: &DeployRepo,
    config: &RepoConfig,
    opts: &Options<'_>,
    commit: &CommitInfo,
    changes: &[FileChange],
    watchers: &HashMap<String, Vec<WorkloadKey>>,
    tracing: &mut HashMap<WorkloadKey, Trace>,
    parsed: &mut HashMap<Oid, BTreeMap<WorkloadKey, Vec<DesiredImage>>>,
    workloads: &mut [WorkloadReport],
) -> Result<ControlFlow<()>, RolloutError> {
    // Workloads whose files this commit changed, with their images as of this commit.
    let mut touched: BTreeMap<WorkloadKey, Option<Vec<DesiredImage>>> = BTreeMap::new();
    for change in changes {
        let Some(keys) = watchers.get(&change.path) else {
            continue;
        };
        let keys: Vec<&WorkloadKey> = keys.iter().filter(|k| tracing.contains_key(*k)).collect();
        if keys.is_empty() {
            continue;
        }
        // The file as the first parent had it.
        let before = match change.old {
            Some(blob) => {
                if let std::collections::hash_map::Entry::Vacant(e) = parsed.entry(blob) {
                    e.insert(read_declared(repo, config, &change.path, blob)?.unwrap_or_default());
                }
                parsed.get(&blob)
            }
            None => None,
        };
        for key in keys {
            let t = tracing.get_mut(key).expect("filtered above");
            touched
                .entry(key.clone())
                .or_insert_with(|| combine(&t.files));
            match before.and_then(|b| b.get(key)) {
                Some(images) => t.files.insert(change.path.clone(), images.clone()),
                None => t.files.remove(&change.path),
            };
        }
    }
    for (key, after) in touched {
        let t = tracing.get_mut(&key).expect("touched keys are traced");
        let before = combine(&t.files);
        if before == after {
            // The file changed, not this workload's images (replicas, another document).
            continue;
        }
        let entry = &mut workloads[t.index];
        let item = report_commit(commit, opts);
        if t.found_live {
            // This commit introduced the images that run.
            entry.deployed_revision = Some(item);
            tracing.remove(&key);
            continue;
        }
        entry.not_rolled_out.push(item);
        if before.is_none() {
            // The workload did not exist before this commit: nothing of it was ever deployed.
            tracing.remove(&key);
        } else if matches_live(before.as_deref(), t.live.as_deref()) {
            t.found_live = true;
        }
    }
    Ok(if tracing.is_empty() {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    })
}

fn read_declared(
    repo: &DeployRepo,
    config: &RepoConfig,
    path: &str,
    blob: Oid,
) -> Result<Option<BTreeMap<WorkloadKey, Vec<DesiredImage>>>, RolloutError> {
    let bytes = repo.blob(blob)?;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(None);
    };
    Ok(declared(config, path, text))
}

fn report_commit(c: &CommitInfo, opts: &Options<'_>) -> ReportCommit {
    let age = opts.now.as_second() - c.time;
    ReportCommit {
        sha: c.oid.to_string(),
        subject: c.subject.clone(),
        author: c.author.clone(),
        time: jiff::Timestamp::from_second(c.time)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        age_seconds: age,
        overdue: age > 0 && age as u64 > opts.grace.as_secs(),
    }
}
