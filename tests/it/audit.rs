//! `tollgate audit`: live state (from a kubectl List file, or the API server through kube)
//! checked against the policy and a real registry. The seeds that no admission check can catch
//! are replayed end to end.

use serde_json::{Value, json};

use crate::support;
use crate::support::oci::{Pusher, layer};
use crate::support::registry::{TestRegistry, policy_file};
use crate::support::run;

/// A kubectl-shaped List with one Deployment, its current ReplicaSet running `running` in
/// `pods` pods (spec image `image`, imageID `running`), and an older ReplicaSet kept for
/// rollback with `rollback`.
fn live(image: &str, running: &str, pods: usize, rollback: &str) -> Value {
    let mut items = vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "svc", "namespace": "prod", "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": pods, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "svc-2", "namespace": "prod", "annotations": {"deployment.kubernetes.io/revision": "2"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "svc", "controller": true}]},
            "spec": {"replicas": pods, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "svc-1", "namespace": "prod", "annotations": {"deployment.kubernetes.io/revision": "1"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "svc", "controller": true}]},
            "spec": {"replicas": 0, "template": {"spec": {"containers": [{"name": "app", "image": rollback}]}}}}),
    ];
    for i in 0..pods {
        items.push(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("svc-2-{i}"), "namespace": "prod",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "svc-2", "controller": true}]},
            "spec": {"containers": [{"name": "app", "image": image}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "app", "image": image, "imageID": running, "ready": true}]}}));
    }
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

fn audit(live: &Value, policy: &str, extra: &[&str]) -> (i32, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.json");
    std::fs::write(&path, serde_json::to_vec(live).unwrap()).unwrap();
    let mut args = vec![
        "audit",
        "--live-file",
        path.to_str().unwrap(),
        "--policy",
        policy,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let r = run(&args);
    let v: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr));
    (r.code, v, r.stderr)
}

/// A deploy repository declaring Deployment prod/svc (container app), one commit per image,
/// each dated `hours_ago`; the subjects are `svc IMAGE`.
fn deploy_repo(images: &[(&str, i64)]) -> support::git::GitRepo {
    use crate::support::git::{GitRepo, GitRun, git_command};
    let repo = GitRepo::init();
    for (image, hours_ago) in images {
        repo.write(
            "prod/svc.yaml",
            &format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: svc, namespace: prod}}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {image}\n"
            ),
        );
        repo.git(&["add", "-A"]);
        let date = format!(
            "@{} +0000",
            jiff::Timestamp::now().as_second() - hours_ago * 3600
        );
        let out = GitRun::from(
            git_command(&repo.path)
                .args(["commit", "-q", "-m", &format!("svc {image}")])
                .env("GIT_AUTHOR_DATE", &date)
                .env("GIT_COMMITTER_DATE", &date)
                .output()
                .unwrap(),
        );
        assert!(out.ok, "{}", out.stderr);
    }
    repo
}

