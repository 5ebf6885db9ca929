//! The deploy repository's gates: the pre-push hook installed by `tollgate hook install` and
//! run by a real `git push` to a local bare remote, and `tollgate ci` on real histories
//! (including shallow clones).

use rstest::rstest;
use serde_json::Value;

use crate::support;
use crate::support::git::{BAD, GOOD, GitRepo, GitRun, WARN_ONLY, deployment};
use crate::support::run;

/// A working repository with one clean manifest on `main`, pushed (before any hook) to a bare
/// remote whose default branch is known from the remote-tracking refs, with the hook installed.
struct Setup {
    remote: GitRepo,
    work: GitRepo,
}

impl Setup {
    fn new() -> Setup {
        Setup::with_files(&[("apps/api.yaml", &deployment("api", GOOD))])
    }

    /// Besides the clean manifest, one the policy denies, already on the remote before the hook.
    fn with_legacy_violation() -> Setup {
        Setup::with_files(&[
            ("apps/api.yaml", &deployment("api", GOOD)),
            ("legacy/old.yaml", &deployment("old", BAD)),
        ])
    }

    /// Write `files` and commit them on the current branch; returns the commit's sha.
    fn commit_files(&self, files: &[(&str, String)], message: &str) -> String {
        for (path, content) in files {
            self.work.write(path, content);
        }
        self.work.commit(message)
    }

    /// `files` are committed and pushed unchecked (already on the remote before the hook).
    fn with_files(files: &[(&str, &str)]) -> Setup {
        let remote = GitRepo::bare();
        let work = GitRepo::init();
        for (path, content) in files {
            work.write(path, content);
        }
        work.commit("initial");
        work.git(&["remote", "add", "origin", remote.path.to_str().unwrap()]);
        work.git(&["push", "-q", "origin", "main"]);
        work.git(&["remote", "set-head", "origin", "main"]);
        let s = Setup { remote, work };
        s.install();
        s
    }

