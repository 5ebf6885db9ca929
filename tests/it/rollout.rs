//! `tollgate rollout` end to end: real git repositories with dated history, live state from a
//! `kubectl get ... -o json` file (and once from the stand-in API server), the real binary.

use std::path::Path;

use serde_json::{Value, json};

use crate::support;
use crate::support::git::{GitRepo, GitRun, git_command};
use crate::support::redact::Redact;
use crate::support::run;

const API: &str = "docker-registry.wikimedia.org/toolforge/builds-api";

/// Commit everything with author and committer dates `hours_ago` hours before now.
fn commit_ago(repo: &GitRepo, message: &str, hours_ago: i64) -> String {
    let when = jiff::Timestamp::now().as_second() - hours_ago * 3600;
    let date = format!("@{when} +0000");
    repo.git(&["add", "-A"]);
    let out = GitRun::from(
        git_command(&repo.path)
            .args(["commit", "-q", "--allow-empty", "-m", message])
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .output()
            .unwrap(),
    );
    assert!(out.ok, "{}", out.stderr);
    repo.head()
}

fn builds_api(tag: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: builds-api\n  namespace: builds-api\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: api\n          image: {API}:{tag}\n"
    )
}

/// A `kubectl get deployments -A -o json` List with one Deployment running `image` in `api`.
fn live_list(deployments: &[(&str, &str, &str)]) -> Value {
    let items: Vec<Value> = deployments
        .iter()
        .map(|(ns, name, image)| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"replicas": 2, "template": {"spec": {"containers": [
                    {"name": "api", "image": image}]}}}})
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