fn findings(v: &Value, kind: &str) -> Vec<Value> {
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["findings"].as_array().unwrap().clone())
        .filter(|f| f["kind"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_000_a_running_digest_only_image_removed_from_the_registry() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let (_d, policy) = policy_file(&reg, "  rules: {digest-untagged: audit}\n");
    let p = Pusher::new(reg.base_url());
    // Deployed by digest only, as in seed 000; nodes keep running it from their cache.
    let img = p
        .image("svc/ores", None, &[layer(&[("a", b"1")])], "linux/amd64")
        .await;
    // The rollback target, tagged: it stays.
    p.image(
        "svc/ores",
        Some("1.0"),
        &[layer(&[("b", b"2")])],
        "linux/amd64",
    )
    .await;
    let reference = format!("{host}/svc/ores@{}", img.digest);
    let state = live(&reference, &reference, 3, &format!("{host}/svc/ores:1.0"));

    let (code, v, stderr) = tokio::task::spawn_blocking({
        let (state, policy) = (state.clone(), policy.clone());
        move || audit(&state, &policy, &[])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{v}\n{stderr}");
    assert!(findings(&v, "running-unservable").is_empty());
    // The untagged digest is flagged at audit level: nothing keeps it alive.
    assert_eq!(findings(&v, "digest-untagged")[0]["level"], "audit");

    // Registry maintenance deletes the untagged manifest.
    p.delete_manifest("svc/ores", &img.digest).await;
    let (code, v, _) = tokio::task::spawn_blocking(move || audit(&state, &policy, &[]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{v}");
    let f = findings(&v, "running-unservable");
    assert_eq!(f.len(), 1, "{v}");
    let m = f[0]["message"].as_str().unwrap();
    assert!(
        m.starts_with(&format!(
            "the next restart of these 3 pods will fail to pull {reference}"
        )),
        "{m}"
    );
    assert_eq!(v["summary"]["runningUnservable"], 1);
    // The rollback target is still there.
    assert!(findings(&v, "rollback-target-unservable").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_004_a_running_index_that_lost_a_childs_blobs() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let (_d, policy) = policy_file(&reg, "");
    let p = Pusher::new(reg.base_url());
    let amd = p
        .image("svc/api", None, &[layer(&[("a", b"amd")])], "linux/amd64")
        .await;
    let arm = p
        .image("svc/api", None, &[layer(&[("a", b"arm")])], "linux/arm64")
        .await;
    let index = p
        .index(
            "svc/api",
            "2.0",
            &[(&amd, "linux/amd64"), (&arm, "linux/arm64")],
            false,
        )
        .await;
    p.delete_blob("svc/api", &arm.layers[0]).await;
    let image = format!("{host}/svc/api:2.0");
    let running = format!("{host}/svc/api@{index}");
    let state = live(&image, &running, 2, &image);
    let (code, v, _) = tokio::task::spawn_blocking(move || audit(&state, &policy, &[]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{v}");
    let f = findings(&v, "running-unservable");
    let m = f[0]["message"].as_str().unwrap();
    assert!(m.contains("2 pods"), "{m}");
    // The path names the platform and the missing layer (digests shortened to 12 hex digits).
    assert!(
        m.contains("(linux/arm64) → layer") && m.contains(&arm.layers[0][..19]),
        "{m}"
    );
    assert!(m.contains("404 blob unknown"), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_target_the_registry_lost_is_a_warning() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let (_d, policy) = policy_file(&reg, "");
    let p = Pusher::new(reg.base_url());
    let cur = p
        .image(
            "svc/web",
            Some("2"),
            &[layer(&[("a", b"2")])],
            "linux/amd64",
        )
        .await;
    let image = format!("{host}/svc/web:2@{}", cur.digest);
    let running = format!("{host}/svc/web@{}", cur.digest);
    // Revision 1's tag was pruned by retention.
    let state = live(&image, &running, 1, &format!("{host}/svc/web:1"));
    let (code, v, _) = tokio::task::spawn_blocking(move || audit(&state, &policy, &[]))
        .await
        .unwrap();
    assert_eq!(code, 0, "a lost rollback target warns: {v}");
    let f = findings(&v, "rollback-target-unservable");
    assert_eq!(f.len(), 1, "{v}");
    assert_eq!(f[0]["level"], "warn");
    assert_eq!(v["summary"]["rollbackTargetsUnservable"], 1);
    assert!(findings(&v, "running-unservable").is_empty());
}

#[test]
fn policy_rules_run_offline_and_images_are_counted_once() {
    // Three pods of one image, one distinct running digest: one image in the report.
    let d = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    let image = format!("docker.io/library/nginx:1.25@{d}");
    let state = live(&image, &format!("docker.io/library/nginx@{d}"), 3, &image);
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/default.yaml");
    let (code, v, _) = audit(&state, policy, &["--no-resolve"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["summary"]["images"], 2, "{v}");
    assert_eq!(findings(&v, "registry-not-approved").len(), 2);
    assert_eq!(v["summary"]["registryRequests"], 0);
}

#[test]
fn a_live_file_that_is_not_json_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.json");
    std::fs::write(&path, "items: [").unwrap();
    let r = run(&["audit", "--live-file", path.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("is not JSON"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn live_state_from_the_api_server_through_kube() {
    let api = support::kube_api::FakeApiServer::start(Default::default()).await;
    let kubeconfig = api.kubeconfig.clone();
    let r = tokio::task::spawn_blocking(move || {
        run(&[
            "audit",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--no-resolve",
            "--format",
            "json",
        ])
    })
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stderr));
    assert_eq!(v["summary"]["pods"], 3, "{v}");
    assert_eq!(v["summary"]["controllers"], 3, "{v}");
    // The pod spec runs a base image directly: the default policy denies that.
    assert_eq!(r.code, 1);
    assert!(!findings(&v, "repository-not-deployable").is_empty(), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_001_the_running_version_at_retention_risk_then_pruned() {
    let reg = TestRegistry::start();
    let host = reg.host();
    // Harbor's rule in seed 001: keep the newest tag of builds-api.
    let (_d, policy) = policy_file(
        &reg,
        &format!(
            "  rules: {{digest-missing: off}}\n  retention:\n    - repositories: ['{host}/toolforge/**']\n      keep: 1\n      orderBy: version\n"
        ),
    );
    let p = Pusher::new(reg.base_url());
    let mut pushed = Vec::new();
    for v in ["0.0.99", "0.0.100", "0.0.130", "0.0.131"] {
        pushed.push(
            p.image(
                "toolforge/builds-api",
                Some(v),
                &[layer(&[("version", v.as_bytes())])],
                "linux/amd64",
            )
            .await,
        );
    }
    // The deploy repo is at 0.0.131, but the cluster still runs 0.0.130 (never rolled out).
    let image = format!("{host}/toolforge/builds-api:0.0.130");
    let running = format!("{host}/toolforge/builds-api@{}", pushed[2].digest);
    let state = live(
        &image,
        &running,
        2,
        &format!("{host}/toolforge/builds-api:0.0.100"),
    );
    // The deploy repository: 0.0.130, then 0.0.131 merged 5 hours ago and never rolled out.
    let repo = deploy_repo(&[
        (&format!("{host}/toolforge/builds-api:0.0.130"), 72),
        (&format!("{host}/toolforge/builds-api:0.0.131"), 5),
    ]);
    let repo_path = repo.path.to_str().unwrap().to_owned();
    let (code, v, _) = tokio::task::spawn_blocking({
        let (state, policy, repo_path) = (state.clone(), policy.clone(), repo_path.clone());
        move || audit(&state, &policy, &["--repo", &repo_path, "--branch", "main"])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{v}");
    // One report: the commit not rolled out, with its age...
    let w = &v["rollout"]["workloads"][0];
    assert_eq!(
        w["notRolledOut"][0]["subject"],
        format!("svc {host}/toolforge/builds-api:0.0.131")
    );
    let age = w["notRolledOut"][0]["ageSeconds"].as_i64().unwrap();
    assert!((5 * 3600 - 120..5 * 3600 + 120).contains(&age), "{age}");
    assert_eq!(v["summary"]["commitsNotRolledOut"], 1);
    // ...and the running image at retention risk.
    let risk = findings(&v, "retention-risk");
    assert_eq!(
        risk.len(),
        2,
        "the running version and the rollback target: {v}"
    );
    let running_risk = risk.iter().find(|f| f["level"] == "deny").unwrap();
    let m = running_risk["message"].as_str().unwrap();
    // Version order, not string order: 0.0.131 is the newest, 0.0.99 is not.
    assert!(m.contains("deletes tag 0.0.130"), "{m}");
    assert!(m.contains("it runs in 2 pods"), "{m}");
    assert!(m.ends_with("it keeps 0.0.131"), "{m}");
    assert_eq!(v["summary"]["retentionRisk"], 2);
    assert!(findings(&v, "running-unservable").is_empty());

    // The rule runs: every tag but the newest is pruned.
    for (i, _) in ["0.0.99", "0.0.100", "0.0.130"].iter().enumerate() {
        p.delete_manifest("toolforge/builds-api", &pushed[i].digest)
            .await;
    }
    let (code, v, _) = tokio::task::spawn_blocking(move || audit(&state, &policy, &[]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{v}");
    let gone = findings(&v, "running-unservable");
    assert_eq!(gone.len(), 1, "{v}");
    assert!(
        gone[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("the next restart of these 2 pods will fail to pull"),
        "{v}"
    );
    assert_eq!(findings(&v, "rollback-target-unservable").len(), 1, "{v}");
}

#[test]
fn a_retention_rule_that_keeps_nothing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(
        &path,
        "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  registries: [{prefix: r.example.org}]\n  retention:\n    - repositories: ['r.example.org/**']\n      keep: 0\n      orderBy: newest\n",
    )
    .unwrap();
    let r = run(&["policy", "validate", path.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(":8:13: keep must be at least 1"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(":9:16: orderBy \"newest\" is not one of version, pushTime"),
        "{}",
        r.stderr
    );
}

#[test]
fn every_format_renders_the_same_audit() {
    let d = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    let image = format!("docker.io/library/nginx:1.25@{d}");
    let state = live(&image, &format!("docker.io/library/nginx@{d}"), 2, &image);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.json");
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    let out = |format: &str| {
        let r = run(&[
            "audit",
            "--live-file",
            path.to_str().unwrap(),
            "--no-resolve",
            "--format",
            format,
        ]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        r.stdout
    };
    let text = out("text");
    assert!(
        text.starts_with("tollgate audit: 2 distinct images in 2 pods and 3 controllers"),
        "{text}"
    );
    assert!(text.contains("deny  registry-not-approved"), "{text}");
    let md = out("markdown");
    assert!(md.starts_with("# tollgate audit\n"), "{md}");
    assert!(md.contains("| deny | `registry-not-approved` |"), "{md}");
    let html = out("html");
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</body></html>\n"));
    assert!(html.contains("<h2>Summary</h2>") && html.contains("registry-not-approved"));
}

#[test]
fn with_repo_the_audit_includes_commits_merged_but_not_rolled_out() {
    let repo = deploy_repo(&[
        ("docker-registry.wikimedia.org/svc:0.0.130", 48),
        ("docker-registry.wikimedia.org/svc:0.0.131", 3),
    ]);
    let image = "docker-registry.wikimedia.org/svc:0.0.130";
    let state = live(image, image, 2, image);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.json");
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    let args = |format: &'static str| {
        run(&[
            "audit",
            "--live-file",
            path.to_str().unwrap(),
            "--no-resolve",
            "--repo",
            repo.path.to_str().unwrap(),
            "--branch",
            "main",
            "--format",
            format,
        ])
    };
    let r = args("json");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["summary"]["commitsNotRolledOut"], 1, "{v}");
    let w = &v["rollout"]["workloads"][0];
    assert_eq!(
        w["notRolledOut"][0]["subject"],
        "svc docker-registry.wikimedia.org/svc:0.0.131"
    );
    assert_eq!(
        w["deployedRevision"]["subject"],
        "svc docker-registry.wikimedia.org/svc:0.0.130"
    );
    let text = args("text").stdout;
    assert!(
        text.contains("Merged but not rolled out (main at "),
        "{text}"
    );
    assert!(
        text.contains("not rolled out: ")
            && text.contains(
                " svc docker-registry.wikimedia.org/svc:0.0.131 (Dev <dev@example.org>, "
            ),
        "{text}"
    );
    assert!(
        text.contains("deployed revision: ")
            && text.contains(" svc docker-registry.wikimedia.org/svc:0.0.130 ("),
        "{text}"
    );
    let html = args("html").stdout;
    assert!(
        html.contains("<h2>Merged but not rolled out (main at <code>"),
        "{html}"
    );
}
