//! `catalog sync`: walk a registry through its API (the catalog, each repository's tags, a
//! HEAD per tag) and record what it holds: repositories, tag history, and every manifest the
//! catalog does not hold yet, with its children or config and layers.
//!
//! Incremental by content: a digest already in `manifests` is never fetched again (its rows
//! cannot have changed), so an unchanged registry costs its catalog and tag lists and one HEAD
//! per tag. A new manifest costs one GET, and an image's config one more; layers are never
//! read, their sizes come from the manifest that declares them (and that its digest covers).
//!
//! The registry reads go through [`crate::registry::contents`] and the resolver's client:
//! the policy must approve the registry, and the same bounds, auth and redirect rules hold.

use std::collections::{BTreeSet, HashMap, HashSet};

use futures_util::StreamExt as _;
use globset::GlobMatcher;
use serde::Serialize;

use super::error::CatalogError;
use super::manifest_rows::{ManifestKind, ManifestRecord, PlatformRow, manifest_record};
use super::store::Catalog;
use super::tags::TagSighting;
use crate::reference::{Digest, ImageRef, RegistryHost, Tag};
use crate::registry::contents::{self, TagDigest};
use crate::registry::scan::Progress;
use crate::registry::{Endpoint, RegistryError, Resolver};
use crate::report::error_text;

/// New manifests read and recorded together (with their children): bounds what one
/// repository holds in memory at once.
const MANIFESTS_PER_BATCH: usize = 32;
/// Levels of indexes read below a tag: an index of indexes of images is already unusual.
const MAX_DEPTH: usize = 4;

/// A tag that points elsewhere than the catalog last saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovedTag {
    /// `registry/repository:tag`.
    pub image: ImageRef,
    /// What it pointed at before.
    pub from: Digest,
    /// What it points at now.
    pub to: Digest,
}

/// Something the sync could not read or record; the rest was synced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncProblem {
    /// The repository or `repository:tag`.
    pub subject: String,
    /// Why, with its causes.
    pub message: String,
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// The registry synced.
    pub registry: String,
    /// Repositories synced (in the registry's catalog, matching the patterns, approved).
    pub repositories: usize,
    /// Tags whose digest was read.
    pub tags: usize,
    /// Tags the catalog had not seen before.
    pub new_tags: usize,
    /// Manifests fetched and recorded (indexes, their children, images).
    pub new_manifests: usize,
    /// Tags that moved since the catalog last saw them.
    pub moved_tags: Vec<MovedTag>,
    /// What could not be read or recorded.
    pub errors: Vec<SyncProblem>,
    /// HTTP requests sent to the registry.
    pub requests: u64,
}

/// Why a sync could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The policy does not approve the registry, or it did not answer its catalog.
    #[error("cannot list the repositories of {registry}")]
    Registry {
        /// The registry.
        registry: String,
        /// Why.
        #[source]
        source: RegistryError,
    },
    /// Writing the catalog failed: the sync stops (what it recorded so far stays).
    #[error("cannot record into the catalog")]
    Catalog(#[from] CatalogError),
}

/// One manifest to read: a tag's digest, or an index's child with what the index declares.
#[derive(Debug, Clone)]
struct Wanted {
    digest: Digest,
    size: Option<u64>,
    platform: Option<PlatformRow>,
}

/// Sync `host` into `catalog`: every repository of its API catalog that matches
/// `repositories` (all when empty) and that the policy approves. `now` is the time every
/// sighting is recorded at.
pub async fn sync(
    catalog: &Catalog,
    resolver: &Resolver,
    host: &RegistryHost,
    repositories: &[GlobMatcher],
    jobs: usize,
    progress: &dyn Progress,
    now: jiff::Timestamp,
) -> Result<SyncReport, SyncError> {
    let unreachable = |source| SyncError::Registry {
        registry: host.to_string(),
        source,
    };
    // Refused here, before any request, when the policy does not approve the registry.
    let ep = resolver.endpoint_for_host(host).map_err(unreachable)?;
    let before = resolver.client().request_count();
    let names = resolver.client().catalog(&ep).await.map_err(unreachable)?;
    let mut run = SyncRun {
        catalog,
        resolver,
        ep: &ep,
        jobs: jobs.max(1),
        progress,
        now,
        failed: HashMap::new(),
        report: SyncReport {
            registry: host.to_string(),
            repositories: 0,
            tags: 0,
            new_tags: 0,
            new_manifests: 0,
            moved_tags: Vec::new(),
            errors: Vec::new(),
            requests: 0,
        },
    };
    for name in names {
        if !repositories.is_empty() && !repositories.iter().any(|p| p.is_match(&name)) {
            continue;
        }
        // A registry approved only under a path: the rest of its catalog is not ours to read.
        let Ok(probe) = format!("{host}/{name}").parse::<ImageRef>() else {
            run.problem(&name, "not a valid repository name".into());
            continue;
        };
        if resolver.endpoint(&probe).is_err() {
            continue;
        }
        run.report.repositories += 1;
        run.repository(&probe).await?;
    }
    run.report.requests = resolver.client().request_count().saturating_sub(before);
    Ok(run.report)
}

