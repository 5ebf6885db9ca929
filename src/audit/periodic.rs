//! The periodic audit of `tollgate serve --audit-interval`: the same run as `tollgate audit`
//! (live state from the API server, every distinct image checked against the policy and the
//! registry), on its own task, through the webhook's long-lived resolver and its caches. Each
//! run's outcome goes to a [`Recorder`] (the webhook's metrics export it as gauges); this module
//! knows nothing of the webhook.
//!
//! A run that fails (the API server or a registry did not answer) keeps the previous gauge
//! values, counts a failure and logs one warning line. With `--audit-reports`, a run that
//! listed live state also writes its OpenReports Reports ([`super::publish`]), registry errors
//! and all: those results say `error`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use super::openreports;
use super::publish::{self, ReportWrites, ReportsConfig};
use super::run::{self, AuditReport};
use crate::catalog::{Catalog, CatalogUrl, Create};
use crate::cluster::LiveState;
use crate::cluster::kube::{Cluster, ClusterError};
use crate::git::DeployRepo;
use crate::policy::{AuditKind, FindingKind, Level, Policy};
use crate::registry::Resolver;
use crate::registry::pull::PullSecretSource;
use crate::report::error_text;
use crate::rollout::{self, RolloutError};

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
    /// Images walked at the same time.
    pub jobs: usize,
    /// Write the results as OpenReports Reports (`--audit-reports`); `None`: never written.
    pub reports: Option<ReportsConfig>,
    /// Record the running digests each run finds unservable (or servable again) as registry
    /// events in this catalog (`serve --catalog --cluster-name`); `None`: not recorded.
    pub catalog: Option<CatalogUrl>,
}

/// Where the periodic rollout report reads the deploy repository (a checkout kept current
/// beside the server, e.g. by a git-sync sidecar).
#[derive(Debug, Clone)]
pub struct RolloutSource {
    /// The repository (any path inside its work tree).
    pub path: PathBuf,
    /// `None`: the remote's default branch, else HEAD.
    pub branch: Option<String>,
    /// How long a merged commit may wait for its rollout before it counts.
    pub grace: Duration,
}

/// What the gauges show of one successful run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSummary {
    /// Distinct images audited.
    pub images: usize,
    /// Images with a finding of each audit kind.
    pub kinds: BTreeMap<AuditKind, usize>,
    /// Images with at least one finding of each (kind, level).
    pub findings: BTreeMap<(FindingKind, Level), usize>,
    /// With a repository: commits merged but not rolled out past the grace period, and the
    /// age in seconds of the oldest of them (0 when there is none).
    pub rollout: Option<(usize, i64)>,
}

impl AuditSummary {
    /// The counts of `report`.
    pub fn of(report: &AuditReport) -> AuditSummary {
        let mut s = AuditSummary {
            images: report.images.len(),
            ..AuditSummary::default()
        };
        for image in &report.images {
            // Sorted, so that the findings of one kind are next to each other.
            let mut pairs: Vec<(FindingKind, Level)> =
                image.findings.iter().map(|f| (f.kind, f.level)).collect();
            pairs.sort();
            pairs.dedup();
            for &key in &pairs {
                *s.findings.entry(key).or_default() += 1;
            }
            let mut kinds: Vec<AuditKind> = pairs
                .iter()
                .filter_map(|(k, _)| match k {
                    FindingKind::Audit(a) => Some(*a),
                    FindingKind::Rule(_) => None,
                })
                .collect();
            kinds.dedup();
            for kind in kinds {
                *s.kinds.entry(kind).or_default() += 1;
            }
        }
        s
    }

