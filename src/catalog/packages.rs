//! Packages in the catalog (issue 16): each layer's scan kept by digest (read at most once
//! across the whole catalog), each image's inventory computed from its layers' scans, and the
//! questions `catalog packages IMAGE` and `catalog where PACKAGE [CONSTRAINT]`.
//!
//! Debian's version order is not SQL's: `where` selects by name in SQL and compares versions
//! here, through [`crate::packages::DebVersion`].

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::Row as _;

use super::error::{CatalogError, query};
use super::query::{RunFilter, Subject, parse_digest, placeholders};
use super::runs::Run;
use super::store::Catalog;
use crate::packages::{Constraint, DebVersion, Inventory, LayerScan, OsRelease, parse_os_release};
use crate::reference::{Digest, RegistryHost};

/// The format of `layer_scans.scan`: a scanner that reads more is a new number, and layers
/// scanned by an older one are read again.
pub const SCANNER_VERSION: i64 = 1;
/// Digests per `IN (...)` list.
const DIGESTS_PER_QUERY: usize = 500;
/// Package rows per multi-row INSERT (eight binds each).
const PACKAGES_PER_INSERT: usize = 100;

/// A layer's stored scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredScan {
    /// What the scanner read.
    Scanned(LayerScan),
    /// Why the layer could not be read (a fact about the digest: not retried).
    Unreadable(String),
}

/// One layer of an image waiting for its inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLayer {
    /// The layer's digest.
    pub digest: Digest,
    /// Its size, as the manifest declares.
    pub size: u64,
    /// Its media type, as the manifest declares.
    pub media_type: Option<String>,
}

/// An image manifest without an inventory (or with one from an older scanner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingImage {
    /// The image manifest's digest.
    pub digest: Digest,
    /// Its layers, bottom first.
    pub layers: Vec<PendingLayer>,
    /// The repositories that hold it, `(registry, name)`, most recently seen first: where its
    /// layers are read from.
    pub repositories: Vec<(String, String)>,
}

/// An image's inventory, as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInventory {
    /// The image manifest.
    pub digest: Digest,
    /// `os/architecture[/variant]`, when known.
    pub platform: Option<String>,
    /// Whether some layer left a dpkg database.
    pub has_dpkg: bool,
    /// Whether every layer was read: when not, the packages may be short.
    pub complete: bool,
    /// os-release's fields.
    pub os: Option<OsRelease>,
    /// Installed packages, by name.
    pub packages: Vec<InstalledRow>,
    /// What could not be read.
    pub problems: Vec<String>,
    /// When it was computed.
    pub computed_at: jiff::Timestamp,
}

/// One installed package of an image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstalledRow {
    /// The binary package.
    pub name: String,
    /// Its architecture.
    pub architecture: String,
    /// Its version.
    pub version: DebVersion,
    /// The source package.
    pub source: String,
    /// The source version.
    pub source_version: DebVersion,
    /// The layer that brought this version in (0 = the bottom one).
    pub layer_position: i64,
    /// That layer's digest.
    pub layer_digest: Digest,
}

/// An image that has the package asked about.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// The image manifest.
    pub digest: Digest,
    /// `os/architecture[/variant]`, when known.
    pub platform: Option<String>,
    /// The matching packages (a source name matches each of its binaries).
    pub packages: Vec<InstalledRow>,
    /// Repositories holding it (or an index of it), `registry/repository`.
    pub repositories: Vec<String>,
    /// Tags pointing at it (or an index of it) now.
    pub tags: Vec<String>,
    /// Where it (or an index of it) runs now.
    pub running: Vec<Run>,
}

/// `catalog packages IMAGE`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackagesAnswer {
    /// The image, as asked.
    pub subject: String,
    /// The image manifests it names (an index's children), with their inventories.
    pub images: Vec<ImageInventory>,
    /// Image manifests it names that have no inventory yet (`catalog inventory` reads them).
    pub not_inventoried: Vec<Digest>,
}

/// `catalog where PACKAGE [CONSTRAINT]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WhereAnswer {
    /// The package, as asked.
    pub package: String,
    /// The constraint, as dpkg writes it.
    pub constraint: Option<String>,
    /// The images that have it.
    pub images: Vec<Holder>,
    /// Image manifests the catalog holds without an inventory: the answer does not cover them.
    pub not_inventoried: usize,
}

