//! The resolver's caches: one generic cached fetch for tags, documents and blobs.
//!
//! - A found answer is kept in its own cache, for that cache's time to live.
//! - A not-found answer is kept only in the shared, short-lived not-found cache: a push may be
//!   on its way, and a retry should see it soon.
//! - Errors are never cached, as success or as a verdict.
//! - Concurrent lookups of one key share one fetch; when that fetch was refused because the
//!   walk that ran it had spent its request budget, the others fetch again, in their own walks.
//! - Answers kept briefly are asked again by one lookup in the last quarter of their life,
//!   while the others keep using them ([`Cached::refreshed`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use moka::future::Cache;

use super::RegistryError;
use super::http::Endpoint;
use super::scope;

/// How often a lookup fetches again after sharing another walk's over-budget fetch: each time,
/// yet another walk had to run the fetch and be over its budget, so a few suffice.
const MAX_REFETCHES: u32 = 4;

/// A fetch outcome worth caching: found content, or not found (with the registry's words).
#[derive(Debug, Clone)]
pub(super) enum Fetched<T> {
    /// The registry has it.
    Found(T),
    /// The registry does not have it (its error text).
    NotFound(String),
}

/// (registry, repository, tag or digest).
pub(super) type Key = (Endpoint, String, String);

/// The not-found answers of every kind, kept briefly.
pub(super) type NotFound = Cache<Key, String>;

/// What a cache holds under a key: the answer, and for answers kept briefly, when it is due to
/// be asked again.
#[derive(Debug, Clone)]
pub(super) struct Entry<T> {
    fetched: Fetched<T>,
    refresh: Option<Arc<Refresh>>,
}

impl<T> Entry<T> {
    /// The answer kept.
    pub(super) fn fetched(&self) -> &Fetched<T> {
        &self.fetched
    }
}

/// When a kept answer is due to be asked again, and whether a lookup already claimed that.
/// Shared by every copy of one entry (moka hands out clones), so exactly one lookup wins the
/// claim.
#[derive(Debug)]
pub(super) struct Refresh {
    after: Instant,
    claimed: AtomicBool,
}

/// A cache of one kind of answer, as [`Resolver`](super::Resolver) builds them.
pub(super) type Store<T> = Cache<Key, Entry<T>>;

/// One kind of answer (tag digests, documents, blob sizes), cached by key.
pub(super) struct Cached<T> {
    found: Store<T>,
    /// For answers kept briefly (tags, referrers, blob sizes): how long after it is kept an
    /// answer is due to be asked again, three quarters of its life. The first lookup after that
    /// claims the entry and asks the registry again while every other lookup keeps the cached
    /// answer. An expiring tag then costs one admission a registry round trip, instead of
    /// stalling every admission that needs it until the shared fetch returns; no answer is ever
    /// used past its time to live (the cache's own).
    refresh_after: Option<Duration>,
}