    fn install(&self) {
        let r = run(&[
            "hook",
            "install",
            "--repo",
            self.work.path.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }

    /// A new branch `name` off `main` with one commit that writes a Deployment `file` running
    /// `image`; the branch stays checked out.
    fn branch(&self, name: &str, file: &str, image: &str) {
        self.work.git(&["checkout", "-q", "-b", name, "main"]);
        let app = file.rsplit('/').next().unwrap().trim_end_matches(".yaml");
        self.work.write(file, &deployment(app, image));
        self.work.commit(name);
    }

    fn push(&self, args: &[&str]) -> GitRun {
        let mut all = vec!["push", "origin"];
        all.extend_from_slice(args);
        self.work.try_git(&all)
    }

    /// The remote's sha for `rev`, if it has it.
    fn remote_rev(&self, rev: &str) -> Option<String> {
        let r = self.remote.try_git(&["rev-parse", "--verify", "-q", rev]);
        r.ok.then(|| r.stdout.trim().to_owned())
    }
}

fn assert_blocked(out: &GitRun, expect: &[&str]) {
    assert!(!out.ok, "the push went through:\n{}", out.stderr);
    for e in expect {
        assert!(out.stderr.contains(e), "{e:?} not in:\n{}", out.stderr);
    }
}

fn assert_pushed(out: &GitRun) {
    assert!(out.ok, "the push was blocked:\n{}", out.stderr);
}

// ---- hook installation -------------------------------------------------------------------

#[test]
fn install_writes_an_executable_hook_that_install_may_rewrite() {
    use std::os::unix::fs::PermissionsExt as _;
    let s = Setup::new();
    let hook = s.work.path.join(".git/hooks/pre-push");
    let text = std::fs::read_to_string(&hook).unwrap();
    assert!(text.starts_with("#!/bin/sh\n# tollgate-managed pre-push hook"));
    assert!(text.contains(env!("CARGO_BIN_EXE_tollgate")));
    assert_eq!(
        std::fs::metadata(&hook).unwrap().permissions().mode() & 0o777,
        0o755
    );
    // Its own hook is rewritten without --force.
    s.install();
}

#[test]
fn install_honours_core_hooks_path() {
    let s = Setup::new();
    s.work.git(&["config", "core.hooksPath", ".githooks"]);
    s.install();
    assert!(s.work.path.join(".githooks/pre-push").exists());
    // And git runs it from there.
    s.work.write("apps/bad.yaml", &deployment("bad", BAD));
    s.work.commit("bad");
    assert_blocked(&s.push(&["main"]), &["registry-not-approved"]);
}

#[test]
fn install_leaves_a_foreign_hook_alone_unless_forced() {
    let work = GitRepo::init();
    let hook = work.path.join(".git/hooks/pre-push");
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    let repo = work.path.to_str().unwrap();

    let r = run(&["hook", "install", "--repo", repo]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("was not written by tollgate"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&hook).unwrap(),
        "#!/bin/sh\nexit 0\n"
    );

    let r = run(&["hook", "uninstall", "--repo", repo]);
    assert_eq!(r.code, 2, "uninstall must not remove a foreign hook");
    assert!(hook.exists());

    let r = run(&["hook", "install", "--repo", repo, "--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::read_to_string(&hook)
            .unwrap()
            .contains("tollgate-managed")
    );
    assert_eq!(
        std::fs::read_to_string(work.path.join(".git/hooks/pre-push.tollgate-backup")).unwrap(),
        "#!/bin/sh\nexit 0\n"
    );

    let r = run(&["hook", "uninstall", "--repo", repo]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!hook.exists());
}

// ---- what a push checks --------------------------------------------------------------------

/// A push to `main` whose commit holds something wrong is refused, says what and where, and
/// leaves the remote where it was.
#[rstest]
#[case::a_denied_image_at_its_file_and_line(
    vec![("apps/web.yaml", deployment("web", BAD))],
    &["apps/web.yaml\n  11:18 ", "registry-not-approved", "push blocked", "--no-verify"]
)]
#[case::a_manifest_that_does_not_parse_at_its_line_and_the_rest_still_checked(
    vec![
        ("apps/broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [p\n".to_owned()),
        ("apps/web.yaml", deployment("web", BAD)),
    ],
    &["apps/broken.yaml:", "not valid YAML", "some files could not be checked", "apps/web.yaml"]
)]
#[case::a_helm_values_image_where_it_is_written(
    vec![(
        "components/builds-api/values.yaml",
        "replicas: 2\nimage:\n  repository: docker.io/library/nginx\n  tag: latest\n".to_owned(),
    )],
    &[
        "components/builds-api/values.yaml\n  4:8 ",
        "tag-latest",
        "registry-not-approved",
        "HelmValues",
    ]
)]
#[case::a_broken_repository_config_at_its_line(
    vec![(".tollgate.yaml", "manifests:\n  includes: ['**/*.yaml']\n".to_owned())],
    &[".tollgate.yaml:2", "unknown key \"includes\" (did you mean \"include\"?)"]
)]
#[case::a_policy_the_config_names_but_the_commit_lacks(
    vec![(".tollgate.yaml", "policy: policy/missing.yaml\n".to_owned())],
    &["policy/missing.yaml, which is not in commit"]
)]
fn a_push_to_main_is_blocked(#[case] files: Vec<(&str, String)>, #[case] expect: &[&str]) {
    let s = Setup::new();
    let before = s.remote_rev("main");
    s.commit_files(&files, "change");
    assert_blocked(&s.push(&["main"]), expect);
    assert_eq!(s.remote_rev("main"), before, "the remote must not move");
}