/// Whether a layer's media type is a filesystem the scanner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// A tar, gzip or zstd filesystem layer (or no media type: the bytes are sniffed).
    Filesystem,
    /// A foreign (non-distributable) layer: usually served from elsewhere, not read.
    Foreign,
    /// Not a filesystem at all (a signature payload, an artifact's blob).
    Other,
}

/// What a layer's media type says it is.
pub fn layer_kind(media_type: Option<&str>) -> LayerKind {
    let Some(t) = media_type else {
        return LayerKind::Filesystem;
    };
    let t = t.to_ascii_lowercase();
    if t.contains("foreign") || t.contains("nondistributable") {
        return LayerKind::Foreign;
    }
    match t.as_str() {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.docker.image.rootfs.diff.tar"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.zstd" => LayerKind::Filesystem,
        _ => LayerKind::Other,
    }
}

fn corrupt(
    column: &'static str,
    value: String,
    e: impl std::error::Error + Send + Sync + 'static,
) -> CatalogError {
    CatalogError::Corrupt {
        column,
        value,
        source: Box::new(e),
    }
}

fn time(column: &'static str, seconds: i64) -> Result<jiff::Timestamp, CatalogError> {
    jiff::Timestamp::from_second(seconds).map_err(|e| corrupt(column, seconds.to_string(), e))
}

