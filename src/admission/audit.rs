//! The periodic audit of `tollgate serve --audit-interval`: the same run as `tollgate audit`
//! (live state from the API server, every distinct image checked against the policy and the
//! registry), on its own task, through the webhook's long-lived resolver and its caches, with
//! the result exported as gauges on the metrics port (see [`super::metrics`]).
//!
//! A run that fails (the API server or a registry did not answer) keeps the previous gauge
//! values, counts a failure and logs one warning line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::audit::run::{
    self, AuditReport, DECLARED_UNSERVABLE, RETENTION_RISK, ROLLBACK_UNSERVABLE, RUNNING_UNSERVABLE,
};
use crate::cluster::LiveState;
use crate::cluster::kube::Cluster;
use crate::policy::Policy;
use crate::registry::Resolver;

use super::metrics::Metrics;

/// Objects per page when listing from the API server.
const PAGE_SIZE: u32 = 500;

/// How the periodic audit runs.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Time between the starts of two runs (the first starts at once).
    pub interval: Duration,
    /// Kubeconfig (`None`: $KUBECONFIG, ~/.kube/config, else the in-cluster service account).
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (`None`: the current one).
    pub context: Option<String>,
    /// Only these namespaces (empty: all).
    pub namespaces: Vec<String>,
    /// Longest one run may take before it counts as failed.
    pub timeout: Duration,
    /// The deploy repository to compare with live state (`tollgate rollout`), for the
    /// not-rolled-out gauges; `None`: those gauges are not exported.
    pub repo: Option<RolloutSource>,
}

/// Where the periodic rollout report reads the deploy repository (a checkout kept current
/// beside the server, e.g. by a git-sync sidecar).
#[derive(Debug, Clone)]
pub struct RolloutSource {
    pub path: PathBuf,
    /// `None`: the remote's default branch, else HEAD.
    pub branch: Option<String>,
    pub grace: Duration,
}

/// What the gauges show of one successful run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSummary {
    /// Distinct images audited.
    pub images: usize,
    pub running_unservable: usize,
    pub rollback_unservable: usize,
    pub declared_unservable: usize,
    pub retention_risk: usize,
    /// Images with at least one finding of each (kind, level).
    pub findings: BTreeMap<(String, &'static str), usize>,
    /// With a repository: commits merged but not rolled out past the grace period, and the
    /// age in seconds of the oldest of them (0 when there is none).
    pub rollout: Option<(usize, i64)>,
}

