//! Tag history: every digest a tag was seen pointing at, as intervals closed when it moved.

use sqlx::{Any, Transaction};

use super::error::{CatalogError, query};
use super::store::Catalog;
use crate::reference::{Digest, RegistryHost, Repository, Tag};

/// What one sighting did to a tag's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagSighting {
    /// The tag was new to the catalog.
    Opened,
    /// It still pointed at the same digest: its `last_seen` moved on.
    Extended,
    /// It pointed elsewhere: the old interval closed at this sighting, a new one opened.
    Moved {
        /// The digest it pointed at before.
        from: Digest,
    },
    /// Another writer already saw it at a later time pointing elsewhere: this older sighting
    /// would invent a move back, so it is not recorded.
    Stale,
}

/// Find or add a repository's row. `DO NOTHING` takes no row lock, so tags of one repository
/// are recorded in parallel; the insert of a new name still waits for a concurrent insert of
/// the same name to commit, and the SELECT then sees it.
pub(crate) async fn repository_id(
    tx: &mut Transaction<'static, Any>,
    registry: &RegistryHost,
    repository: &Repository,
    seen_at: i64,
) -> Result<i64, CatalogError> {
    let doing = || format!("recording repository {}/{repository}", registry.canonical());
    sqlx::query(
        "INSERT INTO repositories (registry, name, first_seen) VALUES ($1, $2, $3) \
         ON CONFLICT (registry, name) DO NOTHING",
    )
    .bind(registry.canonical())
    .bind(repository.as_str())
    .bind(seen_at)
    .execute(&mut **tx)
    .await
    .map_err(query(doing()))?;
    sqlx::query_scalar("SELECT id FROM repositories WHERE registry = $1 AND name = $2")
        .bind(registry.canonical())
        .bind(repository.as_str())
        .fetch_one(&mut **tx)
        .await
        .map_err(query(doing()))
}

impl Catalog {
    /// Record that `registry/repository:tag` pointed at `digest` at `seen_at`.
    ///
    /// One transaction. Its first write is the tag's row, upserted with `DO UPDATE`, which in
    /// PostgreSQL locks that row until commit (and in SQLite takes the database's write lock):
    /// a second writer of the same tag waits there, and under READ COMMITTED its next
    /// statement reads the history the first one committed. So no sighting is decided on a
    /// stale current row, and none is lost; the partial unique index `tag_history_current`
    /// would refuse a second open interval even if that reasoning were wrong.
    pub async fn record_tag_sighting(
        &self,
        registry: &RegistryHost,
        repository: &Repository,
        tag: &Tag,
        digest: &Digest,
        seen_at: jiff::Timestamp,
    ) -> Result<TagSighting, CatalogError> {
        let seen_at = seen_at.as_second();
        let what = || format!("recording tag {}/{repository}:{tag}", registry.canonical());
        let mut tx = self.pool.begin().await.map_err(query(what()))?;
        let repo_id = repository_id(&mut tx, registry, repository, seen_at).await?;
        let tag_id: i64 = sqlx::query_scalar(
            "INSERT INTO tags (repository_id, name) VALUES ($1, $2) \
             ON CONFLICT (repository_id, name) DO UPDATE SET name = excluded.name RETURNING id",
        )
        .bind(repo_id)
        .bind(tag.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(query(what()))?;
        let current: Option<(i64, String, i64)> = sqlx::query_as(
            "SELECT id, digest, last_seen FROM tag_history WHERE tag_id = $1 AND moved_at IS NULL",
        )
        .bind(tag_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query(what()))?;
        let outcome = match current {
            None => {
                open(&mut tx, tag_id, digest, seen_at, &what).await?;
                TagSighting::Opened
            }
            Some((id, ref current, _)) if *current == digest.to_string() => {
                sqlx::query(
                    "UPDATE tag_history SET last_seen = CASE WHEN last_seen < $1 THEN $1 ELSE last_seen END WHERE id = $2",
                )
                .bind(seen_at)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(query(what()))?;
                TagSighting::Extended
            }
            Some((_, _, last_seen)) if seen_at < last_seen => TagSighting::Stale,
            Some((id, current, _)) => {
                let from = current.parse().map_err(|e| CatalogError::Corrupt {
                    column: "tag_history.digest",
                    value: current.clone(),
                    source: Box::new(e),
                })?;
                sqlx::query("UPDATE tag_history SET moved_at = $1 WHERE id = $2")
                    .bind(seen_at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(query(what()))?;
                open(&mut tx, tag_id, digest, seen_at, &what).await?;
                TagSighting::Moved { from }
            }
        };
        tx.commit().await.map_err(query(what()))?;
        Ok(outcome)
    }
}

async fn open(
    tx: &mut Transaction<'static, Any>,
    tag_id: i64,
    digest: &Digest,
    seen_at: i64,
    what: &impl Fn() -> String,
) -> Result<(), CatalogError> {
    sqlx::query(
        "INSERT INTO tag_history (tag_id, digest, first_seen, last_seen) VALUES ($1, $2, $3, $3)",
    )
    .bind(tag_id)
    .bind(digest.to_string())
    .bind(seen_at)
    .execute(&mut **tx)
    .await
    .map_err(query(what()))?;
    Ok(())
}
