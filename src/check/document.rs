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
}

impl Options {
    /// Options for `check` and `ci`: deny and warn findings, audit-only ones left out.
    pub fn enforce(default_namespace: impl Into<String>, now: Timestamp) -> Self {
        Options {
            default_namespace: default_namespace.into(),
            now,
            min_level: Level::Warn,
            collect_sites: false,
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

/// Check one document (a manifest object, a List, or anything else, which is skipped).
pub fn check_document(
    policy: &Policy,
    doc: &Value,
    source: Source<'_>,
    opts: &Options,
    report: &mut Report,
) {
    let w = workload::extract(doc);
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
        let level = policy.level(RuleId::ImageMissing);
        if level < opts.min_level {
            continue;
        }
        let (object, _) = &w.objects[m.object];
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
/// errors with their line and column; the others are checked.
pub fn check_text(policy: &Policy, file: &str, text: &str, opts: &Options) -> Report {
    let mut report = Report::new(policy_info(policy));
    report.files = 1;
    for doc in yaml::load_all(text, Record::ImageFields) {
        match doc {
            Ok(doc) => {
                let source = Source {
                    file: Some(file),
                    positions: Some(&doc.positions),
                    start_line: Some(doc.start.line),
                };
                check_document(policy, &doc.value, source, opts, &mut report);
            }
            Err(e) => report.errors.push(InputError {
                file: file.to_owned(),
                line: Some(e.pos.line),
                column: Some(e.pos.column),
                message: format!("not valid YAML: {}", e.message),
            }),
        }
    }
    report
}

/// Findings about the policy itself: exemptions that have expired.
pub fn policy_findings(policy: &Policy, opts: &Options) -> Vec<Finding> {
    let level = policy.level(RuleId::ExemptionExpired);
    if level < opts.min_level {
        return Vec::new();
    }
    policy
        .exemptions()
        .iter()
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
