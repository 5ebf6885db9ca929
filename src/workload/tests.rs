use super::*;
use rstest::rstest;
use serde_json::json;

fn images(doc: Value) -> Vec<(String, String, String)> {
    let w = extract(&doc);
    w.images
        .iter()
        .map(|i| {
            (
                w.objects[i.object].0.kind.clone(),
                i.pointer.clone(),
                i.image.to_string(),
            )
        })
        .collect()
}

fn pod_spec(image: &str) -> Value {
    json!({"containers": [{"name": "app", "image": image}]})
}

#[rstest]
#[case::pod("v1", "Pod", json!({"spec": pod_spec("a")}), "/spec/containers/0/image")]
#[case::pod_template("v1", "PodTemplate", json!({"template": {"spec": pod_spec("a")}}), "/template/spec/containers/0/image")]
#[case::replication_controller("v1", "ReplicationController", json!({"spec": {"template": {"spec": pod_spec("a")}}}), "/spec/template/spec/containers/0/image")]
#[case::deployment("apps/v1", "Deployment", json!({"spec": {"template": {"spec": pod_spec("a")}}}), "/spec/template/spec/containers/0/image")]
#[case::legacy_deployment("extensions/v1beta1", "Deployment", json!({"spec": {"template": {"spec": pod_spec("a")}}}), "/spec/template/spec/containers/0/image")]
#[case::replica_set("apps/v1", "ReplicaSet", json!({"spec": {"template": {"spec": pod_spec("a")}}}), "/spec/template/spec/containers/0/image")]
#[case::stateful_set("apps/v1", "StatefulSet", json!({"spec": {"template": {"spec": pod_spec("a")}}}), "/spec/template/spec/containers/0/image")]
#[case::daemon_set("apps/v1", "DaemonSet", json!({"spec": {"template": {"spec": pod_spec("a")}}}), "/spec/template/spec/containers/0/image")]
#[case::job("batch/v1", "Job", json!({"spec": {"template": {"spec": pod_spec("a")}}}), "/spec/template/spec/containers/0/image")]
#[case::cron_job("batch/v1", "CronJob", json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec("a")}}}}}), "/spec/jobTemplate/spec/template/spec/containers/0/image")]
fn extracts_the_image_of_each_workload_kind(
    #[case] api_version: &str,
    #[case] kind: &str,
    #[case] body: Value,
    #[case] pointer: &str,
) {
    let mut doc = body;
    doc["apiVersion"] = json!(api_version);
    doc["kind"] = json!(kind);
    doc["metadata"] = json!({"name": "x", "namespace": "ns"});
    let w = extract(&doc);
    assert_eq!(w.objects.len(), 1);
    assert_eq!(
        w.objects[0].0,
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: Some("ns".into()),
            name: "x".into()
        }
    );
    assert_eq!(w.images.len(), 1, "{w:?}");
    assert_eq!(w.images[0].pointer, pointer);
    assert!(w.malformed.is_empty());
}

#[test]
fn all_three_container_lists_are_read() {
    let doc = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}],
        "initContainers": [{"name": "i", "image": "i"}],
        "ephemeralContainers": [{"name": "e", "image": "e"}],
    }});
    let w = extract(&doc);
    let got: Vec<_> = w
        .images
        .iter()
        .map(|i| {
            (
                i.container.kind,
                i.container.name.as_str(),
                i.pointer.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                ContainerKind::InitContainer,
                "i",
                "/spec/initContainers/0/image"
            ),
            (ContainerKind::Container, "a", "/spec/containers/0/image"),
            (ContainerKind::Container, "b", "/spec/containers/1/image"),
            (
                ContainerKind::EphemeralContainer,
                "e",
                "/spec/ephemeralContainers/0/image"
            ),
        ]
    );
}

#[test]
fn list_items_and_typed_lists_are_walked() {
    let doc = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec("a")},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        {"apiVersion": "v1", "kind": "PodList", "items": [
            // An API server's PodList items carry no kind.
            {"metadata": {"name": "q"}, "spec": pod_spec("b")}
        ]},
    ]});
    assert_eq!(
        images(doc),
        vec![
            (
                "Pod".into(),
                "/items/0/spec/containers/0/image".into(),
                "a".into()
            ),
            (
                "Pod".into(),
                "/items/2/items/0/spec/containers/0/image".into(),
                "b".into()
            ),
        ]
    );
}

