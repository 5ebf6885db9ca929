//! Registry events: a digest that runs but the registry can no longer serve, as the audit's
//! walk of what a restart pulls found it, with the time it was noticed.
//!
//! One event per change, not one per audit: a digest is recorded `unservable` when it is
//! first found so, and not again while it stays so; found servable again (pushed anew), it is
//! recorded `servable`, and a later loss is a new `unservable` event. So a table read by digest
//! says when it was lost, and when (if ever) it came back, however often the audit runs.

use serde::Serialize;
use sqlx::Row as _;

use super::error::{CatalogError, query};
use super::store::Catalog;
use super::tags::repository_id;
use crate::reference::{Digest, ImageRef};

/// What the registry did to a digest, as noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// It ran, and the registry could not serve it end to end (a 404, a lost child or blob).
    Unservable,
    /// It was unservable, and the registry serves it again.
    Servable,
}

impl EventKind {
    /// The name stored in `registry_events.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Unservable => "unservable",
            EventKind::Servable => "servable",
        }
    }

    fn parse(s: &str) -> Option<EventKind> {
        match s {
            "unservable" => Some(EventKind::Unservable),
            "servable" => Some(EventKind::Servable),
            _ => None,
        }
    }
}

/// What one audit found the registry able to serve of the digests that run (made from the
/// audit's report by `crate::audit::servability`). Pure data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Servability {
    /// Running digests the registry cannot serve, with what the walk found (`repo@digest`).
    pub unservable: Vec<(ImageRef, String)>,
    /// Running digests the registry served end to end.
    pub servable: Vec<ImageRef>,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryEvent {
    /// The digest.
    pub digest: Digest,
    /// What happened.
    pub kind: EventKind,
    /// When it was noticed.
    pub noticed_at: jiff::Timestamp,
    /// `registry/repository` it was noticed in.
    pub repository: Option<String>,
    /// What the audit found (untrusted text: escape it when shown).
    pub detail: Option<String>,
}

/// What recording one audit's findings did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsRecorded {
    /// New `unservable` events.
    pub unservable: usize,
    /// Digests already recorded unservable, still so (no new event).
    pub still_unservable: usize,
    /// New `servable` events (a lost digest pushed again).
    pub servable: usize,
}

impl Catalog {
    /// Record what `found` says, by the rule of this module: an event only when a digest's
    /// state changes from its latest event (none counts as servable).
    ///
    /// One transaction per digest. Its first write locks the repository's row (an UPDATE
    /// that changes nothing still takes PostgreSQL's row lock, and SQLite's write lock), so
    /// two recorders noticing the same digest at once decide one after the other, and the
    /// second sees the first's event. A notice older than the digest's latest event is stale
    /// and changes nothing.
    pub async fn record_servability(
        &self,
        found: &Servability,
        noticed_at: jiff::Timestamp,
    ) -> Result<EventsRecorded, CatalogError> {
        let at = noticed_at.as_second();
        let mut out = EventsRecorded::default();
        let changes = found
            .unservable
            .iter()
            .map(|(r, d)| (r, EventKind::Unservable, Some(d.as_str())))
            .chain(
                found
                    .servable
                    .iter()
                    .map(|r| (r, EventKind::Servable, None)),
            );
        for (image, kind, detail) in changes {
            let Some(digest) = image.digest() else {
                continue;
            };
            let what = || format!("recording registry events of {digest}");
            let mut tx = self.pool.begin().await.map_err(query(what()))?;
            let repo = repository_id(&mut tx, image.registry(), image.repository(), at).await?;
            sqlx::query("UPDATE repositories SET first_seen = first_seen WHERE id = $1")
                .bind(repo)
                .execute(&mut *tx)
                .await
                .map_err(query(what()))?;
            let latest: Option<(String, i64)> = sqlx::query_as(
                "SELECT kind, noticed_at FROM registry_events WHERE digest = $1 \
                 ORDER BY noticed_at DESC, id DESC LIMIT 1",
            )
            .bind(digest.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(query(what()))?;
            let latest_kind = latest
                .as_ref()
                .map(|(k, _)| EventKind::parse(k).unwrap_or(EventKind::Servable));
            let stale = latest.as_ref().is_some_and(|(_, t)| *t > at);
            let write = !stale
                && match kind {
                    EventKind::Unservable => latest_kind != Some(EventKind::Unservable),
                    EventKind::Servable => latest_kind == Some(EventKind::Unservable),
                };
            if write {
                sqlx::query(
                    "INSERT INTO registry_events (digest, kind, noticed_at, repository_id, detail) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(digest.to_string())
                .bind(kind.as_str())
                .bind(at)
                .bind(repo)
                .bind(detail)
                .execute(&mut *tx)
                .await
                .map_err(query(what()))?;
            }
            tx.commit().await.map_err(query(what()))?;
            match (kind, write) {
                (EventKind::Unservable, true) => out.unservable += 1,
                (EventKind::Unservable, false) => out.still_unservable += 1,
                (EventKind::Servable, true) => out.servable += 1,
                (EventKind::Servable, false) => {}
            }
        }
        Ok(out)
    }

    /// Every event of `digest`, oldest first.
    pub async fn registry_events_of(
        &self,
        digest: &Digest,
    ) -> Result<Vec<RegistryEvent>, CatalogError> {
        let rows = sqlx::query(
            "SELECT e.digest, e.kind, e.noticed_at, r.registry, r.name, e.detail \
             FROM registry_events e LEFT JOIN repositories r ON r.id = e.repository_id \
             WHERE e.digest = $1 ORDER BY e.noticed_at, e.id",
        )
        .bind(digest.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(query(format!("listing the registry events of {digest}")))?;
        let read = |e| query("reading registry_events")(e);
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get(1).map_err(read)?;
                let at: i64 = row.try_get(2).map_err(read)?;
                let registry: Option<String> = row.try_get(3).map_err(read)?;
                let name: Option<String> = row.try_get(4).map_err(read)?;
                Ok(RegistryEvent {
                    digest: digest.clone(),
                    kind: EventKind::parse(&kind).ok_or_else(|| CatalogError::Corrupt {
                        column: "registry_events.kind",
                        value: kind.clone(),
                        source: "not an event kind".into(),
                    })?,
                    noticed_at: jiff::Timestamp::from_second(at).map_err(|source| {
                        CatalogError::BadTime {
                            column: "registry_events.noticed_at",
                            value: at,
                            source,
                        }
                    })?,
                    repository: registry.zip(name).map(|(r, n)| format!("{r}/{n}")),
                    detail: row.try_get(5).map_err(read)?,
                })
            })
            .collect()
    }
}