impl Catalog {
    /// Which of `digests` have a scan from this scanner.
    pub async fn scanned_layers(
        &self,
        digests: &[Digest],
    ) -> Result<HashSet<Digest>, CatalogError> {
        let mut out = HashSet::new();
        let distinct: Vec<String> = digests
            .iter()
            .map(ToString::to_string)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in distinct.chunks(DIGESTS_PER_QUERY) {
            let sql = format!(
                "SELECT layer_digest FROM layer_scans WHERE scanner = $1 AND layer_digest IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q =
                sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(SCANNER_VERSION);
            for d in chunk {
                q = q.bind(d.as_str());
            }
            for d in q
                .fetch_all(&self.pool)
                .await
                .map_err(query("looking up scanned layers"))?
            {
                out.insert(parse_digest("layer_scans.layer_digest", d)?);
            }
        }
        Ok(out)
    }

    /// The stored scans of `digests` (those that have one from this scanner).
    pub async fn layer_scans(
        &self,
        digests: &[Digest],
    ) -> Result<HashMap<Digest, StoredScan>, CatalogError> {
        let mut out = HashMap::new();
        let distinct: Vec<String> = digests.iter().map(ToString::to_string).collect();
        for chunk in distinct.chunks(DIGESTS_PER_QUERY) {
            let sql = format!(
                "SELECT layer_digest, scan, error FROM layer_scans WHERE scanner = $1 AND layer_digest IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (String, Option<String>, Option<String>)>(
                sqlx::AssertSqlSafe(sql),
            )
            .bind(SCANNER_VERSION);
            for d in chunk {
                q = q.bind(d.as_str());
            }
            for (d, scan, error) in q
                .fetch_all(&self.pool)
                .await
                .map_err(query("reading layer scans"))?
            {
                let digest = parse_digest("layer_scans.layer_digest", d)?;
                let stored = match (scan, error) {
                    (Some(text), _) => StoredScan::Scanned(
                        serde_json::from_str(&text)
                            .map_err(|e| corrupt("layer_scans.scan", digest.to_string(), e))?,
                    ),
                    (None, Some(why)) => StoredScan::Unreadable(why),
                    (None, None) => StoredScan::Unreadable("no scan recorded".into()),
                };
                out.insert(digest, stored);
            }
        }
        Ok(out)
    }

    /// Keep the scan of layer `digest` (`bytes` compressed bytes), read at `at`. A scan already
    /// there (another writer read the same layer) is replaced: the same digest gives the same
    /// scan.
    pub async fn record_layer_scan(
        &self,
        digest: &Digest,
        bytes: u64,
        scan: &StoredScan,
        at: jiff::Timestamp,
    ) -> Result<(), CatalogError> {
        let (text, error) = match scan {
            StoredScan::Scanned(s) => (
                Some(
                    serde_json::to_string(s)
                        .map_err(|e| corrupt("layer_scans.scan", digest.to_string(), e))?,
                ),
                None,
            ),
            StoredScan::Unreadable(why) => (None, Some(why.clone())),
        };
        sqlx::query(
            "INSERT INTO layer_scans (layer_digest, scanner, scanned_at, bytes, scan, error) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (layer_digest) DO UPDATE SET \
             scanner = excluded.scanner, scanned_at = excluded.scanned_at, bytes = excluded.bytes, \
             scan = excluded.scan, error = excluded.error",
        )
        .bind(digest.to_string())
        .bind(SCANNER_VERSION)
        .bind(at.as_second())
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .bind(text)
        .bind(error)
        .execute(&self.pool)
        .await
        .map_err(query(format!("recording the scan of layer {digest}")))?;
        Ok(())
    }

    /// Image manifests without an inventory from this scanner, held in `registry` (any when
    /// `None`), with their layers and the repositories to read them from.
    pub async fn images_to_inventory(
        &self,
        registry: Option<&RegistryHost>,
    ) -> Result<Vec<PendingImage>, CatalogError> {
        let doing = || "listing the images without an inventory".to_owned();
        let mut sql = String::from(
            "SELECT m.digest FROM manifests m \
             LEFT JOIN image_inventories i ON i.manifest_digest = m.digest \
             WHERE m.kind = 'image' AND (i.manifest_digest IS NULL OR i.scanner < $1)",
        );
        if registry.is_some() {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM repository_manifests rm JOIN repositories r \
                 ON r.id = rm.repository_id WHERE rm.digest = m.digest AND r.registry = $2)",
            );
        }
        sql.push_str(" ORDER BY m.digest");
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(SCANNER_VERSION);
        if let Some(r) = registry {
            q = q.bind(r.canonical());
        }
        let digests = q.fetch_all(&self.pool).await.map_err(query(doing()))?;
        let mut out = Vec::with_capacity(digests.len());
        for d in digests {
            let digest = parse_digest("manifests.digest", d)?;
            let rows = sqlx::query(
                "SELECT l.digest, l.size, l.media_type FROM manifest_layers x \
                 JOIN layers l ON l.digest = x.layer_digest \
                 WHERE x.manifest_digest = $1 ORDER BY x.position",
            )
            .bind(digest.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(query(doing()))?;
            let mut layers = Vec::with_capacity(rows.len());
            for r in rows {
                let d: String = r.try_get(0).map_err(query(doing()))?;
                let size: i64 = r.try_get(1).map_err(query(doing()))?;
                layers.push(PendingLayer {
                    digest: parse_digest("layers.digest", d)?,
                    size: u64::try_from(size).unwrap_or(0),
                    media_type: r.try_get(2).map_err(query(doing()))?,
                });
            }
            let mut sql = String::from(
                "SELECT r.registry, r.name FROM repository_manifests rm \
                 JOIN repositories r ON r.id = rm.repository_id WHERE rm.digest = $1",
            );
            if registry.is_some() {
                sql.push_str(" AND r.registry = $2");
            }
            sql.push_str(" ORDER BY rm.last_seen DESC, r.registry, r.name");
            let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql))
                .bind(digest.to_string());
            if let Some(r) = registry {
                q = q.bind(r.canonical());
            }
            let repositories = q.fetch_all(&self.pool).await.map_err(query(doing()))?;
            out.push(PendingImage {
                digest,
                layers,
                repositories,
            });
        }
        Ok(out)
    }

    /// Keep the inventory of image `digest`, whose layers are `layers` (bottom first), in one
    /// transaction: a previous one (an older scanner's) is replaced. Its packages go into the
    /// package set of the same rows, written only when no image had that set before.
    pub async fn record_inventory(
        &self,
        digest: &Digest,
        layers: &[Digest],
        inventory: &Inventory,
        complete: bool,
        problems: &[String],
        at: jiff::Timestamp,
    ) -> Result<(), CatalogError> {
        let what = || format!("recording the packages of {digest}");
        let os = inventory.os_release.as_deref().map(parse_os_release);
        let problems_json = serde_json::to_string(problems).unwrap_or_else(|_| "[]".into());
        let rows: Vec<(&crate::packages::Package, i64, String)> = inventory
            .packages
            .iter()
            .map(|p| {
                let layer = layers
                    .get(p.layer)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                (&p.package, p.layer as i64, layer)
            })
            .collect();
        let key = set_key(&rows);
        let mut tx = self.pool.begin().await.map_err(query(what()))?;
        let new_set = sqlx::query(
            "INSERT INTO package_sets (set_key, package_count) VALUES ($1, $2) \
             ON CONFLICT (set_key) DO NOTHING",
        )
        .bind(key.as_str())
        .bind(rows.len() as i64)
        .execute(&mut *tx)
        .await
        .map_err(query(what()))?
        .rows_affected()
            == 1;
        if new_set {
            for chunk in rows.chunks(PACKAGES_PER_INSERT) {
                let values: Vec<String> = (0..chunk.len())
                    .map(|i| format!("({})", placeholders(1 + i * 8, 8)))
                    .collect();
                let sql = format!(
                    "INSERT INTO package_set_entries (set_key, name, architecture, version, source, \
                     source_version, layer_position, layer_digest) VALUES {}",
                    values.join(", ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (p, position, layer) in chunk {
                    q = q
                        .bind(key.as_str())
                        .bind(p.name.as_str())
                        .bind(p.architecture.as_str())
                        .bind(p.version.to_string())
                        .bind(p.source.as_str())
                        .bind(p.source_version.to_string())
                        .bind(*position)
                        .bind(layer.as_str());
                }
                q.execute(&mut *tx).await.map_err(query(what()))?;
            }
        }
        sqlx::query("DELETE FROM image_inventories WHERE manifest_digest = $1")
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await
            .map_err(query(what()))?;
        sqlx::query(
            "INSERT INTO image_inventories (manifest_digest, scanner, computed_at, has_dpkg, complete, \
             os_id, os_version, os_codename, os_pretty_name, set_key, problems) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(digest.to_string())
        .bind(SCANNER_VERSION)
        .bind(at.as_second())
        .bind(i64::from(inventory.has_dpkg))
        .bind(i64::from(complete))
        .bind(os.as_ref().map(|o| o.id.clone()).filter(|s| !s.is_empty()))
        .bind(os.as_ref().and_then(|o| o.version_id.clone()))
        .bind(os.as_ref().and_then(|o| o.version_codename.clone()))
        .bind(os.as_ref().and_then(|o| o.pretty_name.clone()))
        .bind(key.as_str())
        .bind(problems_json)
        .execute(&mut *tx)
        .await
        .map_err(query(what()))?;
        tx.commit().await.map_err(query(what()))?;
        Ok(())
    }

    /// The inventories of `digests` that have one (each an image manifest), in `digests`'
    /// order.
    pub async fn inventories(
        &self,
        digests: &[Digest],
    ) -> Result<Vec<ImageInventory>, CatalogError> {
        let mut out = Vec::new();
        for d in digests {
            let doing = || format!("reading the packages of {d}");
            let row = sqlx::query(
                "SELECT i.computed_at, i.has_dpkg, i.complete, i.os_id, i.os_version, i.os_codename, \
                 i.os_pretty_name, i.problems, m.os, m.architecture, m.variant \
                 FROM image_inventories i JOIN manifests m ON m.digest = i.manifest_digest \
                 WHERE i.manifest_digest = $1",
            )
            .bind(d.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(query(doing()))?;
            let Some(row) = row else { continue };
            let get_s = |i: usize| row.try_get::<Option<String>, _>(i).map_err(query(doing()));
            let computed_at: i64 = row.try_get(0).map_err(query(doing()))?;
            let has_dpkg: i64 = row.try_get(1).map_err(query(doing()))?;
            let complete: i64 = row.try_get(2).map_err(query(doing()))?;
            let os_id = get_s(3)?;
            let os = os_id.map(|id| OsRelease {
                id,
                id_like: Vec::new(),
                version_id: get_s(4).ok().flatten(),
                version_codename: get_s(5).ok().flatten(),
                pretty_name: get_s(6).ok().flatten(),
            });
            let problems_text = get_s(7)?.unwrap_or_else(|| "[]".into());
            let problems: Vec<String> = serde_json::from_str(&problems_text)
                .map_err(|e| corrupt("image_inventories.problems", problems_text.clone(), e))?;
            let platform = platform(get_s(8)?, get_s(9)?, get_s(10)?);
            let packages = self
                .package_rows("manifest_digest = $1", &[d.to_string()])
                .await?;
            out.push(ImageInventory {
                digest: d.clone(),
                platform,
                has_dpkg: has_dpkg != 0,
                complete: complete != 0,
                os,
                packages: packages.into_iter().map(|(_, p)| p).collect(),
                problems,
                computed_at: time("image_inventories.computed_at", computed_at)?,
            });
        }
        Ok(out)
    }

    /// The inventories of the image manifests `subject` names: a digest or an image by
    /// digest, a tag (what it points at now) or a repository (what its tags point at now);
    /// an index stands for its children.
    pub async fn packages_of(&self, subject: &Subject) -> Result<PackagesAnswer, CatalogError> {
        let doing = || format!("finding the images {subject} names");
        let mut named: Vec<Digest> = Vec::new();
        match subject {
            Subject::Digest(d) => named.push(d.clone()),
            Subject::Image(i) if i.digest().is_some() => named.extend(i.digest().cloned()),
            Subject::Image(i) => {
                let mut sql = String::from(
                    "SELECT DISTINCT h.digest FROM tag_history h JOIN tags t ON t.id = h.tag_id \
                     JOIN repositories r ON r.id = t.repository_id \
                     WHERE h.moved_at IS NULL AND r.registry = $1 AND r.name = $2",
                );
                if i.tag().is_some() {
                    sql.push_str(" AND t.name = $3");
                }
                sql.push_str(" ORDER BY h.digest");
                let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
                    .bind(i.registry().canonical())
                    .bind(i.repository().as_str().to_owned());
                if let Some(t) = i.tag() {
                    q = q.bind(t.as_str().to_owned());
                }
                for d in q.fetch_all(&self.pool).await.map_err(query(doing()))? {
                    named.push(parse_digest("tag_history.digest", d)?);
                }
            }
        }
        let mut images: Vec<Digest> = Vec::new();
        for d in named {
            let children: Vec<String> = sqlx::query_scalar(
                "SELECT child_digest FROM index_children WHERE index_digest = $1 ORDER BY position",
            )
            .bind(d.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(query(doing()))?;
            if children.is_empty() {
                images.push(d);
            }
            for c in children {
                images.push(parse_digest("index_children.child_digest", c)?);
            }
        }
        // Two indexes (or tags) may name the same child: each image once, in first-named order.
        let mut seen = HashSet::new();
        images.retain(|d| seen.insert(d.clone()));
        let found = self.inventories(&images).await?;
        let not_inventoried = images
            .into_iter()
            .filter(|d| !found.iter().any(|f| &f.digest == d))
            .collect();
        Ok(PackagesAnswer {
            subject: subject.to_string(),
            images: found,
            not_inventoried,
        })
    }

    /// How many image manifests have no inventory from this scanner.
    pub async fn not_inventoried(&self) -> Result<usize, CatalogError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM manifests m LEFT JOIN image_inventories i \
             ON i.manifest_digest = m.digest \
             WHERE m.kind = 'image' AND (i.manifest_digest IS NULL OR i.scanner < $1)",
        )
        .bind(SCANNER_VERSION)
        .fetch_one(&self.pool)
        .await
        .map_err(query("counting the images without an inventory"))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Package rows matching `condition` (on `package_set_entries e` joined to the inventories
    /// `i` that have the set, binding `binds` from `$1`), with each image's digest, by image
    /// then name.
    async fn package_rows(
        &self,
        condition: &str,
        binds: &[String],
    ) -> Result<Vec<(Digest, InstalledRow)>, CatalogError> {
        let doing = || "reading installed packages".to_owned();
        let sql = format!(
            "SELECT i.manifest_digest, e.name, e.architecture, e.version, e.source, e.source_version, \
             e.layer_position, e.layer_digest FROM package_set_entries e \
             JOIN image_inventories i ON i.set_key = e.set_key WHERE {condition} \
             ORDER BY i.manifest_digest, e.name, e.architecture"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b.as_str());
        }
        let rows = q.fetch_all(&self.pool).await.map_err(query(doing()))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let s = |i: usize| r.try_get::<String, _>(i).map_err(query(doing()));
            let version = |column: &'static str, text: String| {
                text.parse::<DebVersion>()
                    .map_err(|e| corrupt(column, text.clone(), e))
            };
            out.push((
                parse_digest("image_inventories.manifest_digest", s(0)?)?,
                InstalledRow {
                    name: s(1)?,
                    architecture: s(2)?,
                    version: version("package_set_entries.version", s(3)?)?,
                    source: s(4)?,
                    source_version: version("package_set_entries.source_version", s(5)?)?,
                    layer_position: r.try_get(6).map_err(query(doing()))?,
                    layer_digest: parse_digest("package_set_entries.layer_digest", s(7)?)?,
                },
            ));
        }
        Ok(out)
    }

    /// The images with package `name` installed (a binary package of that name, or the
    /// binaries built from a source package of that name), whose version satisfies
    /// `constraint` (the binary's version for a binary match, the source version for a source
    /// match); with where they run, kept to `filter`, and only running ones when `running`.
    pub async fn where_installed(
        &self,
        name: &str,
        constraint: Option<&Constraint>,
        filter: &RunFilter,
        running: bool,
    ) -> Result<WhereAnswer, CatalogError> {
        let rows = self
            .package_rows("(e.name = $1 OR e.source = $1)", &[name.to_owned()])
            .await?;
        let mut by_image: BTreeMap<Digest, Vec<InstalledRow>> = BTreeMap::new();
        for (digest, row) in rows {
            let version = if row.name == name {
                &row.version
            } else {
                &row.source_version
            };
            if constraint.is_none_or(|c| c.matches(version)) {
                by_image.entry(digest).or_default().push(row);
            }
        }
        let mut out = Vec::new();
        for (digest, packages) in by_image {
            let doing = || format!("naming {digest}");
            let related = self.related(&digest).await?;
            let runs = self.runs_of(&related, filter, true).await?;
            if (running || !filter.is_empty()) && runs.is_empty() {
                continue;
            }
            let (repositories, tags) = self.names(&related).await?;
            let p: Option<(Option<String>, Option<String>, Option<String>)> =
                sqlx::query_as("SELECT os, architecture, variant FROM manifests WHERE digest = $1")
                    .bind(digest.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(query(doing()))?;
            out.push(Holder {
                platform: p.and_then(|(o, a, v)| platform(o, a, v)),
                digest,
                packages,
                repositories,
                tags,
                running: runs,
            });
        }
        out.sort_by(|a, b| {
            (a.repositories.first(), &a.digest).cmp(&(b.repositories.first(), &b.digest))
        });
        Ok(WhereAnswer {
            package: name.to_owned(),
            constraint: constraint.map(ToString::to_string),
            images: out,
            not_inventoried: self.not_inventoried().await?,
        })
    }
}

/// A package set's key: the sha256 of its rows (name, architecture, version, source, source
/// version, layer position, layer digest), each field ended by a NUL (no field holds one: the
/// status parser reads text lines) and each row by a newline.
fn set_key(rows: &[(&crate::packages::Package, i64, String)]) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for (p, position, layer) in rows {
        for field in [
            p.name.as_str(),
            p.architecture.as_str(),
            &p.version.to_string(),
            p.source.as_str(),
            &p.source_version.to_string(),
            &position.to_string(),
            layer.as_str(),
        ] {
            h.update(field.as_bytes());
            h.update([0]);
        }
        h.update(b"\n");
    }
    format!("sha256:{}", crate::registry::resolve::hex(&h.finalize()))
}

