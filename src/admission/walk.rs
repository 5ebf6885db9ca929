//! The registry-backed rules at admission: each distinct image of an approved registry walked
//! once, under the webhook's deadline.
//!
//! The walks run in a task of their own. When the deadline comes first, the decision is made
//! without the images not yet answered for (the policy says what that means), and the walks go
//! on in the background, bounded by the resolver's own deadline, so that the API server's retry
//! finds the answers in the cache.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::decide::{Answer, Walked};
use crate::policy::Policy;
use crate::reference::ImageRef;
use crate::registry::base::BaseChecker;
use crate::registry::facts;
use crate::registry::{Resolver, sites};
use crate::report::ImageSite;

/// The registry side of the server: one resolver for the server's lifetime (its caches are the
/// point), and the base checker of the current policy.
pub struct RegistryEngine {
    /// The registry client and its caches; a policy reload keeps it while the policy's
    /// registries (prefixes, aliases, `insecure`) stay the same.
    pub resolver: Arc<Resolver>,
    /// Checks base images against the current policy's approved bases; rebuilt on every reload.
    pub bases: Arc<BaseChecker>,
}

/// The most distinct images walked for one review. A review naming more is an attack on the
/// registry slots every request shares, not a workload: the images past the cap are answered
/// as the policy's `registryUnavailable` says, without a walk.
pub const MAX_IMAGES_PER_REVIEW: usize = 32;

/// Walk the distinct images of `sites` (at most `jobs` at a time, at most
/// [`MAX_IMAGES_PER_REVIEW`]) until `deadline`. Walks not started when the decision is made are
/// never started; those in flight finish (bounded by the resolver's own deadline) so that the
/// API server's retry finds their answers cached.
pub async fn walk(
    policy: &Arc<Policy>,
    engine: &RegistryEngine,
    sites: Vec<ImageSite>,
    jobs: usize,
    started: Instant,
    deadline: Duration,
) -> Vec<Walked> {
    let todo = sites::group(policy, sites);
    if todo.is_empty() {
        return Vec::new();
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let walked = todo.len().min(MAX_IMAGES_PER_REVIEW);
    let references: Vec<ImageRef> = todo[..walked].iter().map(|(r, _)| r.clone()).collect();
    let (policy, resolver, bases) = (
        policy.clone(),
        engine.resolver.clone(),
        engine.bases.clone(),
    );
    tokio::spawn(async move {
        let gone = tx.clone();
        futures_util::stream::iter(references.into_iter().enumerate())
            // Once nobody waits for the answers, no new walk starts.
            .take_while(move |_| std::future::ready(!gone.is_closed()))
            .map(|(i, r)| {
                let (policy, resolver, bases) = (&policy, &resolver, &bases);
                async move { (i, facts::evaluate(policy, resolver, bases, &r).await) }
            })
            .buffer_unordered(jobs.max(1))
            .for_each(|answer| {
                // The receiver is gone once the decision was made: the answer still warmed
                // the cache.
                let _ = tx.send(answer);
                std::future::ready(())
            })
            .await;
    });
    let mut answers: Vec<Option<Answer>> = todo.iter().map(|_| None).collect();
    for a in &mut answers[walked..] {
        *a = Some(Answer::TooMany(todo.len()));
    }
    let mut pending = walked;
    while pending > 0 {
        match tokio::time::timeout_at(started + deadline, rx.recv()).await {
            Ok(Some((i, result))) => {
                answers[i] = Some(match result {
                    Ok(facts) => Answer::Facts(Box::new(facts)),
                    Err(e) => Answer::Failed(e),
                });
                pending -= 1;
            }
            Ok(None) | Err(_) => break,
        }
    }
    todo.into_iter()
        .zip(answers)
        .map(|((reference, sites), answer)| Walked {
            reference,
            sites,
            answer: answer.unwrap_or(Answer::TimedOut(deadline)),
        })
        .collect()
}
