//! The webhook's Prometheus metrics, on the plain-HTTP metrics port: the Prometheus text format
//! 0.0.4, or OpenMetrics text to a client that asks for it ([`super::exposition`]).
//!
//! Names end in `_total`, `_seconds` or `_bytes`, or name what a gauge counts (`_images`,
//! `tollgate_audit_findings`); labels take values from small fixed sets (operations, kinds,
//! decisions, rule ids and audit finding kinds) or from the policy (approved registries), never
//! from the request or the cluster (names, namespaces, images).
//!
//! The `tollgate_audit_*` metrics are registered only when the periodic audit runs
//! ([`Metrics::with_audit`]), so that a webhook without it does not export gauges at 0 that
//! would read as "nothing found".

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use jiff::Timestamp;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::decide::Answers;
use super::exposition::{self, Exposition};
use crate::audit::periodic::{AuditSummary, Recorder};
use crate::audit::publish::ReportWrites;
use crate::catalog::periodic::{RecordObserver, RecordSummary, URGENCIES};
use crate::policy::AuditKind;
use crate::reference::RegistryHost;
use crate::registry::http::RequestObserver;

/// Latency buckets, from 0.5 ms (the webhook's own work) to 10 s (past any sane deadline).
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Kinds reported as themselves; anything else is `other`, so a stray request cannot create
/// label values.
const KINDS: &[&str] = &[
    "Pod",
    "PodTemplate",
    "ReplicationController",
    "Deployment",
    "ReplicaSet",
    "DaemonSet",
    "StatefulSet",
    "Job",
    "CronJob",
    "EphemeralContainers",
];