#[rstest]
#[case::config_map(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"image": "x"}}), 1)]
#[case::custom_resource_reusing_a_kind(json!({"apiVersion": "batch.volcano.sh/v1alpha1", "kind": "Job", "spec": {"template": {"spec": pod_spec("a")}}}), 1)]
#[case::empty_list(json!({"apiVersion": "v1", "kind": "List", "items": []}), 0)]
#[case::null(Value::Null, 0)]
fn objects_without_a_pod_spec_hold_no_image_but_count(#[case] doc: Value, #[case] objects: usize) {
    let w = extract(&doc);
    assert_eq!(
        (w.objects.len(), w.images.len(), w.malformed.len()),
        (0, 0, 0)
    );
    assert_eq!((w.kube_objects, w.not_objects), (objects, vec![]));
}

#[rstest]
#[case::no_kind(json!({"spec": pod_spec("a")}), "", "this document is not a Kubernetes object: it has no apiVersion and no kind")]
#[case::no_api_version(json!({"kind": "Pod", "spec": pod_spec("a")}), "", "this document is not a Kubernetes object: it has no apiVersion")]
#[case::numeric_kind(json!({"apiVersion": "v1", "kind": 3}), "", "this document is not a Kubernetes object: it has a kind that is a number, not a string")]
#[case::empty_mapping(json!({}), "", "this document is not a Kubernetes object: it is an empty mapping")]
#[case::scalar(json!("just text"), "", "this document is not a Kubernetes object: it is a string, where a mapping with apiVersion and kind belongs")]
#[case::sequence(json!([{"apiVersion": "v1", "kind": "Pod"}]), "", "this document is not a Kubernetes object: it is a list, where a mapping with apiVersion and kind belongs")]
#[case::list_item(json!({"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap"}, {"a": 1}]}), "/items/1", "this List item is not a Kubernetes object: it has no apiVersion and no kind")]
#[case::list_items_not_a_list(json!({"apiVersion": "v1", "kind": "List", "items": {"a": 1}}), "/items", "the items of this List must be a list, found a mapping")]
fn values_that_are_not_objects_are_listed_not_skipped(
    #[case] doc: Value,
    #[case] pointer: &str,
    #[case] message: &str,
) {
    let w = extract(&doc);
    assert_eq!(
        w.not_objects,
        vec![NotAnObject {
            pointer: pointer.into(),
            message: message.into()
        }]
    );
}

#[test]
fn typed_list_items_inherit_their_kind_and_count() {
    let doc = json!({"apiVersion": "v1", "kind": "PodList", "items": [{"spec": pod_spec("a")}, {"spec": pod_spec("b")}]});
    let w = extract(&doc);
    assert_eq!((w.kube_objects, w.objects.len()), (2, 2));
    assert!(w.not_objects.is_empty());
}

#[rstest]
#[case::missing_image(json!({"containers": [{"name": "app"}]}), "/spec/containers/0/image", "container \"app\" has no image")]
#[case::null_image(json!({"containers": [{"name": "app", "image": null}]}), "/spec/containers/0/image", "container \"app\" has no image")]
#[case::number_image(json!({"containers": [{"name": "app", "image": 1.1}]}), "/spec/containers/0/image", "image must be a string, found a number")]
#[case::list_image(json!({"containers": [{"name": "app", "image": ["a"]}]}), "/spec/containers/0/image", "image must be a string, found a list")]
#[case::containers_not_list(json!({"containers": {"name": "app"}}), "/spec/containers", "containers must be a list of containers")]
#[case::container_not_mapping(json!({"containers": ["nginx"]}), "/spec/containers/0", "each entry of containers must be a mapping, found a string")]
fn unreadable_images_are_reported(
    #[case] spec: Value,
    #[case] pointer: &str,
    #[case] message: &str,
) {
    let doc = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec});
    let w = extract(&doc);
    assert_eq!(w.malformed.len(), 1, "{w:?}");
    assert_eq!(w.malformed[0].pointer, pointer);
    assert_eq!(w.malformed[0].message, message);
}

