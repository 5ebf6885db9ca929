//! Live state as the catalog records it: one [`RunSighting`] per (top controller, container,
//! running digest), with its pod count. Pure: the same [`LiveState`] the audit reads, in; the
//! sightings, out.
//!
//! The digest is the one the runtime reports (`status.*ContainerStatuses[].imageID`), never
//! the spec's tag resolved now: a node keeps running what it pulled, possibly long after the
//! tag moved or the registry deleted the digest. A container that reports no pullable digest
//! yet (a pod still pulling, a runtime that reports only an image ID) is counted as pending,
//! never given a digest it might not run.

use std::collections::BTreeMap;

use serde::Serialize;

use super::runs::RunSighting;
use crate::cluster::{LiveState, Owner};
use crate::reference::ImageRef;
use crate::workload::ContainerKind;

/// Containers that run no known digest yet, per (namespace, top controller, container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    /// The namespace.
    pub namespace: String,
    /// The top controller's kind (`Pod` for a bare pod).
    pub controller_kind: String,
    /// Its name.
    pub controller_name: String,
    /// The container.
    pub container: String,
    /// Pods in which that container reports no digest.
    pub pods: u32,
}

/// What one snapshot of live state gives the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sightings {
    /// Every run, sorted by namespace, controller, container and digest.
    pub runs: Vec<RunSighting>,
    /// Containers without a digest, in the same order.
    pub pending: Vec<Pending>,
}

/// How many owner references are followed up from a pod: ReplicaSet → Deployment and Job →
/// CronJob are two; a few more allow third-party controllers (an operator's object owning a
/// Deployment) without following a cycle of references for ever.
const OWNER_DEPTH: usize = 4;

type Where = (String, String, String, String);

