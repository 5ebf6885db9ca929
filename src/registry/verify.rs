//! `tollgate verify IMAGE...`: the end-to-end walk of each image in the registry, plus every
//! policy rule: the integrity step to run after every push, so that an index whose children
//! or blobs the registry cannot serve is caught before anything pulls it. The model is the JSON
//! document (schema in docs/json-report.md); [`text`] renders it for people.

use std::fmt::Write as _;

use futures_util::StreamExt as _;
use jiff::Timestamp;
use serde::Serialize;

use super::base::{BaseChecker, BaseVerdict};
use super::facts;
use super::resolution::{Node, NodeKind, NodeStatus, Resolution, TagState};
use super::resolve::Resolver;
use crate::check::policy_info;
use crate::policy::eval::{self, Context, Outcome, Status};
use crate::policy::{Level, Policy, RuleId};
use crate::reference::WrittenImage;
use crate::report::json::SCHEMA_VERSION;
use crate::report::{PolicyInfo, error_text};

/// The document of `verify --format json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// The JSON schema's version, shared with the check report.
    pub schema_version: u32,
    /// The policy the images were judged by.
    pub policy: PolicyInfo,
    /// One entry per image, in input order.
    pub images: Vec<ImageReport>,
}

impl VerifyReport {
    /// Whether a registry could not answer for some image (exit code 2).
    pub fn has_error(&self) -> bool {
        self.images.iter().any(|i| i.verdict == Verdict::Error)
    }

    /// Whether an image is broken or fails a deny-level rule that no exemption covers (exit
    /// code 1).
    pub fn has_failure(&self) -> bool {
        self.images.iter().any(|i| {
            i.verdict == Verdict::Broken
                || i.findings
                    .iter()
                    .any(|f| f.level == Level::Deny && !f.exempted)
        })
    }
}

/// What became of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Everything behind the reference is there and intact.
    Pullable,
    /// Something behind the reference is missing or corrupt.
    Broken,
    /// Not contacted: the reference is invalid, or its registry is not approved.
    Refused,
    /// The registry could not answer (timeout, refused, TLS): no verdict on the image.
    Error,
}

impl Verdict {
    /// The verdict's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pullable => "pullable",
            Verdict::Broken => "broken",
            Verdict::Refused => "refused",
            Verdict::Error => "error",
        }
    }
}

/// One image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReport {
    /// The reference as given.
    pub input: WrittenImage,
    /// What became of it.
    pub verdict: Verdict,
    /// Why the registry could not answer, with its causes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The walk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// The base-image verdict of each platform (when the rule is evaluated).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bases: Vec<BaseVerdict>,
    /// Failed rules (offline and registry-backed), with levels after exemptions.
    pub findings: Vec<RuleFinding>,
}

/// A failed rule.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleFinding {
    /// The rule.
    pub rule_id: RuleId,
    /// Its level in the policy.
    pub level: Level,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
    /// Whether an exemption in force covers it.
    pub exempted: bool,
}

/// Verify every one of `inputs` (at most `jobs` at a time), as if they ran in `namespace`.
pub async fn verify(
    policy: &Policy,
    resolver: &Resolver,
    bases: &BaseChecker,
    inputs: &[WrittenImage],
    namespace: &str,
    now: Timestamp,
    jobs: usize,
) -> VerifyReport {
    let images = futures_util::stream::iter(inputs)
        .map(|input| verify_one(policy, resolver, bases, input, namespace, now))
        .buffered(jobs.max(1))
        .collect()
        .await;
    VerifyReport {
        schema_version: SCHEMA_VERSION,
        policy: policy_info(policy),
        images,
    }
}

/// Walk one image and evaluate every rule on it, offline and registry-backed. A reference that
/// does not parse, or whose registry the policy does not approve, is refused without any
/// network IO.
pub async fn verify_one(
    policy: &Policy,
    resolver: &Resolver,
    bases: &BaseChecker,
    input: &WrittenImage,
    namespace: &str,
    now: Timestamp,
) -> ImageReport {
    let ctx = Context { namespace, now };
    let verdict = eval::evaluate_image(policy, input, ctx);
    let mut outcomes: Vec<Outcome> = verdict.outcomes;
    let mut report = ImageReport {
        input: input.clone(),
        verdict: Verdict::Pullable,
        error: None,
        resolution: None,
        bases: Vec::new(),
        findings: Vec::new(),
    };
    let Some(reference) = input.reference() else {
        report.verdict = Verdict::Refused;
        report.findings = findings(&outcomes);
        return report;
    };
    // An unapproved registry is a policy violation, and is never contacted.
    let approved = outcomes
        .iter()
        .all(|o| o.rule != RuleId::RegistryNotApproved || matches!(o.status, Status::Pass));
    if !approved {
        report.verdict = Verdict::Refused;
        report.findings = findings(&outcomes);
        return report;
    }
    match facts::evaluate(policy, resolver, bases, reference).await {
        Ok(facts) => {
            // The registry told us the digest: the fix can name it exactly.
            if let Some(pinned) = facts.pinned_form(reference) {
                for o in &mut outcomes {
                    if let (RuleId::DigestMissing, Status::Fail(v)) = (o.rule, &mut o.status) {
                        v.hint = format!("pin it by digest: {pinned}");
                    }
                }
            }
            outcomes.retain(|o| !eval::REGISTRY_RULES.contains(&o.rule));
            for (rule, status) in facts.statuses.clone() {
                outcomes.push(facts.outcome(policy, rule, status, reference, ctx));
            }
            report.verdict = if facts.resolution.is_pullable() {
                Verdict::Pullable
            } else {
                Verdict::Broken
            };
            report.resolution = Some(facts.resolution);
            report.bases = facts.bases;
        }
        Err(e) => {
            report.verdict = Verdict::Error;
            report.error = Some(error_text(&e));
        }
    }
    report.findings = findings(&outcomes);
    report
}

