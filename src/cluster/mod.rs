//! What a cluster runs (live state), for the audit and the rollout report. Built from the same
//! JSON objects whether they come from the API server (listed page by page) or from a file of
//! `kubectl get pods,deployments,replicasets,... -A -o json`. Pure: objects in, model out.
//!
//! The image a pod actually runs is the digest in `status.containerStatuses[].imageID`, not the
//! reference in its spec: a tag may have moved since the pull, and the node keeps running the
//! old content from its cache, possibly long after the registry deleted it.
//!
//! This module is pure (objects in, model out); [`kube`] is the shell that lists the objects
//! from the API server, and [`pullsecrets`] the one that reads pull secrets by name (their
//! parsing is the registry's). Must not touch the policy or the registry.

/// Shell: the API server.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod kube;
/// Shell: pull secrets and service accounts, read by name.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod pullsecrets;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::reference::{ImageRef, WrittenImage};
use crate::workload::{self, ContainerRef, ObjectRef};

/// One container of a pod as it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningContainer {
    /// Which container of the pod: its name and kind (container, init or ephemeral).
    pub container: ContainerRef,
    /// The image as the pod spec writes it.
    pub image: WrittenImage,
    /// `repository@digest` the container runs, from the runtime's `imageID` (when it reports a
    /// pullable one). The repository may be the spec's or, for a digest pulled through another
    /// name, another one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<ImageRef>,
}

/// A pod and what it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// `metadata.namespace`, `default` when the object names none.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// The controller that owns it (`ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// Every container of the spec, init and ephemeral ones included, with what it runs.
    pub containers: Vec<RunningContainer>,
}

/// An owner reference, reduced to what the reports need.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// The owner's `kind` (`ReplicaSet`, `Deployment`, `Job`, ...).
    pub kind: String,
    /// The owner's `metadata.name`, in the owned object's namespace.
    pub name: String,
}

/// A controller (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ...) and the
/// images of its pod template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Controller {
    /// Kind, namespace (always set, `default` when the object names none) and name.
    pub object: ObjectRef,
    /// The controller that owns it in turn (a ReplicaSet's Deployment, a Job's CronJob).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// `deployment.kubernetes.io/revision` of a ReplicaSet (its place in the rollout history).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// `spec.replicas`, where the kind has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
    /// (container, image as written) of the pod template.
    pub images: Vec<(ContainerRef, WrittenImage)>,
}

/// Everything listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveState {
    /// Every pod, in the order listed.
    pub pods: Vec<Pod>,
    /// Every pod controller with a pod template, in the order listed.
    pub controllers: Vec<Controller>,
    /// `metadata.uid` of the pods and controllers that carry one, by (namespace, kind, name):
    /// the OpenReports scope names its workload by uid when it is known. Not serialized.
    #[serde(skip)]
    pub uids: BTreeMap<(String, String, String), String>,
}

/// An object that could not be read (the rest are still used).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// 1-based position of the object among those read, `List` items counted one by one.
    pub index: usize,
    /// What is wrong with it (no `metadata.name`, no pod template).
    pub reason: String,
}

impl LiveState {
    /// `metadata.uid` of the object `kind` `name` in `namespace`, when it was listed with one.
    pub fn uid(&self, namespace: &str, kind: &str, name: &str) -> Option<&str> {
        self.uids
            .get(&(namespace.to_owned(), kind.to_owned(), name.to_owned()))
            .map(String::as_str)
    }