/// The kind label for a request's kind.
pub fn kind_label(kind: &str) -> &'static str {
    KINDS
        .iter()
        .copied()
        .find(|k| *k == kind)
        .unwrap_or("other")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    webhook: &'static str,
    operation: &'static str,
    kind: &'static str,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    webhook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    rule: &'static str,
    level: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuditFindingLabels {
    rule: &'static str,
    level: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReportWriteLabels {
    operation: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExemptionLabels {
    source: &'static str,
    rule: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabels {
    registry: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Every metric of the webhook, and the registry they are encoded from.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<WebhookLabels, Histogram>,
    invalid: Family<ReasonLabels, Counter>,
    findings: Family<FindingLabels, Counter>,
    exemptions: Family<ExemptionLabels, Counter>,
    registry_requests: Family<RegistryLabels, Counter>,
    registry_errors: Family<RegistryLabels, Counter>,
    registry_duration: Family<RegistryLabels, Histogram>,
    cache: Family<ResultLabels, Counter>,
    unavailable: Family<ReasonLabels, Counter>,
    policy_reloads: Family<ResultLabels, Counter>,
    certificate_reloads: Family<ResultLabels, Counter>,
    certificate_expiry: Gauge<f64, AtomicU64>,
    audit: Audit,
    record: CatalogRecord,
}

/// Buckets of one catalog recording: a small cluster's snapshot takes milliseconds, 10,000
/// pods about a second, an API server or database in trouble up to the timeout.
const RECORD_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    change: &'static str,
}

/// The periodic catalog recording's metrics (see [`crate::catalog::periodic`]), registered only
/// with `serve --catalog`.
struct CatalogRecord {
    duration: Histogram,
    last_success: Gauge<f64, AtomicU64>,
    runs: Family<ResultLabels, Counter>,
    rows: Family<ChangeLabels, Counter>,
    needing_update: Family<UrgencyLabels, Gauge>,
    data_age: Family<OriginLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UrgencyLabels {
    urgency: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabels {
    origin: String,
}

impl Default for CatalogRecord {
    fn default() -> Self {
        CatalogRecord {
            duration: Histogram::new(RECORD_BUCKETS),
            last_success: Gauge::default(),
            runs: Family::default(),
            rows: Family::default(),
            needing_update: Family::default(),
            data_age: Family::default(),
        }
    }
}

impl CatalogRecord {
    fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "tollgate_catalog_record_duration",
            "Time one catalog recording took: listing live state and writing the snapshot",
            Unit::Seconds,
            self.duration.clone(),
        );
        registry.register_with_unit(
            "tollgate_catalog_record_last_success_timestamp",
            "When the last successful catalog recording finished (Unix time)",
            Unit::Seconds,
            self.last_success.clone(),
        );
        registry.register(
            "tollgate_catalog_records",
            "Catalog recordings (snapshots, and the periodic audit's registry events), by result (failure: the API server or the catalog did not answer; admission is not affected)",
            self.runs.clone(),
        );
        registry.register(
            "tollgate_catalog_record_rows",
            "Run intervals the catalog recordings wrote, by change (opened, extended, closed)",
            self.rows.clone(),
        );
        registry.register(
            "tollgate_security_update_needed_running_images",
            "Images running in this cluster that need a security update (a fixed version newer than the installed one), by the highest urgency of their fixes; exported once the catalog holds security data",
            self.needing_update.clone(),
        );
        registry.register_with_unit(
            "tollgate_security_data_age",
            "Age of each security data source in the catalog (debian-tracker, osv) at the last recording",
            Unit::Seconds,
            self.data_age.clone(),
        );
        for result in ["success", "failure"] {
            let _ = self.runs.get_or_create(&ResultLabels { result });
        }
        for change in ["opened", "extended", "closed"] {
            let _ = self.rows.get_or_create(&ChangeLabels { change });
        }
    }
}

/// The periodic audit's gauges (see [`crate::audit::periodic`]).
#[derive(Default)]
struct Audit {
    running_unservable: Gauge,
    rollback_unservable: Gauge,
    declared_unservable: Gauge,
    retention_risk: Gauge,
    findings: Family<AuditFindingLabels, Gauge>,
    images: Gauge,
    last_success: Gauge<f64, AtomicU64>,
    runs: Family<ResultLabels, Counter>,
    commits_not_rolled_out: Gauge,
    oldest_not_rolled_out: Gauge,
    report_writes: Family<ReportWriteLabels, Counter>,
}

impl Audit {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "tollgate_audit_running_unservable_images",
            "Images pods run that the registry can no longer serve end-to-end (the next restart fails to pull)",
            self.running_unservable.clone(),
        );
        registry.register(
            "tollgate_audit_rollback_targets_unservable_images",
            "Rollback targets (images of the ReplicaSets a Deployment keeps) the registry can no longer serve",
            self.rollback_unservable.clone(),
        );
        registry.register(
            "tollgate_audit_declared_unservable_images",
            "Images controllers declare but no pod runs now that the registry can no longer serve",
            self.declared_unservable.clone(),
        );
        registry.register(
            "tollgate_audit_retention_risk_images",
            "Running or rollback-target images the policy's retention rule deletes on its next run",
            self.retention_risk.clone(),
        );
        registry.register(
            "tollgate_audit_findings",
            "Images with a finding of each rule (policy rule id or audit finding kind) and level, as of the last successful audit",
            self.findings.clone(),
        );
        registry.register(
            "tollgate_audit_images",
            "Distinct images the last successful audit checked",
            self.images.clone(),
        );
        registry.register_with_unit(
            "tollgate_audit_last_success_timestamp",
            "When the last successful audit finished (Unix time)",
            Unit::Seconds,
            self.last_success.clone(),
        );
        registry.register(
            "tollgate_audit_runs",
            "Audit runs, by result (failure: the API server or a registry did not answer; the gauges keep their values)",
            self.runs.clone(),
        );
        for result in ["success", "failure"] {
            let _ = self.runs.get_or_create(&ResultLabels { result });
        }
    }

    /// The OpenReports writes, only when the audit writes Reports.
    fn register_reports(&self, registry: &mut Registry) {
        registry.register(
            "tollgate_audit_report_writes",
            "OpenReports Reports the periodic audit wrote, by operation (apply, or delete of a stale one) and result",
            self.report_writes.clone(),
        );
        for operation in ["apply", "delete"] {
            for result in ["success", "failure"] {
                let _ = self
                    .report_writes
                    .get_or_create(&ReportWriteLabels { operation, result });
            }
        }
    }

    /// The rollout gauges, only when the audit compares a deploy repository.
    fn register_rollout(&self, registry: &mut Registry) {
        registry.register(
            "tollgate_audit_not_rolled_out_commits",
            "Deploy-repo commits merged but not rolled out, past the grace period (tollgate rollout)",
            self.commits_not_rolled_out.clone(),
        );
        registry.register_with_unit(
            "tollgate_audit_oldest_not_rolled_out_age",
            "Age of the oldest deploy-repo commit merged but not rolled out (0 when there is none)",
            Unit::Seconds,
            self.oldest_not_rolled_out.clone(),
        );
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    /// Every metric but the audit's registered, the fixed-label series at 0.
    pub fn new() -> Self {
        Self::with_audit(false, false)
    }

    /// Every metric registered, the audit's too when `audit`.
    pub fn with_audit(audit: bool, rollout: bool) -> Self {
        Self::with_audit_reports(audit, rollout, false)
    }

    /// Every metric registered, the audit's when `audit`, its rollout gauges when `rollout`,
    /// and its OpenReports write counters when `reports`.
    pub fn with_audit_reports(audit: bool, rollout: bool, reports: bool) -> Self {
        let mut registry = Registry::default();
        let requests = Family::default();
        registry.register(
            "tollgate_admission_requests",
            "AdmissionReview requests answered, by webhook, operation, kind and decision",
            requests.clone(),
        );
        let duration = Family::new_with_constructor(latency as fn() -> Histogram);
        registry.register_with_unit(
            "tollgate_admission_duration",
            "Time from the request's arrival to its answer, registry walks included",
            Unit::Seconds,
            duration.clone(),
        );
        let invalid = Family::default();
        registry.register(
            "tollgate_admission_invalid_requests",
            "Requests answered with an HTTP error because they are not AdmissionReviews, by reason",
            invalid.clone(),
        );
        let findings = Family::default();
        registry.register(
            "tollgate_findings",
            "Findings reported at admission (denials and warnings), by rule and level",
            findings.clone(),
        );
        let exemptions = Family::default();
        registry.register(
            "tollgate_exemptions_used",
            "Exemptions used: exempt namespaces (rule \"all\") and policy exemptions, by rule",
            exemptions.clone(),
        );
        let registry_requests = Family::default();
        registry.register(
            "tollgate_registry_requests",
            "HTTP requests sent to registries",
            registry_requests.clone(),
        );
        let registry_errors = Family::default();
        registry.register(
            "tollgate_registry_errors",
            "Registry requests that got no answer, or a 429 or 5xx answer",
            registry_errors.clone(),
        );
        let registry_duration = Family::new_with_constructor(latency as fn() -> Histogram);
        registry.register_with_unit(
            "tollgate_registry_request_duration",
            "Registry request latency (headers and body)",
            Unit::Seconds,
            registry_duration.clone(),
        );
        let cache = Family::default();
        registry.register(
            "tollgate_registry_cache",
            "Image walks answered entirely from the resolver's cache (hit) or not (miss)",
            cache.clone(),
        );
        let unavailable = Family::default();
        registry.register(
            "tollgate_registry_unavailable",
            "Images whose registry-backed rules could not be evaluated, by reason (timeout, error)",
            unavailable.clone(),
        );
        let policy_reloads = Family::default();
        registry.register(
            "tollgate_policy_reloads",
            "Policy file reloads, by result (success, failure: the previous policy stays)",
            policy_reloads.clone(),
        );
        let certificate_reloads = Family::default();
        registry.register(
            "tollgate_certificate_reloads",
            "Serving certificate reloads, by result (success, failure: the previous one stays)",
            certificate_reloads.clone(),
        );
        let certificate_expiry = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "tollgate_certificate_expiry",
            "Time until the serving certificate expires (negative once it has)",
            Unit::Seconds,
            certificate_expiry.clone(),
        );
        // Series with fixed label values start at 0, so that rate() and alerts on them work
        // before the first event.
        for result in ["hit", "miss"] {
            let _ = cache.get_or_create(&ResultLabels { result });
        }
        for result in ["success", "failure"] {
            let _ = policy_reloads.get_or_create(&ResultLabels { result });
            let _ = certificate_reloads.get_or_create(&ResultLabels { result });
        }
        for reason in ["timeout", "error"] {
            let _ = unavailable.get_or_create(&ReasonLabels { reason });
        }
        let audit_metrics = Audit::default();
        if audit {
            audit_metrics.register(&mut registry);
        }
        if rollout {
            audit_metrics.register_rollout(&mut registry);
        }
        if reports {
            audit_metrics.register_reports(&mut registry);
        }
        Metrics {
            registry,
            requests,
            duration,
            invalid,
            findings,
            exemptions,
            registry_requests,
            registry_errors,
            registry_duration,
            cache,
            unavailable,
            policy_reloads,
            certificate_reloads,
            certificate_expiry,
            audit: audit_metrics,
            record: CatalogRecord::default(),
        }
    }

    /// Register the periodic catalog recording's metrics (`serve --catalog`).
    pub fn with_catalog_record(mut self) -> Self {
        self.record.register(&mut self.registry);
        self
    }

    /// One answered AdmissionReview.
    pub fn request(
        &self,
        webhook: &'static str,
        operation: &'static str,
        kind: &'static str,
        decision: &'static str,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                webhook,
                operation,
                kind,
                decision,
            })
            .inc();
        self.duration
            .get_or_create(&WebhookLabels { webhook })
            .observe(elapsed.as_secs_f64());
    }

    /// A request answered with an HTTP error.
    pub fn invalid(&self, reason: &'static str) {
        self.invalid.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// A finding reported by `/validate`.
    pub fn finding(&self, rule: &'static str, level: &'static str) {
        self.findings
            .get_or_create(&FindingLabels { rule, level })
            .inc();
    }

    /// `source` is `namespace` or `policy`; `rule` a rule id, or `all`.
    pub fn exemption(&self, source: &'static str, rule: &'static str) {
        self.exemptions
            .get_or_create(&ExemptionLabels { source, rule })
            .inc();
    }

    /// What the registry answered for one request's images: walks answered from the cache
    /// (`hit`) or not (`miss`), and images it did not answer for usefully (`error`) or in time
    /// (`timeout`).
    pub fn registry_answers(&self, a: &Answers) {
        fn count<L: EncodeLabelSet + Clone + Eq + std::hash::Hash>(
            family: &Family<L, Counter>,
            labels: &L,
            n: u64,
        ) {
            if n > 0 {
                family.get_or_create(labels).inc_by(n);
            }
        }
        count(&self.cache, &ResultLabels { result: "hit" }, a.cached);
        count(&self.cache, &ResultLabels { result: "miss" }, a.fetched);
        count(
            &self.unavailable,
            &ReasonLabels { reason: "error" },
            a.failed,
        );
        count(
            &self.unavailable,
            &ReasonLabels { reason: "timeout" },
            a.timed_out,
        );
    }

    /// A policy reload, applied (`ok`) or rejected.
    pub fn policy_reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.policy_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// A certificate reload, applied (`ok`) or rejected.
    pub fn certificate_reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.certificate_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// The exposition in `format`, with the certificate's remaining life as of `expires_in`.
    pub fn encode(&self, expires_in: f64, format: Exposition) -> String {
        self.certificate_expiry.set(expires_in);
        let mut out = String::with_capacity(8 << 10);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        match format {
            Exposition::OpenMetrics => out,
            Exposition::Text => exposition::to_text(&out),
        }
    }
}