/// One sync in progress: where it reads and writes, and what it found so far.
struct SyncRun<'a> {
    catalog: &'a Catalog,
    resolver: &'a Resolver,
    ep: &'a Endpoint,
    jobs: usize,
    progress: &'a dyn Progress,
    now: jiff::Timestamp,
    /// Digests that could not be read or recorded in this sync, and why: not asked again for
    /// another tag, and never recorded as known.
    failed: HashMap<Digest, String>,
    report: SyncReport,
}

impl SyncRun<'_> {
    fn problem(&mut self, subject: &str, message: String) {
        self.report.errors.push(SyncProblem {
            subject: subject.to_owned(),
            message,
        });
    }

    /// One repository: its tags, their digests, the manifests not yet known, then the tag
    /// history and which manifests it holds.
    async fn repository(&mut self, probe: &ImageRef) -> Result<(), CatalogError> {
        let repo = probe.repository().as_str();
        let tags = match self.resolver.client().tags(self.ep, repo).await {
            Ok(tags) => tags.unwrap_or_default(),
            Err(e) => {
                self.problem(repo, error_text(&e));
                return Ok(());
            }
        };
        self.progress.found(tags.len() as u64);
        let mut images = Vec::new();
        for tag in tags {
            match format!("{}/{repo}:{tag}", probe.registry()).parse::<ImageRef>() {
                Ok(image) => images.push(image),
                Err(e) => {
                    self.progress.checked();
                    self.problem(&format!("{repo}:{tag}"), error_text(&e));
                }
            }
        }
        let (resolver, ep, progress) = (self.resolver, self.ep, self.progress);
        let heads: Vec<_> = futures_util::stream::iter(images)
            .map(|image| async move {
                let tag = image.tag().map(Tag::as_str).unwrap_or("latest");
                let answer = contents::tag_digest(resolver, ep, repo, tag).await;
                progress.checked();
                (image, answer)
            })
            .buffered(self.jobs)
            .collect()
            .await;
        let mut resolved: Vec<(ImageRef, Digest)> = Vec::new();
        for (image, answer) in heads {
            let subject = format!("{repo}:{}", image.tag().map(Tag::as_str).unwrap_or(""));
            match answer {
                Ok(TagDigest::Found(d)) => resolved.push((image, d)),
                Ok(TagDigest::NotFound(answer)) => {
                    self.problem(&subject, format!("tag not found: {answer}"))
                }
                Err(e) => self.problem(&subject, error_text(&e)),
            }
        }
        self.report.tags += resolved.len();

        let wanted: Vec<Wanted> = resolved
            .iter()
            .map(|(_, d)| d.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|digest| Wanted {
                digest,
                size: None,
                platform: None,
            })
            .collect();
        for batch in wanted.chunks(MANIFESTS_PER_BATCH) {
            self.record_new(repo, batch).await?;
        }

        for (image, digest) in &resolved {
            if let Some(why) = self.failed.get(digest) {
                let subject = format!("{repo}:{}", image.tag().map(Tag::as_str).unwrap_or(""));
                let message = format!("{digest}: {why}");
                self.problem(&subject, message);
            }
            let Some(tag) = image.tag() else { continue };
            match self
                .catalog
                .record_tag_sighting(image.registry(), image.repository(), tag, digest, self.now)
                .await?
            {
                TagSighting::Opened => self.report.new_tags += 1,
                TagSighting::Moved { from } => self.report.moved_tags.push(MovedTag {
                    image: image.clone(),
                    from,
                    to: digest.clone(),
                }),
                TagSighting::Extended | TagSighting::Stale => {}
            }
        }
        let digests: Vec<Digest> = resolved.into_iter().map(|(_, d)| d).collect();
        self.catalog
            .touch_repository_manifests(probe.registry(), probe.repository(), &digests, self.now)
            .await
    }

    /// Read and record the manifests of `batch` the catalog does not hold, and below each new
    /// index its children, level by level; then record them deepest first, so that a recorded
    /// index always has its children recorded. An index one of whose children could not be
    /// read is not recorded: the next sync reads it again.
    async fn record_new(&mut self, repo: &str, batch: &[Wanted]) -> Result<(), CatalogError> {
        let mut levels: Vec<Vec<(Digest, Result<ManifestRecord, String>)>> = Vec::new();
        let mut visited: HashSet<Digest> = HashSet::new();
        let mut current = self.unknown(batch.to_vec(), &mut visited).await?;
        for depth in 0..=MAX_DEPTH {
            if current.is_empty() {
                break;
            }
            if depth == MAX_DEPTH {
                for w in current {
                    self.failed.insert(
                        w.digest,
                        format!("indexes nested deeper than {MAX_DEPTH} levels"),
                    );
                }
                break;
            }
            let (resolver, ep) = (self.resolver, self.ep);
            let fetched: Vec<(Digest, Result<ManifestRecord, String>)> =
                futures_util::stream::iter(current)
                    .map(|w| async move {
                        let record = contents::manifest(resolver, ep, repo, &w.digest, w.size)
                            .await
                            .map_err(|e| error_text(&e))
                            .and_then(|doc| {
                                manifest_record(
                                    &w.digest,
                                    doc.content_type.as_deref(),
                                    &doc.body,
                                    &doc.manifest,
                                    doc.config.as_deref().map(Vec::as_slice),
                                    w.platform.as_ref(),
                                )
                            });
                        (w.digest, record)
                    })
                    .buffered(self.jobs)
                    .collect()
                    .await;
            let children: Vec<Wanted> = fetched
                .iter()
                .filter_map(|(_, r)| r.as_ref().ok())
                .flat_map(|r| r.children.iter())
                .map(|c| Wanted {
                    digest: c.digest.clone(),
                    size: Some(c.size),
                    platform: c.platform.clone(),
                })
                .collect();
            levels.push(fetched);
            current = self.unknown(children, &mut visited).await?;
        }
        for level in levels.into_iter().rev() {
            // Every failure of a level first, then its images, then its indexes: an index
            // whose child sits on the same level (also tagged itself) sees how that child went.
            let mut records = Vec::new();
            for (digest, record) in level {
                match record {
                    Ok(r) => records.push(r),
                    Err(why) => {
                        self.failed.insert(digest, why);
                    }
                }
            }
            records.sort_by_key(|r| r.kind == ManifestKind::Index);
            for record in records {
                if let Some((child, why)) = record
                    .children
                    .iter()
                    .find_map(|c| self.failed.get(&c.digest).map(|why| (&c.digest, why)))
                {
                    let why = format!("child {child}: {why}");
                    self.failed.insert(record.digest, why);
                    continue;
                }
                if self.catalog.record_manifest(&record, self.now).await? {
                    self.report.new_manifests += 1;
                }
            }
        }
        Ok(())
    }

    /// Of `wanted`, those neither in the catalog, nor already failed or read in this batch.
    async fn unknown(
        &self,
        wanted: Vec<Wanted>,
        visited: &mut HashSet<Digest>,
    ) -> Result<Vec<Wanted>, CatalogError> {
        let mut wanted: Vec<Wanted> = wanted
            .into_iter()
            .filter(|w| !self.failed.contains_key(&w.digest) && visited.insert(w.digest.clone()))
            .collect();
        if wanted.is_empty() {
            return Ok(wanted);
        }
        let digests: Vec<Digest> = wanted.iter().map(|w| w.digest.clone()).collect();
        let known = self.catalog.known_digests(&digests).await?;
        wanted.retain(|w| !known.contains(&w.digest));
        Ok(wanted)
    }
}
