//! `tollgate explain`: how a reference is read and which rules it passes, for the engineer whose
//! deploy was just refused.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::ValueEnum;
use serde::Serialize;
use tollgate::policy::eval::{self, Context, ImageVerdict, Status};
use tollgate::policy::{Level, Policy, RuleId};
use tollgate::report::json::SCHEMA_VERSION;

use super::{Exit, load_policy, now, print};

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Image references, as written in a pod spec.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Policy file (default: the embedded policy).
    #[arg(long, env = "TOLLGATE_POLICY")]
    pub policy: Option<PathBuf>,
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

/// The JSON document of `explain --format json` (schema in docs/json-report.md).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Explanation {
    schema_version: u32,
    policy: tollgate::report::PolicyInfo,
    namespace: String,
    images: Vec<ImageExplanation>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageExplanation {
    input: String,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<ReferenceParts>,
    rules: Vec<RuleExplanation>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReferenceParts {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
    familiar: String,
    fully_qualified: String,
    /// The name with a registry alias replaced by the registry's primary host.
    canonical_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleExplanation {
    rule_id: RuleId,
    level: Level,
    /// `pass`, `fail`, `exempted` or `not-evaluated`.
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exemption: Option<String>,
}

pub fn run(args: ExplainArgs) -> anyhow::Result<Exit> {
    let policy = load_policy(args.policy.as_deref())?;
    let ctx = Context {
        namespace: &args.namespace,
        now: now(),
    };
    let images: Vec<ImageExplanation> = args
        .images
        .iter()
        .map(|i| explain(&policy, i, eval::evaluate_image(&policy, i, ctx)))
        .collect();
    let denied = images
        .iter()
        .flat_map(|i| &i.rules)
        .any(|r| r.result == "fail" && r.level == Level::Deny);
    let doc = Explanation {
        schema_version: SCHEMA_VERSION,
        policy: tollgate::check::policy_info(&policy),
        namespace: args.namespace.clone(),
        images,
    };
    match args.format {
        Format::Json => print(&(serde_json::to_string_pretty(&doc)? + "\n"))?,
        Format::Text => print(&render_text(&doc))?,
    }
    Ok(if denied {
        Exit::Violations
    } else {
        Exit::Clean
    })
}

fn explain(policy: &Policy, input: &str, verdict: ImageVerdict) -> ImageExplanation {
    let rules = verdict
        .outcomes
        .iter()
        .map(|o| {
            let (result, message, hint) = match &o.status {
                Status::Fail(v) if o.level == Level::Off => {
                    ("not-evaluated", Some(v.message.clone()), None)
                }
                Status::Fail(v) => {
                    let live_exemption = o.exemption.is_some_and(|e| !e.expired);
                    (
                        if live_exemption { "exempted" } else { "fail" },
                        Some(v.message.clone()),
                        Some(v.hint.clone()),
                    )
                }
                Status::Pass => {
                    let why = verdict
                        .reference
                        .as_ref()
                        .ok()
                        .map(|r| eval::pass_reason(policy, o.rule, r));
                    ("pass", why.filter(|w| !w.is_empty()), None)
                }
                Status::NotEvaluated(why) => ("not-evaluated", Some((*why).to_owned()), None),
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
    match verdict.reference {
        Ok(r) => ImageExplanation {
            input: input.to_owned(),
            valid: true,
            error: None,
            reference: Some(ReferenceParts {
                registry: r.registry().to_string(),
                repository: r.repository().to_string(),
                tag: r.tag().map(ToString::to_string),
                digest: r.digest().map(ToString::to_string),
                familiar: r.familiar(),
                fully_qualified: r.to_string(),
                canonical_name: policy.canonical_name(&r),
            }),
            rules,
        },
        Err(e) => ImageExplanation {
            input: input.to_owned(),
            valid: false,
            error: Some(e.to_string()),
            reference: None,
            rules,
        },
    }
}

fn render_text(doc: &Explanation) -> String {
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
        for r in &img.rules {
            let _ = writeln!(
                out,
                "    {:<13} {:<5} {:<25} {}",
                r.result,
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
