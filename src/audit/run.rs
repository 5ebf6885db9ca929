//! The audit run: every distinct image of the inventory evaluated once, with the policy's rules
//! (audit level included) and, for images of approved registries, an end-to-end walk of what a
//! restart, a rollback or the next pod would pull. The walks go through one resolver, whose
//! caches keep any manifest or blob from being fetched twice in one audit.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt as _;
use jiff::Timestamp;
use serde::Serialize;

use super::pull::ByNamespace;
use super::{AuditImage, Role};
use crate::policy::eval::{self, Context, Status};
use crate::policy::retention::{self, OrderBy, TagInfo};
use crate::policy::{AuditKind, FindingKind, Level, Policy};
use crate::reference::ImageRef;
use crate::registry::pull::PullCredentials;
use crate::registry::{Resolution, Resolver};
use crate::report::error_text;

/// What the audit found about one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditFinding {
    /// A policy rule, or one of the audit's own kinds.
    pub kind: FindingKind,
    /// How much it matters: a policy rule's configured level (audit and up), or the level the
    /// audit gives its own kinds (deny when running pods or the next pod would fail).
    pub level: Level,
    /// What is wrong, with the reference and what the registry answered.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// One image and its findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageResult {
    /// The image and its usages (flattened into the image's JSON object).
    #[serde(flatten)]
    pub image: AuditImage,
    /// What the policy, the registry walk and the retention simulation found; empty when the
    /// image is fine.
    pub findings: Vec<AuditFinding>,
    /// Registry requests this image's walks sent (0 when the caches answered).
    pub registry_requests: u64,
}

/// The whole audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    /// Every image of the inventory, findings or not, in inventory order.
    pub images: Vec<ImageResult>,
    /// What could not be checked (a registry that did not answer); makes the exit code 2.
    pub errors: Vec<String>,
    /// Registry requests sent in all.
    pub registry_requests: u64,
    /// Repositories of running images whose retention rule orders by push time: not
    /// simulated (the distribution API has no push time), so no count may read as "none at
    /// risk" for them.
    pub retention_not_simulated: Vec<String>,
    /// Whether the registry was asked at all (`audit --no-resolve` does not): without it, the
    /// sections about what the registry can serve are "not checked", never a count of 0.
    pub registry_checked: bool,
}

/// Tag lists of the repositories a retention rule covers, fetched once per repository.
type TagLists = HashMap<String, Result<Vec<String>, String>>;

/// Fetch the tag list of every repository that a retention rule covers and an image of the
/// inventory uses with a tag.
async fn tag_lists(
    policy: &Policy,
    resolver: &Resolver,
    pull: &ByNamespace,
    inventory: &[AuditImage],
) -> TagLists {
    let mut wanted: Vec<(String, ImageRef, Option<Arc<PullCredentials>>)> = Vec::new();
    for image in inventory {
        let Some(r) = image.image.reference() else {
            continue;
        };
        let canonical = policy.canonical_name(r);
        if r.tag().is_some()
            && policy.retention_for(&canonical).is_some()
            && policy.approved_registry(r).is_some()
            && !wanted.iter().any(|(c, _, _)| *c == canonical)
        {
            let creds = super::pull::for_image(pull, image, r);
            wanted.push((canonical, r.clone(), creds));
        }
    }
    let mut lists = HashMap::new();
    for (canonical, r, creds) in wanted {
        // In a walk of its own to carry the namespace's credentials (the endpoint picks them up
        // for their host); the walk's request budget is far above any tag list's pages.
        let list = async {
            match resolver.endpoint(&r) {
                Ok(ep) => match resolver
                    .client()
                    .tags(&ep, &r.repository().to_string())
                    .await
                {
                    Ok(tags) => Ok(tags.unwrap_or_default()),
                    Err(e) => Err(error_text(&e)),
                },
                Err(e) => Err(error_text(&e)),
            }
        };
        let result = match creds {
            Some(c) => resolver.walk_with(None, Some(c), list).await,
            None => list.await,
        };
        lists.insert(canonical, result);
    }
    lists
}

