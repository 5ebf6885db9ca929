//! What ran where, as intervals: recording a cluster's snapshot, and the two questions asked
//! after an incident (where does this digest run, what ran here then).

use std::collections::{BTreeMap, HashMap};

use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use super::error::{CatalogError, query};
use super::store::Catalog;
use crate::reference::{Digest, ImageRef};

/// One container of one controller, as a snapshot of a cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSighting {
    /// The namespace.
    pub namespace: String,
    /// The top controller's kind (`Deployment`, `StatefulSet`, ...; `Pod` for a bare pod).
    pub controller_kind: String,
    /// Its name.
    pub controller_name: String,
    /// The container's name.
    pub container: String,
    /// What it runs: `repository@digest` (a reference without a digest is refused).
    pub image: ImageRef,
    /// How many pods run it.
    pub pods: u32,
}

/// A recorded interval.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Run {
    /// The cluster's name.
    pub cluster: String,
    /// The namespace.
    pub namespace: String,
    /// The top controller's kind.
    pub controller_kind: String,
    /// Its name.
    pub controller_name: String,
    /// The container.
    pub container: String,
    /// What it ran, `registry/repository@digest`.
    pub image: ImageRef,
    /// The digest it ran (the image's).
    pub digest: Digest,
    /// Pods at the latest sighting.
    pub pods: u32,
    /// The first snapshot that saw it.
    pub first_seen: jiff::Timestamp,
    /// The latest snapshot that saw it.
    pub last_seen: jiff::Timestamp,
    /// The snapshot that no longer saw it (None while it runs).
    pub closed_at: Option<jiff::Timestamp>,
}

/// What recording one snapshot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Recorded {
    /// Runs new since the previous snapshot.
    pub opened: usize,
    /// Runs seen again.
    pub extended: usize,
    /// Runs the previous snapshot saw and this one does not.
    pub closed: usize,
    /// The cluster already has a later snapshot: this one changed nothing.
    pub stale: bool,
}

/// The identity of a run: one open interval each.
type Key = (String, String, String, String, String);

fn key(namespace: &str, kind: &str, name: &str, container: &str, digest: &str) -> Key {
    (
        namespace.to_owned(),
        kind.to_owned(),
        name.to_owned(),
        container.to_owned(),
        digest.to_owned(),
    )
}

pub(crate) const RUN_COLUMNS: &str = "c.name, r.namespace, r.controller_kind, r.controller_name, r.container, r.image, r.digest, r.pod_count, r.first_seen, r.last_seen, r.closed_at";

