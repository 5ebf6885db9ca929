//! `tollgate audit`: live state (from a kubectl List file, or the API server through kube)
//! checked against the policy and a real registry. The incidents no admission check can catch
//! (an image deleted while it runs, an index that lost a child's blobs, the running version
//! pruned by retention) are replayed end to end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use rstest::rstest;
use serde_json::{Value, json};

use crate::support;
use crate::support::oci::{Pusher, layer};
use crate::support::redact::Redact;
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

/// A live state written where `--live-file` can read it (kept while the value lives).
struct LiveFile {
    _dir: tempfile::TempDir,
    path: String,
}

impl LiveFile {
    fn new(live: &Value) -> LiveFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.json");
        std::fs::write(&path, serde_json::to_vec(live).unwrap()).unwrap();
        LiveFile {
            path: path.to_str().unwrap().to_owned(),
            _dir: dir,
        }
    }
}

fn audit(live: &Value, policy: &str, extra: &[&str]) -> (i32, Value, String) {
    let file = LiveFile::new(live);
    let mut args = vec![
        "audit",
        "--live-file",
        &file.path,
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
async fn a_running_digest_only_image_removed_from_the_registry_is_running_unservable() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let (_d, policy) = policy_file(&reg, "  rules: {digest-untagged: audit}\n");
    let p = Pusher::new(reg.base_url());
    // Deployed by digest only; nodes keep running it from their cache.
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
async fn a_running_index_that_lost_a_childs_blobs_is_running_unservable() {
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
    let live_file = LiveFile::new(&live(&image, &running, 1, &format!("{host}/svc/web:1")));
    let outputs = FORMATS.map(|format| {
        let r = run(&[
            "audit",
            "--live-file",
            &live_file.path,
            "--policy",
            &policy,
            "--format",
            format,
        ]);
        assert_eq!(
            r.code, 0,
            "a lost rollback target warns: {}{}",
            r.stdout, r.stderr
        );
        r.stdout
    });
    let v: Value = serde_json::from_str(&outputs[0]).unwrap();
    let f = findings(&v, "rollback-target-unservable");
    assert_eq!(f.len(), 1, "{v}");
    assert_eq!(f[0]["level"], "warn");
    assert_eq!(v["summary"]["rollbackTargetsUnservable"], 1);
    assert!(findings(&v, "running-unservable").is_empty());
    assert_every_format_agrees(&outputs);
    let redact = Redact::new().text(&host, "[registry]");
    insta::assert_snapshot!("rollback_target_lost_text", redact.apply(&outputs[1]));
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
async fn the_running_version_at_retention_risk_then_pruned() {
    let reg = TestRegistry::start();
    let host = reg.host();
    // A retention rule as Harbor runs them: keep the newest tag of builds-api.
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

/// Offline findings of several kinds and both levels: `live`'s Deployment running a denied
/// registry's image in 2 pods, and a second Deployment with an unpinned image (a warning), a
/// `latest` one (denied and warned) and a compliant one.
fn mixed_live() -> Value {
    let d = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    let image = format!("docker.io/library/nginx:1.25@{d}");
    let mut state = live(&image, &format!("docker.io/library/nginx@{d}"), 2, &image);
    state["items"].as_array_mut().unwrap().push(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"replicas": 0, "template": {"spec": {"containers": [
            {"name": "api", "image": "docker-registry.wikimedia.org/svc/api:1.2"},
            {"name": "envoy", "image": "docker-registry.wikimedia.org/envoy:latest"},
            {"name": "web", "image": format!("docker-registry.wikimedia.org/svc/web:2.0@{d}")},
        ]}}}
    }));
    state
}

/// The formats in the order the comparison takes them: the reference first.
const FORMATS: [&str; 4] = ["json", "text", "markdown", "html"];

/// The offline audit of [`mixed_live`] in each of [`FORMATS`], run once for the tests that
/// read it.
fn offline_outputs() -> &'static [String; 4] {
    static OUTPUTS: OnceLock<[String; 4]> = OnceLock::new();
    OUTPUTS.get_or_init(|| {
        let live = LiveFile::new(&mixed_live());
        FORMATS.map(|format| audit_offline(&live, format))
    })
}