/// Whether the retention rule for `image`'s repository deletes its tag on its next run.
fn retention_finding(
    policy: &Policy,
    image: &AuditImage,
    lists: &TagLists,
    errors: &mut Vec<String>,
) -> Option<AuditFinding> {
    let r = image.image.reference()?;
    let tag = r.tag()?.to_string();
    let canonical = policy.canonical_name(r);
    let rule = policy.retention_for(&canonical)?;
    let tags = match lists.get(&canonical)? {
        Ok(tags) => tags,
        Err(e) => {
            errors.push(format!("cannot list the tags of {canonical}: {e}"));
            return None;
        }
    };
    if rule.order_by == OrderBy::PushTime {
        // Push times are not in the distribution API; a rule by push time cannot be simulated
        // from tags alone, so nothing is claimed about it.
        return None;
    }
    let infos: Vec<TagInfo> = tags
        .iter()
        .map(|t| TagInfo {
            tag: t.clone(),
            pushed: None,
        })
        .collect();
    if !retention::would_delete(&infos, rule.keep, rule.order_by).contains(&tag) {
        return None;
    }
    let roles: Vec<Role> = image.usages.iter().map(|u| u.role).collect();
    let (level, what) = if roles.contains(&Role::Running) {
        (
            Level::Deny,
            format!(
                "it runs in {} pod{}",
                image.running_pods(),
                if image.running_pods() == 1 { "" } else { "s" }
            ),
        )
    } else if roles.contains(&Role::RollbackTarget) {
        (Level::Warn, "it is a rollback target".to_owned())
    } else {
        (Level::Warn, "a workload declares it".to_owned())
    };
    let mut newest: Vec<&str> = tags.iter().map(String::as_str).collect();
    retention::sort_versions(&mut newest, |t| t);
    let kept: Vec<&str> = newest.iter().rev().take(rule.keep).copied().collect();
    Some(AuditFinding {
        kind: AuditKind::RetentionRisk.into(),
        level,
        message: format!(
            "the retention rule for {canonical} (keep the newest {} by version) deletes tag {tag} on its next run, and {what}; it keeps {}",
            rule.keep,
            kept.join(", ")
        ),
        hint: "roll out the newest version (or roll back deliberately) before the rule runs, or exclude running tags from retention".into(),
    })
}

/// Evaluate every image: the policy's rules at audit level, and (with a resolver) the walks,
/// with the credentials `pull` has for the namespaces using the image (empty: the resolver's
/// own). `progress` is told after each image.
pub async fn audit(
    policy: &Arc<Policy>,
    resolver: Option<&Arc<Resolver>>,
    pull: &ByNamespace,
    inventory: Vec<AuditImage>,
    now: Timestamp,
    jobs: usize,
    progress: &(dyn Fn() + Sync),
) -> AuditReport {
    let lists = match resolver {
        Some(r) => tag_lists(policy, r, pull, &inventory).await,
        None => TagLists::new(),
    };
    let lists = &lists;
    let results: Vec<(ImageResult, Vec<String>)> = futures_util::stream::iter(inventory)
        .map(|image| async move {
            let mut out = one(policy, resolver, pull, image, now).await;
            if let Some(f) = retention_finding(policy, &out.0.image, lists, &mut out.1) {
                out.0.findings.push(f);
            }
            progress();
            out
        })
        .buffered(jobs.max(1))
        .collect()
        .await;
    let mut report = AuditReport {
        images: Vec::new(),
        errors: Vec::new(),
        registry_requests: 0,
        retention_not_simulated: Vec::new(),
        registry_checked: resolver.is_some(),
    };
    for (r, errors) in results {
        if let Some(name) = r.image.image.reference().map(|i| policy.canonical_name(i))
            && policy
                .retention_for(&name)
                .is_some_and(|rule| rule.order_by == OrderBy::PushTime)
            && !report.retention_not_simulated.contains(&name)
        {
            report.retention_not_simulated.push(name);
        }
        report.registry_requests += r.registry_requests;
        report.images.push(r);
        report.errors.extend(errors);
    }
    report
}