impl AuditSummary {
    pub fn of(report: &AuditReport) -> AuditSummary {
        let mut s = AuditSummary {
            images: report.images.len(),
            ..AuditSummary::default()
        };
        for image in &report.images {
            let has = |kind: &str| image.findings.iter().any(|f| f.kind == kind);
            s.running_unservable += usize::from(has(RUNNING_UNSERVABLE));
            s.rollback_unservable += usize::from(has(ROLLBACK_UNSERVABLE));
            s.declared_unservable += usize::from(has(DECLARED_UNSERVABLE));
            s.retention_risk += usize::from(has(RETENTION_RISK));
            let mut seen: Vec<(&str, &'static str)> = Vec::new();
            for f in &image.findings {
                let key = (f.kind.as_str(), f.level.as_str());
                if !seen.contains(&key) {
                    seen.push(key);
                    *s.findings.entry((key.0.to_owned(), key.1)).or_default() += 1;
                }
            }
        }
        s
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditRunError {
    #[error("{0}")]
    Cluster(#[from] crate::cluster::kube::ClusterError),
    #[error("{} image(s) could not be checked; first: {}", .0.len(), .0.first().map_or("", String::as_str))]
    Incomplete(Vec<String>),
    #[error("the run took longer than {} s", .0.as_secs_f64())]
    TimedOut(Duration),
    #[error("rollout report: {0}")]
    Rollout(String),
}

/// The rollout report's numbers for the gauges: overdue commits, and the oldest one's age.
fn rollout_numbers(
    source: &RolloutSource,
    state: &LiveState,
    namespaces: &[String],
) -> Result<(usize, i64), String> {
    let repo = crate::git::DeployRepo::discover(&source.path).map_err(|e| e.to_string())?;
    let branch = match &source.branch {
        Some(b) => b.clone(),
        None => repo.remote_head("origin").unwrap_or_else(|| "HEAD".into()),
    };
    let head = repo.commit(&branch).map_err(|e| e.to_string())?;
    let report = crate::rollout::report(
        &repo,
        state,
        &crate::rollout::Options {
            branch,
            head,
            now: Timestamp::now(),
            grace: source.grace,
            namespaces,
        },
    )
    .map_err(|e| e.to_string())?;
    let oldest = report
        .workloads
        .iter()
        .flat_map(|w| &w.not_rolled_out)
        .filter(|c| c.overdue)
        .map(|c| c.age_seconds)
        .max()
        .unwrap_or(0);
    Ok((report.overdue_commits(), oldest))
}

/// One audit: live state, inventory, checks. `Err` when the API server could not be listed or
/// an image could not be checked (the report is then incomplete and not exported).
pub async fn run_once(
    config: &AuditConfig,
    policy: &Arc<Policy>,
    resolver: Option<&Arc<Resolver>>,
    jobs: usize,
) -> Result<AuditSummary, AuditRunError> {
    let cluster = Cluster::connect(config.kubeconfig.as_deref(), config.context.as_deref()).await?;
    let objects = cluster.list(&config.namespaces, PAGE_SIZE).await?;
    let (state, skipped) = LiveState::from_objects(&objects);
    if !skipped.is_empty() {
        tracing::debug!(
            skipped = skipped.len(),
            "audit: objects skipped from live state"
        );
    }
    // git2 and the history walk are blocking work: off the async threads.
    let rollout = match &config.repo {
        Some(source) => {
            let (source, state, namespaces) =
                (source.clone(), state.clone(), config.namespaces.clone());
            Some(
                tokio::task::spawn_blocking(move || rollout_numbers(&source, &state, &namespaces))
                    .await
                    .map_err(|e| AuditRunError::Rollout(e.to_string()))?
                    .map_err(AuditRunError::Rollout)?,
            )
        }
        None => None,
    };
    let inventory = crate::audit::inventory(&state);
    let report = run::audit(
        policy,
        resolver,
        inventory,
        Timestamp::now(),
        jobs.max(1),
        &|| {},
    )
    .await;
    if !report.errors.is_empty() {
        return Err(AuditRunError::Incomplete(report.errors));
    }
    let mut summary = AuditSummary::of(&report);
    summary.rollout = rollout;
    Ok(summary)
}

/// One run with its timeout, recorded into the metrics and the log.
pub async fn run_and_record(
    config: &AuditConfig,
    policy: &Arc<Policy>,
    resolver: Option<&Arc<Resolver>>,
    jobs: usize,
    metrics: &Metrics,
) {
    let started = tokio::time::Instant::now();
    let result = tokio::time::timeout(config.timeout, run_once(config, policy, resolver, jobs))
        .await
        .unwrap_or(Err(AuditRunError::TimedOut(config.timeout)));
    match result {
        Ok(summary) => {
            tracing::info!(
                images = summary.images,
                running_unservable = summary.running_unservable,
                rollback_targets_unservable = summary.rollback_unservable,
                declared_unservable = summary.declared_unservable,
                retention_risk = summary.retention_risk,
                commits_not_rolled_out = summary.rollout.map(|r| r.0),
                duration_ms = started.elapsed().as_secs_f64() * 1e3,
                "audit run"
            );
            metrics.audit_success(&summary, Timestamp::now());
        }
        Err(e) => {
            tracing::warn!(error = %e, duration_ms = started.elapsed().as_secs_f64() * 1e3,
                "audit run failed; the audit gauges keep the previous run's values");
            metrics.audit_failure();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::run::{AuditFinding, ImageResult};
    use crate::policy::Level;

    fn finding(kind: &str, level: Level) -> AuditFinding {
        AuditFinding {
            kind: kind.into(),
            level,
            message: String::new(),
            hint: String::new(),
        }
    }

    #[test]
    fn images_are_counted_once_per_kind() {
        let image = |findings| ImageResult {
            image: crate::audit::AuditImage {
                image: "r.example.org/a:1".into(),
                running: None,
                usages: vec![],
            },
            findings,
            registry_requests: 0,
        };
        let report = AuditReport {
            images: vec![
                image(vec![
                    finding(RUNNING_UNSERVABLE, Level::Deny),
                    finding(RUNNING_UNSERVABLE, Level::Deny),
                    finding("tag-latest", Level::Warn),
                ]),
                image(vec![finding(RETENTION_RISK, Level::Warn)]),
                image(vec![]),
            ],
            errors: vec![],
            registry_requests: 0,
        };
        let s = AuditSummary::of(&report);
        assert_eq!(s.images, 3);
        assert_eq!(s.running_unservable, 1);
        assert_eq!(s.retention_risk, 1);
        assert_eq!(s.rollback_unservable, 0);
        assert_eq!(s.findings[&(RUNNING_UNSERVABLE.to_owned(), "deny")], 1);
        assert_eq!(s.findings[&("tag-latest".to_owned(), "warn")], 1);
    }
}
