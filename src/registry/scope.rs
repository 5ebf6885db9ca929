//! One walk's scope: the registry requests sent for one image (its tag, index, every child
//! manifest, config and layer, and the layers its base check reads) count against one budget,
//! and wait for a registry slot as the walk's tenant (at admission, the review's namespace:
//! see [`super::slots`]).
//!
//! The scope is a task-local, because a walk's requests are issued deep inside the resolver's
//! caches and the client, by futures that share one task with other walks (`join_all`,
//! `buffer_unordered`): the client charges the scope it is polled in, which is exactly the walk
//! that asked. Requests outside any walk (catalog pages, the audit's tag lists) are not charged.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use super::RegistryError;
use super::pull::{PullAuth, PullCredentials};
use crate::reference::RegistryHost;

/// The most registry requests one image's walk may send, retries and token requests included.
///
/// The number is what the largest image tollgate still walks needs, with room to spare: an index
/// at the [`super::resolve::MAX_INDEX_CHILDREN`] cap (256 platforms) whose children each have a
/// config and 13 layers costs 2 + 256 × 15 = 3,842 requests (tag, index, then manifest, config
/// and a HEAD per layer), plus one os-release read per platform for the base check: 4,098.
/// Real multi-platform images are far below it (a dozen platforms of a few dozen layers: a few
/// hundred requests). Without a budget, one 4 MiB manifest can list some 20,000 layers, and 256
/// of them make five million HEADs for a single reference.
///
/// `--max-walk-requests` changes it, for a registry whose images are larger still.
pub const MAX_WALK_REQUESTS: u64 = 4096;

/// Who a walk is for, when slots are shared fairly: at admission, the review's namespace.
/// Cheap to clone (one reference count), because every request of a walk carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant(Arc<str>);

impl Tenant {
    /// The tenant named `name` (a namespace; empty for cluster-scoped objects).
    pub fn new(name: &str) -> Self {
        Tenant(Arc::from(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The walk a request belongs to.
#[derive(Debug)]
struct Walk {
    sent: AtomicU64,
    budget: u64,
    tenant: Option<Tenant>,
    /// The workload's own credentials (its pull secrets), for this walk only.
    pull: Option<Arc<PullCredentials>>,
}

tokio::task_local! {
    static WALK: Arc<Walk>;
}

/// Run `fut` as a walk of its own, with `budget` requests, for `tenant`; returns its output and
/// the requests it sent. A walk inside another one (an approved base resolved for the first
/// image that needs it) gets its own budget: the bases are shared by every later image.
pub fn new_walk<'a, F: Future + Send + 'a>(
    budget: u64,
    tenant: Option<Tenant>,
    fut: F,
) -> BoxFuture<'a, (F::Output, u64)> {
    new_walk_with(budget, tenant, None, fut)
}

/// [`new_walk`], with `pull`: the credentials of the workload the walk is for, used for the
/// hosts they name instead of the configured ones.
pub fn new_walk_with<'a, F: Future + Send + 'a>(
    budget: u64,
    tenant: Option<Tenant>,
    pull: Option<Arc<PullCredentials>>,
    fut: F,
) -> BoxFuture<'a, (F::Output, u64)> {
    // Boxed at once, here and in `in_walk`: a walk's future is large, and every level that
    // opens or joins a walk would otherwise hold it inline (a debug build's stack overflows).
    let fut = fut.boxed();
    async move {
        let walk = Arc::new(Walk {
            sent: AtomicU64::new(0),
            budget,
            tenant,
            pull,
        });
        let out = WALK.scope(walk.clone(), fut).await;
        (out, walk.sent.load(Ordering::Relaxed))
    }
    .boxed()
}

/// Run `fut` in the current walk if there is one (its requests spend that walk's budget), else
/// as a new walk with `budget` and no tenant; returns its output and the requests it sent.
pub fn in_walk<'a, F: Future + Send + 'a>(budget: u64, fut: F) -> BoxFuture<'a, (F::Output, u64)> {
    let fut = fut.boxed();
    match WALK.try_with(Arc::clone) {
        Ok(walk) => async move {
            let before = walk.sent.load(Ordering::Relaxed);
            let out = fut.await;
            (
                out,
                walk.sent.load(Ordering::Relaxed).saturating_sub(before),
            )
        }
        .boxed(),
        Err(_) => new_walk(budget, None, fut),
    }
}

/// The pull-secret credentials the current walk has for `host`, if any.
pub(super) fn pull_auth(host: &RegistryHost) -> Option<PullAuth> {
    WALK.try_with(|w| w.pull.as_ref().and_then(|p| p.get(host).cloned()))
        .ok()
        .flatten()
}

/// The current walk's tenant, if the request belongs to a walk that has one.
pub(super) fn tenant() -> Option<Tenant> {
    WALK.try_with(|w| w.tenant.clone()).ok().flatten()
}

/// Charge one request to the current walk: an error once the walk has sent its budget (the
/// request is then not sent). Outside a walk nothing is charged.
pub(super) fn charge() -> Result<(), RegistryError> {
    let charged = WALK.try_with(|w| {
        w.sent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < w.budget).then_some(n + 1)
            })
            .map_err(|_| w.budget)
    });
    match charged {
        Ok(Err(limit)) => Err(RegistryError::WalkRequests { limit }),
        _ => Ok(()),
    }
}

