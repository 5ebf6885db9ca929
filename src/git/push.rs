//! What a `git push` pushes: git's pre-push input (one `<local ref> <local sha> <remote ref>
//! <remote sha>` line per ref, githooks(5)) turned into the commits to check and what to
//! compare them with.

use git2::Oid;

use super::{DeployRepo, GitError};

/// One line of pre-push input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRef {
    /// The local ref pushed (`refs/heads/main`, `HEAD`, `(delete)` for a deletion).
    pub local_ref: String,
    /// `None` when the ref is being deleted (git sends all zeros).
    pub local: Option<Oid>,
    /// The ref updated on the remote (`refs/heads/main`); empty when pre-commit did not say.
    pub remote_ref: String,
    /// `None` when the remote does not have the ref yet (a new branch or tag).
    pub remote: Option<Oid>,
}

/// A line of pre-push input that is not four fields with two object names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "pre-push input line {line}: {message} (git sends `<local ref> <local sha> <remote ref> <remote sha>`)"
)]
pub struct PushInputError {
    /// 1-based line of the input.
    pub line: usize,
    /// What is wrong with it (the field count, a field that is not an object name).
    pub message: String,
}

/// Parse git's pre-push input. Blank lines are ignored.
pub fn parse(input: &str) -> Result<Vec<PushedRef>, PushInputError> {
    let mut refs = Vec::new();
    for (i, line) in input.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| PushInputError {
            line: i + 1,
            message,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [local_ref, local, remote_ref, remote] = fields[..] else {
            return Err(err(format!("expected 4 fields, got {}", fields.len())));
        };
        let oid = |s: &str| -> Result<Option<Oid>, PushInputError> {
            if s.len() < 40 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err(format!("{s:?} is not an object name")));
            }
            let oid = Oid::from_str(s).map_err(|e| err(e.message().to_owned()))?;
            Ok((!oid.is_zero()).then_some(oid))
        };
        refs.push(PushedRef {
            local_ref: local_ref.to_owned(),
            local: oid(local)?,
            remote_ref: remote_ref.to_owned(),
            remote: oid(remote)?,
        });
    }
    Ok(refs)
}

/// What the pre-commit framework says is pushed. It runs pre-push hooks without git's input
/// (pre-commit ≥ 2.0) and describes the first ref that has something to push in its
/// environment instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreCommitPush {
    /// `PRE_COMMIT_FROM_REF`..`PRE_COMMIT_TO_REF`: the remote's tip, or the parent of the
    /// oldest commit no remote-tracking ref of the remote has, and the pushed commit.
    Range(PushedRef),
    /// No range, only the refs' names: pre-commit sets no `PRE_COMMIT_FROM_REF` /
    /// `PRE_COMMIT_TO_REF` when the pushed history reaches down to a root commit that the
    /// remote's tracking refs do not have (the first push to an empty remote, an orphan
    /// branch), and runs its hooks on all files instead. The local ref names the pushed commit;
    /// it is judged as a new ref ([`plan`] with no remote sha).
    Branch {
        /// `PRE_COMMIT_LOCAL_BRANCH`, the local ref git's input named (`refs/heads/main`,
        /// `HEAD`, or a sha).
        local_ref: String,
        /// `PRE_COMMIT_REMOTE_BRANCH`.
        remote_ref: String,
    },
}

/// Read the pre-commit framework's description of the push; `get` reads a variable. `None`
/// when neither a range nor a pushed ref is set (not run by pre-commit's pre-push hook).
pub fn from_pre_commit_env(get: impl Fn(&str) -> Option<String>) -> Option<PreCommitPush> {
    let remote_ref = get("PRE_COMMIT_REMOTE_BRANCH").unwrap_or_default();
    let local_ref = get("PRE_COMMIT_LOCAL_BRANCH").filter(|s| !s.is_empty());
    let Some(to) = get("PRE_COMMIT_TO_REF").and_then(|s| Oid::from_str(&s).ok()) else {
        return local_ref.map(|local_ref| PreCommitPush::Branch {
            local_ref,
            remote_ref,
        });
    };
    let from = get("PRE_COMMIT_FROM_REF").and_then(|s| Oid::from_str(&s).ok());
    Some(PreCommitPush::Range(PushedRef {
        local_ref: local_ref.unwrap_or_else(|| "HEAD".into()),
        local: (!to.is_zero()).then_some(to),
        remote_ref,
        remote: from.filter(|o| !o.is_zero()),
    }))
}

impl PreCommitPush {
    /// The pushed ref as git's input would have named it: a [`PreCommitPush::Branch`]'s local
    /// ref is resolved to its commit in `repo`, with no remote sha (a new ref).
    pub fn resolve(self, repo: &DeployRepo) -> Result<PushedRef, GitError> {
        Ok(match self {
            PreCommitPush::Range(r) => r,
            PreCommitPush::Branch {
                local_ref,
                remote_ref,
            } => PushedRef {
                local: Some(repo.commit(&local_ref)?),
                local_ref,
                remote_ref,
                remote: None,
            },
        })
    }
}

/// What to check for one pushed ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to check: the ref is deleted, or names no commit (a tag of a tree or blob).
    Skip {
        /// Why, for the report (`refs/heads/f is deleted`).
        reason: String,
    },
    /// Check the files that differ between `base` and `head`, at `head`; every file of `head`
    /// when `base` is `None` (nothing to compare with).
    Check {
        /// The pushed ref, shortened ([`short_ref`]), naming it in the report.
        label: String,
        /// The pushed commit (an annotated tag peeled).
        head: Oid,
        /// The commit to compare with; `None`: nothing to compare with, check the whole tree.
        base: Option<Oid>,
        /// How the base was chosen, for the report.
        base_from: BaseFrom,
    },
}

