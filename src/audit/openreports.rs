//! The audit as OpenReports objects (`openreports.io/v1alpha1` `Report`), where Policy Reporter
//! and other dashboards read policy results: one namespaced Report per workload (the top
//! controller, or the bare pod, the audit groups usages by), every check of every image the
//! workload uses as one result. Pure: a report and `now` in, objects out; `tollgate audit
//! --format openreports` prints them and `tollgate serve --audit-reports` applies them.
//!
//! A Report never grows without bound: at most `max_results` results are listed (failures and
//! errors first, passes dropped first), while `summary` counts every result and the annotation
//! [`OMITTED_ANNOTATION`] says how many were left out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::Role;
use super::run::{AuditReport, CheckOutcome};
use crate::cluster::LiveState;
use crate::policy::{AuditKind, FindingKind, Level};

/// `apiVersion` of the objects.
pub const API_VERSION: &str = "openreports.io/v1alpha1";
/// `kind` of the objects: namespaced, one per workload.
pub const KIND: &str = "Report";
/// The label every Report tollgate writes carries; `serve` deletes the stale ones by it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "tollgate");
/// How many results a capped Report left out (present only when it left some out).
pub const OMITTED_ANNOTATION: &str = "tollgate.dev/omitted-results";
/// `source` of the Reports and of each result.
pub const SOURCE: &str = "tollgate";
/// Results one Report lists by default (`--report-max-results`).
pub const DEFAULT_MAX_RESULTS: usize = 100;
/// Longest `metadata.name` (a DNS-1123 subdomain).
const MAX_NAME: usize = 253;

/// What the objects need besides the report.
pub struct Options<'a> {
    /// `metadata.name` of the policy: each result's `policy`.
    pub policy: &'a str,
    /// The run's instant, every result's `timestamp`.
    pub now: Timestamp,
    /// Results listed per Report, at most.
    pub max_results: usize,
}

/// An OpenReports `Report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`API_VERSION`].
    pub api_version: &'static str,
    /// [`KIND`].
    pub kind: &'static str,
    /// Name, namespace, the managed-by label, the omitted-results annotation.
    pub metadata: Metadata,
    /// [`SOURCE`].
    pub source: &'static str,
    /// The workload the Report is about.
    pub scope: ObjectReference,
    /// The cap on `results`, stated for consumers.
    pub configuration: Configuration,
    /// Every result counted, listed or not.
    pub summary: Summary,
    /// At most `configuration.limits.maxResults` results, failures first.
    pub results: Vec<ReportResult>,
}

/// The part of `metadata` tollgate sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// Deterministic per workload: see [`report_name`].
    pub name: String,
    /// The workload's namespace.
    pub namespace: String,
    /// [`MANAGED_BY`].
    pub labels: BTreeMap<&'static str, &'static str>,
    /// [`OMITTED_ANNOTATION`], when results were left out.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<&'static str, String>,
}

/// A `core/v1` `ObjectReference`, the fields tollgate knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// The kind's API version, for the kinds the audit lists (none for another owner kind).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<&'static str>,
    /// `Deployment`, `Pod`, ...
    pub kind: String,
    /// The workload's name.
    pub name: String,
    /// The workload's namespace.
    pub namespace: String,
    /// `metadata.uid`, when the workload itself was listed with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// `configuration`: the contract between the Report's writer and its readers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Configuration {
    /// The one limit tollgate sets.
    pub limits: Limits,
}

/// `configuration.limits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Results listed at most.
    pub max_results: usize,
}

/// `summary`: how many results of each kind, listed or left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Checks that hold.
    pub pass: usize,
    /// Findings at deny level.
    pub fail: usize,
    /// Findings at warn or audit level.
    pub warn: usize,
    /// Checks that could not finish (a registry that did not answer).
    pub error: usize,
    /// Checks not applied (an exemption, an invalid reference, `--no-resolve`).
    pub skip: usize,
}

