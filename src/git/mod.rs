//! The deploy repository through git2: revisions, merge bases, the files a change touches, and
//! their content at a commit. Nothing here reads the working tree: the gates check what is
//! committed (what is being pushed or merged), not what happens to be on disk.
//!
//! - this module: [`DeployRepo`], the one place git2 is used;
//! - [`history`]: a branch's first-parent history reduced to the changes of watched files;
//! - [`push`]: what a `git push` pushes (the pre-push hook's input) and what to compare it with;
//! - [`gate`]: the settings a commit carries and the check of the files a change touches.
//!
//! A shell room: it reads the repository. It must not decide policy: checks go through
//! [`crate::check`].

pub mod gate;
pub mod history;
pub mod push;

use std::path::{Path, PathBuf};

use git2::{Delta, DiffFindOptions, DiffOptions, ObjectType, Oid, Repository, TreeWalkMode};

/// Why a git operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// No repository contains the path, or the git directory cannot be opened.
    #[error("{path} is not in a git repository")]
    NotARepository {
        /// The path searched from, or the git directory opened.
        path: PathBuf,
        /// libgit2's reason.
        #[source]
        source: git2::Error,
    },
    /// A revision does not name a commit here; in a shallow clone the message says how to
    /// fetch the history that may hold it.
    #[error(
        "revision {rev:?} is not in this repository{}",
        if *.shallow {
            "; this is a shallow clone, so it may be cut off: fetch it (`git fetch --deepen=100 \
             origin` or `git fetch --unshallow origin`), or check out with full history (GitLab: \
             GIT_DEPTH: 0; GitHub actions/checkout: fetch-depth: 0)"
        } else {
            "; fetch it first (`git fetch origin`)"
        }
    )]
    UnknownRevision {
        /// The revision as given (a sha, a branch, `origin/main`, `HEAD~2`...).
        rev: String,
        /// Whether the repository is a shallow clone, where the commit may just not be fetched.
        shallow: bool,
        /// libgit2's reason.
        #[source]
        source: git2::Error,
    },
    /// No merge base was found in a shallow clone: the common ancestor may lie beyond the cut.
    #[error(
        "{base} and {head} have no common ancestor in this shallow clone: fetch more history \
         (`git fetch --deepen=100 origin` or `git fetch --unshallow origin`; GitLab: GIT_DEPTH: 0; \
         GitHub actions/checkout: fetch-depth: 0)"
    )]
    ShallowMergeBase {
        /// The base revision as the user named it.
        base: String,
        /// The head revision as the user named it.
        head: String,
    },
    /// The two commits share no ancestor in a full clone: unrelated histories.
    #[error("{base} and {head} have no common ancestor (unrelated histories)")]
    NoMergeBase {
        /// The base revision as the user named it.
        base: String,
        /// The head revision as the user named it.
        head: String,
    },
    /// Any other libgit2 failure: a missing object, an unreadable tree or config.
    #[error("{what}")]
    Git {
        /// What was being done (`cannot read the tree of <sha>`), the whole message.
        what: String,
        /// libgit2's reason.
        #[source]
        source: git2::Error,
    },
}

fn git(what: impl Into<String>) -> impl FnOnce(git2::Error) -> GitError {
    let what = what.into();
    move |source| GitError::Git { what, source }
}

/// A file added, modified, renamed or copied by a change, as it is at the change's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    /// `/`-separated, relative to the repository's root.
    pub path: String,
    /// The blob at the head.
    pub blob: Oid,
    /// Where a renamed file came from.
    pub renamed_from: Option<String>,
}

/// An open deploy repository.
pub struct DeployRepo {
    repo: Repository,
}

impl DeployRepo {
    /// The repository containing `path` (searching upwards, as git does).
    pub fn discover(path: &Path) -> Result<DeployRepo, GitError> {
        Repository::discover(path)
            .map(|repo| DeployRepo { repo })
            .map_err(|source| GitError::NotARepository {
                path: path.to_owned(),
                source,
            })
    }

    /// The git directory (`.git`, a linked worktree's own git directory, or a bare repository),
    /// for [`DeployRepo::open_git_dir`].
    pub fn git_dir(&self) -> &Path {
        self.repo.path()
    }