/// The runs of `state`, aggregated per (namespace, top controller, container, digest).
pub fn sightings(state: &LiveState) -> Sightings {
    let owners: BTreeMap<(&str, &str, &str), &Owner> = state
        .controllers
        .iter()
        .filter_map(|c| {
            Some((
                (
                    c.object.namespace.as_deref().unwrap_or("default"),
                    c.object.kind.as_str(),
                    c.object.name.as_str(),
                ),
                c.owner.as_ref()?,
            ))
        })
        .collect();
    let top = |namespace: &str, owner: &Owner| -> (String, String) {
        let mut o = owner;
        for _ in 0..OWNER_DEPTH {
            match owners.get(&(namespace, o.kind.as_str(), o.name.as_str())) {
                Some(up) => o = up,
                None => break,
            }
        }
        (o.kind.clone(), o.name.clone())
    };
    let mut runs: BTreeMap<(Where, String), (ImageRef, u32)> = BTreeMap::new();
    let mut pending: BTreeMap<Where, u32> = BTreeMap::new();
    for pod in &state.pods {
        let (kind, name) = match &pod.owner {
            Some(o) => top(&pod.namespace, o),
            None => ("Pod".to_owned(), pod.name.clone()),
        };
        // An image volume is no container: it has no status and runs nothing.
        for c in pod
            .containers
            .iter()
            .filter(|c| c.container.kind != ContainerKind::ImageVolume)
        {
            let at = (
                pod.namespace.clone(),
                kind.clone(),
                name.clone(),
                c.container.name.clone(),
            );
            match c.running.as_ref().and_then(|r| Some((r, r.digest()?))) {
                Some((running, digest)) => {
                    let entry = runs
                        .entry((at, digest.to_string()))
                        .or_insert_with(|| (running.clone(), 0));
                    entry.1 = entry.1.saturating_add(1);
                }
                None => *pending.entry(at).or_default() += 1,
            }
        }
    }
    Sightings {
        runs: runs
            .into_iter()
            .map(
                |(((namespace, controller_kind, controller_name, container), _), (image, pods))| {
                    RunSighting {
                        namespace,
                        controller_kind,
                        controller_name,
                        container,
                        image,
                        pods,
                    }
                },
            )
            .collect(),
        pending: pending
            .into_iter()
            .map(
                |((namespace, controller_kind, controller_name, container), pods)| Pending {
                    namespace,
                    controller_kind,
                    controller_name,
                    container,
                    pods,
                },
            )
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::{Value, json};

    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn pod(name: &str, owner: Option<(&str, &str)>, statuses: Value) -> Value {
        let mut p = json!({"kind": "Pod", "metadata": {"name": name, "namespace": "web"},
            "spec": {"initContainers": [{"name": "init", "image": "r.example.org/init:1"}],
                     "containers": [{"name": "app", "image": "r.example.org/app:1"}],
                     "ephemeralContainers": [{"name": "debug", "image": "r.example.org/debug:1"}]},
            "status": statuses});
        if let Some((kind, name)) = owner {
            p["metadata"]["ownerReferences"] =
                json!([{"kind": kind, "name": name, "controller": true}]);
        }
        p
    }

    fn app(digest: &str) -> Value {
        json!({"containerStatuses": [{"name": "app", "imageID": format!("r.example.org/app@{digest}")}]})
    }

    fn controllers() -> Vec<Value> {
        vec![
            json!({"kind": "ReplicaSet", "apiVersion": "apps/v1",
              "metadata": {"name": "api-7d9", "namespace": "web",
                "ownerReferences": [{"kind": "Deployment", "name": "api", "controller": true}]},
              "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "r.example.org/app:1"}]}}}}),
            json!({"kind": "Job", "apiVersion": "batch/v1",
              "metadata": {"name": "nightly-290", "namespace": "web",
                "ownerReferences": [{"kind": "CronJob", "name": "nightly", "controller": true}]},
              "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "r.example.org/app:1"}]}}}}),
        ]
    }

    /// (namespace, kind, name, container, digest, pods) of each run; (kind, name, container,
    /// pods) of each pending container.
    type Runs = Vec<(&'static str, &'static str, &'static str, &'static str, u32)>;
    type Pendings = Vec<(&'static str, &'static str, &'static str, u32)>;

    #[rstest]
    #[case::pods_of_one_deployment_are_one_run(
        vec![pod("api-7d9-a", Some(("ReplicaSet", "api-7d9")), app(A)),
             pod("api-7d9-b", Some(("ReplicaSet", "api-7d9")), app(A))],
        vec![("Deployment", "api", "app", A, 2)],
        vec![("Deployment", "api", "init", 2), ("Deployment", "api", "debug", 2)],
    )]
    #[case::a_rollout_half_done_is_two_runs_of_one_controller(
        vec![pod("api-7d9-a", Some(("ReplicaSet", "api-7d9")), app(A)),
             pod("api-7d9-b", Some(("ReplicaSet", "api-7d9")), app(B)),
             pod("api-7d9-c", Some(("ReplicaSet", "api-7d9")), app(B))],
        vec![("Deployment", "api", "app", A, 1), ("Deployment", "api", "app", B, 2)],
        vec![("Deployment", "api", "init", 3), ("Deployment", "api", "debug", 3)],
    )]
    #[case::a_jobs_pod_belongs_to_its_cron_job(
        vec![pod("nightly-290-x", Some(("Job", "nightly-290")), app(A))],
        vec![("CronJob", "nightly", "app", A, 1)],
        vec![("CronJob", "nightly", "init", 1), ("CronJob", "nightly", "debug", 1)],
    )]
    #[case::a_bare_pod_is_its_own_controller(
        vec![pod("toolbox", None, app(A))],
        vec![("Pod", "toolbox", "app", A, 1)],
        vec![("Pod", "toolbox", "init", 1), ("Pod", "toolbox", "debug", 1)],
    )]
    #[case::an_owner_not_listed_is_the_top(
        vec![pod("db-0", Some(("StatefulSet", "db")), app(A))],
        vec![("StatefulSet", "db", "app", A, 1)],
        vec![("StatefulSet", "db", "init", 1), ("StatefulSet", "db", "debug", 1)],
    )]
    #[case::init_and_ephemeral_containers_run_their_own_digests(
        vec![pod("toolbox", None, json!({
            "initContainerStatuses": [{"name": "init", "imageID": format!("docker-pullable://r.example.org/init@{B}")}],
            "containerStatuses": [{"name": "app", "imageID": format!("r.example.org/app@{A}")}],
            "ephemeralContainerStatuses": [{"name": "debug", "imageID": format!("r.example.org/debug@{B}")}]}))],
        vec![("Pod", "toolbox", "app", A, 1), ("Pod", "toolbox", "debug", B, 1), ("Pod", "toolbox", "init", B, 1)],
        vec![],
    )]
    #[case::a_pending_pod_is_counted_not_invented(
        vec![pod("api-7d9-a", Some(("ReplicaSet", "api-7d9")), json!({"phase": "Pending"})),
             pod("api-7d9-b", Some(("ReplicaSet", "api-7d9")), json!({"containerStatuses": [{"name": "app", "imageID": ""}]})),
             pod("api-7d9-c", Some(("ReplicaSet", "api-7d9")), json!({"containerStatuses": [{"name": "app", "imageID": A}]}))],
        vec![],
        vec![("Deployment", "api", "app", 3), ("Deployment", "api", "init", 3), ("Deployment", "api", "debug", 3)],
    )]
    fn live_state_becomes_runs(
        #[case] pods: Vec<Value>,
        #[case] want_runs: Runs,
        #[case] want_pending: Pendings,
    ) {
        let mut items = controllers();
        items.extend(pods);
        let list = json!({"kind": "List", "items": items});
        let (state, skipped) = LiveState::from_objects([&list]);
        assert!(skipped.is_empty(), "{skipped:?}");
        let s = sightings(&state);
        let runs: Vec<(String, String, String, String, u32)> = s
            .runs
            .iter()
            .map(|r| {
                assert_eq!(r.namespace, "web");
                (
                    r.controller_kind.clone(),
                    r.controller_name.clone(),
                    r.container.clone(),
                    r.image.digest().unwrap().to_string(),
                    r.pods,
                )
            })
            .collect();
        let want: Vec<(String, String, String, String, u32)> = want_runs
            .iter()
            .map(|(k, n, c, d, p)| {
                (
                    k.to_string(),
                    n.to_string(),
                    c.to_string(),
                    d.to_string(),
                    *p,
                )
            })
            .collect();
        assert_eq!(runs, want);
        let mut pending: Vec<(String, String, String, u32)> = s
            .pending
            .iter()
            .map(|p| {
                (
                    p.controller_kind.clone(),
                    p.controller_name.clone(),
                    p.container.clone(),
                    p.pods,
                )
            })
            .collect();
        pending.sort();
        let mut want: Vec<(String, String, String, u32)> = want_pending
            .iter()
            .map(|(k, n, c, p)| (k.to_string(), n.to_string(), c.to_string(), *p))
            .collect();
        want.sort();
        assert_eq!(pending, want);
    }

    #[test]
    fn the_image_is_the_repository_the_runtime_pulled_in_canonical_form() {
        let list = json!({"kind": "List", "items": [pod("p", None,
            json!({"containerStatuses": [{"name": "app", "imageID": format!("docker.io/library/busybox@{A}")}]}))]});
        let (state, _) = LiveState::from_objects([&list]);
        let s = sightings(&state);
        assert_eq!(
            s.runs[0].image.canonical_name(),
            "docker.io/library/busybox"
        );
    }
}
