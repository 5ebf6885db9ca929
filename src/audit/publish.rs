//! The periodic audit's OpenReports Reports written through the API server (`tollgate serve
//! --audit-reports`): each by server-side apply, then the tollgate-managed Reports of workloads
//! that are gone deleted, so the set stays as large as the set of workloads. Shell: the API
//! server, through [`Cluster`]. Every failure is counted and logged in one line per run; none
//! stops the others or the run.

use std::collections::BTreeSet;
use std::time::Duration;

use super::openreports;
use crate::cluster::kube::{Cluster, ClusterError};
use crate::report::error_text;

/// Objects per page when listing the Reports.
const PAGE_SIZE: u32 = 500;
/// Reports applied at the same time.
const REPORT_WRITES: usize = 4;
/// Longest one write of a Report (an apply, the listing, a delete) may take.
const REPORT_DEADLINE: Duration = Duration::from_secs(10);

/// How the periodic audit writes OpenReports Reports: one per workload, by server-side apply,
/// and the tollgate-managed Reports of workloads that are gone deleted.
#[derive(Debug, Clone)]
pub struct ReportsConfig {
    /// Results listed per Report at most (`--report-max-results`).
    pub max_results: usize,
}

/// What one run's writing of Reports did, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportWrites {
    /// Reports applied.
    pub applied: usize,
    /// Reports the API server refused, or that did not answer in time.
    pub apply_failed: usize,
    /// Stale Reports deleted (their workload is gone).
    pub deleted: usize,
    /// Stale Reports that could not be deleted, or 1 when the Reports could not be listed.
    pub delete_failed: usize,
}

/// One Report applied within `deadline`.
async fn apply(
    cluster: &Cluster,
    r: &openreports::Report,
    deadline: Duration,
) -> Result<Result<(), ClusterError>, tokio::time::error::Elapsed> {
    let body = serde_json::to_value(r).expect("a report serializes");
    tokio::time::timeout(
        deadline,
        cluster.apply_report(&r.metadata.namespace, &r.metadata.name, &body),
    )
    .await
}

/// Apply `reports` (server-side apply, field manager `tollgate`, forced: tollgate owns these
/// objects outright) and delete the tollgate-managed Reports in `namespaces` (all when empty)
/// that are not among them. Every failure is counted and logged, none stops the others.
pub async fn write_reports(
    cluster: &Cluster,
    namespaces: &[String],
    reports: &[openreports::Report],
) -> ReportWrites {
    let deadline = REPORT_DEADLINE;
    let mut writes = ReportWrites::default();
    // The first failure is logged; the rest are counted.
    let mut first_error: Option<String> = None;
    fn note(first: &mut Option<String>, what: String) {
        first.get_or_insert(what);
    }
    let mut applied = Vec::with_capacity(reports.len());
    for chunk in reports.chunks(REPORT_WRITES) {
        let results =
            futures_util::future::join_all(chunk.iter().map(|r| apply(cluster, r, deadline))).await;
        applied.extend(chunk.iter().zip(results));
    }
    for (r, result) in applied {
        match result {
            Ok(Ok(())) => writes.applied += 1,
            Ok(Err(e)) => {
                writes.apply_failed += 1;
                tracing::debug!(namespace = %r.metadata.namespace, name = %r.metadata.name, error = %error_text(&e), "audit: cannot apply report");
                note(&mut first_error, error_text(&e));
            }
            Err(_) => {
                writes.apply_failed += 1;
                note(
                    &mut first_error,
                    format!(
                        "applying report {}/{} took longer than {} s",
                        r.metadata.namespace,
                        r.metadata.name,
                        deadline.as_secs()
                    ),
                );
            }
        }
    }
    let wanted: BTreeSet<(&str, &str)> = reports
        .iter()
        .map(|r| (r.metadata.namespace.as_str(), r.metadata.name.as_str()))
        .collect();
    let selector = format!(
        "{}={}",
        openreports::MANAGED_BY.0,
        openreports::MANAGED_BY.1
    );
    match tokio::time::timeout(
        deadline,
        cluster.list_reports(namespaces, &selector, PAGE_SIZE),
    )
    .await
    {
        Ok(Ok(existing)) => {
            for (namespace, name) in existing {
                if wanted.contains(&(namespace.as_str(), name.as_str())) {
                    continue;
                }
                match tokio::time::timeout(deadline, cluster.delete_report(&namespace, &name)).await
                {
                    Ok(Ok(())) => writes.deleted += 1,
                    Ok(Err(e)) => {
                        writes.delete_failed += 1;
                        note(&mut first_error, error_text(&e));
                    }
                    Err(_) => {
                        writes.delete_failed += 1;
                        note(
                            &mut first_error,
                            format!("deleting report {namespace}/{name} timed out"),
                        );
                    }
                }
            }
        }
        Ok(Err(e)) => {
            writes.delete_failed += 1;
            note(&mut first_error, error_text(&e));
        }
        Err(_) => {
            writes.delete_failed += 1;
            note(&mut first_error, "listing the reports timed out".to_owned());
        }
    }
    if let Some(error) = first_error {
        // One line per run, whatever the number of failures: a missing CRD fails every
        // Report alike.
        tracing::warn!(
            applied = writes.applied,
            apply_failed = writes.apply_failed,
            deleted = writes.deleted,
            delete_failed = writes.delete_failed,
            first_error = %error,
            "audit: OpenReports reports not all written (is the reports.openreports.io CRD installed, and may tollgate write it?)"
        );
    }
    writes
}
