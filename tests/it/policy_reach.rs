//! Issue 13's policy reach through the real binary: custom kinds found by `check` and the
//! webhook, label- and segment-safe wildcard registries, exemptions by tag and digest.

use std::path::Path;

use rstest::rstest;
use serde_json::{Value, json};

use crate::support::run;
use crate::support::webhook::{Webhook, fixture};

fn write_policy(dir: &Path, spec: &str) -> String {
    let path = dir.join("policy.yaml");
    std::fs::write(
        &path,
        format!("apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {{name: reach}}\nspec:\n{spec}"),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

fn check_json(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["check", "--format", "json"];
    all.extend_from_slice(args);
    let r = run(&all);
    let v =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}\n{}{}", r.stdout, r.stderr));
    (r.code, v)
}

/// (object, pointer) of every registry-not-approved finding.
fn unapproved(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ruleId"] == "registry-not-approved")
        .map(|f| {
            (
                format!(
                    "{} {}",
                    f["object"]["kind"].as_str().unwrap(),
                    f["object"]["name"].as_str().unwrap()
                ),
                f["location"]["pointer"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[rstest]
#[case::argo_rollouts("argo-rollouts.yaml", 1)]
#[case::knative("knative.yaml", 3)]
#[case::openkruise("openkruise.yaml", 4)]
#[case::argo_workflows("argo-workflows.yaml", 10)]
#[case::tekton("tekton.yaml", 7)]
fn check_sees_the_images_of_every_builtin_custom_kind(#[case] file: &str, #[case] images: usize) {
    // Every fixture image is on Docker Hub, ghcr.io or gcr.io: none is approved by the default
    // policy, so each is one registry-not-approved finding at its own pointer.
    let path = format!("tests/fixtures/workloads/{file}");
    let (code, report) = check_json(&[&path]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["summary"]["images"], images, "{report}");
    let found = unapproved(&report);
    assert_eq!(found.len(), images, "{found:#?}");
    assert!(
        found.iter().all(|(_, p)| p.ends_with("/image")),
        "{found:#?}"
    );
}

#[test]
fn a_policy_workloads_entry_teaches_check_a_kind_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("runner.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: ci.example.com/v1\nkind: Runner\nmetadata: {name: build}\nspec:\n  jobs:\n    - name: compile\n      runner:\n        image: docker.io/library/golang:1.23\n  podTemplate:\n    spec:\n      containers:\n        - {name: agent, image: quay.io/ci/agent:2}\n",
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    let registries = "  registries: [{prefix: docker-registry.wikimedia.org}]\n";

    // Without an entry, the kind is an object with no images, as before.
    let plain = write_policy(dir.path(), registries);
    let (code, report) = check_json(&["--policy", &plain, m]);
    assert_eq!(
        (code, report["summary"]["images"].as_u64()),
        (0, Some(0)),
        "{report}"
    );

    let taught = write_policy(
        dir.path(),
        &format!(
            "{registries}  workloads:\n    - apiGroup: ci.example.com\n      kind: Runner\n      podSpecs: [spec.podTemplate.spec]\n      containers: [\"spec.jobs[*].runner\"]\n"
        ),
    );
    let (code, report) = check_json(&["--policy", &taught, m]);
    assert_eq!(code, 1, "{report}");
    let mut found = unapproved(&report);
    found.sort();
    assert_eq!(
        found,
        [
            (
                "Runner build".to_owned(),
                "/spec/jobs/0/runner/image".to_owned()
            ),
            (
                "Runner build".to_owned(),
                "/spec/podTemplate/spec/containers/0/image".to_owned()
            ),
        ]
    );
    let names: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["container"]["name"].as_str())
        .collect();
    assert!(
        names.contains(&"compile"),
        "a lone container is named by its list entry: {names:?}"
    );
}

#[rstest]
#[case::core_kind(
    "    - {apiGroup: apps, kind: Deployment, podSpecs: [spec.template.spec]}\n",
    "policy.yaml:7:",
    "one of Kubernetes' own kinds"
)]
#[case::no_paths(
    "    - {apiGroup: ci.example.com, kind: Runner}\n",
    "policy.yaml:7:",
    "lists no podSpecs and no containers"
)]
#[case::bad_path(
    "    - {apiGroup: ci.example.com, kind: Runner, containers: [\"spec.jobs[0].runner\"]}\n",
    "policy.yaml:7:",
    "field path \"spec.jobs[0].runner\""
)]
#[case::no_group(
    "    - {kind: Runner, podSpecs: [spec]}\n",
    "policy.yaml:7:",
    "needs apiGroup"
)]
fn workloads_entries_are_validated_with_their_line(
    #[case] entry: &str,
    #[case] at: &str,
    #[case] message: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        &format!("  registries: [{{prefix: r.example.org}}]\n  workloads:\n{entry}"),
    );
    let r = run(&["policy", "validate", &policy]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(at) && r.stderr.contains(message),
        "{}",
        r.stderr
    );
}

