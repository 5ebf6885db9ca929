//! Manifests in the catalog: which digests it already holds (a sync never fetches those
//! again), recording one manifest with its children or layers in one transaction, and which
//! repository holds which manifest, first and last seen.

use std::collections::{BTreeSet, HashSet};

use sqlx::{Any, Transaction};

use super::error::{CatalogError, query};
use super::manifest_rows::ManifestRecord;
use super::store::Catalog;
use super::tags::repository_id;
use crate::reference::{Digest, RegistryHost, Repository};

/// Digests per `IN (...)` list: well under SQLite's and PostgreSQL's bind limits.
const DIGESTS_PER_QUERY: usize = 500;
/// Rows per multi-row INSERT (three or four binds each).
const ROWS_PER_INSERT: usize = 500;
/// How deep `touch_repository_manifests` follows indexes to their children: as deep as a
/// sync reads them ([`crate::catalog::sync`]).
const MAX_DEPTH: usize = 4;

/// `$first, $first+1, ...`, `n` of them.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A size for a BIGINT column; [`super::manifest_rows::manifest_record`] refused larger ones.
fn size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Catalog {
    /// Which of `digests` the catalog's `manifests` table already holds.
    pub async fn known_digests(&self, digests: &[Digest]) -> Result<HashSet<Digest>, CatalogError> {
        let mut known = HashSet::new();
        let distinct: Vec<String> = digests
            .iter()
            .map(ToString::to_string)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in distinct.chunks(DIGESTS_PER_QUERY) {
            let sql = format!(
                "SELECT digest FROM manifests WHERE digest IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
            for d in chunk {
                q = q.bind(d.as_str());
            }
            for d in q
                .fetch_all(&self.pool)
                .await
                .map_err(query("looking up known manifests"))?
            {
                known.insert(d.parse().map_err(|e| CatalogError::Corrupt {
                    column: "manifests.digest",
                    value: d.clone(),
                    source: Box::new(e),
                })?);
            }
        }
        Ok(known)
    }

    /// Record one manifest, its index children or its layers, in one transaction, first seen
    /// at `seen_at`. Returns whether it was new: a manifest already recorded (by an earlier
    /// sync, or another writer at the same time) is left as it is, since a digest's content
    /// never changes.
    ///
    /// An index's children are not required to be recorded (digests are not foreign keys
    /// there); a sync records them first, so that a recorded index always has its children.
    pub async fn record_manifest(
        &self,
        m: &ManifestRecord,
        seen_at: jiff::Timestamp,
    ) -> Result<bool, CatalogError> {
        let seen_at = seen_at.as_second();
        let what = || format!("recording manifest {}", m.digest);
        let mut tx = self.pool.begin().await.map_err(query(what()))?;
        let platform = m.platform.as_ref();
        let inserted = sqlx::query(
            "INSERT INTO manifests (digest, media_type, kind, size, os, architecture, variant, \
             config_digest, created_at, labels, first_seen) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (digest) DO NOTHING",
        )
        .bind(m.digest.to_string())
        .bind(m.media_type.as_str())
        .bind(m.kind.as_str())
        .bind(size(m.size))
        .bind(platform.map(|p| p.os.clone()))
        .bind(platform.map(|p| p.architecture.clone()))
        .bind(platform.and_then(|p| p.variant.clone()))
        .bind(m.config_digest.as_ref().map(ToString::to_string))
        .bind(m.created_at)
        .bind(m.labels.clone())
        .bind(seen_at)
        .execute(&mut *tx)
        .await
        .map_err(query(what()))?
        .rows_affected()
            == 1;
        if inserted {
            insert_children(&mut tx, m).await.map_err(query(what()))?;
            insert_layers(&mut tx, m).await.map_err(query(what()))?;
        }
        tx.commit().await.map_err(query(what()))?;
        Ok(inserted)
    }

    /// `registry/repository` holds `digests` at `seen_at`, and every child of those that are
    /// indexes: their `repository_manifests` rows are opened or their `last_seen` moved on
    /// (never backwards). Digests the catalog holds no manifest for are skipped (a tag whose
    /// manifest could not be read).
    pub async fn touch_repository_manifests(
        &self,
        registry: &RegistryHost,
        repository: &Repository,
        digests: &[Digest],
        seen_at: jiff::Timestamp,
    ) -> Result<(), CatalogError> {
        let seen_at = seen_at.as_second();
        let what = || {
            format!(
                "recording the manifests of {}/{repository}",
                registry.canonical()
            )
        };
        let mut tx = self.pool.begin().await.map_err(query(what()))?;
        let repo_id = repository_id(&mut tx, registry, repository, seen_at).await?;
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut level: Vec<String> = digests
            .iter()
            .map(ToString::to_string)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for _ in 0..MAX_DEPTH {
            level.retain(|d| seen.insert(d.clone()));
            if level.is_empty() {
                break;
            }
            let mut children = BTreeSet::new();
            for chunk in level.chunks(DIGESTS_PER_QUERY) {
                // `WHERE` before `ON CONFLICT`: SQLite's grammar needs it after a SELECT.
                let sql = format!(
                    "INSERT INTO repository_manifests (repository_id, digest, first_seen, last_seen) \
                     SELECT $1, digest, $2, $2 FROM manifests WHERE digest IN ({}) \
                     ON CONFLICT (repository_id, digest) DO UPDATE SET last_seen = \
                     CASE WHEN repository_manifests.last_seen < excluded.last_seen \
                     THEN excluded.last_seen ELSE repository_manifests.last_seen END",
                    placeholders(3, chunk.len())
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(repo_id)
                    .bind(seen_at);
                for d in chunk {
                    q = q.bind(d.as_str());
                }
                q.execute(&mut *tx).await.map_err(query(what()))?;
                let sql = format!(
                    "SELECT DISTINCT child_digest FROM index_children WHERE index_digest IN ({})",
                    placeholders(1, chunk.len())
                );
                let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
                for d in chunk {
                    q = q.bind(d.as_str());
                }
                children.extend(q.fetch_all(&mut *tx).await.map_err(query(what()))?);
            }
            level = children.into_iter().collect();
        }
        tx.commit().await.map_err(query(what()))?;
        Ok(())
    }

    /// The images built on `base`, by lineage in layer digests: every image manifest whose
    /// layers start with all of an image's layers, in order, where that image is `base` itself
    /// or, for an index, one of its children. `base` and its children are left out; the
    /// answer is sorted. Derived from `manifest_layers` at query time (its
    /// `manifest_layers_layer` index): nothing about bases is stored, so a change of the
    /// policy's approved bases needs no sync.
    pub async fn built_on(&self, base: &Digest) -> Result<Vec<Digest>, CatalogError> {
        let what = || format!("finding the images built on {base}");
        // Each candidate matches a base image at every one of the base's positions: counted
        // per (image, base) pair against the base's layer count, that is a complete prefix.
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT m.manifest_digest FROM manifest_layers b \
             JOIN manifest_layers m ON m.layer_digest = b.layer_digest AND m.position = b.position \
             WHERE b.manifest_digest IN \
               (SELECT $1 UNION SELECT child_digest FROM index_children WHERE index_digest = $1) \
             AND m.manifest_digest NOT IN \
               (SELECT $1 UNION SELECT child_digest FROM index_children WHERE index_digest = $1) \
             GROUP BY m.manifest_digest, b.manifest_digest \
             HAVING COUNT(*) = (SELECT COUNT(*) FROM manifest_layers x WHERE x.manifest_digest = b.manifest_digest) \
             ORDER BY m.manifest_digest",
        )
        .bind(base.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(query(what()))?;
        rows.into_iter()
            .map(|d| {
                d.parse().map_err(|e| CatalogError::Corrupt {
                    column: "manifest_layers.manifest_digest",
                    value: d.clone(),
                    source: Box::new(e),
                })
            })
            .collect()
    }
}

async fn insert_children(
    tx: &mut Transaction<'static, Any>,
    m: &ManifestRecord,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(usize, &super::manifest_rows::ChildRow)> =
        m.children.iter().enumerate().collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        // $1 the index, then five per child.
        let values: Vec<String> = (0..chunk.len())
            .map(|r| {
                let p = 2 + r * 5;
                format!("($1, ${p}, ${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4)
            })
            .collect();
        let sql = format!(
            "INSERT INTO index_children (index_digest, position, child_digest, os, architecture, variant) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(m.digest.to_string());
        for (position, c) in chunk {
            let p = c.platform.as_ref();
            q = q
                .bind(*position as i64)
                .bind(c.digest.to_string())
                .bind(p.map(|p| p.os.clone()))
                .bind(p.map(|p| p.architecture.clone()))
                .bind(p.and_then(|p| p.variant.clone()));
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_layers(
    tx: &mut Transaction<'static, Any>,
    m: &ManifestRecord,
) -> Result<(), sqlx::Error> {
    // One row per distinct layer (an image may carry the same blob twice, empty layers), in
    // digest order: two writers of images that share layers then take the layers' key locks
    // in the same order, and never wait on each other in a cycle (PostgreSQL would abort one).
    let layers: Vec<_> = m
        .layers
        .iter()
        .map(|l| (l.digest.to_string(), l))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_values()
        .collect();
    for chunk in layers.chunks(ROWS_PER_INSERT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|r| {
                let p = 1 + r * 3;
                format!("(${p}, ${}, ${})", p + 1, p + 2)
            })
            .collect();
        let sql = format!(
            "INSERT INTO layers (digest, size, media_type) VALUES {} ON CONFLICT (digest) DO NOTHING",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for l in chunk {
            q = q
                .bind(l.digest.to_string())
                .bind(size(l.size))
                .bind((!l.media_type.is_empty()).then(|| l.media_type.clone()));
        }
        q.execute(&mut **tx).await?;
    }
    let rows: Vec<(usize, String)> = m
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| (i, l.digest.to_string()))
        .collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|r| {
                let p = 2 + r * 2;
                format!("($1, ${p}, ${})", p + 1)
            })
            .collect();
        let sql = format!(
            "INSERT INTO manifest_layers (manifest_digest, position, layer_digest) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(m.digest.to_string());
        for (position, digest) in chunk {
            q = q.bind(*position as i64).bind(digest.as_str());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
