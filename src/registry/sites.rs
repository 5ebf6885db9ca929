//! The registry-backed rules applied to a report: every distinct image of an approved registry is
//! walked once, and its findings are placed at every site that uses it. `check --resolve`, the
//! git hooks and the webhook all go through here, so a registry-backed finding reads the same
//! everywhere.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt as _;

use crate::check::{self, Options};
use crate::policy::eval::Context;
use crate::policy::{Policy, RuleId};
use crate::reference::{ImageRef, WrittenImage};
use crate::report::{ImageSite, InputError, Report, error_text};

use super::Resolver;
use super::base::BaseChecker;
use super::facts::{self, RegistryFacts};

/// Walk each distinct image of `report.sites` once (at most `jobs` at a time) and record the
/// registry-backed outcomes at each site. Images that do not parse or whose registry is not
/// approved already have their static findings and are never contacted. A registry that cannot
/// answer becomes an [`InputError`] at the image's first site: the check is incomplete, not clean.
pub async fn apply(
    policy: &Arc<Policy>,
    resolver: &Arc<Resolver>,
    jobs: usize,
    opts: &Options,
    report: &mut Report,
) {
    let bases = BaseChecker::new(resolver.clone(), policy.clone());
    let todo = group(policy, std::mem::take(&mut report.sites));
    let results = futures_util::stream::iter(todo.iter())
        .map(|(r, _)| facts::evaluate(policy, resolver, &bases, r))
        .buffered(jobs.max(1))
        .collect::<Vec<_>>()
        .await;
    for ((reference, sites), result) in todo.iter().zip(results) {
        match result {
            Ok(facts) => record(policy, reference, sites, &facts, opts, report),
            Err(e) => {
                let first = &sites[0];
                report.errors.push(InputError {
                    file: first.location.file.clone().unwrap_or_default(),
                    line: first.location.line,
                    column: first.location.column,
                    message: format!(
                        "cannot check {} in the registry: {}",
                        first.image,
                        error_text(&e)
                    ),
                });
            }
        }
    }
}

/// The distinct images of `sites` that the registry may be asked about, each with every site
/// that uses it, in image order. Images that do not parse or whose registry the policy does not
/// approve are left out: they have their static findings, and are never contacted.
pub fn group(policy: &Policy, sites: Vec<ImageSite>) -> Vec<(ImageRef, Vec<ImageSite>)> {
    let mut by_image: BTreeMap<WrittenImage, Vec<ImageSite>> = BTreeMap::new();
    for site in sites {
        by_image.entry(site.image.clone()).or_default().push(site);
    }
    by_image
        .into_values()
        .filter_map(|sites| {
            let r = sites[0].image.reference()?.clone();
            // Walked when the registry is approved where one of its sites runs.
            sites
                .iter()
                .any(|s| {
                    policy
                        .in_namespace(&s.namespace)
                        .approved_registry(&r)
                        .is_some()
                })
                .then_some((r, sites))
        })
        .collect()
}

/// Record what the registry said about `reference` at each of its `sites`, with the policy's
/// levels and exemptions for each site's namespace; a `digest-missing` hint names the digest
/// the registry resolved.
pub fn record(
    policy: &Policy,
    reference: &ImageRef,
    sites: &[ImageSite],
    facts: &RegistryFacts,
    opts: &Options,
    report: &mut Report,
) {
    if let Some(pinned) = facts.pinned_form(reference) {
        for f in &mut report.findings {
            if f.rule_id == RuleId::DigestMissing && f.image.as_ref() == Some(&sites[0].image) {
                f.hint = format!("pin it by digest: {pinned}");
            }
        }
    }
    for site in sites {
        let ctx = Context {
            namespace: &site.namespace,
            now: opts.now,
        };
        for (rule, status) in &facts.statuses {
            let outcome = facts.outcome(policy, *rule, status.clone(), reference, ctx);
            check::record_outcome(policy, outcome, site, opts, report);
        }
    }
}
