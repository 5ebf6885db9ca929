//! Shell: the clock, once per recording. The periodic recording of `tollgate serve --catalog`:
//! every interval, live state from the API server (the same listing as the periodic audit),
//! turned into run sightings ([`super::sightings`]) and recorded as one snapshot of the cluster.
//!
//! A catalog that is down or refuses the snapshot never reaches admission: this runs on its
//! own task, and a failed recording is one warning line (the URL with its password redacted),
//! one failure counted by the [`RecordObserver`], and a new try at the next interval. The
//! catalog is opened at the first recording, not at start, so that a database that is down
//! when the server starts does not keep the server from serving.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use super::error::CatalogError;
use super::query::RunFilter;
use super::runs::Recorded;
use super::security::{SecurityFilter, SecurityReport};
use super::sightings::sightings;
use super::store::{Catalog, Create};
use super::url::CatalogUrl;
use crate::cluster::LiveState;
use crate::cluster::kube::{Cluster, ClusterError};
use crate::error_text::error_text;
use crate::packages::security::urgency_rank;
use crate::reference::Digest;

/// Objects per page when listing from the API server.
const PAGE_SIZE: u32 = 500;

/// How the periodic recording runs.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    /// Where the catalog is.
    pub catalog: CatalogUrl,
    /// The name this cluster is recorded under.
    pub cluster: String,
    /// Time between the starts of two recordings (the first starts at once).
    pub interval: Duration,
    /// Kubeconfig (`None`: $KUBECONFIG, ~/.kube/config, else the in-cluster service account).
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Kubeconfig context (`None`: the current one).
    pub context: Option<String>,
    /// Longest one recording may take before it counts as failed.
    pub timeout: Duration,
}

/// What one successful recording did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSummary {
    /// Runs opened, extended and closed.
    pub recorded: Recorded,
    /// Containers that ran no known digest yet.
    pub pending: usize,
    /// The security gauges for this cluster, when the catalog holds security data (issue
    /// 16); `None` without data, or when reading the report failed (warned, not a failed
    /// recording).
    pub security: Option<SecurityGauges>,
}

/// The urgencies the security gauges are labelled with, least first: the tracker's words,
/// `not yet assigned` and unknown ones counted as medium.
pub const URGENCIES: [&str; 6] = [
    "end-of-life",
    "unimportant",
    "low",
    "medium",
    "high",
    "critical",
];

/// What `catalog security --running --cluster C` would count, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGauges {
    /// Images running in this cluster that need a security update, by the highest urgency of
    /// their fixes (indexed like [`URGENCIES`]).
    pub running_needing_update: [u64; 6],
    /// Each security data source and its age at the recording, in seconds.
    pub data_age: Vec<(String, i64)>,
}

impl SecurityGauges {
    /// The gauges from a report of the images running in one cluster.
    pub fn from_report(r: &SecurityReport, now: Timestamp) -> SecurityGauges {
        let mut worst: std::collections::BTreeMap<&Digest, u8> = Default::default();
        for g in &r.groups {
            let rank = g
                .fixes
                .iter()
                .map(|f| urgency_rank(f.urgency.as_deref()))
                .max()
                .unwrap_or(3);
            for i in &g.images {
                let e = worst.entry(&i.digest).or_insert(rank);
                *e = (*e).max(rank);
            }
        }
        let mut running_needing_update = [0u64; 6];
        for rank in worst.into_values() {
            running_needing_update[usize::from(rank.min(5))] += 1;
        }
        SecurityGauges {
            running_needing_update,
            data_age: r
                .data
                .iter()
                .map(|d| {
                    (
                        d.origin.clone(),
                        (now.as_second() - d.imported_at.as_second()).max(0),
                    )
                })
                .collect(),
        }
    }
}

/// Why a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The API server could not be listed.
    #[error("cannot read live state")]
    Cluster(#[from] ClusterError),
    /// The catalog could not be opened or written.
    #[error("cannot record into the catalog {url}")]
    Catalog {
        /// Where (password redacted).
        url: CatalogUrl,
        /// Why.
        #[source]
        source: CatalogError,
    },
    /// The recording took longer than its timeout.
    #[error("the recording took longer than {} s", .0.as_secs_f64())]
    TimedOut(Duration),
}