impl<T: Clone + Send + Sync + 'static> Cached<T> {
    /// A cache over `found`, built by the caller with its capacity, weigher and time to live.
    pub(super) fn new(found: Store<T>) -> Self {
        Cached {
            found,
            refresh_after: None,
        }
    }

    /// [`Cached::new`] for answers that live `ttl` and are asked again before they expire.
    pub(super) fn refreshed(found: Store<T>, ttl: Duration) -> Self {
        Cached {
            found,
            refresh_after: Some(ttl * 3 / 4),
        }
    }

    fn entry(&self, fetched: Fetched<T>) -> Entry<T> {
        Entry {
            fetched,
            refresh: self.refresh_after.map(|after| {
                Arc::new(Refresh {
                    after: Instant::now() + after,
                    claimed: AtomicBool::new(false),
                })
            }),
        }
    }

    /// The answer for `key`: from the caches, else from `fetch`. A found answer for which
    /// `keep` says no (content that failed verification) is returned but not kept.
    ///
    /// A hit costs one cache lookup. What a miss or a refresh runs (the fetch, with its HTTP
    /// future) is boxed, so that this future, and every future that awaits it, stays small on
    /// the warm path: it is moved whenever an admission starts a walk.
    pub(super) async fn get<F: Future<Output = Result<Fetched<T>, RegistryError>>>(
        &self,
        not_found: &NotFound,
        key: Key,
        fetch: impl Fn() -> F,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Fetched<T>, RegistryError> {
        // A found answer and a not-found one are never both kept for long: keeping either
        // drops the other. So the found cache is asked first, and a hit is one lookup.
        if let Some(entry) = self.found.get(&key).await {
            match entry.fetched {
                Fetched::Found(cached) => {
                    // Only the lookup that claims the entry asks again; the rest use it.
                    let due = entry.refresh.as_ref().is_some_and(|r| {
                        Instant::now() >= r.after && !r.claimed.swap(true, Ordering::Relaxed)
                    });
                    if !due {
                        return Ok(Fetched::Found(cached));
                    }
                    return Box::pin(self.refresh(not_found, key, cached, fetch, keep)).await;
                }
                // Kept for an instant by the shared fetch below, which drops it at once.
                Fetched::NotFound(answer) => return Ok(Fetched::NotFound(answer)),
            }
        }
        if let Some(answer) = not_found.get(&key).await {
            return Ok(Fetched::NotFound(answer));
        }
        Box::pin(self.fetch_shared(not_found, key, fetch, keep)).await
    }

    /// Ask again for an answer in the last quarter of its life.
    async fn refresh<F: Future<Output = Result<Fetched<T>, RegistryError>>>(
        &self,
        not_found: &NotFound,
        key: Key,
        cached: T,
        fetch: impl Fn() -> F,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Fetched<T>, RegistryError> {
        match fetch().await {
            Ok(Fetched::Found(v)) => {
                if keep(&v) {
                    let entry = self.entry(Fetched::Found(v.clone()));
                    self.found.insert(key, entry).await;
                } else {
                    self.found.invalidate(&key).await;
                }
                Ok(Fetched::Found(v))
            }
            Ok(Fetched::NotFound(answer)) => {
                self.found.invalidate(&key).await;
                not_found.insert(key, answer.clone()).await;
                Ok(Fetched::NotFound(answer))
            }
            // The cached answer is still within its time to live: an unanswered refresh
            // changes nothing, and the answer expires as it would have.
            Err(_) => Ok(Fetched::Found(cached)),
        }
    }

    /// Fetch an answer not in the caches, one fetch shared by concurrent lookups of `key`.
    async fn fetch_shared<F: Future<Output = Result<Fetched<T>, RegistryError>>>(
        &self,
        not_found: &NotFound,
        key: Key,
        fetch: impl Fn() -> F,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Fetched<T>, RegistryError> {
        let mut attempts = 0;
        let entry = loop {
            // A fetch is a future only one lookup can run: a lookup that fetches again makes a
            // new one.
            let once = async { fetch().await.map(|f| self.entry(f)) };
            match self.found.try_get_with(key.clone(), once).await {
                Ok(entry) => break entry,
                // Another walk ran the shared fetch and had spent its budget: that is not this
                // walk's answer. A walk over its own budget stops here with the error.
                Err(e)
                    if matches!(*e, RegistryError::WalkRequests { .. })
                        && !scope::exhausted()
                        && attempts < MAX_REFETCHES =>
                {
                    attempts += 1;
                }
                Err(e) => return Err((*e).clone()),
            }
        };
        match &entry.fetched {
            Fetched::NotFound(answer) => {
                self.found.invalidate(&key).await;
                not_found.insert(key, answer.clone()).await;
            }
            Fetched::Found(v) if !keep(v) => self.found.invalidate(&key).await,
            Fetched::Found(_) => {}
        }
        Ok(entry.fetched)
    }

    /// The cached answer for `key`, without fetching.
    pub(super) async fn peek(&self, key: &Key) -> Option<Fetched<T>> {
        self.found.get(key).await.map(|e| e.fetched)
    }

    /// Forget `key` (an answer found wrong after the fact: ask again next time).
    pub(super) async fn forget(&self, key: &Key) {
        self.found.invalidate(key).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    fn key() -> Key {
        (
            Endpoint {
                host: "registry.example.org".parse().unwrap(),
                insecure: false,
                auth: None,
            },
            "team/app".into(),
            "tag:v1".into(),
        )
    }

    /// A tag answer in the last quarter of its life is asked again by one lookup, and the
    /// lookups beside it keep the cached answer; a refresh the registry does not answer keeps
    /// it too (it is still within its time to live), and it then expires as it would have.
    #[tokio::test]
    async fn an_answer_about_to_expire_is_asked_again_by_one_lookup() {
        // Long enough that a slow, shared machine stays inside each window it sleeps into
        // (the last quarter is 2 s wide).
        let ttl = Duration::from_secs(8);
        let cache: Cached<u32> = Cached::refreshed(
            Cache::builder().max_capacity(10).time_to_live(ttl).build(),
            ttl,
        );
        let not_found: NotFound = Cache::builder().max_capacity(10).build();
        let fetches = Arc::new(AtomicU32::new(0));
        let answer = Arc::new(AtomicU32::new(1));
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let fetch = || {
            let (fetches, answer, fail) = (fetches.clone(), answer.clone(), fail.clone());
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                if fail.load(Ordering::SeqCst) {
                    return Err(RegistryError::Status {
                        url: "https://registry.example.org/v2/team/app/manifests/v1".into(),
                        message: "unavailable".into(),
                        status: 503,
                    });
                }
                Ok(Fetched::Found(answer.load(Ordering::SeqCst)))
            }
        };
        let get = || cache.get(&not_found, key(), fetch, |_| true);
        let found = |f: Result<Fetched<u32>, RegistryError>| match f {
            Ok(Fetched::Found(v)) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(found(get().await), 1);
        assert_eq!(found(get().await), 1);
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "fresh: from the cache");

        // The tag moves; in the last quarter, one of several lookups asks again and sees it.
        answer.store(2, Ordering::SeqCst);
        tokio::time::sleep(ttl * 7 / 8).await;
        let (a, b, c) = tokio::join!(get(), get(), get());
        let seen = [found(a), found(b), found(c)];
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "{seen:?}");
        assert!(
            seen.contains(&2) && seen.iter().all(|v| *v == 1 || *v == 2),
            "{seen:?}"
        );
        assert_eq!(found(get().await), 2);
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "refreshed: fresh again");

        // A refresh the registry does not answer keeps the answer, which still expires.
        fail.store(true, Ordering::SeqCst);
        tokio::time::sleep(ttl * 7 / 8).await;
        assert_eq!(found(get().await), 2);
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
        assert_eq!(found(get().await), 2, "claimed: not asked again");
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
        tokio::time::sleep(ttl / 4).await;
        assert!(
            get().await.is_err(),
            "expired: never used past its time to live"
        );
    }
}