fn audit_offline(live: &LiveFile, format: &str) -> String {
    let r = run(&[
        "audit",
        "--live-file",
        &live.path,
        "--no-resolve",
        "--format",
        format,
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    r.stdout
}

#[rstest]
#[case::text("text")]
#[case::markdown("markdown")]
#[case::html("html")]
#[case::json("json")]
fn the_offline_audit_renders_in_each_format(#[case] format: &str) {
    let i = FORMATS.iter().position(|f| *f == format).unwrap();
    insta::assert_snapshot!(format!("offline_{format}"), offline_outputs()[i]);
}

#[test]
fn every_format_renders_the_same_audit() {
    let outputs = offline_outputs();
    let reference = Rendered::json(&outputs[0]);
    // The comparison means something only if there is something to differ in.
    let levels: BTreeSet<_> = reference.findings.iter().map(|f| f.level.clone()).collect();
    let kinds: BTreeSet<_> = reference.findings.iter().map(|f| f.kind.clone()).collect();
    assert!(levels.len() >= 2 && kinds.len() >= 3, "{reference:#?}");
    assert_every_format_agrees(outputs);
}

/// The comparison fails when one format strays from the JSON: a level, an image, a missing
/// finding, a count.
#[rstest]
#[case::a_level_in_text(1, "  warn  digest-missing", "  deny  digest-missing")]
#[case::an_image_in_text(1, "svc/api:1.2 (1 use)", "svc/api:1.3 (1 use)")]
#[case::a_finding_missing_in_markdown(2, "\n| deny | `tag-latest` |", "\n")]
#[case::a_summary_count_in_html(
    3,
    "Policy findings</td><td class=\"deny\">5",
    "Policy findings</td><td class=\"deny\">4"
)]
#[case::the_pods_in_html(3, "images in 2 pods", "images in 3 pods")]
fn the_format_comparison_notices_a_difference(
    #[case] format: usize,
    #[case] found: &str,
    #[case] changed: &str,
) {
    let mut outputs = offline_outputs().clone();
    assert!(outputs[format].contains(found), "{}", outputs[format]);
    outputs[format] = outputs[format].replacen(found, changed, 1);
    let compared = std::panic::catch_unwind(|| assert_every_format_agrees(&outputs));
    assert!(compared.is_err(), "{found:?} → {changed:?} went unnoticed");
}

/// A section of the audit report that holds one registry-backed finding kind: the kind, its
/// key in the JSON summary, and its title in text, Markdown and HTML.
const SECTIONS: [(&str, &str, &str); 4] = [
    (
        "running-unservable",
        "runningUnservable",
        "Running images the registry can no longer serve (the next restart fails)",
    ),
    (
        "rollback-target-unservable",
        "rollbackTargetsUnservable",
        "Rollback targets the registry can no longer serve",
    ),
    (
        "declared-unservable",
        "declaredUnservable",
        "Declared images the registry cannot serve (the next pod fails)",
    ),
    (
        "retention-risk",
        "retentionRisk",
        "Images the registry's retention rule deletes on its next run",
    ),
];
const POLICY_FINDINGS: &str = "Policy findings";
const NOT_CHECKED: &str = "Could not be checked";

fn section_kind(title: &str) -> Option<&'static str> {
    SECTIONS.iter().find(|s| s.2 == title).map(|s| s.0)
}

/// One finding as a report shows it: the image it names, its kind, and its level where the
/// format shows one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Shown {
    image: String,
    kind: String,
    level: Option<String>,
}

/// What the formats of one audit must agree on.
#[derive(Debug, PartialEq)]
struct Rendered {
    /// Distinct images, pods and controllers, from the opening line.
    counts: [usize; 3],
    /// Summary line (section title, policy findings, not checked) → its number.
    summary: BTreeMap<String, String>,
    /// Sorted.
    findings: Vec<Shown>,
}

