//! SARIF 2.1.0 for GitHub code scanning and other SARIF viewers, built on serde-sarif's types
//! (generated from the SARIF schema, so the structure is checked by construction).
//!
//! Levels: deny is `error`, warn is `warning`, audit is `note`. Every rule of the catalogue is
//! listed in `tool.driver.rules` with its default level, so viewers can show rule help even for
//! rules that did not fire. Input errors are tool execution notifications, and make the
//! invocation unsuccessful.

use serde_json::json;
use serde_sarif::sarif::{
    ArtifactLocation, Invocation, Location as SarifLocation, Message, MultiformatMessageString,
    Notification, PhysicalLocation, Region, ReportingConfiguration, ReportingDescriptor,
    Result as SarifResult, ResultLevel, Run, Sarif, Tool, ToolComponent,
};

use super::{Location, Report};
use crate::policy::{Level, RuleId};

/// The SARIF version written.
pub const SARIF_VERSION: &str = "2.1.0";
const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(l: Level) -> ResultLevel {
    match l {
        Level::Deny => ResultLevel::Error,
        Level::Warn => ResultLevel::Warning,
        Level::Audit => ResultLevel::Note,
        Level::Off => ResultLevel::None,
    }
}

fn level_str(l: Level) -> &'static str {
    match l {
        Level::Deny => "error",
        Level::Warn => "warning",
        Level::Audit => "note",
        Level::Off => "none",
    }
}

/// Paths as SARIF URIs: relative references with forward slashes, so code scanning resolves
/// them against the checkout root.
fn uri(file: &str) -> String {
    let f = file.replace('\\', "/");
    f.strip_prefix("./").unwrap_or(&f).to_owned()
}

fn location(loc: &Location) -> Option<SarifLocation> {
    let file = loc.file.as_deref()?;
    let mut region = None;
    if let Some(line) = loc.line {
        region = Some(match loc.column {
            Some(c) => Region::builder()
                .start_line(line as i64)
                .start_column(c as i64)
                .build(),
            None => Region::builder().start_line(line as i64).build(),
        });
    }
    let artifact = ArtifactLocation::builder().uri(uri(file)).build();
    let physical = match region {
        Some(r) => PhysicalLocation::builder()
            .artifact_location(artifact)
            .region(r)
            .build(),
        None => PhysicalLocation::builder()
            .artifact_location(artifact)
            .build(),
    };
    Some(SarifLocation::builder().physical_location(physical).build())
}

fn descriptor(rule: RuleId) -> ReportingDescriptor {
    ReportingDescriptor::builder()
        .id(rule.as_str().to_owned())
        .name(rule.as_str().to_owned())
        .short_description(
            MultiformatMessageString::builder()
                .text(rule.summary().to_owned())
                .build(),
        )
        .help(
            MultiformatMessageString::builder()
                .text(format!(
                    "{} See policies/README.md#{} for how to configure it.",
                    rule.summary(),
                    rule.as_str()
                ))
                .build(),
        )
        .default_configuration(
            ReportingConfiguration::builder()
                .level(json!(level_str(rule.default_level())))
                .build(),
        )
        .build()
}

/// Render `report` as a SARIF 2.1.0 log with one run.
pub fn render(report: &Report) -> String {
    let catalogue = RuleId::ALL;
    let results: Vec<SarifResult> = report
        .findings
        .iter()
        .map(|f| {
            let mut text = f.message.clone();
            if let Some(o) = &f.object {
                text.push_str(&format!(" [{o}"));
                if let Some(c) = &f.container {
                    text.push_str(&format!(", {} {}", c.kind, c.name));
                }
                text.push(']');
            }
            text.push_str(&format!(" How to fix: {}", f.hint));
            let index = catalogue
                .iter()
                .position(|r| *r == f.rule_id)
                .unwrap_or_default() as i64;
            let base = SarifResult::builder()
                .rule_id(f.rule_id.as_str().to_owned())
                .rule_index(index)
                .level(level(f.level))
                .message(Message::builder().text(text).build());
            match location(&f.location) {
                Some(l) => base.locations(vec![l]).build(),
                None => base.build(),
            }
        })
        .collect();
    let notifications: Vec<Notification> = report
        .errors
        .iter()
        .map(|e| {
            let loc = Location {
                file: Some(e.file.clone()),
                line: e.line,
                column: e.column,
                pointer: None,
            };
            let n = Notification::builder()
                .level(json!("error"))
                .message(Message::builder().text(e.message.clone()).build());
            match location(&loc) {
                Some(l) => n.locations(vec![l]).build(),
                None => n.build(),
            }
        })
        .collect();
    let driver = ToolComponent::builder()
        .name("tollgate".to_owned())
        .version(env!("CARGO_PKG_VERSION").to_owned())
        .semantic_version(env!("CARGO_PKG_VERSION").to_owned())
        .rules(catalogue.iter().map(|r| descriptor(*r)).collect::<Vec<_>>())
        .build();
    let invocation = Invocation::builder()
        .execution_successful(report.errors.is_empty())
        .tool_execution_notifications(notifications)
        .build();
    let run = Run::builder()
        .tool(Tool::builder().driver(driver).build())
        .results(results)
        .invocations(vec![invocation])
        .build();
    let sarif = Sarif::builder()
        .schema(SARIF_SCHEMA.to_owned())
        .version(json!(SARIF_VERSION))
        .runs(vec![run])
        .build();
    let mut out = serde_json::to_string_pretty(&sarif).expect("SARIF types serialize infallibly");
    out.push('\n');
    out
}