#[test]
fn a_workload_without_pod_spec_is_reported() {
    let doc = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}});
    let w = extract(&doc);
    assert_eq!(w.malformed[0].pointer, "/spec/template/spec");
}

#[test]
fn generate_name_stands_in_for_a_missing_name() {
    let doc = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"generateName": "migrate-"}, "spec": {"template": {"spec": pod_spec("a")}}});
    assert_eq!(extract(&doc).objects[0].0.name, "migrate-*");
}

#[test]
fn deeply_nested_lists_do_not_overflow_the_stack() {
    let mut doc = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec("deep")});
    for _ in 0..10_000 {
        let mut list = serde_json::Map::new();
        list.insert("apiVersion".into(), json!("v1"));
        list.insert("kind".into(), json!("List"));
        list.insert("items".into(), Value::Array(vec![doc]));
        doc = Value::Object(list);
    }
    assert_eq!(extract(&doc).images.len(), 1);
    // Dropping a 10,000-deep serde_json::Value recurses; leak it instead in this test.
    std::mem::forget(doc);
}

/// Every image site of a fixture in the real shape of its project's documentation, one line
/// each: object, container (kind, name), pointer, image; then what was malformed.
fn sites_of(fixture: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/workloads")
        .join(fixture);
    #[allow(clippy::disallowed_methods)]
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    for doc in crate::yaml::load_all(&text, crate::yaml::Record::ImageFields) {
        let w = extract(&doc.unwrap().value);
        for i in &w.images {
            out.push_str(&format!(
                "{} | {} {} | {} | {}\n",
                w.objects[i.object].0, i.container.kind, i.container.name, i.pointer, i.image
            ));
        }
        for m in &w.malformed {
            out.push_str(&format!(
                "MALFORMED {} | {} | {}\n",
                w.objects[m.object].0, m.pointer, m.message
            ));
        }
    }
    out
}

#[rstest]
#[case::argo_rollouts("argo-rollouts.yaml")]
#[case::knative("knative.yaml")]
#[case::openkruise("openkruise.yaml")]
#[case::argo_workflows("argo-workflows.yaml")]
#[case::tekton("tekton.yaml")]
fn custom_kinds_of_the_builtin_table(#[case] fixture: &str) {
    insta::assert_snapshot!(fixture, sites_of(fixture));
}

#[rstest]
#[case::templates_not_a_list(
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"}, "spec": {"templates": {"name": "x"}}}),
    "/spec/templates",
    "a Workflow needs a list here"
)]
#[case::container_not_a_mapping(
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"}, "spec": {"templates": [{"name": "t", "container": "alpine"}]}}),
    "/spec/templates/0/container",
    "needs a container or a list of containers"
)]
#[case::argo_container_without_image(
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"}, "spec": {"templates": [{"name": "t", "container": {"command": ["x"]}}]}}),
    "/spec/templates/0/container/image",
    "container \"t\" has no image"
)]
#[case::rollout_template_not_a_mapping(
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"}, "spec": {"template": {"spec": []}}}),
    "/spec/template/spec",
    "needs a pod spec (a mapping)"
)]
fn custom_kinds_that_do_not_fit_are_malformed(
    #[case] doc: Value,
    #[case] pointer: &str,
    #[case] message: &str,
) {
    let w = extract(&doc);
    assert!(
        w.malformed
            .iter()
            .any(|m| m.pointer == pointer && m.message.contains(message)),
        "{:#?}",
        w.malformed
    );
}

#[test]
fn a_kind_of_the_same_name_in_another_group_is_not_a_workload() {
    let doc = json!({"apiVersion": "example.com/v1", "kind": "Rollout", "metadata": {"name": "r"},
        "spec": {"template": {"spec": pod_spec("a")}}});
    assert!(extract(&doc).images.is_empty());
}