/// The periodic audit's runs: a success sets the gauges (finding series it no longer has are
/// dropped); a failure is counted and the gauges keep the previous run's values.
impl Recorder for Metrics {
    fn success(&self, s: &AuditSummary, finished: Timestamp) {
        let a = &self.audit;
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        a.running_unservable
            .set(n(s.count(AuditKind::RunningUnservable)));
        a.rollback_unservable
            .set(n(s.count(AuditKind::RollbackTargetUnservable)));
        a.declared_unservable
            .set(n(s.count(AuditKind::DeclaredUnservable)));
        a.retention_risk.set(n(s.count(AuditKind::RetentionRisk)));
        a.images.set(n(s.images));
        a.findings.clear();
        for ((kind, level), count) in &s.findings {
            a.findings
                .get_or_create(&AuditFindingLabels {
                    rule: kind.as_str(),
                    level: level.as_str(),
                })
                .set(n(*count));
        }
        if let Some((commits, oldest)) = s.rollout {
            a.commits_not_rolled_out.set(n(commits));
            a.oldest_not_rolled_out.set(oldest.max(0));
        }
        a.last_success.set(finished.as_millisecond() as f64 / 1e3);
        a.runs
            .get_or_create(&ResultLabels { result: "success" })
            .inc();
    }

    fn failure(&self) {
        self.audit
            .runs
            .get_or_create(&ResultLabels { result: "failure" })
            .inc();
    }