/// A push to `main` that brings nothing the policy denies goes through, though the remote
/// already holds a denied manifest: only what the push changes is checked.
#[rstest]
#[case::with_warnings_shown(vec![("apps/web.yaml", deployment("web", WARN_ONLY))], &["digest-missing"])]
#[case::a_clean_manifest(vec![("apps/web.yaml", deployment("web", GOOD))], &[])]
#[case::files_that_are_not_manifests(
    vec![
        ("README.md", "image: docker.io/library/nginx:latest\n".to_owned()),
        ("scripts/deploy.sh", "#!/bin/sh\nkubectl apply -f .\n".to_owned()),
        (
            "charts/web/templates/deployment.yaml",
            "{{- if .Values.enabled }}\nimage: {{ .Values.image }}\n{{- end }}\n".to_owned(),
        ),
        ("config/settings.yaml", "retries: 3\nimage_pull: never\n".to_owned()),
    ],
    &[]
)]
fn a_push_to_main_goes_through(#[case] files: Vec<(&str, String)>, #[case] shown: &[&str]) {
    let s = Setup::with_legacy_violation();
    let head = s.commit_files(&files, "change");
    let out = s.push(&["main"]);
    assert_pushed(&out);
    for e in shown {
        assert!(out.stderr.contains(e), "{e:?} not in:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("legacy/old.yaml"), "{}", out.stderr);
    assert_eq!(s.remote_rev("main"), Some(head));
}

#[test]
fn the_pushed_commits_are_checked_not_the_working_tree() {
    let s = Setup::new();
    s.work.write("apps/web.yaml", &deployment("web", BAD));
    s.work.commit("add web");
    // Fixed on disk but not committed: the push still carries the bad commit.
    s.work.write("apps/web.yaml", &deployment("web", GOOD));
    assert_blocked(
        &s.push(&["main"]),
        &["apps/web.yaml", "registry-not-approved"],
    );
}

#[test]
fn a_new_branch_is_compared_with_the_remote_default_branch() {
    let s = Setup::with_legacy_violation();
    s.branch("feature", "apps/web.yaml", GOOD);
    assert_pushed(&s.push(&["feature"]));

    s.branch("feature2", "apps/db.yaml", BAD);
    let out = s.push(&["feature2"]);
    assert_blocked(&out, &["apps/db.yaml"]);
    // Only what the branch adds over main: not the legacy file, not the other branch's file.
    assert!(!out.stderr.contains("legacy/old.yaml"), "{}", out.stderr);
    assert!(out.stderr.contains("1 file"), "{}", out.stderr);
}

#[test]
fn a_new_branch_with_no_remote_tracking_refs_checks_the_whole_tree() {
    let s = Setup::with_legacy_violation();
    let empty = GitRepo::bare();
    s.work
        .git(&["remote", "add", "fresh", empty.path.to_str().unwrap()]);
    let out = s.work.try_git(&["push", "fresh", "main"]);
    assert_blocked(&out, &["legacy/old.yaml", "registry-not-approved"]);
}

#[test]
fn a_force_push_checks_what_replaces_the_remote_history() {
    let s = Setup::new();
    s.work.write("apps/web.yaml", &deployment("web", GOOD));
    s.work.commit("web");
    assert_pushed(&s.push(&["main"]));
    // Rewrite: drop the last commit and put a bad one in its place.
    s.work.git(&["reset", "-q", "--hard", "HEAD~1"]);
    s.work.write("apps/other.yaml", &deployment("other", BAD));
    s.work.commit("rewritten");
    let out = s.push(&["--force", "main"]);
    assert_blocked(&out, &["apps/other.yaml"]);
    // The rewrite's good version goes through.
    s.work.write("apps/other.yaml", &deployment("other", GOOD));
    s.work.commit("fixed");
    assert_pushed(&s.push(&["--force", "main"]));
}

#[test]
fn deleting_a_branch_is_not_checked() {
    let s = Setup::new();
    s.branch("old-feature", "apps/bad.yaml", BAD);
    assert_pushed(&s.push(&["--no-verify", "old-feature"]));
    let out = s.push(&["--delete", "old-feature"]);
    assert_pushed(&out);
    assert!(
        out.stderr.contains("is deleted: nothing to check"),
        "{}",
        out.stderr
    );
    assert_eq!(s.remote_rev("old-feature"), None);
}

#[test]
fn a_tag_is_checked_for_what_it_adds_over_the_default_branch() {
    let s = Setup::new();
    s.work.write("apps/web.yaml", &deployment("web", BAD));
    s.work.commit("bad web");
    s.work.git(&["tag", "-a", "-m", "release", "v1.0"]);
    assert_blocked(
        &s.push(&["v1.0"]),
        &["apps/web.yaml", "registry-not-approved"],
    );
    s.work.git(&["reset", "-q", "--hard", "HEAD~1"]);
    s.work.git(&["tag", "v0.9"]);
    assert_pushed(&s.push(&["v0.9"]));
    assert!(s.remote_rev("v0.9").is_some());
}

#[test]
fn a_renamed_manifest_is_checked_under_its_new_name() {
    let s = Setup::with_legacy_violation();
    std::fs::create_dir_all(s.work.path.join("apps")).unwrap();
    s.work.git(&["mv", "legacy/old.yaml", "apps/old.yaml"]);
    s.work.commit("move");
    let out = s.push(&["main"]);
    assert_blocked(&out, &["apps/old.yaml"]);
    assert!(!out.stderr.contains("legacy/old.yaml"), "{}", out.stderr);
}

#[test]
fn several_refs_in_one_push_are_each_checked() {
    let s = Setup::new();
    s.branch("a", "apps/a.yaml", GOOD);
    s.branch("b", "apps/b.yaml", BAD);
    let out = s.push(&["a", "b"]);
    assert_blocked(&out, &["apps/b.yaml"]);
    assert!(s.remote_rev("a").is_none(), "a blocked push moves no ref");
    s.work.write("apps/b.yaml", &deployment("b", GOOD));
    s.work.commit("b fixed");
    let out = s.push(&["a", "b"]);
    assert_pushed(&out);
    assert!(out.stderr.contains("2 files"), "{}", out.stderr);
}

#[test]
fn the_same_file_at_different_versions_on_two_refs_is_shown_per_ref() {
    let s = Setup::new();
    s.branch("a", "apps/x.yaml", GOOD);
    s.branch("b", "apps/x.yaml", BAD);
    let out = s.push(&["a", "b"]);
    assert_blocked(&out, &["b:apps/x.yaml"]);
}

#[test]
fn a_merge_commit_brings_the_merged_changes_into_the_check() {
    let s = Setup::new();
    s.branch("topic", "apps/topic.yaml", BAD);
    s.work.git(&["checkout", "-q", "main"]);
    s.work.write("apps/main.yaml", &deployment("main", GOOD));
    s.work.commit("main work");
    s.work
        .git(&["merge", "-q", "--no-ff", "-m", "merge topic", "topic"]);
    assert_blocked(&s.push(&["main"]), &["apps/topic.yaml"]);
}

#[test]
fn the_repository_config_chooses_the_policy_and_the_image_keys() {
    let s = Setup::new();
    s.work.write(
        ".tollgate.yaml",
        "policy: policy/tollgate.yaml\nhelmValues:\n  - files: ['deploy/*.yaml']\n    images:\n      - path: app.container\n        keys: {repository: name, tag: version}\n",
    );
    s.work.write(
        "policy/tollgate.yaml",
        "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: team}\nspec:\n  rules: {digest-missing: off}\n  registries: [{prefix: registry.team.example}]\n",
    );
    s.work.write(
        "deploy/prod.yaml",
        "app:\n  container: {name: registry.team.example/app, version: '1.2'}\n",
    );
    s.work.commit("team config");
    let out = s.push(&["main"]);
    assert_pushed(&out);
    assert!(out.stderr.contains("policy team"), "{}", out.stderr);

    s.work.write(
        "deploy/prod.yaml",
        "app:\n  container: {name: docker-registry.wikimedia.org/app, version: '1.3'}\n",
    );
    s.work.commit("wrong registry for this team");
    assert_blocked(
        &s.push(&["main"]),
        &["deploy/prod.yaml\n  2:", "registry-not-approved"],
    );
}

#[test]
fn pre_push_input_that_is_not_git_s_is_an_error() {
    let work = GitRepo::init();
    work.write("a.yaml", &deployment("a", GOOD));
    work.commit("a");
    let r = support::run_stdin(
        &[
            "hook",
            "pre-push",
            "origin",
            "--repo",
            work.path.to_str().unwrap(),
        ],
        "refs/heads/main 123\n",
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("pre-push input line 1: expected 4 fields"),
        "{}",
        r.stderr
    );
}

// ---- tollgate ci ------------------------------------------------------------------------------

/// A merge-request-shaped history: `main` moves on after `feature` branches off it.
fn merge_request_history() -> GitRepo {
    let work = GitRepo::init();
    work.write("apps/api.yaml", &deployment("api", GOOD));
    work.commit("initial");
    work.git(&["checkout", "-q", "-b", "feature"]);
    work.write("apps/web.yaml", &deployment("web", BAD));
    work.commit("feature: web");
    work.write("apps/api.yaml", &deployment("api", WARN_ONLY));
    work.commit("feature: api unpinned");
    work.git(&["checkout", "-q", "main"]);
    // main's own later changes are not the merge request's.
    work.write("apps/legacy.yaml", &deployment("legacy", BAD));
    work.commit("main: legacy");
    work.git(&["checkout", "-q", "feature"]);
    work
}

#[test]
fn ci_checks_the_merge_request_changes_since_the_merge_base() {
    let work = merge_request_history();
    let r = run(&[
        "ci",
        "--base",
        "main",
        "--repo",
        work.path.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let mut files: Vec<(&str, &str)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["location"]["file"].as_str().unwrap(),
                f["ruleId"].as_str().unwrap(),
            )
        })
        .collect();
    files.sort();
    files.dedup();
    assert_eq!(
        files,
        vec![
            ("apps/api.yaml", "digest-missing"),
            ("apps/web.yaml", "digest-missing"),
            ("apps/web.yaml", "registry-not-approved"),
        ]
    );
    assert_eq!(v["summary"]["files"], 2);
}

#[test]
fn ci_formats_and_a_clean_change() {
    let work = merge_request_history();
    let repo = work.path.to_str().unwrap();
    let r = run(&["ci", "--base", "main", "--repo", repo, "--format", "github"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("::error file=apps/web.yaml,line=11"),
        "{}",
        r.stdout
    );
    let r = run(&["ci", "--base", "main", "--repo", repo, "--format", "sarif"]);
    assert_eq!(r.code, 1);
    let _: serde_sarif::sarif::Sarif = serde_json::from_str(&r.stdout).unwrap();
    // From main to main: nothing changed, nothing to deny.
    let r = run(&["ci", "--base", "main", "--head", "main", "--repo", repo]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn ci_warnings_fail_only_when_asked() {
    let work = GitRepo::init();
    work.write("apps/api.yaml", &deployment("api", GOOD));
    work.commit("initial");
    work.write("apps/api.yaml", &deployment("api", WARN_ONLY));
    work.commit("unpinned");
    let repo = work.path.to_str().unwrap();
    assert_eq!(run(&["ci", "--base", "HEAD~1", "--repo", repo]).code, 0);
    assert_eq!(
        run(&["ci", "--base", "HEAD~1", "--repo", repo, "--fail-on-warn"]).code,
        1
    );
}

#[test]
fn ci_in_a_shallow_clone_without_the_base_says_how_to_fetch_it() {
    let origin = merge_request_history();
    let clone = GitRepo::clone_from(
        &origin.url(),
        &["--depth", "1", "--branch", "feature", "--single-branch"],
    );
    let r = run(&[
        "ci",
        "--base",
        "origin/main",
        "--repo",
        clone.path.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("shallow clone"), "{}", r.stderr);
    assert!(r.stderr.contains("git fetch"), "{}", r.stderr);
    assert!(r.stderr.contains("fetch-depth: 0"), "{}", r.stderr);
}

#[test]
fn ci_in_a_shallow_clone_cut_above_the_merge_base_says_how_to_deepen() {
    let origin = merge_request_history();
    let clone = GitRepo::clone_from(&origin.url(), &["--depth", "1", "--no-single-branch"]);
    let r = run(&[
        "ci",
        "--base",
        "origin/main",
        "--head",
        "origin/feature",
        "--repo",
        clone.path.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("no common ancestor in this shallow clone"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--unshallow"), "{}", r.stderr);
    // Deepened, the same check works.
    clone.git(&["fetch", "-q", "--unshallow", "origin"]);
    let r = run(&[
        "ci",
        "--base",
        "origin/main",
        "--head",
        "origin/feature",
        "--repo",
        clone.path.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
}

#[test]
fn ci_with_an_unknown_base_or_outside_a_repository_is_an_input_error() {
    let work = merge_request_history();
    let r = run(&[
        "ci",
        "--base",
        "nope",
        "--repo",
        work.path.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("revision \"nope\" is not in this repository"),
        "{}",
        r.stderr
    );
    let dir = tempfile::tempdir().unwrap();
    let r = run(&[
        "ci",
        "--base",
        "main",
        "--repo",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("is not in a git repository"),
        "{}",
        r.stderr
    );
}

// ---- registry-backed rules in the hook -------------------------------------------------------

/// A deploy repository whose config turns the registry-backed rules on, with a policy that
/// approves the test registry; `block` sets registry.blockWhenUnreachable.
fn registry_setup(reg: &support::registry::TestRegistry, block: bool) -> Setup {
    Setup::with_files(&[
        (
            ".tollgate.yaml",
            &format!(
                "policy: policy.yaml\nregistry:\n  resolve: true\n  deadline: 5s\n  blockWhenUnreachable: {block}\n"
            ),
        ),
        (
            "policy.yaml",
            &reg.policy("  rules: {digest-missing: off}\n"),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_rules_block_an_image_the_registry_cannot_serve() {
    let reg = support::registry::TestRegistry::start();
    let host = reg.host();
    let p = support::oci::Pusher::new(reg.base_url());
    p.image(
        "svc/api",
        Some("1.0"),
        &[support::oci::layer(&[("a", b"1")])],
        "linux/amd64",
    )
    .await;
    let s = registry_setup(&reg, false);
    s.work.write(
        "apps/api.yaml",
        &deployment("api", &format!("{host}/svc/api:1.0")),
    );
    s.work.commit("api 1.0");
    let out = tokio::task::spawn_blocking(move || (s.push(&["main"]), s))
        .await
        .unwrap();
    assert_pushed(&out.0);
    let s = out.1;
    // A tag that was never pushed: the version the repository names is not in the registry.
    s.work.write(
        "apps/api.yaml",
        &deployment("api", &format!("{host}/svc/api:1.1")),
    );
    s.work.commit("api 1.1");
    let out = tokio::task::spawn_blocking(move || s.push(&["main"]))
        .await
        .unwrap();
    assert_blocked(&out, &["apps/api.yaml", "image-unavailable"]);
}

#[test]
fn an_unreachable_registry_warns_and_does_not_block_unless_the_config_says_so() {
    let mut reg = support::registry::TestRegistry::start();
    let host = reg.host();
    let s = registry_setup(&reg, false);
    reg.stop();
    s.work.write(
        "apps/api.yaml",
        &deployment("api", &format!("{host}/svc/api:1.0")),
    );
    s.work.commit("api");
    let out = s.push(&["main"]);
    assert_pushed(&out);
    assert!(
        out.stderr.contains("warning: apps/api.yaml: cannot check")
            && out.stderr.contains("not blocking"),
        "{}",
        out.stderr
    );

    let blocking = registry_setup(&reg, true);
    blocking.work.write(
        "apps/api.yaml",
        &deployment("api", &format!("{host}/svc/api:1.0")),
    );
    blocking.work.commit("api");
    assert_blocked(
        &blocking.push(&["main"]),
        &["cannot check", "some files could not be checked"],
    );
}

// ---- the pre-commit framework ------------------------------------------------------------------

fn hook_definitions() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.pre-commit-hooks.yaml"
    ))
    .unwrap();
    let doc = tollgate::yaml::load_one(&text, tollgate::yaml::Record::All).unwrap();
    doc.value.as_array().unwrap().clone()
}

/// `python3 -m pre_commit`, the pinned pre-commit that tests/run.sh installs, with a
/// PRE_COMMIT_HOME of its own and none of the caller's pre-commit variables.
fn pre_commit_env(cmd: &mut std::process::Command, home: &std::path::Path) {
    cmd.env("PYTHONPATH", support::tools::pre_commit_dir())
        .env("PRE_COMMIT_HOME", home)
        .env("PRE_COMMIT_COLOR", "never")
        .env_remove("PRE_COMMIT_ALLOW_NO_CONFIG")
        .env_remove("PRE_COMMIT_FROM_REF")
        .env_remove("PRE_COMMIT_TO_REF")
        .env_remove("PRE_COMMIT_LOCAL_BRANCH")
        .env_remove("PRE_COMMIT_REMOTE_BRANCH")
        .env_remove("PRE_COMMIT_REMOTE_NAME")
        .env_remove("SKIP");
}

#[test]
fn the_pre_commit_hook_definitions_pass_pre_commit_s_own_manifest_check() {
    // Both hooks: a pre-push stage hook running `tollgate hook pre-push`, verbose so that a
    // push that goes on still shows its warnings (pre-commit hides a passing hook's output).
    let hooks = hook_definitions();
    let ids: Vec<&str> = hooks.iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["tollgate-pre-push", "tollgate-system"]);
    for hook in &hooks {
        assert_eq!(hook["entry"], "tollgate hook pre-push", "{hook}");
        assert_eq!(hook["stages"], serde_json::json!(["pre-push"]), "{hook}");
        assert_eq!(hook["pass_filenames"], false, "{hook}");
        assert_eq!(hook["always_run"], true, "{hook}");
        assert_eq!(hook["verbose"], true, "{hook}");
    }
    assert_eq!(hooks[0]["language"], "rust");
    assert_eq!(hooks[1]["language"], "system");

    let home = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new("python3");
    cmd.args([
        "-m",
        "pre_commit",
        "validate-manifest",
        ".pre-commit-hooks.yaml",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    pre_commit_env(&mut cmd, home.path());
    let out = GitRun::from(cmd.output().unwrap());
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
}

/// The real pre-commit, installed as the repository's pre-push hook and run by a real
/// `git push`, with tollgate's `language: system` hook from a hook repository holding this
/// checkout's .pre-commit-hooks.yaml (a `file://` repository: nothing is fetched from the
/// network) and the test binary on PATH (nothing is built).
#[test]
fn pre_commit_s_pre_push_hook_blocks_and_passes_real_pushes_from_the_first_one_on() {
    let hooks = GitRepo::init();
    hooks.write(
        ".pre-commit-hooks.yaml",
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.pre-commit-hooks.yaml"
        ))
        .unwrap(),
    );
    let rev = hooks.commit("hooks");

    let remote = GitRepo::bare();
    let work = GitRepo::init();
    work.write(
        ".pre-commit-config.yaml",
        &format!(
            "repos:\n  - repo: {}\n    rev: {rev}\n    hooks:\n      - id: tollgate-system\n",
            hooks.url()
        ),
    );
    work.write("apps/api.yaml", &deployment("api", GOOD));
    work.write("apps/web.yaml", &deployment("web", BAD));
    work.commit("initial, with a denied image");
    work.git(&["remote", "add", "origin", remote.path.to_str().unwrap()]);

    let home = tempfile::tempdir().unwrap();
    let path = support::path_with_tollgate();
    let pre_commit = |args: &[&str]| {
        let mut cmd = std::process::Command::new("python3");
        cmd.args(["-m", "pre_commit"])
            .args(args)
            .current_dir(&work.path)
            .env("PATH", &path);
        support::git::hermetic(&mut cmd);
        pre_commit_env(&mut cmd, home.path());
        GitRun::from(cmd.output().unwrap())
    };
    let push = |args: &[&str]| {
        let mut cmd = support::git::git_command(&work.path);
        cmd.env("PATH", &path).arg("push").arg("origin").args(args);
        pre_commit_env(&mut cmd, home.path());
        let out = GitRun::from(cmd.output().unwrap());
        // pre-commit writes its hooks' output (stdout and stderr together) to its stdout.
        GitRun {
            ok: out.ok,
            stdout: String::new(),
            stderr: format!("{}{}", out.stdout, out.stderr),
        }
    };
    let remote_main = || {
        let r = remote.try_git(&["rev-parse", "--verify", "-q", "main"]);
        r.ok.then(|| r.stdout.trim().to_owned())
    };

    let out = pre_commit(&["install", "--hook-type", "pre-push"]);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    assert!(
        std::fs::read_to_string(work.path.join(".git/hooks/pre-push"))
            .unwrap()
            .contains("pre_commit"),
        "pre-commit wrote the pre-push hook"
    );

    // The first push to an empty remote: pre-commit sets no PRE_COMMIT_FROM_REF, and the whole
    // commit is checked.
    let out = push(&["main"]);
    assert_blocked(
        &out,
        &[
            "tollgate",
            "apps/web.yaml",
            "registry-not-approved",
            "push blocked",
        ],
    );
    assert_eq!(remote_main(), None, "the remote must stay empty");

    // Fixed, with a warning left: the push goes on, and pre-commit shows the warning.
    work.write("apps/web.yaml", &deployment("web", WARN_ONLY));
    let head = work.commit("web: approved registry, not pinned");
    let out = push(&["main"]);
    assert_pushed(&out);
    assert!(out.stderr.contains("digest-missing"), "{}", out.stderr);
    assert!(out.stderr.contains("2 files"), "{}", out.stderr);
    assert_eq!(remote_main(), Some(head));

    // A later push: pre-commit passes the range, and only what it changes is checked.
    work.write("apps/db.yaml", &deployment("db", BAD));
    work.commit("db");
    let out = push(&["main"]);
    assert_blocked(&out, &["apps/db.yaml", "registry-not-approved"]);
    assert!(out.stderr.contains("1 file"), "{}", out.stderr);
    assert!(!out.stderr.contains("apps/web.yaml"), "{}", out.stderr);
    work.write("apps/db.yaml", &deployment("db", GOOD));
    let head = work.commit("db fixed");
    assert_pushed(&push(&["main"]));
    assert_eq!(remote_main(), Some(head));
}

#[test]
fn the_hook_reads_the_pre_commit_range_when_git_s_input_is_absent() {
    // pre-commit runs the entry with no stdin and the range in its environment.
    let s = Setup::new();
    let from = s.work.head();
    s.work.write("apps/web.yaml", &deployment("web", BAD));
    let to = s.work.commit("bad");
    let out = support::tollgate(&["hook", "pre-push"])
        .current_dir(&s.work.path)
        .env("PRE_COMMIT_FROM_REF", &from)
        .env("PRE_COMMIT_TO_REF", &to)
        .env("PRE_COMMIT_REMOTE_NAME", "origin")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("apps/web.yaml"), "{stderr}");
}
