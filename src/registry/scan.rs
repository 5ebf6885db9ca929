//! `registry scan`: walk the catalog and every tag through the registry API, resolve each end
//! to end, and report broken tags and orphan indexes. This is seed 004's periodic integrity
//! probe; it goes through the API because a scan of the registry's storage misses what the API
//! actually serves.

use futures_util::StreamExt as _;
use globset::GlobMatcher;
use serde::Serialize;

use super::RegistryError;
use super::http::Endpoint;
use super::resolve::{Problem, Resolver};
use crate::reference::{ImageRef, RegistryHost};

/// A tag that does not resolve end to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokenTag {
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub orphan_index: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<String>,
    pub problems: Vec<Problem>,
}

/// Something the scan could not check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanError {
    pub subject: String,
    pub message: String,
}

/// The outcome of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    pub registry: String,
    pub repositories: usize,
    pub tags: usize,
    pub pullable: usize,
    pub broken: Vec<BrokenTag>,
    pub errors: Vec<ScanError>,
    /// HTTP requests the scan sent.
    pub requests: u64,
}

/// Progress, for a progress bar.
pub trait Progress: Sync {
    /// `n` more tags were found to check.
    fn found(&self, n: u64);
    /// One tag was checked.
    fn checked(&self);
}

/// No progress display.
pub struct Silent;

impl Progress for Silent {
    fn found(&self, _: u64) {}
    fn checked(&self) {}
}

/// Scan `host`: every repository of its catalog that matches `repositories` (all when empty) and
/// that the policy approves, every tag of each. The registry must be approved.
pub async fn scan(
    resolver: &Resolver,
    host: &RegistryHost,
    repositories: &[GlobMatcher],
    jobs: usize,
    progress: &dyn Progress,
) -> Result<ScanReport, RegistryError> {
    let ep: Endpoint = resolver.endpoint_for_host(host)?;
    let before = resolver.client().request_count();
    let catalog = resolver.client().catalog(&ep).await?;
    let mut report = ScanReport {
        registry: host.to_string(),
        repositories: 0,
        tags: 0,
        pullable: 0,
        broken: Vec::new(),
        errors: Vec::new(),
        requests: 0,
    };
    let mut images = Vec::new();
    for repo in catalog {
        if !repositories.is_empty() && !repositories.iter().any(|p| p.is_match(&repo)) {
            continue;
        }
        // A registry approved only under a path: the rest of its catalog is not ours to touch.
        let Ok(probe) = format!("{host}/{repo}").parse::<ImageRef>() else {
            report.errors.push(ScanError {
                subject: repo.clone(),
                message: "not a valid repository name".into(),
            });
            continue;
        };
        if resolver.endpoint(&probe).is_err() {
            continue;
        }
        report.repositories += 1;
        match resolver.client().tags(&ep, &repo).await {
            Ok(Some(tags)) => {
                progress.found(tags.len() as u64);
                for tag in tags {
                    match format!("{host}/{repo}:{tag}").parse::<ImageRef>() {
                        Ok(r) => images.push(r),
                        Err(e) => report.errors.push(ScanError {
                            subject: format!("{repo}:{tag}"),
                            message: e.to_string(),
                        }),
                    }
                }
            }
            Ok(None) => {}
            Err(e) => report.errors.push(ScanError {
                subject: repo.clone(),
                message: e.to_string(),
            }),
        }
    }
    report.tags = images.len();
    let results: Vec<_> = futures_util::stream::iter(images.iter())
        .map(|r| async move {
            let res = resolver.resolve(r).await;
            progress.checked();
            res
        })
        .buffered(jobs.max(1))
        .collect()
        .await;
    for (image, result) in images.iter().zip(results) {
        match result {
            Ok(res) if res.is_pullable() => report.pullable += 1,
            Ok(res) => report.broken.push(BrokenTag {
                image: image.to_string(),
                digest: res.digest,
                orphan_index: res.orphan_index,
                unresolved: res.unresolved,
                problems: res.problems,
            }),
            Err(e) => report.errors.push(ScanError {
                subject: image.to_string(),
                message: e.to_string(),
            }),
        }
    }
    report.requests = resolver.client().request_count().saturating_sub(before);
    Ok(report)
}
