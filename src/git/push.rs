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

/// The pre-commit framework runs pre-push hooks without git's input and passes the range in
/// its environment instead (PRE_COMMIT_FROM_REF / PRE_COMMIT_TO_REF, pre-commit ≥ 2.0). `get`
/// reads a variable.
pub fn from_pre_commit_env(get: impl Fn(&str) -> Option<String>) -> Option<PushedRef> {
    let to = Oid::from_str(&get("PRE_COMMIT_TO_REF")?).ok()?;
    let from = get("PRE_COMMIT_FROM_REF").and_then(|s| Oid::from_str(&s).ok());
    Some(PushedRef {
        local_ref: get("PRE_COMMIT_LOCAL_BRANCH").unwrap_or_else(|| "HEAD".into()),
        local: (!to.is_zero()).then_some(to),
        remote_ref: get("PRE_COMMIT_REMOTE_BRANCH").unwrap_or_default(),
        remote: from.filter(|o| !o.is_zero()),
    })
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

    #[test]
    fn the_pre_commit_framework_environment() {
        let env = |k: &str| match k {
            "PRE_COMMIT_TO_REF" => Some(A.to_owned()),
            "PRE_COMMIT_FROM_REF" => Some(B.to_owned()),
            "PRE_COMMIT_LOCAL_BRANCH" => Some("refs/heads/f".to_owned()),
            _ => None,
        };
        let r = from_pre_commit_env(env).unwrap();
        assert_eq!(r.local, Some(Oid::from_str(A).unwrap()));
        assert_eq!(r.remote, Some(Oid::from_str(B).unwrap()));
        assert_eq!(r.local_ref, "refs/heads/f");
        assert!(from_pre_commit_env(|_| None).is_none());
    }
}
