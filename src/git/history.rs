//! The first-parent history of a branch, newest first, reduced to what changed in a set of
//! watched files: one walk, one tree-to-tree diff per commit (which skips unchanged subtrees by
//! their ids, so a commit that touches none of the watched files costs little), no blob read.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::Path;

use git2::{DiffOptions, Oid, Sort};

use super::{DeployRepo, GitError, git};

/// A commit as a report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// The commit's id.
    pub oid: Oid,
    /// The first line of the message.
    pub subject: String,
    /// `Name <email>`.
    pub author: String,
    /// Committer time, in seconds since the epoch: when the change landed on the branch (a
    /// rebase or a squash merge keeps the author time of the original work).
    pub time: i64,
}

/// A watched file that a commit changed, with its blob before (in the first parent) and after.
/// `None` when the file is absent on that side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// `/`-separated, relative to the repository's root: one of the watched paths.
    pub path: String,
    /// The blob in the first parent; `None` when the commit added the file (or is the root).
    pub old: Option<Oid>,
    /// The blob in the commit; `None` when the commit deleted the file.
    pub new: Option<Oid>,
}

impl DeployRepo {
    /// Walk the first-parent history from `head`, newest first, calling `visit` with each commit
    /// that changed one of `watched` and those changes, until `visit` breaks or the root commit
    /// has been visited. Following first parents only keeps the history of the branch itself: a
    /// merged feature branch shows up as its merge commit, the moment it reached the branch.
    pub fn watch_history<E: From<GitError>>(
        &self,
        head: Oid,
        watched: &HashSet<String>,
        mut visit: impl FnMut(&CommitInfo, &[FileChange]) -> Result<ControlFlow<()>, E>,
    ) -> Result<(), E> {
        let mut walk = self.repo.revwalk().map_err(git("cannot walk history"))?;
        walk.set_sorting(Sort::TOPOLOGICAL)
            .map_err(git("cannot walk history"))?;
        walk.simplify_first_parent()
            .map_err(git("cannot walk history"))?;
        walk.push(head)
            .map_err(git(format!("cannot walk from {head}")))?;
        let mut opts = DiffOptions::new();
        opts.ignore_submodules(true);
        for oid in walk {
            let oid = oid.map_err(git("cannot walk history"))?;
            let commit = self
                .repo
                .find_commit(oid)
                .map_err(git(format!("cannot read commit {oid}")))?;
            let tree = commit
                .tree()
                .map_err(git(format!("cannot read the tree of {oid}")))?;
            let parent_tree = match commit.parent(0) {
                Ok(p) => Some(
                    p.tree()
                        .map_err(git(format!("cannot read the tree of {}", p.id())))?,
                ),
                Err(_) => None,
            };
            if parent_tree.as_ref().is_some_and(|p| p.id() == tree.id()) {
                continue;
            }
            let diff = self
                .repo
                .diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), Some(&mut opts))
                .map_err(git(format!("cannot compare {oid} with its parent")))?;
            let present = |id: Oid| (!id.is_zero()).then_some(id);
            let changes: Vec<FileChange> = diff
                .deltas()
                .filter_map(|d| {
                    let path = d
                        .new_file()
                        .path()
                        .or_else(|| d.old_file().path())
                        .and_then(Path::to_str)?;
                    watched.contains(path).then(|| FileChange {
                        path: path.to_owned(),
                        old: present(d.old_file().id()),
                        new: present(d.new_file().id()),
                    })
                })
                .collect();
            if changes.is_empty() {
                continue;
            }
            let info = CommitInfo {
                oid,
                subject: commit
                    .summary()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .to_owned(),
                author: {
                    let a = commit.author();
                    format!(
                        "{} <{}>",
                        a.name().unwrap_or_default(),
                        a.email().unwrap_or_default()
                    )
                },
                time: commit.time().seconds(),
            };
            if visit(&info, &changes)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// The branch `refs/remotes/REMOTE/HEAD` points at (the remote's default branch, as recorded
    /// by `git clone` or `git remote set-head`).
    pub fn remote_head(&self, remote: &str) -> Option<String> {
        self.repo
            .find_reference(&format!("refs/remotes/{remote}/HEAD"))
            .ok()?
            .symbolic_target()
            .ok()
            .flatten()
            .map(str::to_owned)
    }
}