fn findings(outcomes: &[Outcome]) -> Vec<RuleFinding> {
    outcomes
        .iter()
        .filter(|o| o.level > Level::Audit)
        .filter_map(|o| match &o.status {
            Status::Fail(v) => Some(RuleFinding {
                rule_id: o.rule,
                level: o.level,
                message: v.message.clone(),
                hint: v.hint.clone(),
                exempted: o.exemption.is_some_and(|e| !e.expired),
            }),
            _ => None,
        })
        .collect()
}

/// The report for people: each image's verdict, digest, tag state, tree and findings.
pub fn text(doc: &VerifyReport) -> String {
    let mut out = String::new();
    for (i, img) in doc.images.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{}: {}", img.input, img.verdict.as_str());
        if let Some(e) = &img.error {
            let _ = writeln!(out, "  error: {e}");
        }
        if let Some(res) = &img.resolution {
            if let Some(d) = &res.digest {
                let _ = writeln!(
                    out,
                    "  digest {d} ({})",
                    crate::report::plural(res.requests as usize, "request", "requests")
                );
            }
            let tag = match &res.tag {
                TagState::Ok => "the tag points at the pinned digest".to_owned(),
                TagState::Moved { current } => format!("the tag moved to {current}"),
                TagState::Gone => "the tag is gone".to_owned(),
                TagState::Untagged => {
                    "digest without tag: delete-untagged garbage collection removes it".to_owned()
                }
                TagState::NotPinned => "not pinned by digest".to_owned(),
            };
            let _ = writeln!(out, "  tag: {tag}");
            if let Some(u) = &res.unresolved {
                let _ = writeln!(out, "  not found: {u}");
            }
            if let Some(root) = &res.root {
                write_tree(&mut out, root, 1);
            }
            if res.orphan_index {
                let _ = writeln!(
                    out,
                    "  ORPHAN INDEX: the index answers, but every child manifest is gone"
                );
            }
            for p in &res.problems {
                let _ = writeln!(out, "  missing: {}", p.path);
            }
        }
        for b in &img.bases {
            let platform = b
                .platform
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default();
            let verdict = if b.approved {
                "approved"
            } else {
                "NOT APPROVED"
            };
            let method = b.method.as_str();
            let _ = writeln!(out, "  base{platform}: {verdict} by {method}: {}", b.detail);
        }
        for f in &img.findings {
            let state = if f.exempted { " (exempted)" } else { "" };
            let _ = writeln!(out, "  {} {}{state}: {}", f.level, f.rule_id, f.message);
            let _ = writeln!(out, "      fix: {}", f.hint);
        }
    }
    out
}

/// The tree, one line per manifest; configs and layers summarised unless one is broken.
fn write_tree(out: &mut String, node: &Node, depth: usize) {
    let pad = "  ".repeat(depth);
    let short = node.digest.get(..19).unwrap_or(&node.digest);
    let platform = node
        .platform
        .as_deref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    let status = node.status.as_str();
    let blobs: Vec<&Node> = node
        .children
        .iter()
        .filter(|c| matches!(c.kind, NodeKind::Config | NodeKind::Layer))
        .collect();
    let bad_blobs = blobs.iter().filter(|b| b.status.is_failure()).count();
    let unverified = blobs
        .iter()
        .filter(|b| b.status == NodeStatus::SizeUnverified)
        .count();
    let summary = if blobs.is_empty() {
        String::new()
    } else {
        let layers = blobs.len().saturating_sub(1);
        format!(
            ", config + {layers} layers: {}",
            match (bad_blobs, unverified) {
                (0, 0) => "ok".to_owned(),
                (0, n) => format!("{n} of unverified size (no Content-Length)"),
                (b, 0) => format!("{b} broken"),
                (b, n) => format!("{b} broken, {n} of unverified size (no Content-Length)"),
            }
        )
    };
    let _ = writeln!(
        out,
        "{pad}{} {short}…{platform} {status}{summary}",
        node.kind
    );
    for c in node
        .children
        .iter()
        .filter(|c| matches!(c.kind, NodeKind::Index | NodeKind::Manifest))
    {
        write_tree(out, c, depth + 1);
    }
}