async fn one(
    policy: &Policy,
    resolver: Option<&Arc<Resolver>>,
    pull: &ByNamespace,
    image: AuditImage,
    now: Timestamp,
) -> (ImageResult, Vec<String>) {
    let mut findings = Vec::new();
    let mut errors = Vec::new();
    let mut requests = 0;
    // Exemptions are per namespace: the image is judged where it is used first (usages are
    // sorted, so this is deterministic).
    let namespace = image
        .usages
        .first()
        .map(|u| u.namespace.clone())
        .unwrap_or_default();
    let verdict = eval::evaluate_image(
        policy,
        &image.image,
        Context {
            namespace: &namespace,
            now,
        },
    );
    for o in verdict.outcomes {
        if let Status::Fail(v) = o.status
            && o.level >= Level::Audit
            && o.exemption.as_ref().is_none_or(|e| e.expired)
        {
            findings.push(AuditFinding {
                kind: o.rule.into(),
                level: o.level,
                message: v.message,
                hint: v.hint,
            });
        }
    }
    if let Some(resolver) = resolver {
        let pods = image.running_pods();
        let roles: Vec<Role> = image.usages.iter().map(|u| u.role).collect();
        // What a restart pulls: the running digest (what the node has cached, and what a pull
        // by digest fetches), else the reference as written.
        let target = image
            .running
            .as_ref()
            .or(image.image.reference())
            .filter(|r| policy.approved_registry(r).is_some());
        if let Some(reference) = target {
            let creds = super::pull::for_image(pull, &image, reference);
            match resolver
                .walk_with(None, creds, resolver.resolve(reference))
                .await
            {
                Ok(res) => {
                    requests += res.requests;
                    if !res.is_pullable() {
                        let (kind, level, message, hint) = if roles.contains(&Role::Running) {
                            (
                                AuditKind::RunningUnservable,
                                Level::Deny,
                                format!(
                                    "the next restart of {} will fail to pull {reference}: {}",
                                    if pods == 1 {
                                        "this pod".to_owned()
                                    } else {
                                        format!("these {pods} pods")
                                    },
                                    detail(&res)
                                ),
                                "push the image again (every platform) before anything restarts, and keep running images out of the registry's garbage collection and retention",
                            )
                        } else if roles.contains(&Role::RollbackTarget) {
                            (
                                AuditKind::RollbackTargetUnservable,
                                Level::Warn,
                                format!(
                                    "a rollback to {reference} would fail to pull it: {}",
                                    detail(&res)
                                ),
                                "push the image again, or make sure nobody rolls back to this revision",
                            )
                        } else {
                            (
                                AuditKind::DeclaredUnservable,
                                Level::Deny,
                                format!(
                                    "the next pod would fail to pull {reference}: {}",
                                    detail(&res)
                                ),
                                "push the image again, or update the workload to an image the registry serves",
                            )
                        };
                        findings.push(AuditFinding {
                            kind: kind.into(),
                            level,
                            message,
                            hint: hint.to_owned(),
                        });
                    }
                }
                Err(e) => errors.push(format!(
                    "cannot check {reference} in the registry: {}",
                    error_text(&e)
                )),
            }
        }
    }
    (
        ImageResult {
            image,
            findings,
            registry_requests: requests,
        },
        errors,
    )
}

fn detail(res: &Resolution) -> String {
    if let Some(u) = &res.unresolved {
        return u.clone();
    }
    let paths: Vec<&str> = res.problems.iter().map(|p| p.path.as_str()).collect();
    if res.orphan_index {
        format!(
            "orphan index (every child manifest is gone): {}",
            paths.join("; ")
        )
    } else {
        paths.join("; ")
    }
}
