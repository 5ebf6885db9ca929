//! The resolver's caches: one generic cached fetch for tags, documents and blobs.
//!
//! - A found answer is kept in its own cache, for that cache's time to live.
//! - A not-found answer is kept only in the shared, short-lived not-found cache: a push may be
//!   on its way, and a retry should see it soon.
//! - Errors are never cached, as success or as a verdict.
//! - Concurrent lookups of one key share one fetch; when that fetch was refused because the
//!   walk that ran it had spent its request budget, the others fetch again, in their own walks.

use std::future::Future;

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

/// One kind of answer (tag digests, documents, blob sizes), cached by key.
pub(super) struct Cached<T> {
    found: Cache<Key, Fetched<T>>,
}

impl<T: Clone + Send + Sync + 'static> Cached<T> {
    /// A cache over `found`, built by the caller with its capacity, weigher and time to live.
    pub(super) fn new(found: Cache<Key, Fetched<T>>) -> Self {
        Cached { found }
    }

    /// The answer for `key`: from the caches, else from `fetch`. A found answer for which
    /// `keep` says no (content that failed verification) is returned but not kept.
    pub(super) async fn get<F: Future<Output = Result<Fetched<T>, RegistryError>>>(
        &self,
        not_found: &NotFound,
        key: Key,
        fetch: impl Fn() -> F,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Fetched<T>, RegistryError> {
        if let Some(answer) = not_found.get(&key).await {
            return Ok(Fetched::NotFound(answer));
        }
        let mut attempts = 0;
        let fetched = loop {
            // A fetch is a future only one lookup can run: a lookup that fetches again makes a
            // new one.
            match self.found.try_get_with(key.clone(), fetch()).await {
                Ok(fetched) => break fetched,
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
        match &fetched {
            Fetched::NotFound(answer) => {
                self.found.invalidate(&key).await;
                not_found.insert(key, answer.clone()).await;
            }
            Fetched::Found(v) if !keep(v) => self.found.invalidate(&key).await,
            Fetched::Found(_) => {}
        }
        Ok(fetched)
    }

    /// The cached answer for `key`, without fetching.
    pub(super) async fn peek(&self, key: &Key) -> Option<Fetched<T>> {
        self.found.get(key).await
    }

    /// Forget `key` (an answer found wrong after the fact: ask again next time).
    pub(super) async fn forget(&self, key: &Key) {
        self.found.invalidate(key).await;
    }
}
