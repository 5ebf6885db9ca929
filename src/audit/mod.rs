//! The audit: what a cluster runs, checked against the policy and the registry.
//!
//! - this module: the inventory of distinct images (deduplicated by reference and by the digest
//!   that runs) and where each is used; pure;
//! - [`run`]: every image evaluated once, policy rules at audit level and a registry walk of
//!   what a restart, a rollback or the next pod pulls; the registry's retention simulated;
//! - [`render`]: the report as text, JSON, Markdown and HTML; pure;
//! - [`openreports`]: the report as OpenReports `Report` objects, one per workload; pure;
//! - [`periodic`]: the same run on a timer for `tollgate serve`, recorded as gauges;
//! - [`publish`]: the periodic run's OpenReports Reports written through the API server;
//! - [`pull`]: with `serve --pull-secrets`, each namespace's pull secrets for its images' walks;
//! - [`servability()`]: what the walks found of each running digest, for the catalog's
//!   registry events (recorded by [`periodic`] with `serve --catalog`, and by the CLI); pure.
//!
//! Must not touch the webhook: [`periodic`] records through [`periodic::Recorder`], which the
//! webhook's metrics implement.

pub mod openreports;
/// Shell: the clock, per run.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod periodic;
pub mod publish;
pub mod pull;
pub mod render;
pub mod run;
mod servability;

use std::collections::BTreeMap;

use serde::Serialize;

pub use servability::servability;

use crate::cluster::{LiveState, Owner};
use crate::reference::{ImageRef, WrittenImage};

/// Why an image matters to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// Pods run it: the next restart of any of them pulls it again.
    Running,
    /// A Deployment keeps it in an older ReplicaSet: `kubectl rollout undo` pulls it.
    RollbackTarget,
    /// A controller's template names it but no pod runs it now (a CronJob between runs, a
    /// Deployment scaled to zero): the next pod pulls it.
    Declared,
}

/// One use of an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Why this use matters: what pulls the image next.
    pub role: Role,
    /// Namespace of the pod or controller (`default` for a listed object that names none).
    pub namespace: String,
    /// `Kind/name` of the top controller (a pod's Deployment rather than its ReplicaSet), or of
    /// the pod itself when it has none.
    pub workload: String,
    /// Name of the container (init and ephemeral ones included) that names the image.
    pub container: String,
    /// Pods running it (for [`Role::Running`]).
    pub pods: usize,
}

/// A distinct image: a reference as written, and the digest that runs under it when known.
/// The same tag running at two digests (a tag moved between pulls) is two entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditImage {
    /// The reference as the pod spec or template writes it.
    pub image: WrittenImage,
    /// `repository@digest` the runtime reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<ImageRef>,
    /// Every use, sorted by role (running first), namespace, workload and container.
    pub usages: Vec<Usage>,
}

impl AuditImage {
    /// Pods running this image.
    pub fn running_pods(&self) -> usize {
        self.usages
            .iter()
            .filter(|u| u.role == Role::Running)
            .map(|u| u.pods)
            .sum()
    }
}

/// (image as written, running `repository@digest`).
type ImageKey = (WrittenImage, Option<String>);
/// (role, namespace, workload, container).
type UsageKey = (Role, String, String, String);