fn write_live(dir: &Path, list: &Value) -> String {
    let path = dir.join("live.json");
    std::fs::write(&path, serde_json::to_string(list).unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A deploy repository's history: builds-api at 0.0.129, 0.0.130, then 0.0.131 committed
/// `last_hours_ago`.
fn builds_api_history(last_hours_ago: i64) -> (GitRepo, [String; 3]) {
    let repo = GitRepo::init();
    repo.write("README.md", "deploy repo\n");
    commit_ago(&repo, "initial", 300);
    repo.write("k8s/builds-api.yaml", &builds_api("0.0.129"));
    let c129 = commit_ago(&repo, "builds-api: deploy 0.0.129", 200);
    repo.write("k8s/builds-api.yaml", &builds_api("0.0.130"));
    let c130 = commit_ago(&repo, "builds-api: deploy 0.0.130", 100);
    // An unrelated change in between: not a change of builds-api.
    repo.write("README.md", "deploy repo for toolforge\n");
    commit_ago(&repo, "docs", 50);
    repo.write("k8s/builds-api.yaml", &builds_api("0.0.131"));
    let c131 = commit_ago(&repo, "builds-api: deploy 0.0.131", last_hours_ago);
    (repo, [c129, c130, c131])
}

fn rollout(repo: &GitRepo, live: &str, extra: &[&str]) -> support::Run {
    let mut args = vec![
        "rollout",
        "--repo",
        repo.path.to_str().unwrap(),
        "--live-file",
        live,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn builds_api_0_0_131_merged_but_not_rolled_out() {
    let (repo, [_, c130, c131]) = builds_api_history(3);
    let live = write_live(
        &repo.path,
        &live_list(&[("builds-api", "builds-api", &format!("{API}:0.0.130"))]),
    );
    let r = rollout(&repo, &live, &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("Deployment builds-api/builds-api: not rolled out (k8s/builds-api.yaml)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("api: desired {API}:0.0.131, live {API}:0.0.130")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!(
            "not rolled out: {} \"builds-api: deploy 0.0.131\" by Dev <dev@example.org>",
            &c131[..12]
        )),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("(3h 0m ago)"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "deployed revision: {} \"builds-api: deploy 0.0.130\"",
            &c130[..12]
        )),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("\"docs\""), "{}", r.stdout);

    let j = rollout(&repo, &live, &["--format", "json"]);
    assert_eq!(j.code, 1);
    let v: Value = serde_json::from_str(&j.stdout).unwrap();
    let w = &v["workloads"][0];
    assert_eq!(w["notRolledOut"].as_array().unwrap().len(), 1);
    assert_eq!(w["notRolledOut"][0]["sha"], c131.as_str());
    assert_eq!(w["deployedRevision"]["sha"], c130.as_str());
    let redact = Redact::new()
        .commit(&c131, "0.0.131 commit")
        .commit(&c130, "0.0.130 commit")
        .json_number("ageSeconds");
    insta::assert_snapshot!("not_rolled_out_text", redact.apply(&r.stdout));
    insta::assert_snapshot!("not_rolled_out_json", redact.apply(&j.stdout));
}

#[test]
fn a_commit_within_the_grace_period_is_pending_and_exits_0() {
    let (repo, [_, c130, c131]) = builds_api_history(0);
    let live = write_live(
        &repo.path,
        &live_list(&[("builds-api", "builds-api", &format!("{API}:0.0.130"))]),
    );
    let r = rollout(&repo, &live, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains(&format!("pending (within grace): {}", &c131[..12])),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(&c130[..12]), "{}", r.stdout);
}

#[test]
fn several_commits_not_rolled_out_are_listed_newest_first() {
    let (repo, [c129, c130, c131]) = builds_api_history(2);
    let live = write_live(
        &repo.path,
        &live_list(&[("builds-api", "builds-api", &format!("{API}:0.0.129"))]),
    );
    let j = rollout(&repo, &live, &["--format", "json"]);
    assert_eq!(j.code, 1, "{}", j.stderr);
    let v: Value = serde_json::from_str(&j.stdout).unwrap();
    let w = &v["workloads"][0];
    let shas: Vec<&str> = w["notRolledOut"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sha"].as_str().unwrap())
        .collect();
    assert_eq!(shas, [c131.as_str(), c130.as_str()]);
    assert_eq!(w["deployedRevision"]["sha"], c129.as_str());
}

#[test]
fn a_fully_rolled_out_repository_exits_0() {
    let (repo, _) = builds_api_history(3);
    let live = write_live(
        &repo.path,
        &live_list(&[("builds-api", "builds-api", &format!("{API}:0.0.131"))]),
    );
    let r = rollout(&repo, &live, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("1 workload on HEAD") && r.stdout.contains("1 in sync, 0 behind"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_workload_declared_but_not_running_lists_its_whole_history() {
    let (repo, [c129, _, c131]) = builds_api_history(3);
    let live = write_live(&repo.path, &live_list(&[]));
    let j = rollout(&repo, &live, &["--format", "json"]);
    assert_eq!(j.code, 1, "{}", j.stderr);
    let v: Value = serde_json::from_str(&j.stdout).unwrap();
    let w = &v["workloads"][0];
    assert_eq!(w["status"], "not-live");
    assert_eq!(w["notRolledOut"].as_array().unwrap().len(), 3);
    assert_eq!(w["notRolledOut"][0]["sha"], c131.as_str());
    assert_eq!(w["notRolledOut"][2]["sha"], c129.as_str());
    assert!(w.get("deployedRevision").is_none());
    // Outside the selected namespaces, it is not looked at.
    let r = rollout(&repo, &live, &["--namespace", "other"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn helm_values_mapped_to_a_workload_through_the_repo_config() {
    let repo = GitRepo::init();
    repo.write(
        ".tollgate.yaml",
        "helmValues:\n  - files: ['helmfile.d/services/builds-api/values*.yaml']\n    namespace: builds-api\n    workload: {kind: Deployment, name: builds-api}\n",
    );
    let values =
        |tag: &str| format!("replicas: 2\nimage:\n  repository: {API}\n  tag: \"{tag}\"\n");
    repo.write(
        "helmfile.d/services/builds-api/values.yaml",
        &values("0.0.130"),
    );
    let c130 = commit_ago(&repo, "builds-api 0.0.130", 30);
    repo.write(
        "helmfile.d/services/builds-api/values.yaml",
        &values("0.0.130").replace("replicas: 2", "replicas: 3"),
    );
    commit_ago(&repo, "builds-api: scale up", 20);
    repo.write(
        "helmfile.d/services/builds-api/values.yaml",
        &values("0.0.131").replace("replicas: 2", "replicas: 3"),
    );
    let c131 = commit_ago(&repo, "builds-api 0.0.131", 10);
    // The live Deployment has a sidecar besides the container the values image is for.
    let list = json!({"kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "builds-api", "namespace": "builds-api"},
         "spec": {"template": {"spec": {"containers": [
            {"name": "envoy", "image": "docker-registry.wikimedia.org/envoy:1.30"},
            {"name": "webservice", "image": format!("{API}:0.0.130")}]}}}}]});
    let live = write_live(&repo.path, &list);
    let j = rollout(&repo, &live, &["--format", "json"]);
    assert_eq!(j.code, 1, "{}\n{}", j.stdout, j.stderr);
    let v: Value = serde_json::from_str(&j.stdout).unwrap();
    let w = &v["workloads"][0];
    assert_eq!(w["workload"]["name"], "builds-api");
    assert_eq!(w["images"][0]["container"], "webservice");
    assert_eq!(w["images"][0]["live"], format!("{API}:0.0.130"));
    let not_rolled: Vec<&str> = w["notRolledOut"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sha"].as_str().unwrap())
        .collect();
    assert_eq!(not_rolled, [c131.as_str()], "the scale-up changed no image");
    assert_eq!(w["deployedRevision"]["sha"], c130.as_str());
}

#[test]
fn json_output_has_the_documented_shape() {
    let (repo, [_, c130, c131]) = builds_api_history(3);
    let live = write_live(
        &repo.path,
        &live_list(&[("builds-api", "builds-api", &format!("{API}:0.0.130"))]),
    );
    let j = rollout(&repo, &live, &["--format", "json", "--branch", "main"]);
    assert_eq!(j.code, 1, "{}", j.stderr);
    let mut v: Value = serde_json::from_str(&j.stdout).unwrap();
    // Normalize what changes from run to run.
    v["head"] = json!("HEAD");
    for pointer in [
        "/workloads/0/notRolledOut/0",
        "/workloads/0/deployedRevision",
    ] {
        let c = v.pointer_mut(pointer).unwrap();
        assert!(c["time"].as_str().unwrap().ends_with('Z'), "{c}");
        assert!(c["ageSeconds"].as_i64().unwrap() > 0, "{c}");
        c["time"] = json!("TIME");
        c["ageSeconds"] = json!(0);
    }
    assert_eq!(
        v,
        json!({
            "branch": "main",
            "head": "HEAD",
            "graceSeconds": 3600,
            "workloads": [{
                "workload": {"kind": "Deployment", "namespace": "builds-api", "name": "builds-api"},
                "status": "behind",
                "files": ["k8s/builds-api.yaml"],
                "images": [{"container": "api", "desired": format!("{API}:0.0.131"),
                            "live": format!("{API}:0.0.130")}],
                "notRolledOut": [{"sha": c131, "subject": "builds-api: deploy 0.0.131",
                    "author": "Dev <dev@example.org>", "time": "TIME", "ageSeconds": 0,
                    "overdue": true}],
                "deployedRevision": {"sha": c130, "subject": "builds-api: deploy 0.0.130",
                    "author": "Dev <dev@example.org>", "time": "TIME", "ageSeconds": 0,
                    "overdue": true}
            }]
        })
    );
}

#[test]
fn the_default_branch_is_the_remotes_default_branch() {
    let (repo, [_, _, c131]) = builds_api_history(3);
    let remote = GitRepo::bare();
    repo.git(&["remote", "add", "origin", remote.path.to_str().unwrap()]);
    repo.git(&["push", "-q", "origin", "main"]);
    repo.git(&["remote", "set-head", "origin", "main"]);
    // A local change not on the remote's default branch is not what should run.
    repo.git(&["checkout", "-q", "-b", "wip"]);
    repo.write("k8s/builds-api.yaml", &builds_api("0.0.132"));
    commit_ago(&repo, "wip", 5);
    let live = write_live(
        &repo.path,
        &live_list(&[("builds-api", "builds-api", &format!("{API}:0.0.131"))]),
    );
    let r = rollout(&repo, &live, &["--format", "json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["branch"], "refs/remotes/origin/main");
    assert_eq!(v["head"], c131.as_str());
}

#[test]
fn errors_exit_2() {
    let (repo, _) = builds_api_history(3);
    let dir = tempfile::tempdir().unwrap();
    let not_a_repo = run(&[
        "rollout",
        "--repo",
        dir.path().to_str().unwrap(),
        "--live-file",
        "/nonexistent.json",
    ]);
    assert_eq!(not_a_repo.code, 2, "{}", not_a_repo.stderr);
    let missing_file = rollout(&repo, "/nonexistent/live.json", &[]);
    assert_eq!(missing_file.code, 2);
    assert!(
        missing_file.stderr.contains("cannot read live state"),
        "{}",
        missing_file.stderr
    );
    let live = write_live(&repo.path, &live_list(&[]));
    let bad_branch = rollout(&repo, &live, &["--branch", "nope"]);
    assert_eq!(bad_branch.code, 2, "{}", bad_branch.stderr);
    let bad_grace = rollout(&repo, &live, &["--grace", "soon"]);
    assert_eq!(bad_grace.code, 2, "{}", bad_grace.stderr);
    assert!(
        bad_grace
            .stderr
            .contains("\"soon\" is not a duration like 250ms, 5s, 1m30s or 1h"),
        "{}",
        bad_grace.stderr
    );
    // A bare number of seconds still works, and says how to write it now.
    let bare_grace = rollout(&repo, &live, &["--grace", "3600"]);
    assert_ne!(bare_grace.code, 2, "{}", bare_grace.stderr);
    assert!(
        bare_grace
            .stderr
            .contains("warning: a duration without a unit (\"3600\") is deprecated; write 3600s"),
        "{}",
        bare_grace.stderr
    );
    let unreachable = run(&[
        "rollout",
        "--repo",
        repo.path.to_str().unwrap(),
        "--kubeconfig",
        "/nonexistent/kubeconfig",
    ]);
    assert_eq!(unreachable.code, 2, "{}", unreachable.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn live_state_from_the_api_server() {
    use crate::support::kube_api::{Behaviour, FakeApiServer};
    let api = FakeApiServer::start(Behaviour::default()).await;
    let (repo, [_, c130, c131]) = builds_api_history(3);
    let kubeconfig = api.kubeconfig.to_str().unwrap().to_owned();
    let path = repo.path.to_str().unwrap().to_owned();
    // The binary blocks this thread; the stand-in keeps answering on the runtime's others.
    let r = tokio::task::spawn_blocking(move || {
        run(&[
            "rollout",
            "--repo",
            &path,
            "--kubeconfig",
            &kubeconfig,
            "--context",
            "fake",
            "--format",
            "json",
        ])
    })
    .await
    .unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let w = &v["workloads"][0];
    assert_eq!(w["images"][0]["live"], format!("{API}:0.0.130"));
    assert_eq!(w["notRolledOut"][0]["sha"], c131.as_str());
    assert_eq!(w["deployedRevision"]["sha"], c130.as_str());
    assert!(
        api.requests()
            .iter()
            .any(|r| r.starts_with("/apis/apps/v1/deployments")),
        "{:?}",
        api.requests()
    );
}
