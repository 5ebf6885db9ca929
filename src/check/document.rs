//! Checking manifests against a policy: workload extraction, the engine, and locating each
//! finding. Pure: the text of a source comes in, a report goes out.

use jiff::Timestamp;
use serde_json::Value;

use crate::policy::eval::{self, Context, Outcome, Status};
use crate::policy::{Level, Policy, RuleId};
use crate::report::{
    CheckedObject, Exempted, ExemptionRef, Finding, ImageSite, InputError, Location, PolicyInfo,
    Report,
};
use crate::workload;
use crate::yaml::{self, Positions, Record};

/// How a check runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The namespace of objects that do not name one.
    pub default_namespace: String,
    /// The clock, for exemption expiry.
    pub now: Timestamp,
    /// The lowest level reported: `Warn` for checks and admission, `Audit` for audits.
    pub min_level: Level,
    /// Keep every image use in [`Report::sites`] (for registry-backed rules afterwards).
    pub collect_sites: bool,
    /// A manifest file with no Kubernetes object, or with a document that is not one, is an
    /// input error (`--require-objects`) rather than a `no-objects` or `not-an-object` finding.
    pub require_objects: bool,
}

impl Options {
    /// Options for `check` and `ci`: deny and warn findings, audit-only ones left out.
    pub fn enforce(default_namespace: impl Into<String>, now: Timestamp) -> Self {
        Options {
            default_namespace: default_namespace.into(),
            now,
            min_level: Level::Warn,
            collect_sites: false,
            require_objects: false,
        }
    }
}

/// Where the document being checked came from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The file name shown in findings (`-` input is shown as `<stdin>`).
    pub file: Option<&'a str>,
    /// Line and column of each field of the document's YAML; `None` for an object not read
    /// from text (an admission request's), whose findings are located by JSON pointer only.
    pub positions: Option<&'a Positions>,
    /// The document's first line, used when a field has no recorded position.
    pub start_line: Option<u32>,
}

impl Source<'_> {
    fn locate(&self, pointer: &str) -> Location {
        // The field itself where it exists, else its container entry (a missing image).
        let pos = self.positions.and_then(|p| p.nearest(pointer));
        Location {
            file: self.file.map(str::to_owned),
            line: pos.map(|p| p.line).or(self.start_line),
            column: pos.map(|p| p.column),
            pointer: Some(pointer.to_owned()),
        }
    }
}

/// What a checked document held besides its pod-bearing objects, for the file's tally.
#[derive(Debug, Default)]
pub struct Shape {
    /// Kubernetes objects of any kind ([`workload::Workloads::kube_objects`]).
    pub kube_objects: usize,
    /// Values that are not Kubernetes objects, located.
    pub not_objects: Vec<(Location, String)>,
}