/// Whether the current walk has spent its budget (an error about another walk's budget, shared
/// through a cache, is not this walk's).
pub(super) fn exhausted() -> bool {
    WALK.try_with(|w| w.sent.load(Ordering::Relaxed) >= w.budget)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_walk_is_charged_up_to_its_budget_and_no_further() {
        let (results, sent) = new_walk(3, None, async {
            (0..5).map(|_| charge().is_ok()).collect::<Vec<_>>()
        })
        .await;
        assert_eq!(results, [true, true, true, false, false]);
        assert_eq!(sent, 3, "refused requests are not counted as sent");
    }

    #[tokio::test]
    async fn a_joined_walk_shares_the_budget_and_a_new_one_does_not() {
        let ((inner, nested, after), sent) = new_walk(2, Some(Tenant::new("ns")), async {
            let (_, inner) = in_walk(100, async { charge().unwrap() }).await;
            let (nested, _) = new_walk(1, tenant(), async { (charge(), charge(), tenant()) }).await;
            (inner, nested, (charge(), charge()))
        })
        .await;
        assert_eq!(inner, 1);
        assert!(nested.0.is_ok() && nested.1.is_err(), "{nested:?}");
        assert_eq!(nested.2, Some(Tenant::new("ns")));
        assert!(after.0.is_ok() && after.1.is_err(), "{after:?}");
        assert_eq!(sent, 2);
    }

    #[tokio::test]
    async fn a_walks_pull_credentials_serve_their_own_host_only_and_never_a_separate_walk() {
        let a: RegistryHost = "registry-a.example.org".parse().unwrap();
        let b: RegistryHost = "registry-b.example.org".parse().unwrap();
        let mut creds = PullCredentials::default();
        creds.insert(
            a.clone(),
            PullAuth {
                principal: super::super::pull::Principal::new("team-a", "pull", "1"),
                credentials: Arc::new(super::super::auth::Credentials {
                    username: "u".into(),
                    password: "p4ssw0rd".into(),
                }),
            },
        );
        let ((for_a, for_b, joined, separate), _) = new_walk_with(
            10,
            Some(Tenant::new("team-a")),
            Some(Arc::new(creds)),
            async {
                let (joined, _) = in_walk(10, async { pull_auth(&a) }).await;
                // What the approved bases are resolved in: shared by every namespace.
                let (separate, _) = new_walk(10, tenant(), async { pull_auth(&a) }).await;
                (pull_auth(&a), pull_auth(&b), joined, separate)
            },
        )
        .await;
        assert_eq!(
            for_a.map(|p| p.principal.to_string()),
            Some("team-a/pull@1".to_owned())
        );
        assert!(for_b.is_none(), "an entry for A is never B's");
        assert!(joined.is_some());
        assert!(separate.is_none());
        assert!(pull_auth(&a).is_none(), "outside the walk");
    }

    #[tokio::test]
    async fn outside_a_walk_nothing_is_charged() {
        assert!((0..10).all(|_| charge().is_ok()));
        assert!(!exhausted());
        assert_eq!(tenant(), None);
    }
}
