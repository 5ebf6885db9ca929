//! `tollgate verify IMAGE...`: the end-to-end walk of each image in the registry (the post-push
//! integrity step of seed 004), plus every policy rule.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use clap::ValueEnum;
use futures_util::StreamExt as _;
use serde::Serialize;
use tollgate::policy::eval::{self, Context, Outcome, Status};
use tollgate::policy::{Level, Policy, RuleId};
use tollgate::reference::ImageRef;
use tollgate::registry::base::{BaseChecker, BaseVerdict};
use tollgate::registry::rules;
use tollgate::registry::{Node, Resolution, Resolver, TagState};
use tollgate::report::json::SCHEMA_VERSION;

use super::{Exit, RegistryArgs, load_policy, now, print};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Image references to walk in the registry.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Policy file (default: the embedded policy). Only its approved registries are contacted.
    #[arg(long, env = "TOLLGATE_POLICY")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The namespace the image would run in (exemptions depend on it).
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// `verify --format json` (schema in docs/json-report.md).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerifyReport {
    schema_version: u32,
    policy: tollgate::report::PolicyInfo,
    images: Vec<ImageReport>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageReport {
    input: String,
    /// `pullable`, `broken`, `refused` (static policy), `error` (registry could not answer).
    verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolution: Option<Resolution>,
    /// The base-image verdict of each platform (when the rule is evaluated).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bases: Vec<BaseVerdict>,
    /// Failed rules (offline and registry-backed), with levels after exemptions.
    findings: Vec<RuleFinding>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleFinding {
    rule_id: RuleId,
    level: Level,
    message: String,
    hint: String,
    exempted: bool,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<Exit> {
    let policy = Arc::new(load_policy(args.policy.as_deref())?);
    let resolver = Arc::new(args.registry.resolver(policy.clone())?);
    let bases = BaseChecker::new(resolver.clone(), policy.clone());
    let runtime = super::runtime()?;
    let now = now();
    let jobs = args.registry.jobs.max(1);
    let reports: Vec<ImageReport> = runtime.block_on(
        futures_util::stream::iter(args.images.iter())
            .map(|input| verify_one(&policy, &resolver, &bases, input, &args.namespace, now))
            .buffered(jobs)
            .collect(),
    );
    let doc = VerifyReport {
        schema_version: SCHEMA_VERSION,
        policy: tollgate::check::policy_info(&policy),
        images: reports,
    };
    match args.format {
        Format::Json => print(&(serde_json::to_string_pretty(&doc)? + "\n"))?,
        Format::Text => print(&render_text(&doc))?,
    }
    let error = doc.images.iter().any(|i| i.verdict == "error");
    let failed = doc.images.iter().any(|i| {
        i.verdict == "broken"
            || i.findings
                .iter()
                .any(|f| f.level == Level::Deny && !f.exempted)
    });
    Ok(if error {
        Exit::Error
    } else if failed {
        Exit::Violations
    } else {
        Exit::Clean
    })
}

async fn verify_one(
    policy: &Policy,
    resolver: &Resolver,
    bases: &BaseChecker,
    input: &str,
    namespace: &str,
    now: jiff::Timestamp,
) -> ImageReport {
    let ctx = Context { namespace, now };
    let verdict = eval::evaluate_image(policy, input, ctx);
    let mut outcomes: Vec<Outcome> = verdict.outcomes;
    let mut report = ImageReport {
        input: input.to_owned(),
        verdict: "pullable",
        error: None,
        resolution: None,
        bases: Vec::new(),
        findings: Vec::new(),
    };
    let reference: ImageRef = match verdict.reference {
        Ok(r) => r,
        Err(_) => {
            report.verdict = "refused";
            report.findings = findings(&outcomes);
            return report;
        }
    };
    // An unapproved registry is a policy violation, and is never contacted.
    let approved = outcomes
        .iter()
        .all(|o| o.rule != RuleId::RegistryNotApproved || matches!(o.status, Status::Pass));
    if !approved {
        report.verdict = "refused";
        report.findings = findings(&outcomes);
        return report;
    }
    match rules::evaluate(policy, resolver, bases, &reference).await {
        Ok(facts) => {
            // The registry told us the digest: the fix can name it exactly.
            if let Some(pinned) = facts.pinned_form(&reference) {
                for o in &mut outcomes {
                    if let (RuleId::DigestMissing, Status::Fail(v)) = (o.rule, &mut o.status) {
                        v.hint = format!("pin it by digest: {pinned}");
                    }
                }
            }
            outcomes.retain(|o| !eval::REGISTRY_RULES.contains(&o.rule));
            for (rule, status) in facts.statuses {
                outcomes.push(eval::registry_outcome(
                    policy, rule, status, &reference, ctx,
                ));
            }
            report.verdict = if facts.resolution.is_pullable() {
                "pullable"
            } else {
                "broken"
            };
            report.resolution = Some(facts.resolution);
            report.bases = facts.bases;
        }
        Err(e) => {
            report.verdict = "error";
            report.error = Some(e.to_string());
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

fn render_text(doc: &VerifyReport) -> String {
    let mut out = String::new();
    for (i, img) in doc.images.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{}: {}", img.input, img.verdict);
        if let Some(e) = &img.error {
            let _ = writeln!(out, "  error: {e}");
        }
        if let Some(res) = &img.resolution {
            if let Some(d) = &res.digest {
                let _ = writeln!(out, "  digest {d} ({} requests)", res.requests);
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
        .filter(|c| {
            matches!(
                c.kind,
                tollgate::registry::NodeKind::Config | tollgate::registry::NodeKind::Layer
            )
        })
        .collect();
    let bad_blobs = blobs.iter().filter(|b| b.status.is_failure()).count();
    let summary = if blobs.is_empty() {
        String::new()
    } else {
        let layers = blobs.len().saturating_sub(1);
        format!(
            ", config + {layers} layers: {}",
            if bad_blobs == 0 {
                "ok".to_owned()
            } else {
                format!("{bad_blobs} broken")
            }
        )
    };
    let _ = writeln!(
        out,
        "{pad}{} {short}…{platform} {status}{summary}",
        node.kind
    );
    for c in node.children.iter().filter(|c| {
        matches!(
            c.kind,
            tollgate::registry::NodeKind::Index | tollgate::registry::NodeKind::Manifest
        )
    }) {
        write_tree(out, c, depth + 1);
    }
}
