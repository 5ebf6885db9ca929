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
use super::runs::Recorded;
use super::sightings::sightings;
use super::store::{Catalog, Create};
use super::url::CatalogUrl;
use crate::cluster::LiveState;
use crate::cluster::kube::{Cluster, ClusterError};
use crate::error_text::error_text;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSummary {
    /// Runs opened, extended and closed.
    pub recorded: Recorded,
    /// Containers that ran no known digest yet.
    pub pending: usize,
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
    *catalog = Some(open);
    Ok(RecordSummary {
        recorded,
        pending: seen.pending.iter().map(|p| p.pods as usize).sum(),
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
