//! SARIF 2.1.0 for GitHub code scanning and other SARIF viewers, built on serde-sarif's types
//! (generated from the SARIF schema, so the structure is checked by construction), and
//! validated in the test suite by Microsoft's SARIF multitool with GitHub's rules
//! (`validate --rule-kind "Sarif;Gh"`).
//!
//! - Levels: deny is `error`, warn is `warning`, audit is `note`.
//! - Every rule of the catalogue is listed in `tool.driver.rules` with its default level, full
//!   description, Markdown help, tags and `security-severity`, so viewers show help (and GitHub
//!   ranks findings) even for rules that did not fire.
//! - Files are URIs: relative to `%SRCROOT%` (the repository root, declared in
//!   `originalUriBaseIds`) when under it, `file://` URIs otherwise, percent-encoded.
//! - Each result carries a `partialFingerprints` entry that does not depend on its line, so code
//!   scanning keeps an alert's identity when lines move.
//! - `automationDetails.id` names the command (`tollgate/check/`, `tollgate/ci/`), so the runs of
//!   several commands on one repository coexist.
//! - Input errors are tool execution notifications, and make the invocation unsuccessful.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::json;
use serde_sarif::sarif::{
    ArtifactLocation, Invocation, Location as SarifLocation, Message, MultiformatMessageString,
    Notification, PhysicalLocation, PropertyBag, Region, ReportingConfiguration,
    ReportingDescriptor, Result as SarifResult, ResultLevel, Run, RunAutomationDetails, Sarif,
    Tool, ToolComponent,
};
use sha2::{Digest as _, Sha256};

use super::{Finding, Location, Report};
use crate::policy::{Level, RuleId};

/// The SARIF version written.
pub const SARIF_VERSION: &str = "2.1.0";
const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
/// The base id of repository-relative URIs.
pub const SRCROOT: &str = "%SRCROOT%";
/// The key of the fingerprint in `partialFingerprints`; its version changes if the inputs of
/// the hash ever do.
pub const FINGERPRINT_KEY: &str = "tollgateFinding/v1";

/// How a log names its run and its files.
#[derive(Debug, Clone, Copy)]
pub struct SarifOptions<'a> {
    /// The command that ran (`check`, `ci`, `hook`): `automationDetails.id` is
    /// `tollgate/<command>/`.
    pub command: &'a str,
    /// `--help-base-uri`: each rule's `helpUri` is this followed by `#<rule-id>` (the anchors of
    /// policies/README.md).
    pub help_base_uri: Option<&'a str>,
    /// Where file names point; `None` writes them as relative references as they are.
    pub paths: Option<Paths<'a>>,
}

/// Where the files a report names are.
#[derive(Debug, Clone, Copy)]
pub struct Paths<'a> {
    /// The directory relative file names are relative to (absolute).
    pub cwd: &'a Path,
    /// The repository root (absolute): files under it are written relative to `%SRCROOT%`.
    pub src_root: &'a Path,
}

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

