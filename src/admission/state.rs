//! What the webhook's handlers share: the policy with its registry side (swapped as one on
//! reload), the serving certificate, the metrics and the settings.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::decide::Settings;
use super::metrics::Metrics;
use super::tls::ReloadingCert;
use super::walk::RegistryEngine;
use crate::policy::Policy;
use crate::registry::Resolver;
use crate::registry::base::BaseChecker;
use crate::registry::http::RequestObserver;
use crate::registry::pull::PullSecretSource;

/// An error from outside the library (the binary's resolver factory).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the resolver for a policy (credentials are read for its approved registries only),
/// reporting every request to the observer. Called at start, and again when a reloaded policy
/// changes the approved registries; otherwise the resolver, and its warm cache, is kept.
pub type ResolverFactory =
    Arc<dyn Fn(Arc<Policy>, Arc<dyn RequestObserver>) -> Result<Resolver, BoxError> + Send + Sync>;

/// The policy and the registry side, swapped as one when the policy is reloaded.
pub(super) struct Engine {
    pub(super) policy: Arc<Policy>,
    pub(super) registry: Option<RegistryEngine>,
}

/// What decides whether a reloaded policy can keep the resolver: the resolver uses the policy
/// to find (and approve) registries, the overrides' included, and its client was built with
/// their redirect hosts (which also bound the token realms it may ask).
fn registries_key(p: &Policy) -> Vec<String> {
    p.all_registries()
        .map(|r| {
            let aliases: Vec<String> = r.aliases().iter().map(ToString::to_string).collect();
            let redirects: Vec<String> =
                r.redirect_hosts().iter().map(ToString::to_string).collect();
            format!(
                "{} {} {} {} {}",
                r.shown(),
                aliases.join(","),
                r.insecure(),
                redirects.join(","),
                r.is_exact()
            )
        })
        .collect()
}

pub(super) fn engine(
    policy: Arc<Policy>,
    resolvers: Option<&ResolverFactory>,
    observer: &Arc<dyn RequestObserver>,
    previous: Option<&Engine>,
) -> Result<Engine, BoxError> {
    let Some(factory) = resolvers else {
        return Ok(Engine {
            policy,
            registry: None,
        });
    };
    let kept = previous.and_then(|e| {
        e.registry
            .as_ref()
            .filter(|_| registries_key(&e.policy) == registries_key(&policy))
            .map(|r| r.resolver.clone())
    });
    let resolver = match kept {
        Some(r) => r,
        None => Arc::new(factory(policy.clone(), observer.clone())?),
    };
    Ok(Engine {
        registry: Some(RegistryEngine {
            bases: Arc::new(BaseChecker::new(resolver.clone(), policy.clone())),
            resolver,
        }),
        policy,
    })
}

/// What the handlers share.
pub(super) struct AppState {
    pub(super) engine: RwLock<Arc<Engine>>,
    pub(super) certs: Arc<ReloadingCert>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) observer: Arc<dyn RequestObserver>,
    pub(super) resolvers: Option<ResolverFactory>,
    pub(super) settings: Settings,
    pub(super) registry_deadline: Duration,
    /// The workloads' pull secrets, read through the API server (`--pull-secrets`).
    pub(super) pull_secrets: Option<Arc<dyn PullSecretSource>>,
    pub(super) jobs: usize,
    pub(super) mutate_kinds: Vec<String>,
    pub(super) max_body_bytes: usize,
    /// What all request bodies in flight may take together, in KiB.
    pub(super) body_budget: Arc<tokio::sync::Semaphore>,
    pub(super) draining: AtomicBool,
}

impl AppState {
    pub(super) fn engine(&self) -> Arc<Engine> {
        self.engine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