impl Rendered {
    /// The reference. Sections show the image as it runs, policy findings as declared.
    fn json(out: &str) -> Rendered {
        let v: Value = serde_json::from_str(out).unwrap();
        assert!(v["rollout"].is_null(), "rollout reports are not compared");
        let s = &v["summary"];
        let n = |key: &str| s[key].as_u64().unwrap_or_else(|| panic!("summary.{key}")) as usize;
        let mut findings = Vec::new();
        for image in v["images"].as_array().unwrap() {
            for f in image["findings"].as_array().unwrap() {
                let kind = f["kind"].as_str().unwrap();
                let shown = match section_kind_of(kind) {
                    true => image.get("running").unwrap_or(&image["image"]),
                    false => &image["image"],
                };
                findings.push(Shown {
                    image: shown.as_str().unwrap().to_owned(),
                    kind: kind.to_owned(),
                    level: Some(f["level"].as_str().unwrap().to_owned()),
                });
            }
        }
        let mut summary: BTreeMap<String, String> = SECTIONS
            .iter()
            .map(|(_, key, title)| {
                // null: the registry was not asked (--no-resolve), and every format says so.
                let shown = s[*key].as_u64().map_or_else(
                    || "not checked (--no-resolve)".to_owned(),
                    |x| x.to_string(),
                );
                ((*title).to_owned(), shown)
            })
            .collect();
        let policy = findings
            .iter()
            .filter(|f| !section_kind_of(&f.kind))
            .count();
        summary.insert(POLICY_FINDINGS.to_owned(), policy.to_string());
        summary.insert(NOT_CHECKED.to_owned(), n("errors").to_string());
        findings.sort();
        Rendered {
            counts: [n("images"), n("pods"), n("controllers")],
            summary,
            findings,
        }
    }

    /// The reference as a format that prints no level in the sections would show it.
    fn without_section_levels(&self) -> Rendered {
        let mut findings: Vec<Shown> = self
            .findings
            .iter()
            .map(|f| Shown {
                level: if section_kind_of(&f.kind) {
                    None
                } else {
                    f.level.clone()
                },
                ..f.clone()
            })
            .collect();
        findings.sort();
        Rendered {
            counts: self.counts,
            summary: self.summary.clone(),
            findings,
        }
    }

    /// `tollgate audit: N distinct images in P pods and C controllers; policy X`, then a line
    /// `Title: n` per section followed by its images (two spaces in), and the policy findings
    /// as `level kind image (n uses)`. "Could not be checked" is printed only when it is not 0.
    fn text(out: &str) -> Rendered {
        let mut lines = out.lines();
        let first = lines.next().unwrap();
        let counts = counts(first.strip_prefix("tollgate audit: ").expect(first));
        let mut summary = BTreeMap::from([(NOT_CHECKED.to_owned(), "0".to_owned())]);
        let mut findings = Vec::new();
        let mut current = None;
        for line in lines {
            if !line.starts_with(' ') {
                current = None;
                if let Some((title, n)) = line.rsplit_once(": ")
                    && (section_kind(title).is_some()
                        || [POLICY_FINDINGS, NOT_CHECKED].contains(&title))
                {
                    summary.insert(title.to_owned(), n.to_owned());
                    current = Some(title.to_owned());
                }
                continue;
            }
            let Some(title) = &current else { continue };
            if title == POLICY_FINDINGS {
                let words: Vec<&str> = line.split_whitespace().collect();
                findings.push(Shown {
                    image: words[2].to_owned(),
                    kind: words[1].to_owned(),
                    level: Some(words[0].to_owned()),
                });
            } else if let Some(kind) = section_kind(title)
                && !line.starts_with("    ")
            {
                findings.push(Shown {
                    image: line.trim().to_owned(),
                    kind: kind.to_owned(),
                    level: None,
                });
            }
        }
        findings.sort();
        Rendered {
            counts,
            summary,
            findings,
        }
    }

    /// `# tollgate audit`, the counts line, then a `## heading` and a table per part.
    fn markdown(out: &str) -> Rendered {
        assert!(out.starts_with("# tollgate audit\n\n"), "{out}");
        let counts = counts(out.lines().nth(2).unwrap());
        let tables = tables(out.lines().filter_map(|line| {
            if let Some(h) = line.strip_prefix("## ") {
                return Some(Line::Heading(h.to_owned()));
            }
            let row = line.strip_prefix("| ")?.strip_suffix(" |")?;
            let cells: Vec<Cell> = row
                .split(" | ")
                .map(|c| Cell {
                    text: c.trim_matches('`').to_owned(),
                    class: None,
                })
                .collect();
            Some(if cells.iter().all(|c| c.text == "---") {
                Line::Separator
            } else {
                Line::Row(cells)
            })
        }));
        Rendered::from_tables(counts, tables)
    }