    /// Build from objects: `List` documents are flattened; kinds other than pods and pod
    /// controllers are ignored.
    pub fn from_objects<'a>(
        objects: impl IntoIterator<Item = &'a Value>,
    ) -> (LiveState, Vec<Skipped>) {
        let mut state = LiveState::default();
        let mut skipped = Vec::new();
        let mut index = 0;
        for obj in objects {
            let items: Vec<&Value> = match obj.get("items").and_then(Value::as_array) {
                Some(items) if is_list(obj) => items.iter().collect(),
                _ => vec![obj],
            };
            for item in items {
                index += 1;
                if let Err(reason) = state.add(item, obj) {
                    skipped.push(Skipped { index, reason });
                }
            }
        }
        (state, skipped)
    }

    fn add(&mut self, item: &Value, list: &Value) -> Result<(), String> {
        // Items of a typed list (`PodList`) may leave out their own kind.
        let kind = item
            .get("kind")
            .and_then(Value::as_str)
            .or_else(|| {
                list.get("kind")
                    .and_then(Value::as_str)
                    .and_then(|k| k.strip_suffix("List"))
                    .filter(|k| !k.is_empty())
            })
            .unwrap_or_default();
        let meta = item.get("metadata").cloned().unwrap_or(Value::Null);
        let namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned();
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a {kind} without metadata.name"))?
            .to_owned();
        let owner = controller_owner(&meta);
        if let Some(uid) = meta.get("uid").and_then(Value::as_str) {
            self.uids.insert(
                (namespace.clone(), kind.to_owned(), name.clone()),
                uid.to_owned(),
            );
        }
        // Workload extraction matches kinds by API group, so fill in what list items leave out.
        let mut doc = item.clone();
        if doc.get("kind").is_none() {
            doc["kind"] = Value::String(kind.to_owned());
        }
        if doc.get("apiVersion").is_none() {
            let api_version = match kind {
                "Pod" | "ReplicationController" => "v1",
                "Job" | "CronJob" => "batch/v1",
                _ => "apps/v1",
            };
            doc["apiVersion"] = Value::String(api_version.to_owned());
        }
        match kind {
            "Pod" => {
                self.pods.push(Pod {
                    namespace,
                    name,
                    owner,
                    containers: running_containers(&doc),
                });
                Ok(())
            }
            "Deployment"
            | "ReplicaSet"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "CronJob"
            | "ReplicationController" => {
                let w = workload::extract(&doc);
                let Some((object, _)) = w.objects.first() else {
                    return Err(format!("{kind} {namespace}/{name} has no pod template"));
                };
                let revision = meta
                    .pointer("/annotations/deployment.kubernetes.io~1revision")
                    .and_then(Value::as_str)
                    .and_then(|r| r.parse().ok());
                let replicas = item.pointer("/spec/replicas").and_then(Value::as_u64);
                self.controllers.push(Controller {
                    object: ObjectRef {
                        namespace: Some(namespace),
                        ..object.clone()
                    },
                    owner,
                    revision,
                    replicas,
                    images: w
                        .images
                        .into_iter()
                        .map(|u| (u.container, u.image))
                        .collect(),
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Keep only what is in `namespaces` (everything when it is empty).
    pub fn retain_namespaces(&mut self, namespaces: &[String]) {
        if namespaces.is_empty() {
            return;
        }
        self.pods.retain(|p| namespaces.contains(&p.namespace));
        self.controllers.retain(|c| {
            c.object
                .namespace
                .as_ref()
                .is_some_and(|n| namespaces.contains(n))
        });
    }

    /// The ReplicaSets a Deployment keeps for rollback (every one it owns but the newest
    /// revision), oldest first.
    pub fn rollback_targets(&self, namespace: &str, deployment: &str) -> Vec<&Controller> {
        let mut owned: Vec<&Controller> = self
            .controllers
            .iter()
            .filter(|c| {
                c.object.kind == "ReplicaSet"
                    && c.object.namespace.as_deref() == Some(namespace)
                    && c.owner
                        .as_ref()
                        .is_some_and(|o| o.kind == "Deployment" && o.name == deployment)
            })
            .collect();
        owned.sort_by_key(|c| c.revision.unwrap_or(0));
        owned.pop();
        owned
    }

    /// Pods that have a controlling owner, by namespace and owner.
    pub fn pods_by_owner(&self) -> BTreeMap<(String, Owner), Vec<&Pod>> {
        let mut map: BTreeMap<(String, Owner), Vec<&Pod>> = BTreeMap::new();
        for p in &self.pods {
            if let Some(o) = &p.owner {
                map.entry((p.namespace.clone(), o.clone()))
                    .or_default()
                    .push(p);
            }
        }
        map
    }
}

fn is_list(v: &Value) -> bool {
    v.get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
}

fn controller_owner(meta: &Value) -> Option<Owner> {
    meta.get("ownerReferences")?
        .as_array()?
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|o| {
            Some(Owner {
                kind: o.get("kind")?.as_str()?.to_owned(),
                name: o.get("name")?.as_str()?.to_owned(),
            })
        })
}

/// The pod's containers with what they run: the spec's image, and the status's imageID
/// matched by container name.
fn running_containers(pod: &Value) -> Vec<RunningContainer> {
    let w = workload::extract(pod);
    let mut statuses: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for (field, kind) in [
        ("containerStatuses", "containers"),
        ("initContainerStatuses", "initContainers"),
        ("ephemeralContainerStatuses", "ephemeralContainers"),
    ] {
        for s in pod
            .pointer(&format!("/status/{field}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(name), Some(id)) = (
                s.get("name").and_then(Value::as_str),
                s.get("imageID").and_then(Value::as_str),
            ) {
                statuses.insert((kind, name), id);
            }
        }
    }
    w.images
        .into_iter()
        .map(|u| {
            let running = statuses
                .get(&(u.container.kind.field(), u.container.name.as_str()))
                .and_then(|id| running_reference(id));
            RunningContainer {
                container: u.container,
                image: u.image,
                running,
            }
        })
        .collect()
}

/// `repository@digest` from an imageID. Docker reports `docker-pullable://repo@sha256:...`;
/// containerd and CRI-O report `repo@sha256:...`. A bare `sha256:...` is the image's config
/// digest (an image ID), not a manifest digest: it cannot be pulled, so it gives nothing.
pub fn running_reference(image_id: &str) -> Option<ImageRef> {
    let id = image_id
        .strip_prefix("docker-pullable://")
        .or_else(|| image_id.strip_prefix("docker://"))
        .unwrap_or(image_id);
    let r: ImageRef = id.parse().ok()?;
    // `repository@digest` exactly: the runtime never reports a tag there.
    (r.digest().is_some() && r.tag().is_none()).then_some(r)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const D: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[rstest]
    #[case::containerd(format!("docker-registry.wikimedia.org/builds-api@{D}"), true)]
    #[case::docker(format!("docker-pullable://docker-registry.wikimedia.org/builds-api@{D}"), true)]
    #[case::image_id_only(D.to_owned(), false)]
    #[case::empty(String::new(), false)]
    #[case::bad_digest("r/a@sha256:xyz".to_owned(), false)]
    fn image_ids(#[case] id: String, #[case] usable: bool) {
        assert_eq!(running_reference(&id).is_some(), usable, "{id}");
    }

    fn fixture() -> Value {
        serde_json::json!({
        "apiVersion": "v1", "kind": "List", "items": [
          {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "builds-api", "namespace": "builds-api"},
           "spec": {"replicas": 2, "template": {"spec": {"containers": [
              {"name": "api", "image": "docker-registry.wikimedia.org/builds-api:0.0.131"}]}}}},
          {"apiVersion": "apps/v1", "kind": "ReplicaSet",
           "metadata": {"name": "builds-api-7d9", "namespace": "builds-api",
             "annotations": {"deployment.kubernetes.io/revision": "12"},
             "ownerReferences": [{"kind": "Deployment", "name": "builds-api", "controller": true}]},
           "spec": {"replicas": 2, "template": {"spec": {"containers": [
              {"name": "api", "image": "docker-registry.wikimedia.org/builds-api:0.0.130"}]}}}},
          {"apiVersion": "apps/v1", "kind": "ReplicaSet",
           "metadata": {"name": "builds-api-5c4", "namespace": "builds-api",
             "annotations": {"deployment.kubernetes.io/revision": "11"},
             "ownerReferences": [{"kind": "Deployment", "name": "builds-api", "controller": true}]},
           "spec": {"replicas": 0, "template": {"spec": {"containers": [
              {"name": "api", "image": "docker-registry.wikimedia.org/builds-api:0.0.129"}]}}}},
          {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "builds-api-7d9-x", "namespace": "builds-api",
             "ownerReferences": [{"kind": "ReplicaSet", "name": "builds-api-7d9", "controller": true}]},
           "spec": {"containers": [{"name": "api", "image": "docker-registry.wikimedia.org/builds-api:0.0.130"}]},
           "status": {"containerStatuses": [{"name": "api",
              "image": "docker-registry.wikimedia.org/builds-api:0.0.130",
              "imageID": format!("docker-registry.wikimedia.org/builds-api@{D}")}]}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
        ]})
    }

    #[test]
    fn a_kubectl_list_becomes_pods_and_controllers() {
        let list = fixture();
        let (state, skipped) = LiveState::from_objects([&list]);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(state.pods.len(), 1);
        assert_eq!(state.controllers.len(), 3);
        let c = &state.pods[0].containers[0];
        assert_eq!(c.image, "docker-registry.wikimedia.org/builds-api:0.0.130");
        assert_eq!(c.running.as_ref().unwrap().digest().unwrap().to_string(), D);
        assert_eq!(
            state.pods[0].owner,
            Some(Owner {
                kind: "ReplicaSet".into(),
                name: "builds-api-7d9".into()
            })
        );
    }

    #[test]
    fn rollback_targets_are_the_older_replica_sets() {
        let list = fixture();
        let (state, _) = LiveState::from_objects([&list]);
        let targets = state.rollback_targets("builds-api", "builds-api");
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].object.name, "builds-api-5c4");
        assert_eq!(
            targets[0].images[0].1,
            "docker-registry.wikimedia.org/builds-api:0.0.129"
        );
    }

    #[test]
    fn items_of_a_typed_list_may_leave_out_their_kind() {
        let list = serde_json::json!({"kind": "PodList", "items": [
            {"metadata": {"name": "p", "namespace": "n"},
             "spec": {"containers": [{"name": "a", "image": "r/a:1"}]}}]});
        let (state, _) = LiveState::from_objects([&list]);
        assert_eq!(state.pods.len(), 1);
    }

    #[test]
    fn an_object_without_a_name_is_skipped_and_said() {
        let list = serde_json::json!({"kind": "List", "items": [{"kind": "Pod", "metadata": {}}]});
        let (state, skipped) = LiveState::from_objects([&list]);
        assert!(state.pods.is_empty());
        assert_eq!(skipped[0].reason, "a Pod without metadata.name");
    }
}
