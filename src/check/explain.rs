//! `tollgate explain`: how a reference is read and which rules it passes, and why, for the
//! engineer whose deploy was just refused. The model is the JSON document (schema in
//! docs/json-report.md); [`text`] renders it for people. Pure.

use std::fmt::Write as _;

use jiff::Timestamp;
use serde::Serialize;

use super::policy_info;
use crate::policy::eval::{self, Context, Status};
use crate::policy::{Level, Policy, RuleId};
use crate::reference::WrittenImage;
use crate::report::PolicyInfo;
use crate::report::json::SCHEMA_VERSION;

/// The document of `explain --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The JSON schema's version, shared with the check report.
    pub schema_version: u32,
    /// The policy the images were judged by.
    pub policy: PolicyInfo,
    /// The namespace the images would run in (exemptions depend on it).
    pub namespace: String,
    /// The policy's `spec.overrides` that apply in that namespace, in the order applied:
    /// `file:line (namespaces a, b-*)`. Left out when none does.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// One entry per image, in input order.
    pub images: Vec<ImageExplanation>,
}

/// One image: how it parses, and every rule's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageExplanation {
    /// The reference as given.
    pub input: WrittenImage,
    /// Whether it parses.
    pub valid: bool,
    /// Why it does not parse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its parts, when it parses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceParts>,
    /// Every rule, in catalogue order.
    pub rules: Vec<RuleExplanation>,
}

/// A parsed reference, part by part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceParts {
    /// The registry host[:port], normalised (`docker.io` for Docker Hub).
    pub registry: String,
    /// The repository path, normalised (`library/nginx`).
    pub repository: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest, if any.
    pub digest: Option<String>,
    /// The short form Docker prints.
    pub familiar: String,
    /// `registry/repository[:tag][@digest]`.
    pub fully_qualified: String,
    /// The name with a registry alias replaced by the registry's primary host.
    pub canonical_name: String,
}

/// What became of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleResult {
    /// The image passes the rule.
    Pass,
    /// The image fails the rule.
    Fail,
    /// The image fails the rule, and an exemption in force covers it.
    Exempted,
    /// The rule was not evaluated (off, needs the registry, or the reference is invalid).
    NotEvaluated,
}

impl RuleResult {
    /// The result's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleResult::Pass => "pass",
            RuleResult::Fail => "fail",
            RuleResult::Exempted => "exempted",
            RuleResult::NotEvaluated => "not-evaluated",
        }
    }
}

/// One rule's result for one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleExplanation {
    /// The rule.
    pub rule_id: RuleId,
    /// Its level in the policy.
    pub level: Level,
    /// What became of it.
    pub result: RuleResult,
    /// Why it failed, why it passed, or why it was not evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How to fix a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The exemption that covers it (in force or expired), with where it is and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption: Option<String>,
}

impl Explanation {
    /// Whether a deny-level rule fails for any image (exit code 1).
    pub fn denied(&self) -> bool {
        self.images
            .iter()
            .flat_map(|i| &i.rules)
            .any(|r| r.result == RuleResult::Fail && r.level == Level::Deny)
    }
}

/// Explain each of `images` against `policy`, as if it ran in `namespace` at `now`.
pub fn explain(
    policy: &Policy,
    images: &[WrittenImage],
    namespace: &str,
    now: Timestamp,
) -> Explanation {
    let ctx = Context { namespace, now };
    let scoped = policy.in_namespace(namespace);
    let policy = &*scoped;
    Explanation {
        schema_version: SCHEMA_VERSION,
        policy: policy_info(policy),
        namespace: namespace.to_owned(),
        overrides: policy
            .applied()
            .iter()
            .map(|a| {
                format!(
                    "{}:{} (namespaces {})",
                    policy.origin(),
                    a.pos.line,
                    a.namespaces.join(", ")
                )
            })
            .collect(),
        images: images.iter().map(|i| explain_one(policy, i, ctx)).collect(),
    }
}