impl Catalog {
    /// Record what `cluster` runs at `seen_at`, in one transaction: a run seen again extends
    /// its interval, a new one opens one, and an open run missing from `snapshot` is closed at
    /// `seen_at` (its `last_seen` stays the last snapshot that saw it).
    ///
    /// Two writers never lose an update. The transaction's first write upserts the cluster's
    /// row with `DO UPDATE`: PostgreSQL locks that row until commit (SQLite takes the
    /// database's write lock), so recordings of one cluster run one after the other, and the
    /// second, under READ COMMITTED, reads the open runs the first committed. Recordings of
    /// different clusters touch different rows and run in parallel. A snapshot older than the
    /// cluster's latest is stale and changes nothing, so replicas racing with their own clocks
    /// cannot close runs a newer snapshot saw. The partial unique index `runs_open` refuses a
    /// second open interval of one run even if that reasoning were wrong.
    pub async fn record_runs(
        &self,
        cluster: &str,
        snapshot: &[RunSighting],
        seen_at: jiff::Timestamp,
    ) -> Result<Recorded, CatalogError> {
        let seen_at = seen_at.as_second();
        let what = || format!("recording the runs of cluster {cluster}");
        // One row per run: two pods' worth of the same container are one run with two pods.
        let mut seen: BTreeMap<Key, (String, i64)> = BTreeMap::new();
        for s in snapshot {
            let digest = s
                .image
                .digest()
                .ok_or_else(|| CatalogError::RunWithoutDigest {
                    image: s.image.to_string(),
                })?;
            let entry = seen
                .entry(key(
                    &s.namespace,
                    &s.controller_kind,
                    &s.controller_name,
                    &s.container,
                    &digest.to_string(),
                ))
                .or_insert_with(|| (s.image.canonical_name().to_owned(), 0));
            entry.1 += i64::from(s.pods);
        }

        let mut tx = self.pool.begin().await.map_err(query(what()))?;
        let (cluster_id, last): (i64, Option<i64>) = sqlx::query_as(
            "INSERT INTO clusters (name) VALUES ($1) \
             ON CONFLICT (name) DO UPDATE SET name = excluded.name \
             RETURNING id, last_recorded_at",
        )
        .bind(cluster)
        .fetch_one(&mut *tx)
        .await
        .map_err(query(what()))?;
        if last.is_some_and(|last| seen_at < last) {
            tx.rollback().await.map_err(query(what()))?;
            return Ok(Recorded {
                stale: true,
                ..Recorded::default()
            });
        }
        let open: Vec<(i64, String, String, String, String, String)> = sqlx::query_as(
            "SELECT id, namespace, controller_kind, controller_name, container, digest \
             FROM runs WHERE cluster_id = $1 AND closed_at IS NULL",
        )
        .bind(cluster_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(query(what()))?;
        let mut open: HashMap<Key, i64> = open
            .into_iter()
            .map(|(id, ns, kind, name, container, digest)| {
                (key(&ns, &kind, &name, &container, &digest), id)
            })
            .collect();

        // A snapshot of a big cluster is thousands of runs: they are written a few hundred
        // rows per statement, not one statement each (a round trip per row made 10,000 runs
        // take seconds on PostgreSQL).
        let mut extend: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        let mut new_runs = Vec::new();
        for (k, (image, pods)) in &seen {
            match open.remove(k) {
                Some(id) => extend.entry(*pods).or_default().push(id),
                None => new_runs.push((k, image.as_str(), *pods)),
            }
        }
        let recorded = Recorded {
            opened: new_runs.len(),
            extended: extend.values().map(Vec::len).sum(),
            closed: open.len(),
            stale: false,
        };
        // Runs seen again are updated per pod count, which few runs change between snapshots.
        for chunk in new_runs.chunks(ROWS_PER_INSERT) {
            insert(&mut tx, cluster_id, chunk, seen_at)
                .await
                .map_err(query(what()))?;
        }
        for (pods, ids) in &extend {
            for chunk in ids.chunks(IDS_PER_UPDATE) {
                let sql = format!(
                    "UPDATE runs SET last_seen = $1, pod_count = $2 WHERE id IN ({})",
                    placeholders(3, chunk.len())
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(seen_at)
                    .bind(*pods);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut *tx).await.map_err(query(what()))?;
            }
        }
        let closed: Vec<i64> = open.into_values().collect();
        for chunk in closed.chunks(IDS_PER_UPDATE) {
            let sql = format!(
                "UPDATE runs SET closed_at = $1 WHERE id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(seen_at);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await.map_err(query(what()))?;
        }
        sqlx::query("UPDATE clusters SET last_recorded_at = $1 WHERE id = $2")
            .bind(seen_at)
            .bind(cluster_id)
            .execute(&mut *tx)
            .await
            .map_err(query(what()))?;
        tx.commit().await.map_err(query(what()))?;
        Ok(recorded)
    }

    /// Every interval in which `digest` ran, in any cluster, oldest first.
    pub async fn runs_of_digest(&self, digest: &Digest) -> Result<Vec<Run>, CatalogError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN clusters c ON c.id = r.cluster_id \
             WHERE r.digest = $1 \
             ORDER BY r.first_seen, c.name, r.namespace, r.controller_kind, r.controller_name, r.container"
        )))
        .bind(digest.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(query(format!("listing the runs of {digest}")))?;
        rows.iter().map(run).collect()
    }

    /// What ran at `at` (first seen at or before it, last seen at or after it), optionally in
    /// one cluster and one namespace. Between a run's last sighting and the snapshot that no
    /// longer saw it nothing is claimed: the catalog knows only what snapshots saw.
    pub async fn running_at(
        &self,
        at: jiff::Timestamp,
        cluster: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Vec<Run>, CatalogError> {
        // Conditions are added rather than written `($2 IS NULL OR ...)`, which keeps
        // PostgreSQL's plans on the namespace and cluster indexes.
        let mut sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN clusters c ON c.id = r.cluster_id \
             WHERE r.last_seen >= $1 AND r.first_seen <= $1"
        );
        let mut n = 1;
        if cluster.is_some() {
            n += 1;
            sql.push_str(&format!(" AND c.name = ${n}"));
        }
        if namespace.is_some() {
            n += 1;
            sql.push_str(&format!(" AND r.namespace = ${n}"));
        }
        sql.push_str(
            " ORDER BY c.name, r.namespace, r.controller_kind, r.controller_name, r.container, r.digest",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at.as_second());
        if let Some(c) = cluster {
            q = q.bind(c.to_owned());
        }
        if let Some(ns) = namespace {
            q = q.bind(ns.to_owned());
        }
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(query(format!("listing what ran at {at}")))?;
        rows.iter().map(run).collect()
    }
}