/// How the comparison base of a pushed ref was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseFrom {
    /// The merge base with what the remote has for this ref (fast-forward or force push).
    RemoteRef,
    /// A new ref: the merge base with the remote's default branch.
    RemoteDefaultBranch,
    /// Nothing to compare with: the whole tree is checked.
    WholeTree,
}

/// Decide what to check for `pushed`, going to `remote` (the remote's name, for its
/// remote-tracking refs).
pub fn plan(repo: &DeployRepo, remote: &str, pushed: &PushedRef) -> Result<Plan, GitError> {
    let label = short_ref(&pushed.local_ref).to_owned();
    let Some(local) = pushed.local else {
        return Ok(Plan::Skip {
            reason: format!("{} is deleted", pushed.remote_ref),
        });
    };
    let Some(head) = repo.peel_to_commit(local)? else {
        return Ok(Plan::Skip {
            reason: format!("{label} is not a commit"),
        });
    };
    // Force push: the remote's old tip may be unknown here (never fetched); then the pushed
    // commits are judged like a new branch, against the default branch.
    if let Some(remote_oid) = pushed.remote
        && repo.has_commit(remote_oid)
        && let Ok(base) = repo.merge_base(remote_oid, head, &pushed.remote_ref, &label)
    {
        return Ok(Plan::Check {
            label,
            head,
            base: Some(base),
            base_from: BaseFrom::RemoteRef,
        });
    }
    Ok(match repo.base_on_remote_default(remote, head) {
        Some(base) => Plan::Check {
            label,
            head,
            base: Some(base),
            base_from: BaseFrom::RemoteDefaultBranch,
        },
        None => Plan::Check {
            label,
            head,
            base: None,
            base_from: BaseFrom::WholeTree,
        },
    })
}

/// `main` for `refs/heads/main`, `v1` for `refs/tags/v1`.
pub fn short_ref(name: &str) -> &str {
    name.strip_prefix("refs/heads/")
        .or_else(|| name.strip_prefix("refs/tags/"))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const Z: &str = "0000000000000000000000000000000000000000";

    #[rstest]
    #[case::update(format!("refs/heads/main {A} refs/heads/main {B}\n"), true, true)]
    #[case::new_branch(format!("refs/heads/f {A} refs/heads/f {Z}\n"), true, false)]
    #[case::deletion(format!("(delete) {Z} refs/heads/f {B}\n"), false, true)]
    fn lines(#[case] input: String, #[case] has_local: bool, #[case] has_remote: bool) {
        let refs = parse(&input).unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].local.is_some(), has_local);
        assert_eq!(refs[0].remote.is_some(), has_remote);
    }

    #[test]
    fn several_refs_and_blank_lines() {
        let input =
            format!("refs/heads/a {A} refs/heads/a {B}\n\nrefs/tags/v1 {B} refs/tags/v1 {Z}\n");
        let refs = parse(&input).unwrap();
        assert_eq!(refs.len(), 2);
        assert_eq!(short_ref(&refs[1].local_ref), "v1");
    }

    #[rstest]
    #[case::three_fields(format!("refs/heads/a {A} refs/heads/a\n"), "line 1: expected 4 fields, got 3")]
    #[case::not_hex(format!("refs/heads/a {A} refs/heads/a xyz\n"), "\"xyz\" is not an object name")]
    #[case::second_line(format!("refs/heads/a {A} refs/heads/a {B}\nnonsense\n"), "line 2")]
    fn malformed_input(#[case] input: String, #[case] message: &str) {
        let e = parse(&input).unwrap_err();
        assert!(e.to_string().contains(message), "{e}");
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_pre_commit_framework_range() {
        let vars = [
            ("PRE_COMMIT_TO_REF", A),
            ("PRE_COMMIT_FROM_REF", B),
            ("PRE_COMMIT_LOCAL_BRANCH", "refs/heads/f"),
            ("PRE_COMMIT_REMOTE_BRANCH", "refs/heads/f"),
        ];
        let Some(PreCommitPush::Range(r)) = from_pre_commit_env(env(&vars)) else {
            panic!("a range");
        };
        assert_eq!(r.local, Some(Oid::from_str(A).unwrap()));
        assert_eq!(r.remote, Some(Oid::from_str(B).unwrap()));
        assert_eq!(r.local_ref, "refs/heads/f");
        assert_eq!(r.remote_ref, "refs/heads/f");
    }

    /// pre-commit's push of a history down to a root commit the remote lacks (the first push
    /// to an empty remote) sets the refs' names and no range: the pushed ref, not nothing.
    #[test]
    fn the_pre_commit_framework_without_a_range_names_the_pushed_ref() {
        let vars = [
            ("PRE_COMMIT", "1"),
            ("PRE_COMMIT_LOCAL_BRANCH", "refs/heads/main"),
            ("PRE_COMMIT_REMOTE_BRANCH", "refs/heads/main"),
            ("PRE_COMMIT_REMOTE_NAME", "origin"),
        ];
        assert_eq!(
            from_pre_commit_env(env(&vars)),
            Some(PreCommitPush::Branch {
                local_ref: "refs/heads/main".into(),
                remote_ref: "refs/heads/main".into(),
            })
        );
    }

    #[test]
    fn no_pre_commit_environment() {
        assert_eq!(from_pre_commit_env(|_| None), None);
        assert_eq!(from_pre_commit_env(env(&[("PRE_COMMIT", "1")])), None);
    }
}
