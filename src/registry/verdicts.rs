//! A per-thread copy of recent positive signature verdicts, for rules whose signers are all
//! key or keyless (cosign) signers and which require no attestation.
//!
//! Why: a warm check of a signed image is two lookups in the shared caches (the `.sig` tag,
//! then the verdict), and a moka hit writes shared state (the entry's access time, its
//! reference count, the read log). Two worker threads checking the same hot images then
//! trade those cache lines on every admission: the webhook's CPU per request rose by several
//! times what the instructions of those lookups account for, and the two servers were level
//! with one worker thread (docs/BENCHMARKS.md, 9e). A copy per thread is read without writing
//! anything shared.
//!
//! What it may answer: only "verified", and only for [`LIFETIME`] after the shared path (tag,
//! verdict, or a full verification) said so for the same resolver, endpoint (and so the same
//! credentials), repository, digest and rule fingerprint (the rule's signers, threshold and
//! trusted root). A failure is never copied. A signature removed or a `.sig` tag moved is
//! therefore seen at most [`LIFETIME`] later than the shared caches see it, and those already
//! keep a tag up to its time to live.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use super::http::Endpoint;
use crate::reference::Digest;

/// How long a thread's copy of a verdict is used without asking the shared caches.
pub(super) const LIFETIME: Duration = Duration::from_secs(1);

/// A thread's copies at most; at the limit the copies are dropped and made again, one shared
/// lookup each.
const CAPACITY: usize = 4096;

/// What a verdict is about, borrowed from the check that asks.
#[derive(Hash)]
pub(super) struct About<'a> {
    /// [`super::Resolver`]'s identity: a new resolver (another policy) never sees another's.
    pub resolver: u64,
    /// The registry, with the walk's credentials.
    pub endpoint: &'a Endpoint,
    /// The image's repository.
    pub repository: &'a str,
    /// The digest verified.
    pub digest: &'a Digest,
    /// The rule's fingerprint.
    pub fingerprint: &'a str,
}

struct Copy {
    resolver: u64,
    endpoint: Endpoint,
    repository: String,
    digest: Digest,
    fingerprint: String,
    until: Instant,
}

impl Copy {
    fn is(&self, about: &About<'_>) -> bool {
        self.resolver == about.resolver
            && self.digest == *about.digest
            && self.fingerprint == about.fingerprint
            && self.repository == about.repository
            && self.endpoint == *about.endpoint
    }
}

#[derive(Default)]
struct Copies {
    hasher: RandomState,
    /// By the hash of what they are about; a bucket holds the rare collisions.
    by_hash: HashMap<u64, Vec<Copy>>,
    len: usize,
}

thread_local! {
    static COPIES: RefCell<Copies> = RefCell::new(Copies::default());
}

/// Whether this thread saw `about` verified less than [`LIFETIME`] ago.
pub(super) fn verified(about: &About<'_>) -> bool {
    COPIES.with_borrow(|c| {
        let hash = c.hasher.hash_one(about);
        c.by_hash.get(&hash).is_some_and(|bucket| {
            let now = Instant::now();
            bucket.iter().any(|copy| copy.is(about) && now < copy.until)
        })
    })
}

/// Remember on this thread that the shared path verified `about` just now.
pub(super) fn remember(about: &About<'_>) {
    COPIES.with_borrow_mut(|c| {
        if c.len >= CAPACITY {
            c.by_hash.clear();
            c.len = 0;
        }
        let hash = c.hasher.hash_one(about);
        let until = Instant::now() + LIFETIME;
        let bucket = c.by_hash.entry(hash).or_default();
        if let Some(copy) = bucket.iter_mut().find(|copy| copy.is(about)) {
            copy.until = until;
            return;
        }
        bucket.push(Copy {
            resolver: about.resolver,
            endpoint: about.endpoint.clone(),
            repository: about.repository.to_owned(),
            digest: about.digest.clone(),
            fingerprint: about.fingerprint.to_owned(),
            until,
        });
        c.len += 1;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(host: &str) -> Endpoint {
        Endpoint {
            host: host.parse().unwrap(),
            insecure: false,
            auth: None,
        }
    }

    /// A copy answers only for exactly what was verified, and only for its lifetime.
    #[test]
    fn a_copy_answers_only_for_what_was_verified_and_only_briefly() {
        let ep = endpoint("registry.example.org");
        let other_ep = endpoint("other.example.org");
        let d: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let other_d: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        let about = |resolver, endpoint, repository, digest, fingerprint| About {
            resolver,
            endpoint,
            repository,
            digest,
            fingerprint,
        };
        let verified_one = about(1, &ep, "team/app", &d, "fp");
        assert!(!verified(&verified_one), "nothing remembered yet");
        remember(&verified_one);
        assert!(verified(&verified_one));
        for (what, other) in [
            ("another resolver", about(2, &ep, "team/app", &d, "fp")),
            (
                "another endpoint",
                about(1, &other_ep, "team/app", &d, "fp"),
            ),
            ("another repository", about(1, &ep, "team/other", &d, "fp")),
            ("another digest", about(1, &ep, "team/app", &other_d, "fp")),
            ("another rule", about(1, &ep, "team/app", &d, "fp2")),
        ] {
            assert!(!verified(&other), "{what}");
        }
        // Another thread has its own copies.
        std::thread::scope(|s| {
            s.spawn(|| assert!(!verified(&verified_one), "another thread"));
        });
        std::thread::sleep(LIFETIME + Duration::from_millis(100));
        assert!(!verified(&verified_one), "expired");
    }
}