/// Rows per multi-row INSERT: 7 parameters each stays far below SQLite's 32,766 and
/// PostgreSQL's 65,535 parameters per statement.
const ROWS_PER_INSERT: usize = 500;
/// Ids per `IN (...)` list.
const IDS_PER_UPDATE: usize = 1000;

/// `$first, $first+1, ...`, `n` of them.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn insert(
    tx: &mut Transaction<'static, Any>,
    cluster_id: i64,
    rows: &[(&Key, &str, i64)],
    seen_at: i64,
) -> Result<(), sqlx::Error> {
    // $1 the cluster, $2 the time (first and last seen), then seven per row.
    let values: Vec<String> = (0..rows.len())
        .map(|r| {
            let p = 3 + r * 7;
            format!(
                "($1, ${}, ${}, ${}, ${}, ${}, ${}, ${}, $2, $2)",
                p,
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO runs (cluster_id, namespace, controller_kind, controller_name, container, image, digest, pod_count, first_seen, last_seen) VALUES {}",
        values.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(cluster_id)
        .bind(seen_at);
    for ((namespace, kind, name, container, digest), image, pods) in rows {
        q = q
            .bind(namespace.as_str())
            .bind(kind.as_str())
            .bind(name.as_str())
            .bind(container.as_str())
            .bind(*image)
            .bind(digest.as_str())
            .bind(*pods);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

pub(crate) fn time(column: &'static str, value: i64) -> Result<jiff::Timestamp, CatalogError> {
    jiff::Timestamp::from_second(value).map_err(|source| CatalogError::BadTime {
        column,
        value,
        source,
    })
}

pub(crate) fn run(row: &AnyRow) -> Result<Run, CatalogError> {
    let get = |i: usize, column: &'static str| -> Result<String, CatalogError> {
        row.try_get(i).map_err(query(format!("reading {column}")))
    };
    let int = |i: usize, column: &'static str| -> Result<i64, CatalogError> {
        row.try_get(i).map_err(query(format!("reading {column}")))
    };
    let digest = get(6, "runs.digest")?;
    let image = format!("{}@{digest}", get(5, "runs.image")?);
    let pods = int(7, "runs.pod_count")?;
    let closed_at: Option<i64> = row.try_get(10).map_err(query("reading runs.closed_at"))?;
    Ok(Run {
        cluster: get(0, "clusters.name")?,
        namespace: get(1, "runs.namespace")?,
        controller_kind: get(2, "runs.controller_kind")?,
        controller_name: get(3, "runs.controller_name")?,
        container: get(4, "runs.container")?,
        image: image.parse().map_err(|e| CatalogError::Corrupt {
            column: "runs.image",
            value: image.clone(),
            source: Box::new(e),
        })?,
        digest: digest.parse().map_err(|e| CatalogError::Corrupt {
            column: "runs.digest",
            value: digest.clone(),
            source: Box::new(e),
        })?,
        pods: u32::try_from(pods).map_err(|e| CatalogError::Corrupt {
            column: "runs.pod_count",
            value: pods.to_string(),
            source: Box::new(e),
        })?,
        first_seen: time("runs.first_seen", int(8, "runs.first_seen")?)?,
        last_seen: time("runs.last_seen", int(9, "runs.last_seen")?)?,
        closed_at: closed_at.map(|t| time("runs.closed_at", t)).transpose()?,
    })
}
