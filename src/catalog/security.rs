//! Security data in the catalog (issue 16): importing the tracker's or OSV's advisories, and
//! the report `catalog security` prints: which images need a rebuild for a fix, grouped by the
//! layer (and so the base) that brought the vulnerable package in, with where each runs.
//!
//! The report judges each distinct (release, source package, source version) once, in Debian
//! version order ([`crate::packages::judge`]), then maps the verdicts back to the images: 500
//! images on one base cost one judgement per package of the base, not 500.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::Row as _;

use super::error::{CatalogError, query};
use super::query::{RunFilter, parse_digest, placeholders};
use super::runs::{RUN_COLUMNS, Run, run};
use super::store::Catalog;
use crate::packages::security::urgency_rank;
use crate::packages::{Advisories, DebVersion, Fix, Verdict, judge};
use crate::reference::Digest;

/// Advisory rows per multi-row INSERT (nine binds each). 500 was measured 3-4 times slower
/// than 100 (docs/BENCHMARKS.md, section 15).
const ADVISORIES_PER_INSERT: usize = 100;
/// Values per `IN (...)` list.
const PER_QUERY: usize = 500;

/// Where advisories came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// The Debian Security Tracker's JSON export.
    DebianTracker,
    /// OSV records.
    Osv,
}

impl Origin {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::DebianTracker => "debian-tracker",
            Origin::Osv => "osv",
        }
    }
}

/// One import, as `security_imports` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Import {
    /// `debian-tracker` or `osv`.
    pub origin: String,
    /// When.
    pub imported_at: jiff::Timestamp,
    /// The file or URL read.
    pub location: String,
    /// The releases kept.
    pub releases: Vec<String>,
    /// Rows imported.
    pub advisories: i64,
    /// Entries that could not be read.
    pub errors: i64,
}

/// `catalog security`'s filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityFilter {
    /// Which runs count (and with a cluster or namespace, only images running there).
    pub runs: RunFilter,
    /// Only images running now.
    pub running: bool,
    /// Only advisories at least this urgent (the tracker's words).
    pub min_urgency: Option<String>,
}

/// One advisory behind a fix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdvisoryRef {
    /// `CVE-…`, `DSA-…`.
    pub id: String,
    /// The tracker's urgency.
    pub urgency: Option<String>,
    /// Why no DSA will be issued, when the tracker says so.
    pub nodsa: Option<String>,
    /// Its class (`postponed`, `ignored`).
    pub nodsa_reason: Option<String>,
    /// `debian-tracker` or `osv`.
    pub origin: String,
    /// The fixed version, for a fix.
    pub fixed_version: Option<DebVersion>,
}

/// A source package whose installed version has an available fix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fixable {
    /// The source package.
    pub source: String,
    /// The installed source version.
    pub installed: DebVersion,
    /// The version that fixes every advisory listed (the newest of their fixed versions).
    pub fixed: DebVersion,
    /// The binaries installed from it.
    pub binaries: Vec<String>,
    /// The advisories it fixes, by id.
    pub advisories: Vec<AdvisoryRef>,
    /// The highest urgency among them.
    pub urgency: Option<String>,
}

/// An image in a rebuild group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AffectedImage {
    /// The image manifest.
    pub digest: Digest,
    /// Its tags now (or an index's), else its repositories.
    pub names: Vec<String>,
    /// Where it (or an index of it) runs now.
    pub running: Vec<Run>,
}

/// Where a rebuild starts: the image whose top layer brought the vulnerable versions in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupKind {
    /// A base other images are built on: rebuilding it (and then them) fixes them all.
    Base,
    /// The image's own layer: rebuild the image itself.
    Image,
    /// A layer no image in the catalog ends with (a base the catalog has not synced).
    Layer,
}

