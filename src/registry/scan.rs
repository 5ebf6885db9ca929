//! `registry scan`: walk the catalog and every tag through the registry API, resolve each end
//! to end, and report broken tags and orphan indexes: the periodic probe that catches an index
//! whose children garbage collection removed before a pipeline fails to pull it. It goes through
//! the API because a scan of the registry's storage misses what the API actually serves.

use futures_util::StreamExt as _;
use globset::GlobMatcher;
use serde::Serialize;

use super::RegistryError;
use super::http::Endpoint;
use super::resolution::Broken;
use super::resolve::Resolver;
use crate::policy::Level;
use crate::policy::eval::Status;
use crate::reference::{Digest, ImageRef, RegistryHost};
use crate::report::error_text;

/// A tag that does not resolve end to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokenTag {
    /// `registry/repository:tag`.
    pub image: ImageRef,
    /// What the tag resolves to, if it resolves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The index answers but every child manifest is gone.
    pub orphan_index: bool,
    /// Why the tag itself does not resolve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<String>,
    /// Every broken piece, with the path to it.
    pub problems: Vec<Broken>,
}

/// A tag whose digest a signature rule covers and that is not signed as the rule requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsignedTag {
    /// `registry/repository:tag`.
    pub image: ImageRef,
    /// What the tag resolves to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The level of the rules that failed.
    pub level: Level,
    /// Why, digest by digest.
    pub message: String,
}

/// Something the scan could not check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanError {
    /// The repository or image.
    pub subject: String,
    /// Why it could not be checked, with its causes.
    pub message: String,
}

/// The outcome of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    /// The registry scanned.
    pub registry: String,
    /// Repositories scanned (in the catalog, matching the patterns, approved by the policy).
    pub repositories: usize,
    /// Tags walked.
    pub tags: usize,
    /// Tags that resolve end to end.
    pub pullable: usize,
    /// Tags that do not.
    pub broken: Vec<BrokenTag>,
    /// Pullable tags that a signature rule covers and that are not signed as it requires.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsigned: Vec<UnsignedTag>,
    /// What could not be checked.
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
        unsigned: Vec::new(),
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
                            message: error_text(&e),
                        }),
                    }
                }
            }
            Ok(None) => {}
            Err(e) => report.errors.push(ScanError {
                subject: repo.clone(),
                message: error_text(&e),
            }),
        }
    }
    report.tags = images.len();
    let policy = resolver.policy();
    let results: Vec<_> = futures_util::stream::iter(images.iter())
        .map(|r| async move {
            let res = resolver.resolve(r).await;
            // A pullable tag a signature rule covers: is its digest signed as required?
            let artifact = r
                .tag()
                .is_some_and(|t| crate::signature::cosign::is_artifact_tag(t.as_str()));
            let signed = match &res {
                Ok(res) if res.is_pullable() && !artifact => Some(
                    resolver
                        .walk(super::facts::signature_status(policy, resolver, r, res))
                        .await,
                ),
                _ => None,
            };
            progress.checked();
            (res, signed)
        })
        .buffered(jobs.max(1))
        .collect()
        .await;
    for (image, (result, signed)) in images.iter().zip(results) {
        match signed {
            Some(Ok((Status::Fail(v), level))) => report.unsigned.push(UnsignedTag {
                image: image.clone(),
                digest: result.as_ref().ok().and_then(|r| r.digest.clone()),
                level: level.unwrap_or(Level::Deny),
                message: v.message,
            }),
            Some(Err(e)) => report.errors.push(ScanError {
                subject: image.to_string(),
                message: format!("cannot read its signatures: {}", error_text(&e)),
            }),
            _ => {}
        }
        match result {
            Ok(res) if res.is_pullable() => report.pullable += 1,
            Ok(res) => report.broken.push(BrokenTag {
                image: image.clone(),
                digest: res.digest,
                orphan_index: res.orphan_index,
                unresolved: res.unresolved,
                problems: res.problems,
            }),
            Err(e) => report.errors.push(ScanError {
                subject: image.to_string(),
                message: error_text(&e),
            }),
        }
    }
    report.requests = resolver.client().request_count().saturating_sub(before);
    Ok(report)
}