#[rstest]
#[case::one_label("team.azurecr.io/app:1", true)]
#[case::two_labels("a.team.azurecr.io/app:1", false)]
#[case::suffix_look_alike("team.azurecr.io.evil.com/app:1", false)]
#[case::ecr("123456789012.dkr.ecr.eu-west-1.amazonaws.com/svc:1", true)]
#[case::team_segment("registry.example.org/team-pay/app:1", true)]
#[case::team_glob_is_one_segment("registry.example.org/team/app:1", false)]
fn check_approves_wildcard_registries_segment_safely(#[case] image: &str, #[case] approved: bool) {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "  rules: {digest-missing: off}\n  registries:\n    - prefix: \"*.azurecr.io/\"\n    - prefix: \"*.dkr.ecr.*.amazonaws.com/\"\n    - prefix: registry.example.org/team-*/\n",
    );
    let manifest = dir.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n    - {{name: a, image: \"{image}\"}}\n"),
    )
    .unwrap();
    let (code, report) = check_json(&["--policy", &policy, manifest.to_str().unwrap()]);
    assert_eq!(code == 0, approved, "{report}");
    assert_eq!(unapproved(&report).is_empty(), approved, "{report}");
}

#[test]
fn check_exempts_by_tag_and_digest_and_lists_what_it_exempted() {
    let dir = tempfile::tempdir().unwrap();
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let policy = write_policy(
        dir.path(),
        &format!(
            "  rules: {{digest-missing: off}}\n  registries: [{{prefix: r.example.org/}}]\n  tags: {{forbidden: [nightly, dev]}}\n  exemptions:\n    - images: [\"r.example.org/app:nightly\"]\n      rules: [tag-forbidden]\n      reason: the nightly soak test\n    - images: [\"r.example.org/app@{digest}\"]\n      reason: the hotfix build\n      expires: 2099-12-31\n"
        ),
    );
    let manifest = dir.path().join("pods.yaml");
    let pod = |name: &str, image: &str| {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n    - {{name: a, image: \"{image}\"}}\n"
        )
    };
    std::fs::write(
        &manifest,
        [
            pod("nightly", "r.example.org/app:nightly"),
            pod("dev", "r.example.org/app:dev"),
            pod("hotfix", &format!("r.example.org/app:dev@{digest}")),
        ]
        .concat(),
    )
    .unwrap();
    let (code, report) = check_json(&["--policy", &policy, manifest.to_str().unwrap()]);
    assert_eq!(code, 1, "{report}");
    let denied: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["level"] == "deny")
        .map(|f| f["object"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(denied, ["dev"], "{report}");
    let exempted: Vec<&str> = report["exempted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["object"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(exempted, ["nightly", "hotfix"], "{report}");
}

/// An AdmissionReview (the shape of pod-create.json's envelope) for `object`.
fn review_of(object: Value, group: &str, version: &str, kind: &str, resource: &str) -> Value {
    let mut review = fixture("pod-create.json");
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version, "resource": resource});
    let request = &mut review["request"];
    request["kind"] = gvk.clone();
    request["requestKind"] = gvk;
    request["resource"] = gvr.clone();
    request["requestResource"] = gvr;
    request["namespace"] = json!("ci");
    request["object"] = object;
    review
}

/// The first object of `kind` in a workloads fixture, as JSON (read by tollgate's own loader).
fn manifest(file: &str, kind: &str) -> Value {
    let text = std::fs::read_to_string(format!("tests/fixtures/workloads/{file}")).unwrap();
    tollgate::yaml::load_all(&text, tollgate::yaml::Record::ImageFields)
        .map(|d| d.unwrap().value)
        .find(|v| v["kind"] == kind)
        .unwrap()
}

#[rstest]
#[case::rollout(
    "argo-rollouts.yaml",
    "Rollout",
    "argoproj.io",
    "v1alpha1",
    "rollouts",
    "/spec/template/spec/containers/0/image"
)]
#[case::workflow(
    "argo-workflows.yaml",
    "Workflow",
    "argoproj.io",
    "v1alpha1",
    "workflows",
    "/spec/templates/1/script/image"
)]
#[case::tekton_task(
    "tekton.yaml",
    "Task",
    "tekton.dev",
    "v1",
    "tasks",
    "/spec/steps/1/image"
)]
#[case::knative_service(
    "knative.yaml",
    "Service",
    "serving.knative.dev",
    "v1",
    "services",
    "/spec/template/spec/containers/0/image"
)]
#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_denies_unapproved_images_in_custom_kinds(
    #[case] file: &str,
    #[case] kind: &str,
    #[case] group: &str,
    #[case] version: &str,
    #[case] resource: &str,
    #[case] pointer: &str,
) {
    let hook = Webhook::start(&["--no-resolve"]);
    let object = manifest(file, kind);
    let image = object
        .pointer(pointer)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let denied = hook
        .review(
            "/validate",
            &review_of(object, group, version, kind, resource),
        )
        .await;
    assert_eq!(denied["allowed"], false, "{denied}");
    let message = denied["status"]["message"].as_str().unwrap();
    assert!(message.contains("[registry-not-approved]"), "{message}");
    assert!(
        message.contains(&format!("({image})")),
        "{image} is named: {message}"
    );
}