    /// One page: the counts in the first `<p>`, then an `<h2>` and a `<table>` per part, one
    /// `<tr>` a line; a level is the class of its cell.
    fn html(out: &str) -> Rendered {
        assert!(
            out.starts_with("<!DOCTYPE html>\n") && out.ends_with("</body></html>\n"),
            "{out}"
        );
        let p = out.lines().find_map(|l| l.strip_prefix("<p>")).expect(out);
        let tables = tables(out.lines().filter_map(|line| {
            if let Some(h) = line.strip_prefix("<h2>") {
                return Some(Line::Heading(unescape(
                    h.strip_suffix("</h2>").expect(line),
                )));
            }
            // A table's header row opens on the `<table>` line.
            let row = line.trim_start_matches("<table>");
            let row = row.strip_prefix("<tr>")?.strip_suffix("</tr>")?;
            if row.starts_with("<th>") {
                return Some(Line::Separator);
            }
            let cells = row
                .split("</td>")
                .filter(|c| !c.is_empty())
                .map(|c| {
                    let c = c.strip_prefix("<td").expect(line);
                    let (attrs, content) = c.split_once('>').expect(line);
                    let class = attrs
                        .strip_prefix(" class=\"")
                        .map(|a| a.trim_end_matches('"').to_owned());
                    let text = content.replace("<code>", "").replace("</code>", "");
                    Cell {
                        text: unescape(&text),
                        class,
                    }
                })
                .collect();
            Some(Line::Row(cells))
        }));
        Rendered::from_tables(counts(&unescape(p)), tables)
    }

    /// The summary, section and policy tables of Markdown and HTML.
    fn from_tables(counts: [usize; 3], tables: Vec<(String, Vec<Vec<Cell>>)>) -> Rendered {
        let mut summary = BTreeMap::new();
        let mut findings = Vec::new();
        for (heading, rows) in tables {
            for row in rows {
                if heading == "Summary" {
                    summary.insert(row[0].text.clone(), row[1].text.clone());
                } else if heading == POLICY_FINDINGS {
                    assert_eq!(row[0].class.as_ref().unwrap_or(&row[0].text), &row[0].text);
                    findings.push(Shown {
                        image: row[2].text.clone(),
                        kind: row[1].text.clone(),
                        level: Some(row[0].text.clone()),
                    });
                } else if let Some(kind) = section_kind(&heading) {
                    findings.push(Shown {
                        image: row[0].text.clone(),
                        kind: kind.to_owned(),
                        level: row[2].class.clone(),
                    });
                }
            }
        }
        findings.sort();
        Rendered {
            counts,
            summary,
            findings,
        }
    }
}

fn section_kind_of(kind: &str) -> bool {
    SECTIONS.iter().any(|s| s.0 == kind)
}

/// `N distinct images in P pods and C controllers; …`.
fn counts(line: &str) -> [usize; 3] {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(
        words[1] == "distinct" && words[2].starts_with("image") && words[3] == "in",
        "{line}"
    );
    let n = |i: usize| words[i].parse().unwrap_or_else(|_| panic!("{line}"));
    [n(0), n(4), n(7)]
}

struct Cell {
    text: String,
    /// HTML only.
    class: Option<String>,
}

enum Line {
    Heading(String),
    /// The header row's end: the rows before it in a table are its header.
    Separator,
    Row(Vec<Cell>),
}