/// `os/architecture[/variant]`.
fn platform(os: Option<String>, arch: Option<String>, variant: Option<String>) -> Option<String> {
    match (os, arch) {
        (Some(o), Some(a)) => Some(match variant {
            Some(v) => format!("{o}/{a}/{v}"),
            None => format!("{o}/{a}"),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::oci_gzip(
        Some("application/vnd.oci.image.layer.v1.tar+gzip"),
        LayerKind::Filesystem
    )]
    #[case::oci_zstd(
        Some("application/vnd.oci.image.layer.v1.tar+zstd"),
        LayerKind::Filesystem
    )]
    #[case::oci_plain(Some("application/vnd.oci.image.layer.v1.tar"), LayerKind::Filesystem)]
    #[case::docker(
        Some("application/vnd.docker.image.rootfs.diff.tar.gzip"),
        LayerKind::Filesystem
    )]
    #[case::unknown_type(None, LayerKind::Filesystem)]
    #[case::foreign(
        Some("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
        LayerKind::Foreign
    )]
    #[case::nondistributable(
        Some("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
        LayerKind::Foreign
    )]
    #[case::cosign(
        Some("application/vnd.dev.cosign.simplesigning.v1+json"),
        LayerKind::Other
    )]
    #[case::helm(
        Some("application/vnd.cncf.helm.chart.content.v1.tar+gzip"),
        LayerKind::Other
    )]
    fn layer_media_types(#[case] media_type: Option<&str>, #[case] kind: LayerKind) {
        assert_eq!(layer_kind(media_type), kind);
    }
}
