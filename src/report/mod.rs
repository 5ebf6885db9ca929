//! The report model: findings, exempted findings and input errors, and the renderers that turn
//! a report into text, JSON, SARIF, JUnit XML or GitHub workflow commands. Checks produce
//! reports; only the CLI (and later the webhook) chooses a renderer.

pub mod github;
pub mod json;
pub mod junit;
pub mod sarif;
pub mod text;

use serde::Serialize;

use crate::policy::{Level, RuleId};
use crate::reference::WrittenImage;
use crate::workload::{ContainerRef, ObjectRef};

/// An error and its causes, each once, joined by `: ` (as anyhow's `{:#}` prints them), for
/// messages that go into a report rather than to stderr.
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// Where a finding is: a file and line when the input was a file, and the JSON pointer of the
/// field within the object.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// JSON pointer of the field, relative to the document (`/spec/containers/0/image`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

impl Location {
    /// `file:line:column`, as much of it as is known.
    pub fn file_line(&self) -> Option<String> {
        let file = self.file.as_deref()?;
        Some(match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
            (Some(l), None) => format!("{file}:{l}"),
            _ => file.to_owned(),
        })
    }
}

/// A rule violation, located, with a hint on how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub rule_id: RuleId,
    pub level: Level,
    pub message: String,
    pub hint: String,
    pub location: Location,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerRef>,
    /// The image as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<WrittenImage>,
}

/// The exemption that suppressed a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExemptionRef {
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// `policy-file:line` of the exemption.
    pub source: String,
}

/// A finding that an exemption suppressed: kept so that exemptions stay visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exempted {
    #[serde(flatten)]
    pub finding: Finding,
    pub exemption: ExemptionRef,
}

/// An input that could not be read or parsed. It makes the run exit 2; the other inputs are
/// still checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputError {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    pub message: String,
}

/// A pod-bearing object that was checked (one JUnit test case each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckedObject {
    pub object: ObjectRef,
    pub location: Location,
    pub images: usize,
}

/// Where an image is used: kept (when asked for) so that registry-backed rules, which run after
/// the offline check, can place their findings at every use of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSite {
    /// The image as written, and its parse.
    pub image: WrittenImage,
    /// The namespace it runs in (the object's, or the default).
    pub namespace: String,
    pub location: Location,
    pub object: ObjectRef,
    pub container: ContainerRef,
}

/// The policy a report was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyInfo {
    pub name: String,
    pub origin: String,
}

/// Everything a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub policy: PolicyInfo,
    pub files: usize,
    pub objects: Vec<CheckedObject>,
    pub findings: Vec<Finding>,
    pub exempted: Vec<Exempted>,
    pub errors: Vec<InputError>,
    /// Every image use, when the check was asked to collect them (not rendered).
    pub sites: Vec<ImageSite>,
}

/// Counts for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub files: usize,
    pub objects: usize,
    pub images: usize,
    pub deny: usize,
    pub warn: usize,
    pub audit: usize,
    pub exempted: usize,
    pub errors: usize,
}

impl Report {
    /// An empty report for `policy`.
    pub fn new(policy: PolicyInfo) -> Self {
        Report {
            policy,
            files: 0,
            objects: Vec::new(),
            findings: Vec::new(),
            exempted: Vec::new(),
            errors: Vec::new(),
            sites: Vec::new(),
        }
    }

    /// Add another report's content (of the same policy).
    pub fn merge(&mut self, other: Report) {
        self.files += other.files;
        self.objects.extend(other.objects);
        self.findings.extend(other.findings);
        self.exempted.extend(other.exempted);
        self.errors.extend(other.errors);
        self.sites.extend(other.sites);
    }

    /// Order everything by location, so output is stable whatever order inputs were read in.
    pub fn sort(&mut self) {
        self.findings
            .sort_by(|a, b| (&a.location, a.rule_id).cmp(&(&b.location, b.rule_id)));
        self.exempted.sort_by(|a, b| {
            (&a.finding.location, a.finding.rule_id).cmp(&(&b.finding.location, b.finding.rule_id))
        });
        self.objects.sort_by(|a, b| a.location.cmp(&b.location));
        self.errors
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    }

    pub fn summary(&self) -> Summary {
        let count = |l| self.findings.iter().filter(|f| f.level == l).count();
        Summary {
            files: self.files,
            objects: self.objects.len(),
            images: self.objects.iter().map(|o| o.images).sum(),
            deny: count(Level::Deny),
            warn: count(Level::Warn),
            audit: count(Level::Audit),
            exempted: self.exempted.len(),
            errors: self.errors.len(),
        }
    }

    /// The findings of one check object (same file and object), for JUnit.
    pub fn findings_of<'a>(&'a self, o: &'a CheckedObject) -> impl Iterator<Item = &'a Finding> {
        self.findings.iter().filter(move |f| {
            f.object.as_ref() == Some(&o.object) && f.location.file == o.location.file
        })
    }
}