/// `results[].result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A deny-level finding. First in a capped list.
    Fail,
    /// The check could not finish.
    Error,
    /// A warn- or audit-level finding: reported, never enforced.
    Warn,
    /// The check was not applied.
    Skip,
    /// The check holds. Dropped first from a capped list.
    Pass,
}

/// `results[].severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Deny level.
    High,
    /// Warn level.
    Medium,
    /// Audit level.
    Low,
}

impl Severity {
    fn of(level: Level) -> Severity {
        match level {
            Level::Deny => Severity::High,
            Level::Warn => Severity::Medium,
            Level::Audit | Level::Off => Severity::Low,
        }
    }
}

/// `results[].timestamp`, a protobuf Timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResultTimestamp {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Nanoseconds within the second, 0..=999,999,999.
    pub nanos: i32,
}

/// One result: one check of one image in one container of the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportResult {
    /// [`SOURCE`].
    pub source: &'static str,
    /// The policy's `metadata.name`.
    pub policy: String,
    /// The stable rule id (a policy rule, or an audit kind such as `running-unservable`).
    pub rule: String,
    /// What the check concluded.
    pub result: Outcome,
    /// From the level: deny high, warn medium, audit low.
    pub severity: Severity,
    /// What is wrong (or, for a pass, what holds).
    pub message: String,
    /// The run's instant.
    pub timestamp: ResultTimestamp,
    /// The workload, as in `scope`.
    pub resources: Vec<ObjectReference>,
    /// `image`, `container`, `role`, and `running` (the digest that runs) and `fix` when known.
    pub properties: BTreeMap<&'static str, String>,
}

/// The API version of the kinds the audit lists; another owner's is not known.
fn api_version(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" | "ReplicationController" => Some("v1"),
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => Some("apps/v1"),
        "Job" | "CronJob" => Some("batch/v1"),
        _ => None,
    }
}

/// Kubernetes' IsDNS1123Subdomain: at most 253 characters, dot-separated labels of lower-case
/// alphanumerics and '-', each starting and ending alphanumeric.
fn is_subdomain(s: &str) -> bool {
    s.len() <= MAX_NAME
        && s.split('.').all(|label| {
            label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && label.starts_with(|c: char| c.is_ascii_alphanumeric())
                && label.ends_with(|c: char| c.is_ascii_alphanumeric())
        })
}

/// The Report's `metadata.name` for workload `kind` `name`: `tollgate-<kind>-<name>` in lower
/// case, a valid DNS-1123 subdomain. A Kubernetes name is one already and a kind is
/// alphanumeric, so this is the common case. Otherwise (a name a List file made up, or one that
/// would pass 253 characters) the name is `tollgate-<kind>--<name, cut and cleaned>-<hash>`,
/// with 10 hex digits of the SHA-256 of kind and name: the `--` after the kind never follows
/// the kind in a plain name (a subdomain starts alphanumeric), and the hash keeps the cut names
/// apart, so two workloads never share a Report.
pub fn report_name(kind: &str, name: &str) -> String {
    let kind_lc = kind.to_ascii_lowercase();
    let plain = format!("tollgate-{kind_lc}-{name}");
    if !kind.is_empty()
        && kind.bytes().all(|b| b.is_ascii_alphanumeric())
        && is_subdomain(name)
        && plain.len() <= MAX_NAME
    {
        return plain;
    }
    let mut hasher = Sha256::new();
    // The NUL keeps (kind, name) pairs apart that would concatenate alike.
    hasher.update(kind.as_bytes());
    hasher.update([0]);
    hasher.update(name.as_bytes());
    let hash = hasher.finalize();
    let mut suffix = String::from("-");
    for b in &hash[..5] {
        let _ = write!(suffix, "{b:02x}");
    }
    let clean = |s: &str, keep_dash: bool| -> String {
        s.chars()
            .map(|c| c.to_ascii_lowercase())
            .filter_map(|c| match c {
                'a'..='z' | '0'..='9' => Some(c),
                _ if keep_dash => Some('-'),
                _ => None,
            })
            .collect()
    };
    // One label of [a-z0-9-]: no dot can end up beside a dash.
    let mut out = format!("tollgate-{}--{}", clean(kind, false), clean(name, true));
    // ASCII only now, so cutting at a byte is cutting at a character.
    out.truncate(MAX_NAME - suffix.len());
    let trimmed = out.trim_end_matches('-');
    format!("{trimmed}{suffix}")
}