    /// Images with a finding of `kind`.
    pub fn count(&self, kind: AuditKind) -> usize {
        self.kinds.get(&kind).copied().unwrap_or(0)
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditRunError {
    /// The API server could not be listed.
    #[error("cannot read live state")]
    Cluster(#[from] ClusterError),
    /// A registry did not answer for some images: the report would be incomplete.
    #[error("{} image(s) could not be checked; first: {}", .0.len(), .0.first().map_or("", String::as_str))]
    Incomplete(Vec<String>),
    /// The run took longer than its timeout.
    #[error("the run took longer than {} s", .0.as_secs_f64())]
    TimedOut(Duration),
    /// The deploy repository could not be compared with live state.
    #[error("rollout report")]
    Rollout(#[source] RolloutError),
    /// The blocking task of the rollout report panicked or was cancelled.
    #[error("rollout report")]
    RolloutTask(#[source] tokio::task::JoinError),
}

/// Where each run's outcome goes.
pub trait Recorder: Send + Sync {
    /// A successful run, finished at `finished`.
    fn success(&self, summary: &AuditSummary, finished: Timestamp);
    /// A failed run: the previous values stay.
    fn failure(&self);
    /// What writing the OpenReports Reports did (only with [`AuditConfig::reports`]).
    fn reports_written(&self, writes: &ReportWrites);
    /// Recording the registry events into the catalog failed (only with
    /// [`AuditConfig::catalog`]); the run itself does not fail for it.
    fn catalog_failed(&self) {}
}

/// The policy and the resolver in force now (a reloaded policy applies from the next run).
pub type Current = dyn Fn() -> (Arc<Policy>, Option<Arc<Resolver>>) + Send + Sync;

/// The rollout report's numbers for the gauges: overdue commits, and the oldest one's age.
fn rollout_numbers(
    source: &RolloutSource,
    state: &LiveState,
    namespaces: &[String],
    now: Timestamp,
) -> Result<(usize, i64), RolloutError> {
    let repo = DeployRepo::discover(&source.path)?;
    let branch = match &source.branch {
        Some(b) => b.clone(),
        None => repo.remote_head("origin").unwrap_or_else(|| "HEAD".into()),
    };
    let head = repo.commit(&branch)?;
    let report = rollout::report(
        &repo,
        state,
        &rollout::Options {
            branch,
            head,
            now,
            grace: source.grace,
            namespaces,
        },
    )?;
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

/// One audit at `now` (both halves, the rollout report and the images, judge at the same
/// instant): live state, inventory, checks. `Err` when the API server could not be listed or an
/// image could not be checked (the report is then incomplete and not exported). With
/// [`AuditConfig::reports`], the Reports are written once live state is listed, even when an
/// image could not be checked: that image's results say `error`.
pub async fn run_once(
    config: &AuditConfig,
    policy: &Arc<Policy>,
    resolver: Option<&Arc<Resolver>>,
    pull_secrets: Option<&dyn PullSecretSource>,
    now: Timestamp,
    recorder: &dyn Recorder,
) -> Result<AuditSummary, AuditRunError> {
    let cluster = Cluster::connect(config.kubeconfig.as_deref(), config.context.as_deref()).await?;
    // Half the run's time at most, so that the registry half has the rest.
    let objects = cluster
        .list(&config.namespaces, PAGE_SIZE, config.timeout / 2)
        .await?;
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
                tokio::task::spawn_blocking(move || {
                    rollout_numbers(&source, &state, &namespaces, now)
                })
                .await
                .map_err(AuditRunError::RolloutTask)?
                .map_err(AuditRunError::Rollout)?,
            )
        }
        None => None,
    };
    let inventory = super::inventory(&state);
    let pull = match (pull_secrets, resolver) {
        (Some(source), Some(_)) => {
            let approved = super::pull::approved(policy, &inventory);
            let read = super::pull::read(
                source,
                super::pull::wants(&objects, policy.workloads()),
                &approved,
            );
            // A quarter of the run at most: an API server that lists but stalls on secrets
            // leaves the walks their time, with the server's own credentials.
            let limit = config.timeout / 4;
            tokio::time::timeout(limit, read).await.unwrap_or_else(|_| {
                tracing::warn!(
                    limit_s = limit.as_secs_f64(),
                    "audit: the API server did not answer for the pull secrets in time; \
                     images are walked with the server's own registry credentials"
                );
                Default::default()
            })
        }
        _ => Default::default(),
    };
    let report = run::audit(
        policy,
        resolver,
        &pull,
        inventory,
        now,
        config.jobs.max(1),
        &|| {},
    )
    .await;
    if let Some(rc) = &config.reports {
        let reports = openreports::reports(
            &report,
            &state,
            &openreports::Options {
                policy: policy.name(),
                now,
                max_results: rc.max_results,
            },
        );
        let writes = publish::write_reports(&cluster, &config.namespaces, &reports).await;
        recorder.reports_written(&writes);
    }
    if let Some(url) = &config.catalog {
        // What was checked is recorded even when other images could not be: the rule only
        // claims what a walk answered.
        record_events(url, &report, now, recorder).await;
    }
    if !report.errors.is_empty() {
        return Err(AuditRunError::Incomplete(report.errors));
    }
    let mut summary = AuditSummary::of(&report);
    summary.rollout = rollout;
    Ok(summary)
}

/// The registry events of `report` into the catalog at `url`. A catalog that fails is one
/// warning (the URL's password redacted) and one failure told to `recorder`, never a failed
/// run.
async fn record_events(
    url: &CatalogUrl,
    report: &AuditReport,
    now: Timestamp,
    recorder: &dyn Recorder,
) {
    let found = super::servability(report);
    if found.unservable.is_empty() && found.servable.is_empty() {
        return;
    }
    let done = async {
        let catalog = Catalog::open(url, Create::No).await?;
        let done = async {
            catalog.check_schema().await?;
            catalog.record_servability(&found, now).await
        }
        .await;
        catalog.close().await;
        done
    }
    .await;
    match done {
        Ok(e) => tracing::info!(
            unservable = e.unservable,
            still_unservable = e.still_unservable,
            servable = e.servable,
            "audit: registry events recorded in the catalog"
        ),
        Err(e) => {
            tracing::warn!(
                catalog = %url,
                error = %error_text(&e),
                "audit: cannot record registry events in the catalog; the audit goes on"
            );
            recorder.catalog_failed();
        }
    }
}

/// One run with its timeout, recorded and logged.
pub async fn run_and_record(
    config: &AuditConfig,
    policy: &Arc<Policy>,
    resolver: Option<&Arc<Resolver>>,
    pull_secrets: Option<&dyn PullSecretSource>,
    recorder: &dyn Recorder,
) {
    let started = tokio::time::Instant::now();
    let now = Timestamp::now();
    let result = tokio::time::timeout(
        config.timeout,
        run_once(config, policy, resolver, pull_secrets, now, recorder),
    )
    .await
    .unwrap_or(Err(AuditRunError::TimedOut(config.timeout)));
    match result {
        Ok(summary) => {
            tracing::info!(
                images = summary.images,
                running_unservable = summary.count(AuditKind::RunningUnservable),
                rollback_targets_unservable = summary.count(AuditKind::RollbackTargetUnservable),
                declared_unservable = summary.count(AuditKind::DeclaredUnservable),
                retention_risk = summary.count(AuditKind::RetentionRisk),
                commits_not_rolled_out = summary.rollout.map(|r| r.0),
                duration_ms = started.elapsed().as_secs_f64() * 1e3,
                "audit run"
            );
            recorder.success(&summary, Timestamp::now());
        }
        Err(e) => {
            tracing::warn!(
                error = %error_text(&e),
                duration_ms = started.elapsed().as_secs_f64() * 1e3,
                "audit run failed; the audit gauges keep the previous run's values"
            );
            recorder.failure();
        }
    }
}

/// Audit every interval (the first run at once) with the policy and resolver `current` gives
/// when the run starts, and the workloads' pull secrets through `pull_secrets`; stops when
/// `stop` changes, in the middle of a run too.
pub async fn run_periodically(
    config: AuditConfig,
    current: Arc<Current>,
    recorder: Arc<dyn Recorder>,
    pull_secrets: Option<Arc<dyn PullSecretSource>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let (policy, resolver) = current();
        let run = run_and_record(
            &config,
            &policy,
            resolver.as_ref(),
            pull_secrets.as_deref(),
            recorder.as_ref(),
        );
        tokio::select! {
            () = run => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::run::{AuditFinding, ImageResult};
    use crate::policy::RuleId;
    use crate::reference::WrittenImage;

    fn finding(kind: impl Into<FindingKind>, level: Level) -> AuditFinding {
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
                image: WrittenImage::new("r.example.org/a:1"),
                running: None,
                usages: vec![],
            },
            findings,
            registry_requests: 0,
            checks: vec![],
        };
        let report = AuditReport {
            images: vec![
                image(vec![
                    finding(AuditKind::RunningUnservable, Level::Deny),
                    finding(AuditKind::RunningUnservable, Level::Deny),
                    finding(AuditKind::RetentionRisk, Level::Warn),
                    finding(AuditKind::RetentionRisk, Level::Deny),
                    finding(RuleId::TagLatest, Level::Warn),
                ]),
                image(vec![finding(AuditKind::RetentionRisk, Level::Warn)]),
                image(vec![]),
            ],
            errors: vec![],
            registry_requests: 0,
            retention_not_simulated: vec![],
            registry_checked: true,
        };
        let s = AuditSummary::of(&report);
        assert_eq!(s.images, 3);
        assert_eq!(s.count(AuditKind::RunningUnservable), 1);
        assert_eq!(s.count(AuditKind::RetentionRisk), 2);
        assert_eq!(s.count(AuditKind::RollbackTargetUnservable), 0);
        assert_eq!(
            s.findings[&(AuditKind::RunningUnservable.into(), Level::Deny)],
            1
        );
        assert_eq!(s.findings[&(RuleId::TagLatest.into(), Level::Warn)], 1);
        assert_eq!(
            s.findings[&(AuditKind::RetentionRisk.into(), Level::Warn)],
            2
        );
    }
}