    /// Open the repository at its git directory again: a second handle, for reading objects on
    /// another thread (a git2 `Repository` can move between threads but not be shared by them;
    /// libgit2 keeps one copy of each open pack file for all handles).
    pub fn open_git_dir(git_dir: &Path) -> Result<DeployRepo, GitError> {
        Repository::open(git_dir)
            .map(|repo| DeployRepo { repo })
            .map_err(|source| GitError::NotARepository {
                path: git_dir.to_owned(),
                source,
            })
    }

    /// The working tree's root (the git directory for a bare repository).
    pub fn root(&self) -> &Path {
        self.repo.workdir().unwrap_or_else(|| self.repo.path())
    }

    /// Whether this is a shallow clone, whose history may stop before a commit a gate needs.
    pub fn is_shallow(&self) -> bool {
        self.repo.is_shallow()
    }

    /// The commit `rev` names (a sha, branch, tag, `HEAD~2`, `origin/main`...); annotated tags
    /// are peeled.
    pub fn commit(&self, rev: &str) -> Result<Oid, GitError> {
        let unknown = |source| GitError::UnknownRevision {
            rev: rev.to_owned(),
            shallow: self.repo.is_shallow(),
            source,
        };
        let object = self.repo.revparse_single(rev).map_err(unknown)?;
        let commit = object.peel_to_commit().map_err(unknown)?;
        Ok(commit.id())
    }

    /// Whether `oid` is a commit this repository has (a force-pushed-over remote sha may not be).
    pub fn has_commit(&self, oid: Oid) -> bool {
        self.repo.find_commit(oid).is_ok()
    }

    /// Peel `oid` (a commit or an annotated tag) to a commit; `None` for a tag of a tree or blob.
    pub fn peel_to_commit(&self, oid: Oid) -> Result<Option<Oid>, GitError> {
        let object = self
            .repo
            .find_object(oid, None)
            .map_err(git(format!("cannot read object {oid}")))?;
        Ok(object.peel_to_commit().ok().map(|c| c.id()))
    }

