//! `catalog inventory`: the Debian packages of every image manifest the catalog holds (each
//! platform of an index), read from its layers, never executed.
//!
//! A layer is read at most once across the whole catalog: its scan is kept by digest, so 500
//! images on one base read the base's layers once, and an image whose layers are all known
//! costs no download. Each layer is streamed from the registry into the scanner
//! ([`crate::registry::layers`]), hash-checked as it passes; the registry must be one the
//! policy approves, through the resolver's client (the same bounds, auth and redirect rules).
//!
//! A layer the registry did not serve (or served other bytes for) leaves its images without an
//! inventory, reported, and read again by the next run: a registry that did not answer is never
//! a verdict on an image.

use std::collections::{BTreeMap, HashMap};

use futures_util::StreamExt as _;
use serde::Serialize;

use super::error::CatalogError;
use super::packages::{LayerKind, PendingImage, StoredScan, layer_kind};
use super::store::Catalog;
use super::sync::SyncProblem;
use crate::packages::{DEFAULT_LIMITS, LayerScan, inventory};
use crate::reference::{Digest, ImageRef, RegistryHost};
use crate::registry::Resolver;
use crate::registry::layers::{LayerRead, read_layer_blob};
use crate::registry::scan::Progress;
use crate::report::error_text;

/// Images handled together: bounds the scans held in memory at once.
const IMAGES_PER_BATCH: usize = 200;

/// What an inventory run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryReport {
    /// Image manifests that had no inventory.
    pub pending: usize,
    /// Inventories recorded.
    pub inventoried: usize,
    /// Of those, images with a dpkg database.
    pub with_dpkg: usize,
    /// Layers downloaded and scanned in this run.
    pub layers_read: usize,
    /// Their compressed bytes.
    pub bytes_read: u64,
    /// Layers whose scan the catalog already held (read by an earlier run or another image).
    pub layers_known: usize,
    /// Layers that are not filesystems the scanner reads, or could not be read: kept with why.
    pub layers_unreadable: usize,
    /// What could not be done; those images are tried again next run.
    pub errors: Vec<SyncProblem>,
    /// HTTP requests sent to registries.
    pub requests: u64,
}

/// Inventory every image manifest without one, held in `registry` (any when `None`), `jobs`
/// layers downloaded at a time. `now` is the time everything is recorded at.
pub async fn inventory_images(
    catalog: &Catalog,
    resolver: &Resolver,
    registry: Option<&RegistryHost>,
    jobs: usize,
    progress: &dyn Progress,
    now: jiff::Timestamp,
) -> Result<InventoryReport, CatalogError> {
    let before = resolver.client().request_count();
    let pending = catalog.images_to_inventory(registry).await?;
    let mut report = InventoryReport {
        pending: pending.len(),
        ..InventoryReport::default()
    };
    progress.found(pending.len() as u64);
    for batch in pending.chunks(IMAGES_PER_BATCH) {
        inventory_batch(
            catalog,
            resolver,
            batch,
            jobs.max(1),
            progress,
            now,
            &mut report,
        )
        .await?;
    }
    report.requests = resolver.client().request_count().saturating_sub(before);
    Ok(report)
}

/// Where one unknown layer is read from: the first image (in digest order) that needs it.
struct Source<'a> {
    image: &'a PendingImage,
    size: u64,
}