/// GitHub's ranking of a rule's findings, 0.1 to 10 (over 9 critical, 7 to 8.9 high, 4 to 6.9
/// medium, below 4 low), and whether a rule is about the supply chain (tagged `security`) or
/// about the input's shape.
fn security(rule: RuleId) -> (&'static str, &'static [&'static str]) {
    const SUPPLY: &[&str] = &["security", "supply-chain", "kubernetes"];
    const INPUT: &[&str] = &["correctness", "kubernetes"];
    match rule {
        // Code from anywhere, or a base image run as a service: the incidents of the seeds.
        RuleId::RegistryNotApproved => ("8.0", SUPPLY),
        RuleId::BaseNotApproved => ("7.5", SUPPLY),
        // Pushed by someone with write access, not built by the pipeline.
        RuleId::SignatureUnverified => ("8.0", SUPPLY),
        RuleId::RepositoryNotDeployable | RuleId::ImageUnavailable => ("7.0", SUPPLY),
        // What runs is not what was reviewed.
        RuleId::TagLatest | RuleId::TagMissing => ("6.0", SUPPLY),
        RuleId::TagForbidden => ("5.0", SUPPLY),
        RuleId::TagMoved | RuleId::ReferenceInvalid | RuleId::ImageMissing => ("4.0", SUPPLY),
        RuleId::DigestMissing | RuleId::DigestUntagged => ("3.0", SUPPLY),
        RuleId::NotAnObject | RuleId::NoObjects => ("3.0", INPUT),
        RuleId::ExemptionExpired => ("2.0", INPUT),
    }
}

/// Everything but unreserved characters and `/` is percent-encoded: spaces, `#`, `?`, `%` and
/// `:` (which would make a first segment read as a scheme).
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

fn encode(path: &str) -> String {
    utf8_percent_encode(path, PATH).to_string()
}

/// `a/./b/../c` is `a/c`, without touching the filesystem (a symlink is not followed, which is
/// what the user named).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The artifact location of a file name as the report writes it.
fn artifact(file: &str, paths: Option<&Paths<'_>>) -> ArtifactLocation {
    // `<stdin>`, `<embedded default>`: names, not paths; kept as a relative reference.
    let is_name = file.starts_with('<') && file.ends_with('>');
    let path = Path::new(file);
    let absolute = match paths {
        _ if is_name => None,
        Some(p) if path.is_relative() => Some(normalise(&p.cwd.join(path))),
        _ if path.is_absolute() => Some(normalise(path)),
        _ => None,
    };
    match (absolute, paths) {
        (Some(abs), Some(p)) if abs.starts_with(p.src_root) => {
            let rel = abs.strip_prefix(p.src_root).unwrap_or(&abs);
            ArtifactLocation::builder()
                .uri(encode(&rel.to_string_lossy()))
                .uri_base_id(SRCROOT.to_owned())
                .build()
        }
        (Some(abs), _) => ArtifactLocation::builder()
            .uri(format!("file://{}", encode(&abs.to_string_lossy())))
            .build(),
        (None, _) => ArtifactLocation::builder().uri(encode(file)).build(),
    }
}

fn location(loc: &Location, paths: Option<&Paths<'_>>) -> Option<SarifLocation> {
    let file = loc.file.as_deref()?;
    // A finding about a whole file (no-objects) points at its first line: viewers and GitHub
    // expect a region on every location.
    let line = loc.line.unwrap_or(1);
    let region = match loc.column {
        Some(c) => Region::builder()
            .start_line(line as i64)
            .start_column(c as i64)
            .build(),
        None => Region::builder().start_line(line as i64).build(),
    };
    let physical = PhysicalLocation::builder()
        .artifact_location(artifact(file, paths))
        .region(region)
        .build();
    Some(SarifLocation::builder().physical_location(physical).build())
}

fn text(s: impl Into<String>) -> MultiformatMessageString {
    MultiformatMessageString::builder().text(s.into()).build()
}

fn descriptor(rule: RuleId, help_base_uri: Option<&str>) -> ReportingDescriptor {
    let (severity, tags) = security(rule);
    // GitHub shows the Markdown help; other viewers the text.
    let help_text = format!(
        "{} {} Configure it in the policy's spec.rules (policies/README.md#{}).",
        rule.summary(),
        rule.description(),
        rule.as_str()
    );
    let help_markdown = format!(
        "**{}**\n\n{}\n\nDefault level: `{}`. Set it in the policy's `spec.rules` \
         (`{}: deny|warn|audit|off`); see policies/README.md#{}.",
        rule.summary(),
        rule.description(),
        rule.default_level(),
        rule.as_str(),
        rule.as_str()
    );
    let mut properties = BTreeMap::new();
    properties.insert("security-severity".to_owned(), json!(severity));
    properties.insert("precision".to_owned(), json!("very-high"));
    let properties = PropertyBag::builder()
        .tags(tags.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>())
        .additional_properties(properties)
        .build();
    let d = ReportingDescriptor::builder()
        .id(rule.as_str().to_owned())
        .name(rule.pascal_name().to_owned())
        .short_description(text(rule.summary()))
        .full_description(text(rule.description()))
        .help(
            MultiformatMessageString::builder()
                .text(help_text)
                .markdown(help_markdown)
                .build(),
        )
        .default_configuration(
            ReportingConfiguration::builder()
                .level(json!(level_str(rule.default_level())))
                .build(),
        )
        .properties(properties);
    match help_base_uri {
        Some(base) => d.help_uri(format!("{base}#{}", rule.as_str())).build(),
        None => d.build(),
    }
}

/// A finding's identity without its line: the rule, the file, where in the document (the JSON
/// pointer), the object, container and image. Moving lines, or adding documents above, leaves
/// it unchanged.
fn fingerprint(f: &Finding) -> String {
    let mut h = Sha256::new();
    let object = f.object.as_ref().map(ToString::to_string);
    let container = f
        .container
        .as_ref()
        .map(|c| format!("{} {}", c.kind, c.name));
    let image = f.image.as_ref().map(|i| i.as_str().to_owned());
    for part in [
        Some(f.rule_id.as_str().to_owned()),
        f.location.file.clone(),
        f.location.pointer.clone(),
        object,
        container,
        image,
    ] {
        h.update(part.unwrap_or_default().as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Render `report` as a SARIF 2.1.0 log with one run.
pub fn render(report: &Report, opts: &SarifOptions<'_>) -> String {
    let paths = opts.paths.as_ref();
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
                .message(Message::builder().text(text).build())
                .partial_fingerprints(BTreeMap::from([(
                    FINGERPRINT_KEY.to_owned(),
                    fingerprint(f),
                )]));
            match location(&f.location, paths) {
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
            match location(&loc, paths) {
                Some(l) => n.locations(vec![l]).build(),
                None => n.build(),
            }
        })
        .collect();
    let driver = ToolComponent::builder()
        .name("tollgate".to_owned())
        .version(env!("CARGO_PKG_VERSION").to_owned())
        .semantic_version(env!("CARGO_PKG_VERSION").to_owned())
        .information_uri(env!("CARGO_PKG_HOMEPAGE").to_owned())
        .rules(
            catalogue
                .iter()
                .map(|r| descriptor(*r, opts.help_base_uri))
                .collect::<Vec<_>>(),
        )
        .build();
    let invocation = Invocation::builder()
        .execution_successful(report.errors.is_empty())
        .tool_execution_notifications(notifications)
        .build();
    let run = Run::builder()
        .tool(Tool::builder().driver(driver).build())
        .results(results)
        .invocations(vec![invocation])
        .automation_details(
            RunAutomationDetails::builder()
                .id(format!("tollgate/{}/", opts.command))
                .build(),
        )
        // Columns count characters (yaml-rust2's), not UTF-16 code units.
        .column_kind(json!("unicodeCodePoints"));
    let run = match paths {
        Some(p) => {
            let root = format!(
                "file://{}/",
                encode(p.src_root.to_string_lossy().trim_end_matches('/'))
            );
            run.original_uri_base_ids(BTreeMap::from([(
                SRCROOT.to_owned(),
                ArtifactLocation::builder().uri(root).build(),
            )]))
            .build()
        }
        None => run.build(),
    };
    let sarif = Sarif::builder()
        .schema(SARIF_SCHEMA.to_owned())
        .version(json!(SARIF_VERSION))
        .runs(vec![run])
        .build();
    let mut out = serde_json::to_string_pretty(&sarif).expect("SARIF types serialize infallibly");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn paths() -> Paths<'static> {
        Paths {
            cwd: Path::new("/work/repo/apps"),
            src_root: Path::new("/work/repo"),
        }
    }

    #[rstest]
    #[case::under_the_root("web.yaml", Some("%SRCROOT%"), "apps/web.yaml")]
    #[case::dot_slash("./web.yaml", Some("%SRCROOT%"), "apps/web.yaml")]
    #[case::up_and_back("../charts/x.yaml", Some("%SRCROOT%"), "charts/x.yaml")]
    #[case::outside_the_root("../../other/x.yaml", None, "file:///work/other/x.yaml")]
    #[case::absolute_inside("/work/repo/a.yaml", Some("%SRCROOT%"), "a.yaml")]
    #[case::absolute_outside("/tmp/a.yaml", None, "file:///tmp/a.yaml")]
    #[case::odd_characters("my app#1.yaml", Some("%SRCROOT%"), "apps/my%20app%231.yaml")]
    #[case::percent_and_colon("50%:x.yaml", Some("%SRCROOT%"), "apps/50%25%3Ax.yaml")]
    #[case::unicode("ünï.yaml", Some("%SRCROOT%"), "apps/%C3%BCn%C3%AF.yaml")]
    #[case::stdin("<stdin>", None, "%3Cstdin%3E")]
    #[case::embedded_policy("<embedded default>", None, "%3Cembedded%20default%3E")]
    fn files_become_uris(#[case] file: &str, #[case] base: Option<&str>, #[case] uri: &str) {
        let a = artifact(file, Some(&paths()));
        assert_eq!(
            (a.uri_base_id.as_deref(), a.uri.as_deref()),
            (base, Some(uri))
        );
    }

    #[test]
    fn names_are_pascal_case_and_never_the_id() {
        for r in RuleId::ALL {
            let name = r.pascal_name();
            assert_ne!(name, r.as_str());
            assert!(name.starts_with(|c: char| c.is_ascii_uppercase()), "{name}");
            assert_eq!(
                name.to_ascii_lowercase(),
                r.as_str().replace('-', ""),
                "{name} spells {r}"
            );
        }
    }
}