/// Check one document (a manifest object, a List, or anything else). Objects without a pod
/// spec hold no image; values that are not objects at all are returned in the [`Shape`] for
/// the caller to report (a manifest file does, an admission request cannot hold one).
pub fn check_document(
    policy: &Policy,
    doc: &Value,
    source: Source<'_>,
    opts: &Options,
    report: &mut Report,
) -> Shape {
    let w = workload::extract_with(doc, policy.workloads());
    let shape = Shape {
        kube_objects: w.kube_objects,
        not_objects: w
            .not_objects
            .into_iter()
            .map(|n| {
                let mut location = source.locate(&n.pointer);
                location.column = None;
                (location, n.message)
            })
            .collect(),
    };
    let mut image_counts = vec![0usize; w.objects.len()];
    for use_ in &w.images {
        image_counts[use_.object] += 1;
        let (object, _) = &w.objects[use_.object];
        let namespace = object
            .namespace
            .as_deref()
            .unwrap_or(&opts.default_namespace);
        let verdict = eval::evaluate_image(
            policy,
            &use_.image,
            Context {
                namespace,
                now: opts.now,
            },
        );
        // Most images pass: build the site (several clones) only when something will use it.
        let reported =
            |o: &Outcome| matches!(o.status, Status::Fail(_)) && o.level >= opts.min_level;
        if !opts.collect_sites && !verdict.outcomes.iter().any(reported) {
            continue;
        }
        let site = ImageSite {
            image: use_.image.clone(),
            namespace: namespace.to_owned(),
            location: source.locate(&use_.pointer),
            object: object.clone(),
            container: use_.container.clone(),
        };
        for outcome in verdict.outcomes {
            record_outcome(policy, outcome, &site, opts, report);
        }
        if opts.collect_sites {
            report.sites.push(site);
        }
    }
    for m in &w.malformed {
        let (object, _) = &w.objects[m.object];
        let namespace = object
            .namespace
            .as_deref()
            .unwrap_or(&opts.default_namespace);
        let level = policy.in_namespace(namespace).level(RuleId::ImageMissing);
        if level < opts.min_level {
            continue;
        }
        report.findings.push(Finding {
            rule_id: RuleId::ImageMissing,
            level,
            message: m.message.clone(),
            hint: "give every container an image as a string: image: registry/repository:tag@sha256:<digest>".into(),
            location: source.locate(&m.pointer),
            object: Some(object.clone()),
            container: m.container.clone(),
            image: None,
        });
    }
    for (i, (object, pointer)) in w.objects.into_iter().enumerate() {
        let mut location = source.locate(&pointer);
        location.column = None;
        report.objects.push(CheckedObject {
            object,
            location,
            images: image_counts[i],
        });
    }
    shape
}

/// Turn a failed outcome at `site` into a finding, or an exempted finding, as the policy says.
/// Passing and not-evaluated outcomes, and levels below `opts.min_level`, record nothing.
pub fn record_outcome(
    policy: &Policy,
    outcome: Outcome,
    site: &ImageSite,
    opts: &Options,
    report: &mut Report,
) {
    let Status::Fail(violation) = outcome.status else {
        return;
    };
    if outcome.level < opts.min_level {
        return;
    }
    // The outcome's exemption is an index into the policy as it applies in the namespace.
    let policy = &*policy.in_namespace(&site.namespace);
    let mut finding = Finding {
        rule_id: outcome.rule,
        level: outcome.level,
        message: violation.message,
        hint: violation.hint,
        location: site.location.clone(),
        object: Some(site.object.clone()),
        container: Some(site.container.clone()),
        image: Some(site.image.clone()),
    };
    match outcome.exemption {
        Some(e) if !e.expired => {
            report.exempted.push(Exempted {
                exemption: exemption_ref(policy, e.index),
                finding,
            });
        }
        Some(e) => {
            let ex = &policy.exemptions()[e.index];
            let expired = ex
                .expires()
                .map(|x| x.written.to_string())
                .unwrap_or_default();
            finding.hint.push_str(&format!(
                " (the exemption at {}:{} expired on {expired}; renew it or fix the image)",
                policy.origin(),
                ex.pos().line
            ));
            report.findings.push(finding);
        }
        None => report.findings.push(finding),
    }
}

fn exemption_ref(policy: &Policy, index: usize) -> ExemptionRef {
    let e = &policy.exemptions()[index];
    ExemptionRef {
        reason: e.reason().to_owned(),
        expires: e.expires().map(|x| x.written.to_string()),
        source: format!("{}:{}", policy.origin(), e.pos().line),
    }
}

/// Check every document of a YAML or JSON source. Documents that do not parse become input
/// errors with their line and column; the others are checked one at a time, each dropped once
/// checked.
pub fn check_text(policy: &Policy, file: &str, text: &str, opts: &Options) -> Report {
    let mut check = FileCheck::new(policy, file, opts);
    for doc in yaml::load_all(text, Record::ImageFields) {
        check.document(doc);
    }
    check.finish()
}

/// At most this many `not-an-object` findings per file, then one that counts the rest: a
/// stream of a million stray documents must not become a million findings.
pub const MAX_NOT_OBJECT_FINDINGS: usize = 20;

