//! The workload's own registry credentials at admission (`--pull-secrets`): its pull secrets,
//! read through the API server under a share of the registry deadline.
//!
//! The API server is only ever a source of credentials here, never of a verdict: a secret that
//! is missing or unusable, or an API server that fails or stalls, is a warning, and the images
//! are walked with the server's own credentials (the policy's `registryUnavailable` then decides
//! what a registry that refuses them means).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::policy::Policy;
use crate::reference::RegistryHost;
use crate::registry::pull::{self, PodPullSecrets, PullCredentials, PullSecretSource};
use crate::report::ImageSite;

/// The share of the registry deadline the pull secrets may take: the rest is the walks'. A
/// stalled API server then leaves the registry half the time, and the review is answered
/// within its deadline either way.
const SHARE: u32 = 2;

/// The approved registries `sites` pull from: the only hosts a secret's entries are used for.
pub(super) fn approved_hosts(policy: &Policy, sites: &[ImageSite]) -> Vec<RegistryHost> {
    let mut hosts: Vec<RegistryHost> = Vec::new();
    for site in sites {
        let Some(r) = site.image.reference() else {
            continue;
        };
        // Approved where the site runs: an override may approve a namespace's own registry.
        if policy
            .in_namespace(&site.namespace)
            .approved_registry(r)
            .is_some()
            && !hosts.contains(r.registry())
        {
            hosts.push(r.registry().clone());
        }
    }
    hosts
}

/// `namespace`'s credentials for `wants`, by `started + deadline / 2` at the latest; the
/// warnings say what could not be used, and never hold a credential.
pub(super) async fn credentials(
    source: &dyn PullSecretSource,
    namespace: &str,
    wants: &PodPullSecrets,
    approved: &[RegistryHost],
    started: Instant,
    deadline: Duration,
) -> (Option<Arc<PullCredentials>>, Vec<String>) {
    if approved.is_empty() {
        return (None, Vec::new());
    }
    let budget = deadline / SHARE;
    match tokio::time::timeout_at(
        started + budget,
        pull::lookup(source, namespace, wants, approved),
    )
    .await
    {
        Ok(found) => {
            let creds = (!found.credentials.is_empty()).then(|| Arc::new(found.credentials));
            (creds, found.warnings)
        }
        Err(_) => (
            None,
            vec![format!(
                "the API server did not answer for the pull secrets of namespace {namespace} \
                 within {} ms; images are checked with the server's own registry credentials",
                budget.as_millis()
            )],
        ),
    }
}