/// Headings with their body rows (header rows dropped).
fn tables(lines: impl Iterator<Item = Line>) -> Vec<(String, Vec<Vec<Cell>>)> {
    let mut tables: Vec<(String, Vec<Vec<Cell>>)> = Vec::new();
    let mut in_body = false;
    for line in lines {
        match line {
            Line::Heading(h) => {
                tables.push((h, Vec::new()));
                in_body = false;
            }
            Line::Separator => in_body = true,
            Line::Row(cells) if in_body => tables.last_mut().unwrap().1.push(cells),
            Line::Row(_) => {}
        }
    }
    tables
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The outputs of one audit in JSON, text, Markdown and HTML show the same images, the same
/// finding kinds with the same levels (where the format prints one) and the same counts.
fn assert_every_format_agrees([json, text, markdown, html]: &[String; 4]) {
    let reference = Rendered::json(json);
    assert!(!reference.findings.is_empty(), "{json}");
    let without_levels = reference.without_section_levels();
    assert_eq!(Rendered::text(text), without_levels, "text:\n{text}");
    assert_eq!(
        Rendered::markdown(markdown),
        without_levels,
        "Markdown:\n{markdown}"
    );
    assert_eq!(Rendered::html(html), reference, "HTML:\n{html}");
}

#[test]
fn with_repo_the_audit_includes_commits_merged_but_not_rolled_out() {
    let repo = deploy_repo(&[
        ("docker-registry.wikimedia.org/svc:0.0.130", 48),
        ("docker-registry.wikimedia.org/svc:0.0.131", 3),
    ]);
    let image = "docker-registry.wikimedia.org/svc:0.0.130";
    let live_file = LiveFile::new(&live(image, image, 2, image));
    let args = |format: &'static str| {
        run(&[
            "audit",
            "--live-file",
            &live_file.path,
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
                " \"svc docker-registry.wikimedia.org/svc:0.0.131\" by Dev <dev@example.org> at "
            ),
        "{text}"
    );
    assert!(
        text.contains("deployed revision: ")
            && text.contains(" \"svc docker-registry.wikimedia.org/svc:0.0.130\" by "),
        "{text}"
    );
    let html = args("html").stdout;
    assert!(
        html.contains("<h2>Merged but not rolled out (main at <code>"),
        "{html}"
    );
}

/// The OpenReports schema of tests/fixtures/openreports/, made strict: the API server prunes a
/// field its schema does not name, so an unknown field would vanish silently in a cluster;
/// here it fails validation instead.
fn strict_openreports_schema() -> Value {
    fn strict(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                    m.insert("additionalProperties".into(), Value::Bool(false));
                }
                m.values_mut().for_each(strict);
            }
            Value::Array(a) => a.iter_mut().for_each(strict),
            _ => {}
        }
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openreports/report.v1alpha1.schema.json");
    let mut schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    strict(&mut schema);
    schema
}