fn explain_one(policy: &Policy, input: &WrittenImage, ctx: Context<'_>) -> ImageExplanation {
    let verdict = eval::evaluate_image(policy, input, ctx);
    let rules = verdict
        .outcomes
        .iter()
        .map(|o| {
            let (result, message, hint) = match &o.status {
                Status::Fail(v) if o.level == Level::Off => {
                    (RuleResult::NotEvaluated, Some(v.message.clone()), None)
                }
                Status::Fail(v) => {
                    let live_exemption = o.exemption.is_some_and(|e| !e.expired);
                    (
                        if live_exemption {
                            RuleResult::Exempted
                        } else {
                            RuleResult::Fail
                        },
                        Some(v.message.clone()),
                        Some(v.hint.clone()),
                    )
                }
                Status::Pass => {
                    let why = input
                        .reference()
                        .map(|r| eval::pass_reason(policy, o.rule, r));
                    (RuleResult::Pass, why.filter(|w| !w.is_empty()), None)
                }
                Status::NotEvaluated(why) => {
                    (RuleResult::NotEvaluated, Some((*why).to_owned()), None)
                }
            };
            let exemption = o.exemption.map(|e| {
                let ex = &policy.exemptions()[e.index];
                let state = if e.expired {
                    "expired exemption"
                } else {
                    "exemption"
                };
                format!(
                    "{state} at {}:{} ({})",
                    policy.origin(),
                    ex.pos().line,
                    ex.reason()
                )
            });
            RuleExplanation {
                rule_id: o.rule,
                level: o.level,
                result,
                message,
                hint,
                exemption,
            }
        })
        .collect();
    match input.parsed() {
        Ok(r) => ImageExplanation {
            input: input.clone(),
            valid: true,
            error: None,
            reference: Some(ReferenceParts {
                registry: r.registry().to_string(),
                repository: r.repository().to_string(),
                tag: r.tag().map(ToString::to_string),
                digest: r.digest().map(ToString::to_string),
                familiar: r.familiar(),
                fully_qualified: r.to_string(),
                canonical_name: policy.canonical_name(r).into_owned(),
            }),
            rules,
        },
        Err(e) => ImageExplanation {
            input: input.clone(),
            valid: false,
            error: Some(e.to_string()),
            reference: None,
            rules,
        },
    }
}

/// The explanation for people: the parts of each reference, then one line per rule.
pub fn text(doc: &Explanation) -> String {
    let mut out = String::new();
    for (n, img) in doc.images.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{}", img.input);
        match (&img.reference, &img.error) {
            (Some(r), _) => {
                let none = "(none)".to_owned();
                let _ = writeln!(out, "  registry         {}", r.registry);
                let _ = writeln!(out, "  repository       {}", r.repository);
                let _ = writeln!(
                    out,
                    "  tag              {}",
                    r.tag.as_ref().unwrap_or(&none)
                );
                let _ = writeln!(
                    out,
                    "  digest           {}",
                    r.digest.as_ref().unwrap_or(&none)
                );
                let _ = writeln!(out, "  familiar         {}", r.familiar);
                let _ = writeln!(out, "  fully qualified  {}", r.fully_qualified);
                if r.canonical_name != format!("{}/{}", r.registry, r.repository) {
                    let _ = writeln!(out, "  canonical name   {}", r.canonical_name);
                }
            }
            (None, Some(e)) => {
                let _ = writeln!(out, "  invalid: {e}");
            }
            (None, None) => {}
        }
        let _ = writeln!(
            out,
            "  policy {} ({}), namespace {}:",
            doc.policy.name, doc.policy.origin, doc.namespace
        );
        for o in &doc.overrides {
            let _ = writeln!(out, "    with the override at {o}");
        }
        for r in &img.rules {
            let _ = writeln!(
                out,
                "    {:<13} {:<5} {:<25} {}",
                r.result.as_str(),
                r.level.as_str(),
                r.rule_id.as_str(),
                r.message.as_deref().unwrap_or("")
            );
            if let Some(h) = &r.hint {
                let _ = writeln!(out, "    {:<45} fix: {h}", "");
            }
            if let Some(e) = &r.exemption {
                let _ = writeln!(out, "    {:<45} {e}", "");
            }
        }
    }
    out
}