    fn catalog_failed(&self) {
        self.record
            .runs
            .get_or_create(&ResultLabels { result: "failure" })
            .inc();
    }

    fn reports_written(&self, w: &ReportWrites) {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        for (operation, result, count) in [
            ("apply", "success", w.applied),
            ("apply", "failure", w.apply_failed),
            ("delete", "success", w.deleted),
            ("delete", "failure", w.delete_failed),
        ] {
            self.audit
                .report_writes
                .get_or_create(&ReportWriteLabels { operation, result })
                .inc_by(n(count));
        }
    }
}

/// The periodic catalog recording: a success sets the last-success time and counts the rows; a
/// failure is counted.
impl RecordObserver for Metrics {
    fn recorded(&self, s: &RecordSummary, took: Duration, finished: Timestamp) {
        let r = &self.record;
        r.duration.observe(took.as_secs_f64());
        r.last_success.set(finished.as_millisecond() as f64 / 1e3);
        r.runs
            .get_or_create(&ResultLabels { result: "success" })
            .inc();
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        for (change, count) in [
            ("opened", s.recorded.opened),
            ("extended", s.recorded.extended),
            ("closed", s.recorded.closed),
        ] {
            r.rows
                .get_or_create(&ChangeLabels { change })
                .inc_by(n(count));
        }
        if let Some(g) = &s.security {
            for (urgency, count) in URGENCIES.iter().zip(g.running_needing_update) {
                r.needing_update
                    .get_or_create(&UrgencyLabels { urgency })
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
            for (origin, age) in &g.data_age {
                r.data_age
                    .get_or_create(&OriginLabels {
                        origin: origin.clone(),
                    })
                    .set(*age);
            }
        }
    }

    fn record_failed(&self, took: Duration) {
        let r = &self.record;
        r.duration.observe(took.as_secs_f64());
        r.runs
            .get_or_create(&ResultLabels { result: "failure" })
            .inc();
    }
}

/// The registry client's requests, counted into [`Metrics`].
pub struct RegistryObserver(pub Arc<Metrics>);

impl RequestObserver for RegistryObserver {
    fn observe(&self, registry: &RegistryHost, elapsed: Duration, status: Option<u16>) {
        let labels = RegistryLabels {
            registry: registry.to_string(),
        };
        let m = &self.0;
        m.registry_requests.get_or_create(&labels).inc();
        if status.is_none_or(|s| s == 429 || s >= 500) {
            m.registry_errors.get_or_create(&labels).inc();
        }
        m.registry_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Level;

    /// The catalog recording's series: absent without a catalog; with one, every fixed
    /// label at 0 from the start, then a success and a failure (a recording's, and a periodic
    /// audit's that could not write its events) counted.
    #[test]
    fn the_catalog_recordings_are_counted_only_with_a_catalog() {
        let without = Metrics::new().encode(0.0, Exposition::Text);
        assert!(!without.contains("tollgate_catalog"), "{without}");
        let m = Metrics::new().with_catalog_record();
        let before = m.encode(0.0, Exposition::Text);
        for sample in [
            "tollgate_catalog_records_total{result=\"failure\"} 0",
            "tollgate_catalog_record_rows_total{change=\"closed\"} 0",
        ] {
            assert!(before.contains(sample), "{sample}:\n{before}");
        }
        let summary = RecordSummary {
            recorded: crate::catalog::Recorded {
                opened: 3,
                extended: 5,
                closed: 1,
                stale: false,
            },
            pending: 2,
            security: Some(crate::catalog::periodic::SecurityGauges {
                running_needing_update: [0, 0, 1, 0, 2, 0],
                data_age: vec![("debian-tracker".into(), 3600)],
            }),
        };
        m.recorded(
            &summary,
            Duration::from_millis(40),
            Timestamp::from_second(1_700_000_000).unwrap(),
        );
        m.record_failed(Duration::from_secs(2));
        m.catalog_failed();
        let text = m.encode(0.0, Exposition::Text);
        for sample in [
            "tollgate_catalog_records_total{result=\"success\"} 1",
            "tollgate_catalog_records_total{result=\"failure\"} 2",
            "tollgate_catalog_record_rows_total{change=\"opened\"} 3",
            "tollgate_catalog_record_rows_total{change=\"extended\"} 5",
            "tollgate_catalog_record_rows_total{change=\"closed\"} 1",
            "tollgate_catalog_record_last_success_timestamp_seconds 1700000000.0",
            "tollgate_catalog_record_duration_seconds_count 2",
            "tollgate_catalog_record_duration_seconds_bucket{le=\"0.05\"} 1",
            "tollgate_security_update_needed_running_images{urgency=\"high\"} 2",
            "tollgate_security_update_needed_running_images{urgency=\"low\"} 1",
            "tollgate_security_update_needed_running_images{urgency=\"medium\"} 0",
            "tollgate_security_data_age_seconds{origin=\"debian-tracker\"} 3600",
        ] {
            assert!(text.contains(sample), "{sample}:\n{text}");
        }
    }

    #[test]
    fn names_end_in_total_seconds_or_bytes() {
        let m = Metrics::with_audit_reports(true, true, true);
        let mut summary = AuditSummary {
            images: 2,
            ..Default::default()
        };
        summary.kinds.insert(AuditKind::RunningUnservable, 1);
        summary
            .findings
            .insert((AuditKind::RunningUnservable.into(), Level::Deny), 1);
        m.success(&summary, Timestamp::from_second(1_700_000_000).unwrap());
        m.failure();
        m.reports_written(&ReportWrites {
            applied: 3,
            apply_failed: 1,
            deleted: 2,
            delete_failed: 0,
        });
        m.request(
            "validate",
            "CREATE",
            "Pod",
            "allow",
            Duration::from_micros(300),
        );
        m.invalid("not-json");
        m.finding("tag-latest", "deny");
        m.exemption("namespace", "all");
        m.registry_answers(&Answers {
            cached: 1,
            timed_out: 1,
            ..Answers::default()
        });
        m.policy_reload(false);
        m.certificate_reload(true);
        RegistryObserver(Arc::new(Metrics::new())).observe(
            &"r.example.org".parse().unwrap(),
            Duration::from_millis(3),
            None,
        );
        let text = m.encode(3600.0, Exposition::OpenMetrics);
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let name = line.split(['{', ' ']).next().unwrap();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum");
            assert!(
                base.ends_with("_total")
                    || base.ends_with("_seconds")
                    || base.ends_with("_bytes")
                    || base.ends_with("_images")
                    || base.ends_with("_commits")
                    || base == "tollgate_audit_findings",
                "{line}"
            );
        }
        assert!(
            text.contains(
                "tollgate_admission_duration_seconds_bucket{le=\"0.0005\",webhook=\"validate\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("tollgate_certificate_expiry_seconds 3600.0"),
            "{text}"
        );
        assert!(
            text.contains("tollgate_policy_reloads_total{result=\"failure\"} 1"),
            "{text}"
        );
        for sample in [
            "tollgate_audit_running_unservable_images 1",
            "tollgate_audit_images 2",
            "tollgate_audit_findings{rule=\"running-unservable\",level=\"deny\"} 1",
            "tollgate_audit_last_success_timestamp_seconds 1700000000.0",
            "tollgate_audit_runs_total{result=\"success\"} 1",
            "tollgate_audit_runs_total{result=\"failure\"} 1",
            "tollgate_audit_report_writes_total{operation=\"apply\",result=\"success\"} 3",
            "tollgate_audit_report_writes_total{operation=\"apply\",result=\"failure\"} 1",
            "tollgate_audit_report_writes_total{operation=\"delete\",result=\"success\"} 2",
            "tollgate_audit_report_writes_total{operation=\"delete\",result=\"failure\"} 0",
        ] {
            assert!(text.contains(sample), "{sample} missing:\n{text}");
        }
        assert!(
            !Metrics::new()
                .encode(0.0, Exposition::Text)
                .contains("tollgate_audit")
        );
    }

    /// What `promtool check metrics` first complained about: in the text format, every sample
    /// belongs to a family with help and a type (a counter's family is named `_total`).
    #[test]
    fn every_sample_of_the_text_format_has_its_familys_help_and_type() {
        let m = Metrics::with_audit_reports(true, true, true);
        m.finding("tag-latest", "deny");
        m.request("mutate", "CREATE", "Pod", "patch", Duration::from_millis(2));
        let text = m.encode(1.0, Exposition::Text);
        let mut helped = std::collections::HashMap::new();
        for line in text.lines() {
            let words: Vec<&str> = line.splitn(4, ' ').collect();
            match words.as_slice() {
                ["#", "HELP", name, ..] => {
                    helped.insert(name.to_string(), None);
                }
                ["#", "TYPE", name, kind] => {
                    assert_eq!(helped.insert(name.to_string(), Some(*kind)), Some(None));
                }
                ["#", ..] => panic!("{line}: not a text format 0.0.4 comment"),
                _ => {
                    let sample = line.split(['{', ' ']).next().unwrap();
                    let family = ["_bucket", "_sum", "_count"]
                        .iter()
                        .filter_map(|s| sample.strip_suffix(s))
                        .find(|f| helped.get(*f) == Some(&Some("histogram")))
                        .unwrap_or(sample);
                    assert!(
                        matches!(helped.get(family), Some(Some(_))),
                        "{line}: no help and type for {family}\n{text}"
                    );
                }
            }
        }
        assert!(
            text.contains("# TYPE tollgate_findings_total counter\n"),
            "{text}"
        );
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
    }

    #[test]
    fn unknown_kinds_do_not_become_label_values() {
        assert_eq!(kind_label("Deployment"), "Deployment");
        assert_eq!(kind_label("Anything-an-attacker-sends"), "other");
    }
}