/// `audit --format openreports` against a real registry: one Report per workload, with the
/// registry's answers as results (a running image it serves passes, a rollback target it lost
/// fails, an approved registry that refuses connections is an error, never a pass), the cap
/// honoured while the summary counts everything, and every printed object valid against the
/// OpenReports CRD's schema by check-jsonschema (one run of the validator for all of them).
#[tokio::test(flavor = "multi_thread")]
async fn openreports_objects_are_valid_reports_of_each_workload() {
    let reg = TestRegistry::start();
    let host = reg.host();
    // A second approved registry nobody listens on: what it names cannot be checked.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (_d, policy) = policy_file(
        &reg,
        &format!("    - prefix: {closed}\n      insecure: true\n"),
    );
    let p = Pusher::new(reg.base_url());
    let img = p
        .image(
            "svc/ores",
            Some("1.0"),
            &[layer(&[("a", b"1")])],
            "linux/amd64",
        )
        .await;
    let tagged = format!("{host}/svc/ores:1.0");
    let mut state = live(
        &tagged,
        &format!("{host}/svc/ores@{}", img.digest),
        2,
        &format!("{host}/svc/ores:0.9"),
    );
    state["items"]
        .as_array_mut()
        .unwrap()
        .push(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "debug", "namespace": "tools", "uid": "b1946ac9-2492-4a2c-8f2e-3c0d8b7f6a55"},
            "spec": {"containers": [{"name": "sh", "image": format!("{closed}/tools/sh:1")}]},
            "status": {"phase": "Pending"}}));
    let file = LiveFile::new(&state);
    let r = tokio::task::spawn_blocking(move || {
        run(&[
            "audit",
            "--live-file",
            &file.path,
            "--policy",
            &policy,
            "--format",
            "openreports",
            "--report-max-results",
            "3",
        ])
    })
    .await
    .unwrap();
    // The closed registry could not be checked: exit 2, the Reports printed all the same.
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let list: Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    assert_eq!(list["kind"], "List");
    assert_eq!(list["apiVersion"], "v1");
    let items = list["items"].as_array().unwrap();
    let names: Vec<(&str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["metadata"]["namespace"].as_str().unwrap(),
                i["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("prod", "tollgate-deployment-svc"),
            ("tools", "tollgate-pod-debug")
        ]
    );

    let svc = &items[0];
    assert_eq!(
        svc["scope"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "svc", "namespace": "prod"})
    );
    // Capped at 3, failures first; the summary counts every result.
    let results = svc["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{svc}");
    let outcome = |rule: &str| -> Vec<&str> {
        results
            .iter()
            .filter(|r| r["rule"] == rule)
            .map(|r| r["result"].as_str().unwrap())
            .collect()
    };
    assert_eq!(outcome("rollback-target-unservable"), vec!["warn"], "{svc}");
    assert_eq!(results[0]["result"], "warn", "{svc}");
    let summary = &svc["summary"];
    let total: u64 = ["pass", "fail", "warn", "error", "skip"]
        .iter()
        .map(|k| summary[k].as_u64().unwrap())
        .sum();
    assert!(total > 3, "{svc}");
    assert_eq!(summary["error"], 0, "{svc}");
    assert_eq!(
        svc["metadata"]["annotations"]["tollgate.dev/omitted-results"],
        (total - 3).to_string(),
        "{svc}"
    );
    assert_eq!(svc["configuration"]["limits"]["maxResults"], 3);

    let debug = &items[1];
    assert_eq!(
        debug["scope"]["uid"],
        "b1946ac9-2492-4a2c-8f2e-3c0d8b7f6a55"
    );
    let errors: Vec<&Value> = debug["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{debug}");
    assert_eq!(errors[0]["rule"], "running-unservable");
    assert_eq!(debug["summary"]["error"], 1);
    for r in debug["results"].as_array().unwrap() {
        assert_eq!(r["source"], "tollgate");
        assert_eq!(r["policy"], "test-registry");
        assert_eq!(r["resources"][0], debug["scope"]);
        assert!(r["timestamp"]["seconds"].as_i64().unwrap() > 1_700_000_000);
    }

    // Every object against the CRD's schema, with the real validator.
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("report.schema.json");
    std::fs::write(&schema, strict_openreports_schema().to_string()).unwrap();
    let mut instances = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = dir.path().join(format!("report-{i}.json"));
        std::fs::write(&path, item.to_string()).unwrap();
        instances.push(path);
    }
    let tool = support::tools::check_jsonschema_dir();
    let out = std::process::Command::new("python3")
        .args(["-m", "check_jsonschema", "--schemafile"])
        .arg(&schema)
        .args(&instances)
        .env("PYTHONPATH", &tool)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check-jsonschema: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The validator of the test above is strict: a misspelt field fails it (so a pass means the
/// objects use the CRD's own names).
#[test]
fn the_strict_openreports_schema_refuses_an_unknown_field() {
    let schema = strict_openreports_schema();
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(
        schema["properties"]["results"]["items"]["additionalProperties"],
        false
    );
    assert_eq!(
        schema["properties"]["results"]["items"]["properties"]["properties"]["additionalProperties"],
        json!({"type": "string"})
    );
    // metadata is left open: ObjectMeta is not spelt out in the CRD.
    assert!(
        schema["properties"]["metadata"]
            .get("additionalProperties")
            .is_none()
    );
}

/// A cap of 0 would print Reports with no result at all: refused as a usage error.
#[test]
fn report_max_results_of_zero_is_refused() {
    let r = run(&[
        "audit",
        "--live-file",
        "missing.json",
        "--format",
        "openreports",
        "--report-max-results",
        "0",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("must be at least 1"), "{}", r.stderr);
}