#[test]
fn policy_show_prints_what_a_namespace_gets() {
    let cluster = run(&["policy", "show", "--policy", "policies/multi-team.yaml"]);
    assert_eq!(cluster.code, 0, "{}", cluster.stderr);
    insta::assert_snapshot!("policy_show_cluster_wide", cluster.stdout);
    let payments = run(&[
        "policy",
        "show",
        "--policy",
        "policies/multi-team.yaml",
        "--namespace",
        "payments-eu",
    ]);
    assert_eq!(payments.code, 0, "{}", payments.stderr);
    insta::assert_snapshot!("policy_show_payments", payments.stdout);
    let json = run(&[
        "policy",
        "show",
        "--policy",
        "policies/multi-team.yaml",
        "--namespace",
        "data-lake",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        v["overrides"],
        json!(["policies/multi-team.yaml:28 (namespaces data-*)"])
    );
    let digest = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ruleId"] == "digest-missing")
        .unwrap();
    assert_eq!(digest["level"], "audit");
    assert_eq!(digest["clusterWide"], "warn");
    assert_eq!(v["exemptions"][0]["fromOverride"], true, "{v}");
}

#[test]
fn check_and_explain_apply_the_override_of_each_objects_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pods.yaml");
    let pod = |ns: &str| {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: app, namespace: {ns}}}\nspec:\n  containers:\n    - {{name: a, image: registry.example.org/shared/app:1.0}}\n"
        )
    };
    std::fs::write(&manifest, [pod("web"), pod("payments")].concat()).unwrap();
    let (code, report) = check_json(&[
        "--policy",
        "policies/multi-team.yaml",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{report}");
    let levels: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["object"]["namespace"].as_str().unwrap().to_owned(),
                format!(
                    "{} {}",
                    f["ruleId"].as_str().unwrap(),
                    f["level"].as_str().unwrap()
                ),
            )
        })
        .collect();
    assert_eq!(
        levels,
        [
            ("web".to_owned(), "digest-missing warn".to_owned()),
            ("payments".to_owned(), "digest-missing deny".to_owned()),
        ]
    );

    let explained = run(&[
        "explain",
        "--policy",
        "policies/multi-team.yaml",
        "--namespace",
        "payments",
        "registry.example.org/shared/app:1.0",
    ]);
    assert_eq!(explained.code, 1, "{}", explained.stderr);
    assert!(
        explained.stdout.contains(
            "with the override at policies/multi-team.yaml:22 (namespaces payments, payments-*)"
        ),
        "{}",
        explained.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_applies_the_override_of_the_requests_namespace() {
    let hook = Webhook::start(&["--no-resolve", "--policy", "policies/multi-team.yaml"]);
    let object = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app"},
        "spec": {"containers": [{"name": "a", "image": "registry.example.org/shared/app:1.0"}]}});
    let mut web = review_of(object.clone(), "", "v1", "Pod", "pods");
    web["request"]["namespace"] = json!("web");
    let allowed = hook.review("/validate", &web).await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    let mut payments = review_of(object, "", "v1", "Pod", "pods");
    payments["request"]["namespace"] = json!("payments");
    let denied = hook.review("/validate", &payments).await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert!(
        denied["status"]["message"]
            .as_str()
            .unwrap()
            .contains("[digest-missing]"),
        "{denied}"
    );
}