    /// The merge base of `base` and `head`; `label`s name them in errors.
    pub fn merge_base(
        &self,
        base: Oid,
        head: Oid,
        base_label: &str,
        head_label: &str,
    ) -> Result<Oid, GitError> {
        match self.repo.merge_base(base, head) {
            Ok(oid) => Ok(oid),
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                let (base, head) = (base_label.to_owned(), head_label.to_owned());
                Err(if self.repo.is_shallow() {
                    GitError::ShallowMergeBase { base, head }
                } else {
                    GitError::NoMergeBase { base, head }
                })
            }
            Err(e) => Err(git(format!(
                "cannot find the merge base of {base} and {head}"
            ))(e)),
        }
    }

    /// The merge base of `head` with the remote's default branch, found from the
    /// remote-tracking refs (`refs/remotes/REMOTE/HEAD`, else `main`, else `master`). `None`
    /// when the remote has no tracking refs or the histories are unrelated.
    pub fn base_on_remote_default(&self, remote: &str, head: Oid) -> Option<Oid> {
        let default = self.remote_default_branch(remote)?;
        self.repo.merge_base(default, head).ok()
    }

    fn remote_default_branch(&self, remote: &str) -> Option<Oid> {
        let head = format!("refs/remotes/{remote}/HEAD");
        let candidates = [
            self.repo
                .find_reference(&head)
                .ok()
                .and_then(|r| r.symbolic_target().ok().flatten().map(str::to_owned)),
            Some(format!("refs/remotes/{remote}/main")),
            Some(format!("refs/remotes/{remote}/master")),
        ];
        candidates.into_iter().flatten().find_map(|name| {
            self.repo
                .find_reference(&name)
                .ok()?
                .peel_to_commit()
                .ok()
                .map(|c| c.id())
        })
    }

    /// The files a change adds, modifies, renames or copies, at `head`, compared with `base`
    /// (every file of `head` when `base` is `None`). Deleted files, symlinks and submodules are
    /// left out: there is nothing of them to check.
    pub fn changed_files(
        &self,
        base: Option<Oid>,
        head: Oid,
    ) -> Result<Vec<ChangedFile>, GitError> {
        let head_tree = self
            .repo
            .find_commit(head)
            .and_then(|c| c.tree())
            .map_err(git(format!("cannot read the tree of {head}")))?;
        let Some(base) = base else {
            return self.all_files(&head_tree);
        };
        let base_tree = self
            .repo
            .find_commit(base)
            .and_then(|c| c.tree())
            .map_err(git(format!("cannot read the tree of {base}")))?;
        let mut opts = DiffOptions::new();
        opts.ignore_submodules(true);
        let mut diff = self
            .repo
            .diff_tree_to_tree(Some(&base_tree), Some(&head_tree), Some(&mut opts))
            .map_err(git(format!("cannot compare {base} with {head}")))?;
        // Rename detection only pairs deleted with added files, so it costs little when a
        // change mostly edits files in place (the common case for a deploy repository).
        diff.find_similar(Some(DiffFindOptions::new().renames(true)))
            .map_err(git("cannot detect renames"))?;
        let mut files = Vec::new();
        for delta in diff.deltas() {
            if !matches!(
                delta.status(),
                Delta::Added | Delta::Modified | Delta::Renamed | Delta::Copied | Delta::Typechange
            ) {
                continue;
            }
            let new = delta.new_file();
            if !is_regular(new.mode()) {
                continue;
            }
            let Some(path) = new.path().and_then(Path::to_str) else {
                continue;
            };
            let renamed_from = (delta.status() == Delta::Renamed)
                .then(|| {
                    delta
                        .old_file()
                        .path()
                        .and_then(Path::to_str)
                        .map(str::to_owned)
                })
                .flatten();
            files.push(ChangedFile {
                path: path.to_owned(),
                blob: new.id(),
                renamed_from,
            });
        }
        Ok(files)
    }

    fn all_files(&self, tree: &git2::Tree<'_>) -> Result<Vec<ChangedFile>, GitError> {
        let mut files = Vec::new();
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(ObjectType::Blob)
                && is_regular(entry.filemode() as u32)
                && let Ok(name) = entry.name()
            {
                files.push(ChangedFile {
                    path: format!("{dir}{name}"),
                    blob: entry.id(),
                    renamed_from: None,
                });
            }
            git2::TreeWalkResult::Ok
        })
        .map_err(git("cannot list the files of the tree"))?;
        Ok(files)
    }

    /// The content of a blob.
    pub fn blob(&self, oid: Oid) -> Result<Vec<u8>, GitError> {
        self.repo
            .find_blob(oid)
            .map(|b| b.content().to_vec())
            .map_err(git(format!("cannot read blob {oid}")))
    }

    /// The blob at `path` in `commit`, if there is a file there.
    pub fn file_at(&self, commit: Oid, path: &str) -> Result<Option<Oid>, GitError> {
        let tree = self
            .repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(git(format!("cannot read the tree of {commit}")))?;
        match tree.get_path(Path::new(path)) {
            Ok(entry) if entry.kind() == Some(ObjectType::Blob) => Ok(Some(entry.id())),
            Ok(_) => Ok(None),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(git(format!("cannot look up {path} in {commit}"))(e)),
        }
    }

    /// The directory git runs hooks from: `core.hooksPath` (relative to the working tree's
    /// root, as git resolves it) or the common git directory's `hooks`.
    pub fn hooks_dir(&self) -> Result<PathBuf, GitError> {
        let config = self.repo.config().map_err(git("cannot read git config"))?;
        match config.get_path("core.hooksPath") {
            Ok(p) if p.is_absolute() => Ok(p),
            Ok(p) => Ok(self.root().join(p)),
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                Ok(self.repo.commondir().join("hooks"))
            }
            Err(e) => Err(git("cannot read core.hooksPath")(e)),
        }
    }

    /// A short name for a commit in messages.
    pub fn short(&self, oid: Oid) -> String {
        self.repo
            .find_object(oid, None)
            .and_then(|o| o.short_id())
            .ok()
            .and_then(|b| b.as_str().ok().map(str::to_owned))
            .unwrap_or_else(|| oid.to_string()[..12].to_owned())
    }
}

/// A regular file (not a symlink, submodule or tree). Git records executable files as 0o100755.
fn is_regular(mode: impl Into<u32>) -> bool {
    matches!(Into::<u32>::into(mode), 0o100644 | 0o100755 | 0o100664)
}