/// One rebuild: what it fixes and which images it reaches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildGroup {
    /// What kind of rebuild.
    pub kind: GroupKind,
    /// The layer that brought the packages in.
    pub layer: Digest,
    /// The image that ends with that layer (the base, or the image itself), when the
    /// catalog holds one.
    pub image: Option<Digest>,
    /// Its names (tags now, else repositories).
    pub names: Vec<String>,
    /// The source packages with a fix.
    pub fixes: Vec<Fixable>,
    /// The images that carry the layer and need the update.
    pub images: Vec<AffectedImage>,
    /// Pods running those images now.
    pub pods: u64,
}

/// A known issue without a fix in the release: reported apart, never as "needs update".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NoFix {
    /// The release.
    pub release: String,
    /// The source package.
    pub source: String,
    /// The installed version.
    pub installed: DebVersion,
    /// The advisories.
    pub advisories: Vec<AdvisoryRef>,
    /// Images that have it.
    pub images: usize,
}

/// An image the report could not judge, and why: never counted as fine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotChecked {
    /// The image manifest.
    pub digest: Digest,
    /// Why.
    pub why: String,
}

/// `catalog security`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityReport {
    /// The security data the report read.
    pub data: Vec<Import>,
    /// Rebuilds, bases first, then by pods reached.
    pub groups: Vec<RebuildGroup>,
    /// Images needing an update.
    pub images_needing_update: usize,
    /// Known issues without a fix.
    pub no_fix_yet: Vec<NoFix>,
    /// Images not judged.
    pub not_checked: Vec<NotChecked>,
}

fn version(column: &'static str, text: String) -> Result<DebVersion, CatalogError> {
    text.parse().map_err(|e| CatalogError::Corrupt {
        column,
        value: text.clone(),
        source: Box::new(e),
    })
}

/// One row of a package set.
struct Row {
    name: String,
    source: String,
    source_version: DebVersion,
    layer_position: i64,
    layer: Digest,
}