/// The check of one manifest file or stream, fed a document at a time (so that a caller
/// reading a stream holds one document, not the file), with the tally that finds a file
/// holding no Kubernetes object.
pub struct FileCheck<'a> {
    policy: &'a Policy,
    file: &'a str,
    opts: &'a Options,
    report: Report,
    kube_objects: usize,
    /// The first [`MAX_NOT_OBJECT_FINDINGS`] values that are not objects.
    not_objects: Vec<(Location, String)>,
    /// All of them.
    not_object_count: usize,
}

impl<'a> FileCheck<'a> {
    /// The check of `file` (its name in findings) starts.
    pub fn new(policy: &'a Policy, file: &'a str, opts: &'a Options) -> Self {
        let mut report = Report::new(policy_info(policy));
        report.files = 1;
        FileCheck {
            policy,
            file,
            opts,
            report,
            kube_objects: 0,
            not_objects: Vec::new(),
            not_object_count: 0,
        }
    }

    /// The next document, or why it could not be loaded.
    pub fn document(&mut self, doc: Result<yaml::Document, yaml::YamlError>) {
        match doc {
            Ok(doc) => {
                let source = Source {
                    file: Some(self.file),
                    positions: Some(&doc.positions),
                    start_line: Some(doc.start.line),
                };
                let shape =
                    check_document(self.policy, &doc.value, source, self.opts, &mut self.report);
                self.kube_objects += shape.kube_objects;
                self.not_object_count += shape.not_objects.len();
                let room = MAX_NOT_OBJECT_FINDINGS.saturating_sub(self.not_objects.len());
                self.not_objects
                    .extend(shape.not_objects.into_iter().take(room));
            }
            Err(e) => self.error(InputError {
                file: self.file.to_owned(),
                line: Some(e.pos.line),
                column: Some(e.pos.column),
                message: format!("not valid YAML: {}", e.message),
            }),
        }
    }

    /// The file's name in findings.
    pub fn file(&self) -> &str {
        self.file
    }

    /// An input error in this file (unreadable bytes, say); checking goes on.
    pub fn error(&mut self, e: InputError) {
        self.report.errors.push(e);
    }

    /// The end of the file: its report, with what it held that is not an object, or that it
    /// held no object at all.
    pub fn finish(mut self) -> Report {
        let file_location = Location {
            file: Some(self.file.to_owned()),
            line: None,
            column: None,
            pointer: None,
        };
        if self.kube_objects == 0 && self.report.errors.is_empty() {
            let message = match (self.not_objects.first(), self.not_object_count) {
                (None, _) => "no Kubernetes object here: the input is empty or holds only \
                              comments"
                    .to_owned(),
                (Some((at, first)), n) => format!(
                    "no Kubernetes object here: {}; line {}: {first}",
                    if n == 1 {
                        "its one document is not one".to_owned()
                    } else {
                        format!("none of its {n} documents is one")
                    },
                    at.line.unwrap_or(1),
                ),
            };
            self.flag(
                RuleId::NoObjects,
                message,
                "if a step rendered this input (helm template, kustomize build), check that it \
                 succeeded; a file that holds no manifests belongs in manifests.exclude of \
                 .tollgate.yaml",
                file_location,
            );
        } else {
            let not_objects = std::mem::take(&mut self.not_objects);
            let hidden = self.not_object_count - not_objects.len();
            for (location, message) in not_objects {
                self.flag(
                    RuleId::NotAnObject,
                    message,
                    "kubectl refuses a document without apiVersion and kind; remove it, or \
                     give it both",
                    location,
                );
            }
            if hidden > 0 {
                self.flag(
                    RuleId::NotAnObject,
                    format!(
                        "{hidden} more documents or List items here are not Kubernetes objects \
                         (only the first {MAX_NOT_OBJECT_FINDINGS} are listed)"
                    ),
                    "kubectl refuses a document without apiVersion and kind; remove them, or \
                     give them both",
                    file_location,
                );
            }
        }
        self.report
    }

