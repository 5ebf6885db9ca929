//! Retention of history: what ended before a cutoff is deleted, in bounded batches, and what
//! is still current is never touched.
//!
//! - runs closed before the cutoff (an open run is never deleted, however old its start);
//! - tag history rows that moved before the cutoff (the current row of a tag never);
//! - registry events noticed before the cutoff, except each digest's latest event, which is
//!   its current state: deleting an old `unservable` one while the digest is still lost would
//!   make the next audit notice the loss anew, at the wrong time.
//!
//! Safe next to writers: a closed run never reopens (seen again, it opens a new interval), a
//! moved tag row never becomes current again, and an event that stops being a digest's
//! latest only becomes deletable. Each batch is one short statement, so writers wait for a
//! batch at most, never for the whole prune.

use serde::Serialize;

use super::error::{CatalogError, query};
use super::store::Catalog;

/// Rows deleted per statement: small enough that a batch holds locks for milliseconds.
const BATCH: i64 = 1000;

/// What a prune deleted (or, dry, would delete).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pruned {
    /// Closed runs.
    pub runs: u64,
    /// Moved tag history rows.
    pub tag_history: u64,
    /// Registry events.
    pub registry_events: u64,
}

/// (table, condition on its rows as `t`, with `$1` the cutoff). The conditions come from this
/// list only, never from input.
const RULES: [(&str, &str); 3] = [
    ("runs", "t.closed_at IS NOT NULL AND t.closed_at < $1"),
    ("tag_history", "t.moved_at IS NOT NULL AND t.moved_at < $1"),
    (
        "registry_events",
        "t.noticed_at < $1 AND EXISTS (SELECT 1 FROM registry_events l WHERE l.digest = t.digest \
         AND (l.noticed_at > t.noticed_at OR (l.noticed_at = t.noticed_at AND l.id > t.id)))",
    ),
];

impl Catalog {
    /// Delete (or with `dry_run`, count) the history that ended before `cutoff`, by the
    /// rules of this module.
    pub async fn prune(
        &self,
        cutoff: jiff::Timestamp,
        dry_run: bool,
    ) -> Result<Pruned, CatalogError> {
        let cutoff = cutoff.as_second();
        let mut counts = [0u64; 3];
        for ((table, condition), count) in RULES.iter().zip(&mut counts) {
            let what = || format!("pruning {table}");
            if dry_run {
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {table} t WHERE {condition}"
                )))
                .bind(cutoff)
                .fetch_one(&self.pool)
                .await
                .map_err(query(what()))?;
                *count = u64::try_from(n).unwrap_or(0);
                continue;
            }
            let sql = format!(
                "DELETE FROM {table} WHERE id IN \
                 (SELECT t.id FROM {table} t WHERE {condition} ORDER BY t.id LIMIT {BATCH})"
            );
            loop {
                let done = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(cutoff)
                    .execute(&self.pool)
                    .await
                    .map_err(query(what()))?
                    .rows_affected();
                *count += done;
                if done < BATCH as u64 {
                    break;
                }
            }
        }
        let [runs, tag_history, registry_events] = counts;
        Ok(Pruned {
            runs,
            tag_history,
            registry_events,
        })
    }
}