async fn inventory_batch(
    catalog: &Catalog,
    resolver: &Resolver,
    batch: &[PendingImage],
    jobs: usize,
    progress: &dyn Progress,
    now: jiff::Timestamp,
    report: &mut InventoryReport,
) -> Result<(), CatalogError> {
    let all: Vec<Digest> = batch
        .iter()
        .flat_map(|i| i.layers.iter().map(|l| l.digest.clone()))
        .collect();
    let known = catalog.scanned_layers(&all).await?;
    // Each layer the catalog has no scan of, once, with an image to read it through.
    let mut unknown: BTreeMap<Digest, Source<'_>> = BTreeMap::new();
    let mut failed: HashMap<Digest, String> = HashMap::new();
    let mut counted = std::collections::HashSet::new();
    for image in batch {
        for l in &image.layers {
            if known.contains(&l.digest) {
                if counted.insert(l.digest.clone()) {
                    report.layers_known += 1;
                }
                continue;
            }
            match layer_kind(l.media_type.as_deref()) {
                LayerKind::Filesystem => {
                    unknown.entry(l.digest.clone()).or_insert(Source {
                        image,
                        size: l.size,
                    });
                }
                kind => {
                    // Not downloaded: recorded with why, so the image's inventory says so.
                    let why = match kind {
                        LayerKind::Foreign => format!(
                            "a foreign layer ({}), served from outside the registry: not read",
                            l.media_type.as_deref().unwrap_or("")
                        ),
                        _ => format!(
                            "not a filesystem layer ({}): not read",
                            l.media_type.as_deref().unwrap_or("")
                        ),
                    };
                    if counted.insert(l.digest.clone()) {
                        catalog
                            .record_layer_scan(&l.digest, 0, &StoredScan::Unreadable(why), now)
                            .await?;
                        report.layers_unreadable += 1;
                    }
                }
            }
        }
    }

    let reads: Vec<(Digest, u64, Result<LayerRead, String>)> = futures_util::stream::iter(unknown)
        .map(|(digest, source)| async move {
            let read = read_from(resolver, source.image, &digest, source.size).await;
            (digest, source.size, read)
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    for (digest, size, read) in reads {
        match read {
            Ok(LayerRead::Scanned(scan)) => {
                catalog
                    .record_layer_scan(&digest, size, &StoredScan::Scanned(scan), now)
                    .await?;
                report.layers_read += 1;
                report.bytes_read += size;
            }
            Ok(LayerRead::Unreadable(e)) => {
                catalog
                    .record_layer_scan(&digest, size, &StoredScan::Unreadable(e.to_string()), now)
                    .await?;
                report.layers_read += 1;
                report.layers_unreadable += 1;
                report.bytes_read += size;
            }
            Err(why) => {
                failed.insert(digest, why);
            }
        }
    }

    let scans = catalog.layer_scans(&all).await?;
    for image in batch {
        progress.checked();
        if let Some((d, why)) = image
            .layers
            .iter()
            .find_map(|l| failed.get(&l.digest).map(|w| (&l.digest, w)))
        {
            report.errors.push(SyncProblem {
                subject: image.digest.to_string(),
                message: format!("layer {d}: {why}"),
            });
            continue;
        }
        let mut layers: Vec<&LayerScan> = Vec::with_capacity(image.layers.len());
        let mut problems = Vec::new();
        let empty = LayerScan::default();
        for (i, l) in image.layers.iter().enumerate() {
            match scans.get(&l.digest) {
                Some(StoredScan::Scanned(s)) => layers.push(s),
                Some(StoredScan::Unreadable(why)) => {
                    problems.push(format!("layer {i} ({}): {why}", l.digest));
                    layers.push(&empty);
                }
                None => {
                    problems.push(format!("layer {i} ({}): no scan recorded", l.digest));
                    layers.push(&empty);
                }
            }
        }
        let inv = inventory(&layers);
        let filesystem = image
            .layers
            .iter()
            .filter(|l| layer_kind(l.media_type.as_deref()) == LayerKind::Filesystem)
            .count();
        // An artifact (a signature, a chart) has no filesystem: nothing is missing from it.
        let complete = problems.is_empty() || filesystem == 0;
        problems.extend(inv.errors.iter().cloned());
        let digests: Vec<Digest> = image.layers.iter().map(|l| l.digest.clone()).collect();
        catalog
            .record_inventory(&image.digest, &digests, &inv, complete, &problems, now)
            .await?;
        report.inventoried += 1;
        if inv.has_dpkg {
            report.with_dpkg += 1;
        }
    }
    Ok(())
}

/// Read one layer through the first repository holding `image` that the policy approves.
async fn read_from(
    resolver: &Resolver,
    image: &PendingImage,
    digest: &Digest,
    size: u64,
) -> Result<LayerRead, String> {
    let mut last = format!("no repository the policy approves holds {}", image.digest);
    for (registry, name) in &image.repositories {
        let Ok(probe) = format!("{registry}/{name}").parse::<ImageRef>() else {
            continue;
        };
        let ep = match resolver.endpoint(&probe) {
            Ok(ep) => ep,
            Err(e) => {
                last = error_text(&e);
                continue;
            }
        };
        match read_layer_blob(resolver.client(), &ep, name, digest, size, DEFAULT_LIMITS).await {
            Ok(read) => return Ok(read),
            Err(e) => last = error_text(&e),
        }
    }
    Err(last)
}
