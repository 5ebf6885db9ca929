//! The audit run: every distinct image of the inventory evaluated once, with the policy's rules
//! (audit level included) and, for images of approved registries, an end-to-end walk of what a
//! restart, a rollback or the next pod would pull. The walks go through one resolver, whose
//! caches keep any manifest or blob from being fetched twice in one audit.

use std::sync::Arc;

use futures_util::StreamExt as _;
use jiff::Timestamp;
use serde::Serialize;

use super::{AuditImage, Role};
use crate::policy::eval::{self, Context, Status};
use crate::policy::{Level, Policy};
use crate::reference::ImageRef;
use crate::registry::{Resolution, Resolver};

/// What the audit found about one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditFinding {
    /// A policy rule id, or one of the audit's own: `running-unservable`,
    /// `rollback-target-unservable`, `declared-unservable`.
    pub kind: String,
    pub level: Level,
    pub message: String,
    pub hint: String,
}

/// One image and its findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageResult {
    #[serde(flatten)]
    pub image: AuditImage,
    pub findings: Vec<AuditFinding>,
    /// Registry requests this image's walks sent (0 when the caches answered).
    pub registry_requests: u64,
}

/// The whole audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    pub images: Vec<ImageResult>,
    /// What could not be checked (a registry that did not answer); makes the exit code 2.
    pub errors: Vec<String>,
    /// Registry requests sent in all.
    pub registry_requests: u64,
}

/// The audit's own finding kinds.
pub const RUNNING_UNSERVABLE: &str = "running-unservable";
pub const ROLLBACK_UNSERVABLE: &str = "rollback-target-unservable";
pub const DECLARED_UNSERVABLE: &str = "declared-unservable";

/// Evaluate every image: the policy's rules at audit level, and (with a resolver) the walks.
/// `progress` is told after each image.
pub async fn audit(
    policy: &Arc<Policy>,
    resolver: Option<&Arc<Resolver>>,
    inventory: Vec<AuditImage>,
    now: Timestamp,
    jobs: usize,
    progress: &(dyn Fn() + Sync),
) -> AuditReport {
    let results: Vec<(ImageResult, Vec<String>)> = futures_util::stream::iter(inventory)
        .map(|image| async move {
            let out = one(policy, resolver, image, now).await;
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
    };
    for (r, errors) in results {
        report.registry_requests += r.registry_requests;
        report.images.push(r);
        report.errors.extend(errors);
    }
    report
}

async fn one(
    policy: &Policy,
    resolver: Option<&Arc<Resolver>>,
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
                kind: o.rule.as_str().to_owned(),
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
        let target = image.running.as_deref().unwrap_or(&image.image);
        let walk = |reference: &str| {
            let reference = reference.to_owned();
            async move {
                let r: ImageRef = reference.parse().ok()?;
                policy.approved_registry(&r)?;
                Some((reference, resolver.resolve(&r).await))
            }
        };
        if let Some((reference, result)) = walk(target).await {
            match result {
                Ok(res) => {
                    requests += res.requests;
                    if !res.is_pullable() {
                        let (kind, level, message, hint) = if roles.contains(&Role::Running) {
                            (
                                RUNNING_UNSERVABLE,
                                Level::Deny,
                                format!(
                                    "the next restart of these {pods} pod{} will fail to pull {reference}: {}",
                                    if pods == 1 { "" } else { "s" },
                                    detail(&res)
                                ),
                                "push the image again (every platform) before anything restarts, and keep running images out of the registry's garbage collection and retention",
                            )
                        } else if roles.contains(&Role::RollbackTarget) {
                            (
                                ROLLBACK_UNSERVABLE,
                                Level::Warn,
                                format!(
                                    "a rollback to {reference} would fail to pull it: {}",
                                    detail(&res)
                                ),
                                "push the image again, or make sure nobody rolls back to this revision",
                            )
                        } else {
                            (
                                DECLARED_UNSERVABLE,
                                Level::Deny,
                                format!(
                                    "the next pod would fail to pull {reference}: {}",
                                    detail(&res)
                                ),
                                "push the image again, or update the workload to an image the registry serves",
                            )
                        };
                        findings.push(AuditFinding {
                            kind: kind.to_owned(),
                            level,
                            message,
                            hint: hint.to_owned(),
                        });
                    }
                }
                Err(e) => errors.push(format!("cannot check {reference} in the registry: {e}")),
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