impl Catalog {
    /// Replace every advisory of `origin` with `advisories`, in one transaction, and record
    /// the import.
    pub async fn import_advisories(
        &self,
        origin: Origin,
        location: &str,
        releases: &[String],
        advisories: &Advisories,
        at: jiff::Timestamp,
    ) -> Result<(), CatalogError> {
        let what = || format!("importing {} advisories", origin.as_str());
        let mut tx = self.pool.begin().await.map_err(query(what()))?;
        sqlx::query("DELETE FROM advisories WHERE origin = $1")
            .bind(origin.as_str())
            .execute(&mut *tx)
            .await
            .map_err(query(what()))?;
        for chunk in advisories.rows.chunks(ADVISORIES_PER_INSERT) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("({})", placeholders(1 + i * 9, 9)))
                .collect();
            let sql = format!(
                "INSERT INTO advisories (origin, release, package, id, status, fixed_version, \
                 urgency, nodsa, nodsa_reason) VALUES {} \
                 ON CONFLICT (origin, release, package, id) DO NOTHING",
                rows.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for a in chunk {
                let fixed = match &a.fix {
                    Fix::Fixed(v) => Some(v.to_string()),
                    _ => None,
                };
                q = q
                    .bind(origin.as_str())
                    .bind(a.release.clone())
                    .bind(a.package.clone())
                    .bind(a.id.clone())
                    .bind(a.fix.as_str())
                    .bind(fixed)
                    .bind(a.urgency.clone())
                    .bind(a.nodsa.clone())
                    .bind(a.nodsa_reason.clone());
            }
            q.execute(&mut *tx).await.map_err(query(what()))?;
        }
        sqlx::query(
            "INSERT INTO security_imports (origin, imported_at, location, releases, advisories, errors) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (origin) DO UPDATE SET \
             imported_at = excluded.imported_at, location = excluded.location, \
             releases = excluded.releases, advisories = excluded.advisories, errors = excluded.errors",
        )
        .bind(origin.as_str())
        .bind(at.as_second())
        .bind(location)
        .bind(serde_json::to_string(releases).unwrap_or_else(|_| "[]".into()))
        .bind(advisories.rows.len() as i64)
        .bind(advisories.errors.len() as i64)
        .execute(&mut *tx)
        .await
        .map_err(query(what()))?;
        tx.commit().await.map_err(query(what()))?;
        Ok(())
    }

    /// The release codenames of the catalog's inventoried images.
    pub async fn inventoried_releases(&self) -> Result<Vec<String>, CatalogError> {
        sqlx::query_scalar(
            "SELECT DISTINCT os_codename FROM image_inventories WHERE os_codename IS NOT NULL \
             ORDER BY os_codename",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query("listing the inventoried releases"))
    }

    /// Every import the catalog holds.
    pub async fn security_imports(&self) -> Result<Vec<Import>, CatalogError> {
        let rows = sqlx::query(
            "SELECT origin, imported_at, location, releases, advisories, errors \
             FROM security_imports ORDER BY origin",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query("reading the security imports"))?;
        let doing = || "reading the security imports".to_owned();
        let mut out = Vec::new();
        for r in rows {
            let at: i64 = r.try_get(1).map_err(query(doing()))?;
            let releases: String = r.try_get(3).map_err(query(doing()))?;
            out.push(Import {
                origin: r.try_get(0).map_err(query(doing()))?,
                imported_at: jiff::Timestamp::from_second(at).map_err(|e| {
                    CatalogError::Corrupt {
                        column: "security_imports.imported_at",
                        value: at.to_string(),
                        source: Box::new(e),
                    }
                })?,
                location: r.try_get(2).map_err(query(doing()))?,
                releases: serde_json::from_str(&releases).unwrap_or_default(),
                advisories: r.try_get(4).map_err(query(doing()))?,
                errors: r.try_get(5).map_err(query(doing()))?,
            });
        }
        Ok(out)
    }

    /// The report: every inventoried image judged against the imported advisories.
    pub async fn security_report(
        &self,
        filter: &SecurityFilter,
    ) -> Result<SecurityReport, CatalogError> {
        let doing = || "building the security report".to_owned();
        let data = self.security_imports().await?;
        let min_rank = filter.min_urgency.as_deref().map(|u| urgency_rank(Some(u)));

        // Which images, and what the catalog cannot judge.
        let inventories: Vec<(String, Option<String>, i64, i64, String)> = sqlx::query_as(
            "SELECT manifest_digest, os_codename, has_dpkg, complete, set_key FROM image_inventories \
             ORDER BY manifest_digest",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query(doing()))?;
        let covered: BTreeSet<String> = data
            .iter()
            .flat_map(|d| d.releases.iter().cloned())
            .collect();
        let mut not_checked = Vec::new();
        // image -> (release, package set)
        let mut judged_images: BTreeMap<Digest, (String, String)> = BTreeMap::new();
        for (d, codename, has_dpkg, complete, set) in inventories {
            let digest = parse_digest("image_inventories.manifest_digest", d)?;
            if complete == 0 {
                // Whether it has a dpkg database at all is not known.
                not_checked.push(NotChecked {
                    digest: digest.clone(),
                    why: "a layer could not be read, so its packages may be incomplete (the \
                          packages read are still judged)"
                        .into(),
                });
            }
            if has_dpkg == 0 {
                continue;
            }
            let why = match &codename {
                None => Some("its os-release names no Debian release codename".to_owned()),
                Some(c) if !covered.contains(c) => {
                    Some(format!("no security data imported for {c}"))
                }
                _ => None,
            };
            match (why, codename) {
                (Some(why), _) => not_checked.push(NotChecked { digest, why }),
                (None, Some(c)) => {
                    judged_images.insert(digest, (c, set));
                }
                (None, None) => {}
            }
        }
        let missing: Vec<String> = sqlx::query_scalar(
            "SELECT m.digest FROM manifests m LEFT JOIN image_inventories i \
             ON i.manifest_digest = m.digest WHERE m.kind = 'image' AND i.manifest_digest IS NULL \
             ORDER BY m.digest",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query(doing()))?;
        for d in missing {
            not_checked.push(NotChecked {
                digest: parse_digest("manifests.digest", d)?,
                why: "no inventory yet (run `tollgate catalog inventory`)".into(),
            });
        }

        // The rows of each package set the judged images have: images with the same packages
        // from the same layers share one set, so 500 images on one base are one set's rows.
        let sets: Vec<&String> = judged_images
            .values()
            .map(|(_, set)| set)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut versions: HashMap<String, DebVersion> = HashMap::new();
        let mut layers: HashMap<String, Digest> = HashMap::new();
        let mut rows_of: HashMap<String, Vec<Row>> = HashMap::new();
        for chunk in sets.chunks(PER_QUERY) {
            let sql = format!(
                "SELECT set_key, name, source, source_version, layer_position, layer_digest \
                 FROM package_set_entries WHERE set_key IN ({}) ORDER BY set_key, source, name",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for k in chunk {
                q = q.bind(k.as_str());
            }
            for r in q.fetch_all(&self.pool).await.map_err(query(doing()))? {
                let s = |i: usize| r.try_get::<String, _>(i).map_err(query(doing()));
                let v = s(3)?;
                let source_version = match versions.get(&v) {
                    Some(parsed) => parsed.clone(),
                    None => {
                        let parsed = version("package_set_entries.source_version", v.clone())?;
                        versions.insert(v, parsed.clone());
                        parsed
                    }
                };
                let l = s(5)?;
                let layer = match layers.get(&l) {
                    Some(d) => d.clone(),
                    None => {
                        let d = parse_digest("package_set_entries.layer_digest", l.clone())?;
                        layers.insert(l, d.clone());
                        d
                    }
                };
                rows_of.entry(s(0)?).or_default().push(Row {
                    name: s(1)?,
                    source: s(2)?,
                    source_version,
                    layer_position: r.try_get(4).map_err(query(doing()))?,
                    layer,
                });
            }
        }
        // Each distinct (release, source, version) judged once.
        let mut pairs: BTreeSet<(String, String, DebVersion)> = BTreeSet::new();
        for (release, set) in judged_images.values() {
            for row in rows_of.get(set).into_iter().flatten() {
                pairs.insert((
                    release.clone(),
                    row.source.clone(),
                    row.source_version.clone(),
                ));
            }
        }
        let mut sources_by_release: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (r, s, _) in &pairs {
            sources_by_release
                .entry(r.clone())
                .or_default()
                .insert(s.clone());
        }
        // (release, source) -> advisories that could matter (fixes and open issues).
        let mut known: HashMap<(String, String), Vec<(Fix, AdvisoryRef)>> = HashMap::new();
        for (release, sources) in &sources_by_release {
            let sources: Vec<&String> = sources.iter().collect();
            for chunk in sources.chunks(PER_QUERY) {
                let sql = format!(
                    "SELECT package, id, status, fixed_version, urgency, nodsa, nodsa_reason, origin \
                     FROM advisories WHERE release = $1 AND status IN ('fixed', 'no-fix-yet') \
                     AND package IN ({}) ORDER BY package, id, origin",
                    placeholders(2, chunk.len())
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(release.as_str());
                for s in chunk {
                    q = q.bind(s.as_str());
                }
                for r in q.fetch_all(&self.pool).await.map_err(query(doing()))? {
                    let s = |i: usize| r.try_get::<Option<String>, _>(i).map_err(query(doing()));
                    let package = s(0)?.unwrap_or_default();
                    let status = s(2)?.unwrap_or_default();
                    let fixed = match s(3)? {
                        Some(v) => Some(version("advisories.fixed_version", v)?),
                        None => None,
                    };
                    let fix = match (status.as_str(), &fixed) {
                        ("fixed", Some(v)) => Fix::Fixed(v.clone()),
                        _ => Fix::NoFixYet,
                    };
                    let advisory = AdvisoryRef {
                        id: s(1)?.unwrap_or_default(),
                        urgency: s(4)?,
                        nodsa: s(5)?,
                        nodsa_reason: s(6)?,
                        origin: s(7)?.unwrap_or_default(),
                        fixed_version: fixed,
                    };
                    if min_rank.is_some_and(|m| urgency_rank(advisory.urgency.as_deref()) < m) {
                        continue;
                    }
                    known
                        .entry((release.clone(), package))
                        .or_default()
                        .push((fix, advisory));
                }
            }
        }
        // (release, source, version) -> (fixes, open issues)
        type Judged = (Vec<AdvisoryRef>, Vec<AdvisoryRef>);
        let mut judged: HashMap<(String, String, DebVersion), Judged> = HashMap::new();
        for (release, source, installed) in pairs {
            let Some(advisories) = known.get(&(release.clone(), source.clone())) else {
                continue;
            };
            let mut fixes = Vec::new();
            let mut open = Vec::new();
            for (fix, a) in advisories {
                match judge(&installed, fix) {
                    Verdict::NeedsUpdate => fixes.push(a.clone()),
                    Verdict::NoFixYet => open.push(a.clone()),
                    Verdict::Fine | Verdict::Undetermined => {}
                }
            }
            if !fixes.is_empty() || !open.is_empty() {
                judged.insert((release, source, installed), (fixes, open));
            }
        }

        // layer -> source/version -> (fix, images); and the open issues.
        struct Pending {
            position: i64,
            fixes: BTreeMap<(String, String), (Fixable, BTreeSet<Digest>)>,
        }
        let mut by_layer: BTreeMap<Digest, Pending> = BTreeMap::new();
        let mut no_fix: BTreeMap<(String, String, DebVersion), (NoFix, BTreeSet<Digest>)> =
            BTreeMap::new();
        // The images with something to report, and where they run.
        let affected = |release: &String, set: &String| {
            rows_of.get(set).into_iter().flatten().any(|row| {
                judged.contains_key(&(
                    release.clone(),
                    row.source.clone(),
                    row.source_version.clone(),
                ))
            })
        };
        let images: Vec<Digest> = judged_images
            .iter()
            .filter(|(_, (release, set))| affected(release, set))
            .map(|(d, _)| d.clone())
            .collect();
        let places = self.places(&images, &filter.runs).await?;
        for image in &images {
            if (filter.running || !filter.runs.is_empty())
                && places.get(image).is_none_or(|(_, runs)| runs.is_empty())
            {
                continue;
            }
            let (release, set) = &judged_images[image];
            for row in rows_of.get(set).into_iter().flatten() {
                let key = (
                    release.clone(),
                    row.source.clone(),
                    row.source_version.clone(),
                );
                let Some((fixes, open)) = judged.get(&key) else {
                    continue;
                };
                if !open.is_empty() {
                    let e = no_fix.entry(key.clone()).or_insert_with(|| {
                        (
                            NoFix {
                                release: release.clone(),
                                source: row.source.clone(),
                                installed: row.source_version.clone(),
                                advisories: open.clone(),
                                images: 0,
                            },
                            BTreeSet::new(),
                        )
                    });
                    e.1.insert(image.clone());
                }
                if fixes.is_empty() {
                    continue;
                }
                let pending = by_layer
                    .entry(row.layer.clone())
                    .or_insert_with(|| Pending {
                        position: row.layer_position,
                        fixes: BTreeMap::new(),
                    });
                let entry = pending
                    .fixes
                    .entry((row.source.clone(), row.source_version.to_string()))
                    .or_insert_with(|| {
                        let fixed = fixes
                            .iter()
                            .filter_map(|a| a.fixed_version.clone())
                            .max()
                            .unwrap_or_else(|| row.source_version.clone());
                        let urgency = fixes
                            .iter()
                            .max_by_key(|a| urgency_rank(a.urgency.as_deref()))
                            .and_then(|a| a.urgency.clone());
                        (
                            Fixable {
                                source: row.source.clone(),
                                installed: row.source_version.clone(),
                                fixed,
                                binaries: Vec::new(),
                                advisories: fixes.clone(),
                                urgency,
                            },
                            BTreeSet::new(),
                        )
                    });
                if !entry.0.binaries.contains(&row.name) {
                    entry.0.binaries.push(row.name.clone());
                }
                entry.1.insert(image.clone());
            }
        }

        let mut groups = Vec::new();
        let mut needing: BTreeSet<Digest> = BTreeSet::new();
        for (layer, pending) in by_layer {
            let images: BTreeSet<Digest> = pending
                .fixes
                .values()
                .flat_map(|(_, i)| i.iter().cloned())
                .collect();
            let ends_here = self.ending_with(&layer, pending.position).await?;
            let (kind, image) = match ends_here.first() {
                None => (GroupKind::Layer, None),
                Some(d) if images.len() == 1 && images.contains(d) => {
                    (GroupKind::Image, Some(d.clone()))
                }
                Some(d) => (GroupKind::Base, Some(d.clone())),
            };
            let names = match &image {
                Some(d) => self.display_names(d).await?,
                None => Vec::new(),
            };
            let mut affected = Vec::new();
            let mut pods = 0u64;
            for d in &images {
                needing.insert(d.clone());
                let (names, runs) = places.get(d).cloned().unwrap_or_default();
                pods += runs.iter().map(|r| u64::from(r.pods)).sum::<u64>();
                affected.push(AffectedImage {
                    digest: d.clone(),
                    names,
                    running: runs,
                });
            }
            groups.push(RebuildGroup {
                kind,
                layer,
                image,
                names,
                fixes: pending.fixes.into_values().map(|(f, _)| f).collect(),
                images: affected,
                pods,
            });
        }
        groups.sort_by(|a, b| {
            (
                a.kind,
                std::cmp::Reverse(a.pods),
                std::cmp::Reverse(a.images.len()),
                &a.layer,
            )
                .cmp(&(
                    b.kind,
                    std::cmp::Reverse(b.pods),
                    std::cmp::Reverse(b.images.len()),
                    &b.layer,
                ))
        });
        Ok(SecurityReport {
            data,
            groups,
            images_needing_update: needing.len(),
            no_fix_yet: no_fix
                .into_values()
                .map(|(mut n, images)| {
                    n.images = images.len();
                    n
                })
                .collect(),
            not_checked,
        })
    }

    /// For each of `images`: its names (tags pointing at it or an index of it now, else the
    /// repositories holding it) and where it or an index of it runs now (kept to `filter`).
    /// A few queries for all of them, not a few per image: a report over 500 images on one
    /// base would otherwise be thousands of round trips.
    async fn places(
        &self,
        images: &[Digest],
        filter: &RunFilter,
    ) -> Result<HashMap<Digest, (Vec<String>, Vec<Run>)>, CatalogError> {
        let doing = || "finding where the images run".to_owned();
        let texts: Vec<String> = images.iter().map(ToString::to_string).collect();
        // child -> indexes holding it
        let mut holders: HashMap<String, Vec<String>> = HashMap::new();
        for chunk in texts.chunks(PER_QUERY) {
            let sql = format!(
                "SELECT DISTINCT child_digest, index_digest FROM index_children WHERE child_digest IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
            for d in chunk {
                q = q.bind(d.as_str());
            }
            for (child, index) in q.fetch_all(&self.pool).await.map_err(query(doing()))? {
                holders.entry(child).or_default().push(index);
            }
        }
        let all: Vec<String> = texts
            .iter()
            .cloned()
            .chain(holders.values().flatten().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut tags: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut repos: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut runs: HashMap<String, Vec<Run>> = HashMap::new();
        for chunk in all.chunks(PER_QUERY) {
            let list = placeholders(1, chunk.len());
            let bind = |sql: String| {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for d in chunk {
                    q = q.bind(d.as_str());
                }
                q
            };
            let tagged = bind(format!(
                "SELECT h.digest, r.registry, r.name, t.name FROM tag_history h \
                 JOIN tags t ON t.id = h.tag_id JOIN repositories r ON r.id = t.repository_id \
                 WHERE h.moved_at IS NULL AND h.digest IN ({list})"
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(query(doing()))?;
            for r in tagged {
                let s = |i: usize| r.try_get::<String, _>(i).map_err(query(doing()));
                tags.entry(s(0)?)
                    .or_default()
                    .insert(format!("{}/{}:{}", s(1)?, s(2)?, s(3)?));
            }
            let held = bind(format!(
                "SELECT rm.digest, r.registry, r.name FROM repository_manifests rm \
                 JOIN repositories r ON r.id = rm.repository_id WHERE rm.digest IN ({list})"
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(query(doing()))?;
            for r in held {
                let s = |i: usize| r.try_get::<String, _>(i).map_err(query(doing()));
                repos
                    .entry(s(0)?)
                    .or_default()
                    .insert(format!("{}/{}", s(1)?, s(2)?));
            }
            let open = bind(format!(
                "SELECT {RUN_COLUMNS} FROM runs r JOIN clusters c ON c.id = r.cluster_id \
                 WHERE r.closed_at IS NULL AND r.digest IN ({list})"
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(query(doing()))?;
            for row in open {
                let r = run(&row)?;
                if filter.keeps(&r) {
                    runs.entry(r.digest.to_string()).or_default().push(r);
                }
            }
        }
        let mut out = HashMap::new();
        for (image, text) in images.iter().zip(&texts) {
            let related: Vec<&String> = std::iter::once(text)
                .chain(holders.get(text).into_iter().flatten())
                .collect();
            let mut t = BTreeSet::new();
            let mut rp = BTreeSet::new();
            let mut rs: Vec<Run> = Vec::new();
            for d in &related {
                t.extend(tags.get(*d).into_iter().flatten().cloned());
                rp.extend(repos.get(*d).into_iter().flatten().cloned());
                rs.extend(runs.get(*d).into_iter().flatten().cloned());
            }
            rs.sort_by(|a, b| {
                (a.first_seen, &a.cluster, &a.namespace, &a.controller_name).cmp(&(
                    b.first_seen,
                    &b.cluster,
                    &b.namespace,
                    &b.controller_name,
                ))
            });
            let names = if t.is_empty() { rp } else { t };
            out.insert(image.clone(), (names.into_iter().collect(), rs));
        }
        Ok(out)
    }

    /// Tags pointing at `digest` (or an index of it) now, else the repositories holding it.
    async fn display_names(&self, digest: &Digest) -> Result<Vec<String>, CatalogError> {
        let related = self.related(digest).await?;
        let (repositories, tags) = self.names(&related).await?;
        Ok(if tags.is_empty() { repositories } else { tags })
    }

    /// Image manifests whose top layer is `layer`, at `position` (so: built of exactly the
    /// layers up to it), tagged ones first.
    async fn ending_with(
        &self,
        layer: &Digest,
        position: i64,
    ) -> Result<Vec<Digest>, CatalogError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT x.manifest_digest, \
             (SELECT COUNT(*) FROM tag_history h WHERE h.digest = x.manifest_digest AND h.moved_at IS NULL) \
             FROM manifest_layers x WHERE x.layer_digest = $1 AND x.position = $2 \
             AND NOT EXISTS (SELECT 1 FROM manifest_layers y WHERE y.manifest_digest = x.manifest_digest AND y.position > $2) \
             ORDER BY x.manifest_digest",
        )
        .bind(layer.to_string())
        .bind(position)
        .fetch_all(&self.pool)
        .await
        .map_err(query(format!("finding the image that ends with layer {layer}")))?;
        let mut out: Vec<(i64, Digest)> = Vec::new();
        for (d, tagged) in rows {
            out.push((tagged, parse_digest("manifest_layers.manifest_digest", d)?));
        }
        out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        Ok(out.into_iter().map(|(_, d)| d).collect())
    }
}