/// What a pass says: the rule's one-line summary, or the audit kind's.
fn pass_message(kind: FindingKind) -> String {
    match kind {
        FindingKind::Rule(r) => r.summary().to_owned(),
        FindingKind::Audit(AuditKind::RetentionRisk) => {
            "the retention rule keeps this tag on its next run".to_owned()
        }
        FindingKind::Audit(_) => "the registry serves the image end to end".to_owned(),
    }
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Running => "running",
        Role::RollbackTarget => "rollbackTarget",
        Role::Declared => "declared",
    }
}

/// One Report per workload of `report`, sorted by namespace, kind and name. `state` gives the
/// workloads' uids.
pub fn reports(report: &AuditReport, state: &LiveState, o: &Options<'_>) -> Vec<Report> {
    let timestamp = ResultTimestamp {
        seconds: o.now.as_second(),
        nanos: o.now.subsec_nanosecond(),
    };
    let mut by_workload: BTreeMap<(String, String, String), Vec<ReportResult>> = BTreeMap::new();
    for image in &report.images {
        for usage in &image.image.usages {
            let (kind, name) = usage
                .workload
                .split_once('/')
                .unwrap_or(("Pod", usage.workload.as_str()));
            let key = (usage.namespace.clone(), kind.to_owned(), name.to_owned());
            let resource = scope(state, &key);
            let mut properties = BTreeMap::from([
                ("image", image.image.image.to_string()),
                ("container", usage.container.clone()),
                ("role", role(usage.role).to_owned()),
            ]);
            if let Some(r) = &image.image.running {
                properties.insert("running", r.to_string());
            }
            let result = |rule: FindingKind, result, level, message: String, fix: &str| {
                let mut properties = properties.clone();
                if !fix.is_empty() {
                    properties.insert("fix", fix.to_owned());
                }
                ReportResult {
                    source: SOURCE,
                    policy: o.policy.to_owned(),
                    rule: rule.as_str().to_owned(),
                    result,
                    severity: Severity::of(level),
                    message,
                    timestamp,
                    resources: vec![resource.clone()],
                    properties,
                }
            };
            let results = by_workload.entry(key.clone()).or_default();
            for f in &image.findings {
                let outcome = match f.level {
                    Level::Deny => Outcome::Fail,
                    // Audit-level rules are only ever reported: a warning, never a failure.
                    Level::Warn | Level::Audit | Level::Off => Outcome::Warn,
                };
                results.push(result(f.kind, outcome, f.level, f.message.clone(), &f.hint));
            }
            for c in &image.checks {
                let (outcome, message) = match c.outcome {
                    CheckOutcome::Passed => (Outcome::Pass, pass_message(c.kind)),
                    CheckOutcome::Exempted | CheckOutcome::NotEvaluated => {
                        (Outcome::Skip, c.message.clone())
                    }
                    // Never a pass: nothing is known about the image.
                    CheckOutcome::Unchecked => (Outcome::Error, c.message.clone()),
                };
                results.push(result(c.kind, outcome, c.level, message, ""));
            }
        }
    }
    by_workload
        .into_iter()
        .map(|(key, mut results)| {
            let mut summary = Summary::default();
            for r in &results {
                *match r.result {
                    Outcome::Pass => &mut summary.pass,
                    Outcome::Fail => &mut summary.fail,
                    Outcome::Warn => &mut summary.warn,
                    Outcome::Error => &mut summary.error,
                    Outcome::Skip => &mut summary.skip,
                } += 1;
            }
            // Stable: within one outcome, results keep the inventory's order.
            results.sort_by_key(|r| r.result);
            let omitted = results.len().saturating_sub(o.max_results);
            results.truncate(o.max_results);
            let mut annotations = BTreeMap::new();
            if omitted > 0 {
                annotations.insert(OMITTED_ANNOTATION, omitted.to_string());
            }
            let scope = scope(state, &key);
            Report {
                api_version: API_VERSION,
                kind: KIND,
                metadata: Metadata {
                    name: report_name(&scope.kind, &scope.name),
                    namespace: scope.namespace.clone(),
                    labels: BTreeMap::from([MANAGED_BY]),
                    annotations,
                },
                source: SOURCE,
                scope,
                configuration: Configuration {
                    limits: Limits {
                        max_results: o.max_results,
                    },
                },
                summary,
                results,
            }
        })
        .collect()
}