/// Every distinct image of the live state, with its usages, sorted by image.
pub fn inventory(state: &LiveState) -> Vec<AuditImage> {
    let owners: BTreeMap<(&str, &str, &str), &Owner> = state
        .controllers
        .iter()
        .filter_map(|c| {
            Some((
                (
                    c.object.namespace.as_deref().unwrap_or_default(),
                    c.object.kind.as_str(),
                    c.object.name.as_str(),
                ),
                c.owner.as_ref()?,
            ))
        })
        .collect();
    // A pod's owner's owner: ReplicaSet -> Deployment, Job -> CronJob.
    let top = |namespace: &str, owner: &Owner| -> String {
        let mut o = owner;
        for _ in 0..4 {
            match owners.get(&(namespace, o.kind.as_str(), o.name.as_str())) {
                Some(up) => o = up,
                None => break,
            }
        }
        format!("{}/{}", o.kind, o.name)
    };
    let mut images: BTreeMap<ImageKey, (Option<ImageRef>, BTreeMap<UsageKey, usize>)> =
        BTreeMap::new();
    let mut running_workloads = std::collections::BTreeSet::new();
    for pod in &state.pods {
        let workload = match &pod.owner {
            Some(o) => top(&pod.namespace, o),
            None => format!("Pod/{}", pod.name),
        };
        running_workloads.insert((pod.namespace.clone(), workload.clone()));
        for c in &pod.containers {
            *images
                .entry((c.image.clone(), c.running.as_ref().map(ToString::to_string)))
                .or_insert_with(|| (c.running.clone(), BTreeMap::new()))
                .1
                .entry((
                    Role::Running,
                    pod.namespace.clone(),
                    workload.clone(),
                    c.container.name.clone(),
                ))
                .or_default() += 1;
        }
    }
    for c in &state.controllers {
        let namespace = c.object.namespace.clone().unwrap_or_default();
        let workload = match &c.owner {
            Some(o) => top(&namespace, o),
            None => format!("{}/{}", c.object.kind, c.object.name),
        };
        let role = if c.object.kind == "ReplicaSet"
            && c.owner.as_ref().is_some_and(|o| o.kind == "Deployment")
        {
            let deployment = &c.owner.as_ref().expect("checked").name;
            let is_target = state
                .rollback_targets(&namespace, deployment)
                .iter()
                .any(|t| t.object.name == c.object.name);
            if !is_target {
                continue;
            }
            Role::RollbackTarget
        } else if running_workloads.contains(&(namespace.clone(), workload.clone())) {
            continue;
        } else {
            Role::Declared
        };
        for (container, image) in &c.images {
            images
                .entry((image.clone(), None))
                .or_default()
                .1
                .entry((
                    role,
                    namespace.clone(),
                    workload.clone(),
                    container.name.clone(),
                ))
                .or_insert(0);
        }
    }
    images
        .into_iter()
        .map(|((image, _), (running, usages))| AuditImage {
            image,
            running,
            usages: usages
                .into_iter()
                .map(|((role, namespace, workload, container), pods)| Usage {
                    role,
                    namespace,
                    workload,
                    container,
                    pods,
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const D: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    fn state() -> LiveState {
        let pod = |name: &str, rs: &str, image: &str, id: Option<String>| {
            json!({"kind": "Pod", "metadata": {"name": name, "namespace": "b",
                "ownerReferences": [{"kind": "ReplicaSet", "name": rs, "controller": true}]},
              "spec": {"containers": [{"name": "api", "image": image}]},
              "status": {"containerStatuses": [{"name": "api", "imageID": id}]}})
        };
        let rs = |name: &str, rev: &str, image: &str| {
            json!({"kind": "ReplicaSet", "apiVersion": "apps/v1",
              "metadata": {"name": name, "namespace": "b",
                "annotations": {"deployment.kubernetes.io/revision": rev},
                "ownerReferences": [{"kind": "Deployment", "name": "api", "controller": true}]},
              "spec": {"template": {"spec": {"containers": [{"name": "api", "image": image}]}}}})
        };
        let list = json!({"kind": "List", "items": [
            {"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "api", "namespace": "b"},
             "spec": {"template": {"spec": {"containers": [{"name": "api", "image": "r/api:2"}]}}}},
            rs("api-2", "2", "r/api:2"),
            rs("api-1", "1", "r/api:1"),
            pod("api-2-a", "api-2", "r/api:2", Some(format!("r/api@{D}"))),
            pod("api-2-b", "api-2", "r/api:2", Some(format!("r/api@{D}"))),
            {"kind": "CronJob", "apiVersion": "batch/v1", "metadata": {"name": "nightly", "namespace": "b"},
             "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "job", "image": "r/job:5"}]}}}}}}
        ]});
        LiveState::from_objects([&list]).0
    }

    #[test]
    fn images_are_deduplicated_and_attributed_to_their_top_controller() {
        let inv = inventory(&state());
        let images: Vec<(&str, Option<String>)> = inv
            .iter()
            .map(|i| {
                (
                    i.image.as_str(),
                    i.running.as_ref().map(ToString::to_string),
                )
            })
            .collect();
        let running = format!("docker.io/r/api@{D}");
        assert_eq!(
            images,
            vec![
                ("r/api:1", None),
                ("r/api:2", Some(running)),
                ("r/job:5", None),
            ]
        );
        let api2 = &inv[1];
        assert_eq!(api2.running_pods(), 2);
        assert_eq!(api2.usages.len(), 1);
        assert_eq!(api2.usages[0].workload, "Deployment/api");
        assert_eq!(inv[0].usages[0].role, Role::RollbackTarget);
        assert_eq!(inv[2].usages[0].role, Role::Declared);
        assert_eq!(inv[2].usages[0].workload, "CronJob/nightly");
    }
}
