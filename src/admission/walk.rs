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
use crate::registry::pull::PullCredentials;
use crate::registry::{Resolver, Tenant, sites};
use crate::report::ImageSite;

/// The registry side of the server: one resolver for the server's lifetime (its caches are the
/// point), and the base checker of the current policy.
pub struct RegistryEngine {
    /// The registry client and its caches; a policy reload keeps it while every registry entry
    /// of the policy, its overrides' included (prefixes, aliases, `insecure`, redirect hosts),
    /// stays the same.
    pub resolver: Arc<Resolver>,
    /// Checks base images against the current policy's approved bases; rebuilt on every reload.
    pub bases: Arc<BaseChecker>,
}

/// The most distinct images walked for one review. A review naming more is an attack on the
/// registry slots every request shares, not a workload: the images past the cap are answered
/// as the policy's `registryUnavailable` says, without a walk.
pub const MAX_IMAGES_PER_REVIEW: usize = 32;

/// How many of one registry's `slots` (requests in flight) one namespace may hold: half. A
/// request in flight cannot be taken back, so the half a flooding namespace cannot take is what
/// keeps every other namespace's images answered on time; one namespace alone still gets half
/// the concurrency, which is what a cold walk needs (a warm one sends no request at all). The
/// periodic audit's walks are a tenant of their own, held to the same share.
pub fn namespace_share(slots: usize) -> usize {
    (slots / 2).max(1)
}

/// Whose walks they are.
pub struct Requester {
    /// The review's namespace: the tenant whose share of the registry slots the walks take.
    pub namespace: Tenant,
    /// The workload's own credentials (`--pull-secrets`), for the hosts they name.
    pub pull: Option<Arc<PullCredentials>>,
}

/// Walk the distinct images of `sites` (at most `jobs` at a time, at most
/// [`MAX_IMAGES_PER_REVIEW`]) until `deadline`. Walks not started when the decision is made are
/// never started; those in flight finish (bounded by the resolver's own deadline) so that the
/// API server's retry finds their answers cached.
///
/// Each walk is the requester's namespace's: its registry requests wait for slots as that
/// namespace's, so a namespace flooding one registry holds at most its share of that registry's
/// slots ([`crate::registry::slots`]) and another namespace's image still gets walked. With its
/// `pull`, the workload's own credentials are used for the approved hosts they name.
pub async fn walk(
    policy: &Arc<Policy>,
    engine: &RegistryEngine,
    requester: Requester,
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
                let (namespace, pull) = (requester.namespace.clone(), requester.pull.clone());
                async move {
                    let facts = facts::evaluate(policy, resolver, bases, &r);
                    (i, resolver.walk_with(Some(namespace), pull, facts).await)
                }
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

#[cfg(test)]
mod tests {
    use rstest::rstest;

    #[rstest]
    #[case::half_of_the_default_eight(8, 4)]
    #[case::half_rounded_down(5, 2)]
    #[case::never_none(1, 1)]
    #[case::never_none_of_zero(0, 1)]
    fn a_namespace_holds_half_of_a_registrys_slots(#[case] slots: usize, #[case] share: usize) {
        assert_eq!(super::namespace_share(slots), share);
    }
}
