//! The JSON report: a stable, versioned schema documented in `docs/json-report.md`.
//! Fields are only ever added within a schema version; renaming or removing one bumps it.

use serde::Serialize;

use super::{CheckedObject, Exempted, Finding, InputError, PolicyInfo, Report, Summary};

/// The version of the JSON report schema.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    schema_version: u32,
    tool: Tool,
    policy: &'a PolicyInfo,
    summary: Summary,
    findings: &'a [Finding],
    exempted: &'a [Exempted],
    errors: &'a [InputError],
    objects: &'a [CheckedObject],
}

#[derive(Serialize)]
struct Tool {
    name: &'static str,
    version: &'static str,
}

/// Render `report` as pretty-printed JSON.
pub fn render(report: &Report) -> String {
    let doc = JsonReport {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "tollgate",
            version: env!("CARGO_PKG_VERSION"),
        },
        policy: &report.policy,
        summary: report.summary(),
        findings: &report.findings,
        exempted: &report.exempted,
        errors: &report.errors,
        objects: &report.objects,
    };
    let mut out = serde_json::to_string_pretty(&doc).expect("report types serialize infallibly");
    out.push('\n');
    out
}
