//! The workloads' own registry credentials in the periodic audit (`serve --pull-secrets`):
//! each namespace's pull secrets (its pods' and controllers' `imagePullSecrets`, and their
//! service accounts'), read the way admission reads them ([`crate::registry::pull`]), for the
//! approved registries that namespace's images come from.
//!
//! An image is walked once per audit, with the credentials of the first namespace (in usage
//! order) that has some for its registry; without any, with the server's own. A namespace whose
//! secrets cannot be used is a warning in the log, never a failed run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::AuditImage;
use crate::policy::Policy;
use crate::reference::{ImageRef, RegistryHost};
use crate::registry::pull::{self, PodPullSecrets, PullCredentials, PullSecretSource};
use crate::workload::WorkloadKinds;

/// Each namespace's credentials.
pub type ByNamespace = HashMap<String, Arc<PullCredentials>>;

/// What the objects of each namespace say about their pull credentials, merged. Pure.
pub fn wants(objects: &[Value], kinds: &WorkloadKinds) -> BTreeMap<String, PodPullSecrets> {
    let mut out: BTreeMap<String, PodPullSecrets> = BTreeMap::new();
    for object in objects {
        let Some(found) = crate::workload::pull_secrets_with(object, kinds) else {
            continue;
        };
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let merged = out.entry(namespace.to_owned()).or_default();
        for s in found.secrets {
            if !merged.secrets.contains(&s) {
                merged.secrets.push(s);
            }
        }
        for sa in found.service_accounts {
            if !merged.service_accounts.contains(&sa) {
                merged.service_accounts.push(sa);
            }
        }
    }
    out
}

/// The approved registries each namespace's images (as written, and as they run) come from.
/// Pure.
pub fn approved(policy: &Policy, inventory: &[AuditImage]) -> BTreeMap<String, Vec<RegistryHost>> {
    let mut out: BTreeMap<String, Vec<RegistryHost>> = BTreeMap::new();
    for image in inventory {
        let refs = image
            .image
            .reference()
            .into_iter()
            .chain(image.running.as_ref());
        let refs: Vec<&ImageRef> = refs.collect();
        for usage in &image.usages {
            // Approved in the usage's namespace: an override may approve its own registry.
            let scoped = policy.in_namespace(&usage.namespace);
            let hosts: Vec<&RegistryHost> = refs
                .iter()
                .filter(|r| scoped.approved_registry(r).is_some())
                .map(|r| r.registry())
                .collect();
            let list = out.entry(usage.namespace.clone()).or_default();
            for h in &hosts {
                if !list.contains(h) {
                    list.push((*h).clone());
                }
            }
        }
    }
    out
}

/// Read every namespace's pull secrets through `source`; each warning is logged (names only).
pub async fn read(
    source: &dyn PullSecretSource,
    wants: BTreeMap<String, PodPullSecrets>,
    approved: &BTreeMap<String, Vec<RegistryHost>>,
) -> ByNamespace {
    let mut out = ByNamespace::new();
    for (namespace, wants) in wants {
        let Some(hosts) = approved.get(&namespace).filter(|h| !h.is_empty()) else {
            continue;
        };
        let found = pull::lookup(source, &namespace, &wants, hosts).await;
        for w in &found.warnings {
            tracing::warn!(namespace, "audit: {w}");
        }
        if !found.credentials.is_empty() {
            out.insert(namespace, Arc::new(found.credentials));
        }
    }
    out
}

/// The credentials to walk `target` (an image of `image`) with: those of the first namespace
/// using it that has some for its registry.
pub fn for_image(
    by_namespace: &ByNamespace,
    image: &AuditImage,
    target: &ImageRef,
) -> Option<Arc<PullCredentials>> {
    image
        .usages
        .iter()
        .filter_map(|u| by_namespace.get(&u.namespace))
        .find(|c| c.get(target.registry()).is_some())
        .cloned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_namespaces_objects_are_merged_and_other_namespaces_kept_apart() {
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "a"},
                   "spec": {"imagePullSecrets": [{"name": "one"}], "containers": []}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"namespace": "a"},
                   "spec": {"template": {"spec": {"imagePullSecrets": [{"name": "two"}, {"name": "one"}],
                                                  "serviceAccountName": "builder", "containers": []}}}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "b"},
                   "spec": {"containers": []}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "c"}}),
        ];
        let w = wants(&objects, WorkloadKinds::builtin());
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w["a"].secrets, ["one", "two"]);
        assert_eq!(w["a"].service_accounts, ["default", "builder"]);
        assert!(w["b"].secrets.is_empty());
    }
}
