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
use crate::policy::{AuditKind, FindingKind, Level, Policy, RuleId};
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

/// What became of one check that found nothing to report: the pass, skip and error results of
/// the OpenReports format, which lists every check, not only the findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The rule was evaluated and holds (or the registry served the image end to end).
    Passed,
    /// The rule failed, but a live exemption of the policy covers it.
    Exempted,
    /// The rule was not evaluated: the reference is invalid, or `--no-resolve` kept the audit
    /// from the registry.
    NotEvaluated,
    /// The check was attempted and could not finish: a registry that did not answer. Never a
    /// pass.
    Unchecked,
}

/// One check of an image that produced no finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The policy rule, or the audit's own kind.
    pub kind: FindingKind,
    /// The level the check reports at (the rule's configured level, or the audit kind's).
    pub level: Level,
    /// What became of it.
    pub outcome: CheckOutcome,
    /// Why, for the outcomes other than [`CheckOutcome::Passed`] (empty for a pass): for an
    /// exemption, the failure and the exemption's reason.
    pub message: String,
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
    /// The checks that found nothing, or could not finish, for the OpenReports format. Not in
    /// the JSON report: its schema 1 (docs/audit.md) lists findings and errors only.
    #[serde(skip)]
    pub checks: Vec<Check>,
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
            && policy.contactable_registry(r).is_some()
            && !wanted.iter().any(|(c, _, _)| *c == canonical)
        {
            let creds = super::pull::for_image(pull, image, r);
            wanted.push((canonical.into_owned(), r.clone(), creds));
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

/// `signature-unverified` for what runs (or would run on a rollback): the digest the image
/// resolves to against the signature rules that cover it, as admission checks it. A registry
/// that does not answer is an error of the run, never "unsigned".
#[allow(clippy::too_many_arguments)]
async fn signature_check(
    policy: &Policy,
    resolver: &Resolver,
    creds: Option<Arc<crate::registry::pull::PullCredentials>>,
    reference: &ImageRef,
    res: &crate::registry::resolution::Resolution,
    findings: &mut Vec<AuditFinding>,
    checks: &mut Vec<Check>,
    errors: &mut Vec<String>,
) {
    let canonical = policy.canonical_name(reference);
    let Some(level) = policy.signature_level(&canonical, |_| true) else {
        return;
    };
    if policy.level_anywhere(RuleId::SignatureUnverified) == Level::Off {
        return;
    }
    let check = |outcome, message: String| Check {
        kind: RuleId::SignatureUnverified.into(),
        level,
        outcome,
        message,
    };
    let status = resolver
        .walk_with(
            None,
            creds,
            crate::registry::facts::signature_status(policy, resolver, reference, res),
        )
        .await;
    match status {
        Ok((Status::Fail(v), failed)) => findings.push(AuditFinding {
            kind: RuleId::SignatureUnverified.into(),
            level: failed.unwrap_or(level),
            message: format!("{reference}: {}", v.message),
            hint: v.hint,
        }),
        Ok((Status::Pass, _)) => checks.push(check(CheckOutcome::Passed, String::new())),
        Ok((Status::NotEvaluated(why), _)) => {
            checks.push(check(CheckOutcome::NotEvaluated, why.to_owned()));
        }
        Err(e) => {
            let message = format!(
                "cannot read the signatures of {reference}: {}",
                error_text(&e)
            );
            checks.push(check(CheckOutcome::Unchecked, message.clone()));
            errors.push(message);
        }
    }
}

/// Whether the retention rule for `image`'s repository deletes its tag on its next run.
fn retention_finding(
    policy: &Policy,
    image: &AuditImage,
    lists: &TagLists,
    errors: &mut Vec<String>,
    checks: &mut Vec<Check>,
) -> Option<AuditFinding> {
    let r = image.image.reference()?;
    let tag = r.tag()?.to_string();
    let canonical = policy.canonical_name(r);
    let rule = policy.retention_for(&canonical)?;
    let running = image.usages.iter().any(|u| u.role == Role::Running);
    let check = |outcome, message: String| Check {
        kind: AuditKind::RetentionRisk.into(),
        level: if running { Level::Deny } else { Level::Warn },
        outcome,
        message,
    };
    let tags = match lists.get(canonical.as_ref())? {
        Ok(tags) => tags,
        Err(e) => {
            let message = format!("cannot list the tags of {canonical}: {e}");
            checks.push(check(CheckOutcome::Unchecked, message.clone()));
            errors.push(message);
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
        checks.push(check(CheckOutcome::Passed, String::new()));
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
            let (result, errors) = &mut out;
            if let Some(f) =
                retention_finding(policy, &result.image, lists, errors, &mut result.checks)
            {
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
        if let Some(name) = r
            .image
            .image
            .reference()
            .map(|i| policy.canonical_name(i).into_owned())
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
    let mut checks = Vec::new();
    for o in verdict.outcomes {
        // The registry rules are never evaluated offline; the walk below is the audit's
        // version of them, under its own kinds.
        if o.level < Level::Audit || eval::REGISTRY_RULES.contains(&o.rule) {
            continue;
        }
        let exempted = o.exemption.as_ref().is_some_and(|e| !e.expired);
        let check = |outcome, message: String| Check {
            kind: o.rule.into(),
            level: o.level,
            outcome,
            message,
        };
        match o.status {
            Status::Fail(v) if !exempted => findings.push(AuditFinding {
                kind: o.rule.into(),
                level: o.level,
                message: v.message,
                hint: v.hint,
            }),
            Status::Fail(v) => {
                // The exemption's index is into the policy as it applies in the namespace.
                let scoped = policy.in_namespace(&namespace);
                let reason = o
                    .exemption
                    .and_then(|e| scoped.exemptions().get(e.index))
                    .map_or("", |e| e.reason());
                checks.push(check(
                    CheckOutcome::Exempted,
                    format!("{} (exempted: {reason})", v.message),
                ));
            }
            Status::Pass => checks.push(check(CheckOutcome::Passed, String::new())),
            Status::NotEvaluated(why) => {
                checks.push(check(CheckOutcome::NotEvaluated, why.to_owned()));
            }
        }
    }
    // The kind and level a failed walk of this image is reported under.
    let walk_kind = |roles: &[Role]| {
        if roles.contains(&Role::Running) {
            (AuditKind::RunningUnservable, Level::Deny)
        } else if roles.contains(&Role::RollbackTarget) {
            (AuditKind::RollbackTargetUnservable, Level::Warn)
        } else {
            (AuditKind::DeclaredUnservable, Level::Deny)
        }
    };
    let roles: Vec<Role> = image.usages.iter().map(|u| u.role).collect();
    let (walk, walk_level) = walk_kind(&roles);
    let walk_check = |outcome, message: String| Check {
        kind: walk.into(),
        level: walk_level,
        outcome,
        message,
    };
    // What a restart pulls: the running digest (what the node has cached, and what a pull by
    // digest fetches), else the reference as written. Only approved registries are asked.
    let target = image
        .running
        .as_ref()
        .or(image.image.reference())
        .filter(|r| policy.contactable_registry(r).is_some());
    if resolver.is_none() && target.is_some() {
        checks.push(walk_check(
            CheckOutcome::NotEvaluated,
            "the registry was not asked (--no-resolve)".to_owned(),
        ));
    }
    if let Some(resolver) = resolver {
        let pods = image.running_pods();
        if let Some(reference) = target {
            let creds = super::pull::for_image(pull, &image, reference);
            match resolver
                .walk_with(None, creds, resolver.resolve(reference))
                .await
            {
                Ok(res) => {
                    requests += res.requests;
                    signature_check(
                        policy,
                        resolver,
                        super::pull::for_image(pull, &image, reference),
                        reference,
                        &res,
                        &mut findings,
                        &mut checks,
                        &mut errors,
                    )
                    .await;
                    if res.is_pullable() {
                        checks.push(walk_check(CheckOutcome::Passed, String::new()));
                    } else {
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
                Err(e) => {
                    let message = format!(
                        "cannot check {reference} in the registry: {}",
                        error_text(&e)
                    );
                    checks.push(walk_check(CheckOutcome::Unchecked, message.clone()));
                    errors.push(message);
                }
            }
        }
    }
    (
        ImageResult {
            image,
            findings,
            registry_requests: requests,
            checks,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Usage;
    use crate::policy::RuleId;
    use crate::policy::parse_policy;
    use crate::reference::WrittenImage;

    fn policy() -> Arc<Policy> {
        let text = "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: t\nspec:\n  registries: [{prefix: r.example.org}]\n  exemptions:\n    - images: ['r.example.org/legacy/*']\n      rules: [tag-latest]\n      reason: migrating\n";
        Arc::new(parse_policy(text, "p.yaml").unwrap_or_else(|e| panic!("{e}")))
    }

    fn image(written: &str) -> AuditImage {
        AuditImage {
            image: WrittenImage::new(written),
            running: None,
            usages: vec![Usage {
                role: Role::Running,
                namespace: "web".into(),
                workload: "Deployment/api".into(),
                container: "api".into(),
                pods: 1,
            }],
        }
    }

    fn outcome(r: &ImageResult, kind: impl Into<FindingKind>) -> Option<CheckOutcome> {
        let kind = kind.into();
        r.checks.iter().find(|c| c.kind == kind).map(|c| c.outcome)
    }

    /// What the OpenReports format lists besides the findings: the rules that held, the
    /// exempted failure, the walk not asked for; never the registry rules the walk replaces,
    /// and nothing for an image the registry walk would not touch.
    #[tokio::test]
    async fn the_run_keeps_the_checks_that_found_nothing() {
        let now = "2026-11-30T12:00:00Z".parse().unwrap();
        let report = audit(
            &policy(),
            None,
            &HashMap::new(),
            vec![
                image("r.example.org/legacy/app:latest"),
                image("other.example.org/app:1"),
            ],
            now,
            1,
            &|| {},
        )
        .await;
        let legacy = &report.images[0];
        assert_eq!(
            outcome(legacy, RuleId::TagLatest),
            Some(CheckOutcome::Exempted)
        );
        let exempted = legacy
            .checks
            .iter()
            .find(|c| c.kind == RuleId::TagLatest.into())
            .unwrap();
        assert!(
            exempted.message.ends_with("(exempted: migrating)"),
            "{}",
            exempted.message
        );
        assert_eq!(
            outcome(legacy, RuleId::RegistryNotApproved),
            Some(CheckOutcome::Passed)
        );
        assert_eq!(
            outcome(legacy, AuditKind::RunningUnservable),
            Some(CheckOutcome::NotEvaluated)
        );
        for rule in eval::REGISTRY_RULES {
            assert_eq!(outcome(legacy, *rule), None, "{rule:?}");
        }
        // Not in an approved registry: a finding, and no walk to skip.
        let other = &report.images[1];
        assert!(
            other
                .findings
                .iter()
                .any(|f| f.kind == RuleId::RegistryNotApproved.into())
        );
        assert_eq!(outcome(other, AuditKind::RunningUnservable), None);
        assert_eq!(outcome(other, RuleId::RegistryNotApproved), None);
    }
}