/// Where each recording's outcome goes (the webhook's metrics).
pub trait RecordObserver: Send + Sync {
    /// A recording that took `took` and finished at `finished`.
    fn recorded(&self, summary: &RecordSummary, took: Duration, finished: Timestamp);
    /// A recording that failed after `took`.
    fn record_failed(&self, took: Duration);
}

/// One recording at `now`: list, convert, record. `catalog` is opened when `None` and left
/// `None` after a catalog error, so that the next recording opens it again (and checks its
/// schema again: a newer binary may have migrated it meanwhile).
pub async fn record_once(
    config: &RecordConfig,
    catalog: &mut Option<Catalog>,
    now: Timestamp,
) -> Result<RecordSummary, RecordError> {
    let cluster = Cluster::connect(config.kubeconfig.as_deref(), config.context.as_deref()).await?;
    // The whole cluster, always: a snapshot of some namespaces would close the runs of the
    // others.
    let objects = cluster.list(&[], PAGE_SIZE, config.timeout / 2).await?;
    let (state, _) = LiveState::from_objects(&objects);
    let seen = sightings(&state);
    let failed = |source| RecordError::Catalog {
        url: config.catalog.clone(),
        source,
    };
    let open = match catalog.take() {
        Some(c) => c,
        None => {
            let c = Catalog::open(&config.catalog, Create::No)
                .await
                .map_err(failed)?;
            c.check_schema().await.map_err(failed)?;
            c
        }
    };
    let recorded = open
        .record_runs(&config.cluster, &seen.runs, now)
        .await
        .map_err(failed)?;
    let filter = SecurityFilter {
        runs: RunFilter {
            cluster: Some(config.cluster.clone()),
            namespace: None,
        },
        running: true,
        min_urgency: None,
    };
    let security = match open.security_report(&filter).await {
        Ok(r) if r.data.is_empty() => None,
        Ok(r) => Some(SecurityGauges::from_report(&r, now)),
        Err(e) => {
            tracing::warn!(
                cluster = config.cluster,
                error = %error_text(&e),
                "reading the security report for the metrics failed; the runs were recorded"
            );
            None
        }
    };
    *catalog = Some(open);
    Ok(RecordSummary {
        recorded,
        pending: seen.pending.iter().map(|p| p.pods as usize).sum(),
        security,
    })
}

/// Record every interval (the first at once) until `stop` changes, in the middle of a
/// recording too.
pub async fn run_periodically(
    config: RecordConfig,
    observer: Arc<dyn RecordObserver>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut catalog: Option<Catalog> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let started = tokio::time::Instant::now();
        let now = Timestamp::now();
        let run = async {
            tokio::time::timeout(config.timeout, record_once(&config, &mut catalog, now))
                .await
                .unwrap_or(Err(RecordError::TimedOut(config.timeout)))
        };
        let result = tokio::select! {
            r = run => r,
            _ = stop.changed() => return,
        };
        let took = started.elapsed();
        match result {
            Ok(s) => {
                tracing::info!(
                    cluster = config.cluster,
                    opened = s.recorded.opened,
                    extended = s.recorded.extended,
                    closed = s.recorded.closed,
                    stale = s.recorded.stale,
                    pending = s.pending,
                    duration_ms = took.as_secs_f64() * 1e3,
                    "catalog recording"
                );
                observer.recorded(&s, took, Timestamp::now());
            }
            Err(e) => {
                // error_text prints the redacted URL; the driver's own errors carry none.
                tracing::warn!(
                    cluster = config.cluster,
                    error = %error_text(&e),
                    duration_ms = took.as_secs_f64() * 1e3,
                    "catalog recording failed; admission is not affected, the next one is tried at the next interval"
                );
                observer.record_failed(took);
            }
        }
    }
}