#[rstest]
#[case::pod_with_its_own_secrets(
    json!({"apiVersion": "v1", "kind": "Pod", "spec": {"imagePullSecrets": [{"name": "a"}, {"name": "b"}, {"name": "a"}], "serviceAccountName": "builder", "containers": []}}),
    Some((vec!["a", "b"], "builder"))
)]
#[case::service_account_defaults_to_default(
    json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": []}}),
    Some((vec![], "default"))
)]
#[case::deprecated_service_account_field(
    json!({"apiVersion": "v1", "kind": "Pod", "spec": {"serviceAccount": "old", "containers": []}}),
    Some((vec![], "old"))
)]
#[case::deployment_reads_its_pod_template(
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"imagePullSecrets": [{"name": "not-a-pod-field"}], "template": {"spec": {"imagePullSecrets": [{"name": "t"}], "containers": []}}}}),
    Some((vec!["t"], "default"))
)]
#[case::cronjob_reads_its_job_template(
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "c"}], "serviceAccountName": "cron", "containers": []}}}}}}),
    Some((vec!["c"], "cron"))
)]
#[case::entries_without_a_name_are_skipped(
    json!({"apiVersion": "v1", "kind": "Pod", "spec": {"imagePullSecrets": [{}, "x", {"name": 3}, {"name": ""}], "containers": []}}),
    Some((vec![], "default"))
)]
#[case::not_a_workload(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {}}), None)]
fn finds_the_pull_secrets_of_a_pod_spec(
    #[case] object: Value,
    #[case] expected: Option<(Vec<&str>, &str)>,
) {
    let got = pull_secrets(&object);
    let expected = expected.map(|(secrets, sa)| PodPullSecrets {
        secrets: secrets.into_iter().map(str::to_owned).collect(),
        service_accounts: vec![sa.to_owned()],
    });
    assert_eq!(got, expected);
}

#[test]
fn a_rollouts_template_says_its_pull_secrets() {
    let rollout = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "spec": {"template": {"spec": {"imagePullSecrets": [{"name": "regcred"}],
            "serviceAccountName": "deployer", "containers": []}}}});
    let got = pull_secrets(&rollout).unwrap();
    assert_eq!(got.secrets, ["regcred"]);
    assert_eq!(got.service_accounts, ["deployer"]);
}

#[rstest]
#[case::experiment(json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "e"},
    "spec": {"templates": [{"name": "baseline", "template": {"spec": pod_spec("a")}}]}}),
    "/spec/templates/0/template/spec/containers/0/image")]
#[case::analysis_job(json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": "t"},
    "spec": {"metrics": [{"name": "m", "provider": {"job": {"spec": {"template": {"spec": pod_spec("a")}}}}}]}}),
    "/spec/metrics/0/provider/job/spec/template/spec/containers/0/image")]
#[case::united_deployment(json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "UnitedDeployment", "metadata": {"name": "u"},
    "spec": {"template": {"cloneSetTemplate": {"spec": {"template": {"spec": pod_spec("a")}}}}}}),
    "/spec/template/cloneSetTemplate/spec/template/spec/containers/0/image")]
#[case::ephemeral_job(json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "EphemeralJob", "metadata": {"name": "j"},
    "spec": {"template": {"ephemeralContainers": [{"name": "debug", "image": "a"}]}}}),
    "/spec/template/ephemeralContainers/0/image")]
#[case::image_pull_job(json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob", "metadata": {"name": "p"},
    "spec": {"image": "a", "parallelism": 10}}),
    "/spec/image")]
#[case::step_action(json!({"apiVersion": "tekton.dev/v1beta1", "kind": "StepAction", "metadata": {"name": "s"},
    "spec": {"image": "a", "script": "echo"}}),
    "/spec/image")]
fn more_custom_kinds_of_the_builtin_table(#[case] doc: Value, #[case] pointer: &str) {
    let w = extract(&doc);
    let pointers: Vec<&str> = w.images.iter().map(|i| i.pointer.as_str()).collect();
    assert_eq!(pointers, [pointer], "{:#?}", w.malformed);
}