fn scope(state: &LiveState, (namespace, kind, name): &(String, String, String)) -> ObjectReference {
    ObjectReference {
        api_version: api_version(kind),
        kind: kind.clone(),
        name: name.clone(),
        namespace: namespace.clone(),
        uid: state.uid(namespace, kind, name).map(str::to_owned),
    }
}

/// The Reports as one `v1` `List`, pretty JSON with a trailing newline: `kubectl apply -f -`
/// applies every item of a List, and JSON is YAML, so the output needs no other tool.
pub fn list(reports: &[Report]) -> String {
    let doc = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": reports});
    let mut s = serde_json::to_string_pretty(&doc).expect("a report serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::audit::run::{AuditFinding, Check, ImageResult};
    use crate::audit::{AuditImage, Usage};
    use crate::policy::RuleId;
    use crate::reference::WrittenImage;

    const D: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    fn usage(workload: &str, container: &str, role: Role) -> Usage {
        Usage {
            role,
            namespace: "web".into(),
            workload: workload.into(),
            container: container.into(),
            pods: usize::from(role == Role::Running),
        }
    }

    fn check(kind: impl Into<FindingKind>, level: Level, outcome: CheckOutcome) -> Check {
        Check {
            kind: kind.into(),
            level,
            outcome,
            message: match outcome {
                CheckOutcome::Passed => String::new(),
                _ => "why".into(),
            },
        }
    }

    fn finding(kind: impl Into<FindingKind>, level: Level) -> AuditFinding {
        let kind = kind.into();
        AuditFinding {
            kind,
            level,
            message: format!("{kind} at {level}"),
            hint: "fix it".into(),
        }
    }

    fn image(
        written: &str,
        usages: Vec<Usage>,
        findings: Vec<AuditFinding>,
        checks: Vec<Check>,
    ) -> ImageResult {
        ImageResult {
            image: AuditImage {
                image: WrittenImage::new(written),
                running: None,
                usages,
            },
            findings,
            registry_requests: 0,
            checks,
        }
    }

    fn audit(images: Vec<ImageResult>) -> AuditReport {
        AuditReport {
            images,
            errors: vec![],
            registry_requests: 0,
            retention_not_simulated: vec![],
            registry_checked: true,
        }
    }

    fn options(max_results: usize) -> Options<'static> {
        Options {
            policy: "production",
            now: "2026-11-30T12:00:00.25Z".parse().unwrap(),
            max_results,
        }
    }

    fn state() -> LiveState {
        let list = serde_json::json!({"kind": "List", "items": [
            {"kind": "Deployment", "apiVersion": "apps/v1",
             "metadata": {"name": "api", "namespace": "web", "uid": "3e6b1c2d-5a4f-4e3d-9c8b-7a6f5e4d3c21"},
             "spec": {"template": {"spec": {"containers": [{"name": "api", "image": "r/api:2"}]}}}}]});
        LiveState::from_objects([&list]).0
    }

    #[test]
    fn one_report_per_workload_with_every_check_and_the_uid() {
        let mut running = image(
            "docker-registry.example.org/api:2",
            vec![usage("Deployment/api", "api", Role::Running)],
            vec![
                finding(RuleId::DigestMissing, Level::Warn),
                finding(AuditKind::RunningUnservable, Level::Deny),
            ],
            vec![
                check(RuleId::TagLatest, Level::Deny, CheckOutcome::Passed),
                check(RuleId::TagForbidden, Level::Deny, CheckOutcome::Exempted),
            ],
        );
        running.image.running = Some(
            format!("docker-registry.example.org/api@{D}")
                .parse()
                .unwrap(),
        );
        let report = audit(vec![
            running,
            image(
                "docker-registry.example.org/job:5",
                vec![usage("CronJob/nightly", "job", Role::Declared)],
                vec![],
                vec![check(
                    AuditKind::DeclaredUnservable,
                    Level::Deny,
                    CheckOutcome::Unchecked,
                )],
            ),
        ]);
        let out = list(&reports(&report, &state(), &options(DEFAULT_MAX_RESULTS)));
        insta::assert_snapshot!(out);
    }

    #[rstest]
    #[case::deny_finding_fails(Some(Level::Deny), None, Outcome::Fail)]
    #[case::warn_finding_warns(Some(Level::Warn), None, Outcome::Warn)]
    #[case::audit_finding_only_warns(Some(Level::Audit), None, Outcome::Warn)]
    #[case::a_check_that_holds_passes(None, Some(CheckOutcome::Passed), Outcome::Pass)]
    #[case::an_exemption_skips(None, Some(CheckOutcome::Exempted), Outcome::Skip)]
    #[case::not_evaluated_skips(None, Some(CheckOutcome::NotEvaluated), Outcome::Skip)]
    #[case::a_registry_that_did_not_answer_is_an_error_never_a_pass(
        None,
        Some(CheckOutcome::Unchecked),
        Outcome::Error
    )]
    fn outcomes_map_to_results(
        #[case] level: Option<Level>,
        #[case] check_outcome: Option<CheckOutcome>,
        #[case] expected: Outcome,
    ) {
        let findings = level
            .map(|l| vec![finding(RuleId::TagLatest, l)])
            .unwrap_or_default();
        let checks = check_outcome
            .map(|c| vec![check(AuditKind::RunningUnservable, Level::Deny, c)])
            .unwrap_or_default();
        let report = audit(vec![image(
            "r/a:1",
            vec![usage("Pod/a", "a", Role::Running)],
            findings,
            checks,
        )]);
        let out = reports(&report, &LiveState::default(), &options(10));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].results.len(), 1);
        assert_eq!(out[0].results[0].result, expected);
        let s = &out[0].summary;
        assert_eq!(s.pass + s.fail + s.warn + s.error + s.skip, 1);
    }

    #[rstest]
    #[case::a_plain_name("Deployment", "api", "tollgate-deployment-api")]
    #[case::a_dotted_name("Pod", "api.v2-0", "tollgate-pod-api.v2-0")]
    #[case::upper_case_gets_a_hash("Pod", "API", "tollgate-pod--api-66ad69468a")]
    #[case::a_dash_after_a_dot_gets_a_hash("Pod", ".-x", "tollgate-pod----x-c18d81561f")]
    #[case::an_odd_kind_gets_a_hash("x.y/Z", "a", "tollgate-xyz--a-c134481fa7")]
    fn names_are_deterministic_dns_subdomains(
        #[case] kind: &str,
        #[case] name: &str,
        #[case] expected: &str,
    ) {
        let got = report_name(kind, name);
        assert!(valid_subdomain(&got), "{got}");
        assert_eq!(got, expected);
    }

    fn valid_subdomain(s: &str) -> bool {
        is_subdomain(s)
    }

    /// A hashed name once ended like a plain one (`tollgate-pod-<hash>`), which a pod named
    /// after the hash would have shared.
    #[test]
    fn a_hashed_name_never_equals_a_plain_one() {
        let hashed = report_name("Pod", "API");
        let hash = hashed.rsplit('-').next().unwrap();
        assert_ne!(hashed, report_name("Pod", hash));
        assert_ne!(hashed, report_name("Pod", &format!("api-{hash}")));
        assert!(hashed.starts_with("tollgate-pod--"), "{hashed}");
    }

    #[test]
    fn a_name_too_long_is_cut_with_a_hash_and_two_long_names_stay_apart() {
        let long = "a".repeat(253);
        let a = report_name("Deployment", &long);
        let b = report_name("Deployment", &format!("{}b", "a".repeat(252)));
        assert_eq!(a.len(), MAX_NAME);
        assert!(valid_subdomain(&a), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, report_name("Deployment", &long), "deterministic");
    }

    proptest::proptest! {
        /// Whatever the cluster calls a workload (names come from the API server, and a List
        /// file may hold anything), its Report's name is a valid DNS-1123 subdomain, the same
        /// on every run, and distinct from another workload's.
        #[test]
        fn every_workload_gets_a_valid_stable_name(
            kind in "[A-Za-z]{1,20}",
            name in "\\PC{0,300}",
            other in "\\PC{0,300}",
        ) {
            let n = report_name(&kind, &name);
            proptest::prop_assert!(valid_subdomain(&n), "{n}");
            proptest::prop_assert_eq!(&n, &report_name(&kind, &name));
            if other != name {
                proptest::prop_assert_ne!(n, report_name(&kind, &other));
            }
        }
    }

    #[test]
    fn a_capped_report_keeps_failures_counts_everything_and_says_how_many_it_left_out() {
        let checks: Vec<Check> = (0..5)
            .map(|_| check(RuleId::TagLatest, Level::Deny, CheckOutcome::Passed))
            .collect();
        let report = audit(vec![image(
            "r/a:1",
            vec![usage("Pod/a", "a", Role::Running)],
            vec![finding(RuleId::DigestMissing, Level::Warn)],
            [
                checks,
                vec![check(
                    AuditKind::RunningUnservable,
                    Level::Deny,
                    CheckOutcome::Unchecked,
                )],
            ]
            .concat(),
        )]);
        let out = &reports(&report, &LiveState::default(), &options(2))[0];
        let listed: Vec<Outcome> = out.results.iter().map(|r| r.result).collect();
        assert_eq!(listed, vec![Outcome::Error, Outcome::Warn]);
        assert_eq!(
            out.summary,
            Summary {
                pass: 5,
                fail: 0,
                warn: 1,
                error: 1,
                skip: 0
            }
        );
        assert_eq!(out.metadata.annotations[OMITTED_ANNOTATION], "5");
        assert_eq!(out.configuration.limits.max_results, 2);
        let uncapped = &reports(&report, &LiveState::default(), &options(100))[0];
        assert!(uncapped.metadata.annotations.is_empty());
        assert_eq!(uncapped.results.len(), 7);
    }

    #[test]
    fn an_image_two_containers_use_is_a_result_for_each() {
        let report = audit(vec![image(
            "r/a:1",
            vec![
                usage("Deployment/api", "api", Role::Running),
                usage("Deployment/api", "sidecar", Role::Running),
                usage("Deployment/other", "x", Role::Running),
            ],
            vec![finding(RuleId::TagLatest, Level::Deny)],
            vec![],
        )]);
        let out = reports(&report, &LiveState::default(), &options(10));
        let names: Vec<(&str, usize)> = out
            .iter()
            .map(|r| (r.metadata.name.as_str(), r.results.len()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("tollgate-deployment-api", 2),
                ("tollgate-deployment-other", 1)
            ]
        );
        assert_eq!(out[0].results[1].properties["container"], "sidecar");
    }
}