    /// A finding of `rule`, or an input error under `--require-objects`.
    fn flag(&mut self, rule: RuleId, message: String, hint: &str, location: Location) {
        if self.opts.require_objects {
            self.report.errors.push(InputError {
                file: self.file.to_owned(),
                line: location.line,
                column: None,
                message: format!(
                    "{message} (objects are required: --require-objects, or \
                     manifests.requireObjects in .tollgate.yaml)"
                ),
            });
            return;
        }
        let level = self.policy.level(rule);
        if level < self.opts.min_level {
            return;
        }
        self.report.findings.push(Finding {
            rule_id: rule,
            level,
            message,
            hint: hint.to_owned(),
            location,
            object: None,
            container: None,
            image: None,
        });
    }
}

/// Findings about the policy itself: exemptions that have expired.
pub fn policy_findings(policy: &Policy, opts: &Options) -> Vec<Finding> {
    let level = policy.level(RuleId::ExemptionExpired);
    if level < opts.min_level {
        return Vec::new();
    }
    policy
        .all_exemptions()
        .filter(|e| e.is_expired(opts.now))
        .map(|e| Finding {
            rule_id: RuleId::ExemptionExpired,
            level,
            message: format!(
                "the exemption for {} (reason: {}) expired on {} and no longer exempts anything",
                e.selector(),
                e.reason(),
                e.expires()
                    .map(|x| x.written.to_string())
                    .unwrap_or_default()
            ),
            hint: "renew it with a new `expires` date if it is still needed, or remove it".into(),
            location: Location {
                file: Some(policy.origin().to_owned()),
                line: Some(e.pos().line),
                column: Some(e.pos().column),
                pointer: None,
            },
            object: None,
            container: None,
            image: None,
        })
        .collect()
}

/// The report header for `policy`.
pub fn policy_info(policy: &Policy) -> PolicyInfo {
    PolicyInfo {
        name: policy.name().to_owned(),
        origin: policy.origin().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::policy::default_policy;

    fn opts() -> Options {
        Options::enforce("default", Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn findings_point_at_the_image_field_and_documents_keep_their_lines() {
        let text = "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: a\n      image: nginx:latest\n";
        let r = check_text(&default_policy(), "f.yaml", text, &opts());
        assert_eq!(r.objects.len(), 1);
        assert_eq!(r.objects[0].location.line, Some(4));
        let f = r
            .findings
            .iter()
            .find(|f| f.rule_id == RuleId::TagLatest)
            .unwrap();
        assert_eq!((f.location.line, f.location.column), (Some(10), Some(14)));
        assert_eq!(
            f.location.pointer.as_deref(),
            Some("/spec/containers/0/image")
        );
    }

    #[test]
    fn audit_level_findings_are_left_out_of_checks_but_kept_in_audits() {
        let p = crate::policy::parse_policy(
            "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec:\n  rules: {digest-missing: audit}\n  registries: [{prefix: r.example.org}]\n",
            "p.yaml",
        )
        .unwrap();
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'r.example.org/a:1'}]}\n";
        assert!(check_text(&p, "f", text, &opts()).findings.is_empty());
        let audit = Options {
            min_level: Level::Audit,
            ..opts()
        };
        let r = check_text(&p, "f", text, &audit);
        assert_eq!(
            r.findings
                .iter()
                .map(|f| (f.rule_id, f.level))
                .collect::<Vec<_>>(),
            vec![(RuleId::DigestMissing, Level::Audit)]
        );
    }

    proptest! {
        #[test]
        fn checking_never_panics_on_any_text(s in "\\PC{0,400}") {
            let _ = check_text(&default_policy(), "f", &s, &opts());
        }

        #[test]
        fn checking_never_panics_on_manifest_shaped_text(
            kind in prop::sample::select(vec!["Pod", "Deployment", "CronJob", "List", "PodList", "Job"]),
            body in "([ a-z:\\-\\[\\]{},&*!|>'\"\\n]|image: |containers:\\n|spec:\\n|template:\\n|items:\\n){0,120}",
        ) {
            let api = if kind == "Deployment" { "apps/v1" } else if kind.contains("Job") { "batch/v1" } else { "v1" };
            let text = format!("apiVersion: {api}\nkind: {kind}\n{body}");
            let _ = check_text(&default_policy(), "f", &text, &opts());
        }
    }
}
