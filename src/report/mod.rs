//! The report model: findings, exempted findings and input errors, and the renderers that turn
//! a report into text, JSON, SARIF, JUnit XML or GitHub workflow commands. Checks produce
//! reports; only the CLI chooses a renderer. Each wire format lives in its one file here.
//!
//! Pure: a report in, a string out; no IO, no clock.

pub mod github;
pub mod json;
pub mod junit;
pub mod sarif;
pub mod text;

use serde::Serialize;

use crate::policy::{Level, RuleId};
use crate::reference::WrittenImage;
use crate::workload::{ContainerRef, ObjectRef};

/// `n` and the noun, singular or plural: "1 file", "2 files".
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub use crate::error_text::error_text;

/// Untrusted text (registry answers, package names from an image's dpkg database) for a
/// terminal: control characters (escape sequences) are spelled out, never sent.
pub fn visible(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Escape text for HTML element content and quoted attribute values: the audit's HTML report
/// and the catalog's pages both hold untrusted names and labels.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Where a finding is: a file and line when the input was a file, and the JSON pointer of the
/// field within the object.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// The file as shown to the user (`<stdin>` for standard input, `REF:path` for a pushed
    /// ref's version); `None` for an object that came from no file (an AdmissionReview).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line in the file: the field's, else its nearest recorded ancestor's, else the
    /// document's first line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column, in characters, of the same position; `None` when unknown.
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
    /// The rule violated; its kebab-case id is what reports and SARIF show.
    pub rule_id: RuleId,
    /// The level the policy gives the rule (`warn` or `deny` in checks); admission may lower
    /// a `deny` to `warn` for an image an UPDATE leaves unchanged.
    pub level: Level,
    /// What is wrong, in one line.
    pub message: String,
    /// How to fix it.
    pub hint: String,
    /// Where it is.
    pub location: Location,
    /// The object it is in; `None` for a finding about the policy itself (an expired
    /// exemption).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    /// The container it is in (for a Helm values file: the image's key path); `None` for a
    /// finding about the policy itself.
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
    /// Why the exemption exists, from the policy.
    pub reason: String,
    /// The day it expires, `YYYY-MM-DD` (an expiry written as a timestamp shows its day in
    /// UTC); `None`: it does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// `policy-file:line` of the exemption.
    pub source: String,
}

/// A finding that an exemption suppressed: kept so that exemptions stay visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exempted {
    /// The finding as it would have been reported (flattened into this object in JSON).
    #[serde(flatten)]
    pub finding: Finding,
    /// The exemption that suppressed it (the first live one that covers it).
    pub exemption: ExemptionRef,
}

/// An input that could not be read or parsed. It makes the run exit 2; the other inputs are
/// still checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputError {
    /// The file as shown to the user (`<stdin>` for standard input).
    pub file: String,
    /// 1-based line of the problem, when it has one (a YAML syntax error, the first line that
    /// is not UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column, in characters, when known (a YAML syntax error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// What is wrong (`not valid YAML: …`, `cannot read: …`).
    pub message: String,
}

/// A pod-bearing object that was checked (one JUnit test case each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckedObject {
    /// The object.
    pub object: ObjectRef,
    /// Where the object is: its file and first line (a List's items share the List's); no
    /// column.
    pub location: Location,
    /// Image uses in it (containers, init and ephemeral ones included), for the summary.
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
    /// Where the image field is.
    pub location: Location,
    /// The object that uses it.
    pub object: ObjectRef,
    /// The container that uses it.
    pub container: ContainerRef,
}

/// The policy a report was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyInfo {
    /// The policy's `metadata.name`.
    pub name: String,
    /// Where it was read from: a file path, or `<embedded default>`.
    pub origin: String,
}

/// Everything a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The policy the check ran with.
    pub policy: PolicyInfo,
    /// Files (or other inputs) checked, whether they held objects or not.
    pub files: usize,
    /// Every pod-bearing object checked.
    pub objects: Vec<CheckedObject>,
    /// Findings at the reported levels that no live exemption suppressed.
    pub findings: Vec<Finding>,
    /// Findings a live exemption suppressed.
    pub exempted: Vec<Exempted>,
    /// Inputs that could not be read or parsed; any makes the run exit 2.
    pub errors: Vec<InputError>,
    /// Every image use, when the check was asked to collect them (not rendered).
    pub sites: Vec<ImageSite>,
}

/// Counts for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// [`Report::files`].
    pub files: usize,
    /// Objects checked.
    pub objects: usize,
    /// Image uses in the objects checked.
    pub images: usize,
    /// Deny-level findings: any makes the run exit 1.
    pub deny: usize,
    /// Warn-level findings.
    pub warn: usize,
    /// Audit-level findings (only reported by runs that ask for them).
    pub audit: usize,
    /// Findings exemptions suppressed.
    pub exempted: usize,
    /// Inputs that could not be read or parsed.
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

    /// The counts of the report, by level for the findings.
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

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod tests {
    use std::error::Error;
    use std::sync::Arc;

    use super::*;
    use crate::admission::AdmissionError;
    use crate::audit::periodic::AuditRunError;
    use crate::cluster::kube::ClusterError;
    use crate::git::{DeployRepo, GitError};
    use crate::registry::RegistryError;
    use crate::registry::auth::{ConfigError, CredentialStore};
    use crate::rollout::RolloutError;

    /// Every error of `e`'s chain, outermost first.
    fn chain(e: &(dyn Error + 'static)) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut source = e.source();
        while let Some(s) = source {
            out.push(s.to_string());
            source = s.source();
        }
        out
    }

    fn a_git_error() -> GitError {
        let dir = tempfile::tempdir().unwrap();
        DeployRepo::discover(dir.path()).err().unwrap()
    }

    fn a_json_error() -> serde_json::Error {
        serde_json::from_str::<serde_json::Value>("{").unwrap_err()
    }

    #[test]
    fn every_cause_is_printed_once() {
        let missing = std::path::Path::new("/nonexistent/tollgate/file");
        let errors: Vec<Box<dyn Error + 'static>> = vec![
            Box::new(AuditRunError::Rollout(RolloutError::Git(a_git_error()))),
            Box::new(a_git_error()),
            Box::new(RegistryError::CaFile {
                path: missing.into(),
                source: Arc::new(std::fs::read(missing).unwrap_err()),
            }),
            Box::new(RegistryError::Json {
                url: "https://r.example.org/v2/_catalog".into(),
                what: "catalog",
                source: Arc::new(a_json_error()),
            }),
            Box::new(CredentialStore::from_docker_config(missing).unwrap_err()),
            Box::new(ConfigError::Parse {
                path: missing.into(),
                source: a_json_error(),
            }),
            Box::new(AdmissionError::NotJson(a_json_error())),
            Box::new(ClusterError::Kubeconfig {
                path: missing.display().to_string(),
                source: kube::config::Kubeconfig::read_from(missing).unwrap_err(),
            }),
        ];
        for e in errors {
            let links = chain(e.as_ref());
            assert!(links.len() >= 2, "{links:?} has no cause");
            // tollgate's own error never repeats its cause...
            assert!(
                !links[0].contains(links[1].as_str()),
                "{:?} interpolates its source {:?}",
                links[0],
                links[1]
            );
            // ...and the text printed names each cause once, a library's repeating ones too.
            let full = error_text(e.as_ref());
            for link in &links[1..] {
                assert_eq!(
                    full.matches(link.as_str()).count(),
                    1,
                    "{link:?} of {links:?} is printed more than once: {full}"
                );
            }
        }
    }
}
