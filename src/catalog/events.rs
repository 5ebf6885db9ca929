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
use crate::audit::run::{AuditReport, CheckOutcome};
use crate::policy::{AuditKind, FindingKind};
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

/// What one audit found the registry able to serve of the digests that run. Pure data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Servability {
    /// Running digests the registry cannot serve, with what the walk found (`repo@digest`).
    pub unservable: Vec<(ImageRef, String)>,
    /// Running digests the registry served end to end.
    pub servable: Vec<ImageRef>,
}

/// Longest detail kept with an event: the walk's message names the missing pieces, and a
/// registry's answer is attacker input that must not grow the table without bound.
const DETAIL_MAX: usize = 1000;

/// The running digests of `report` the registry could and could not serve. A digest whose
/// walk could not finish (the registry did not answer) is in neither list: nothing is claimed
/// about it. Pure.
pub fn servability(report: &AuditReport) -> Servability {
    let running_unservable = FindingKind::from(AuditKind::RunningUnservable);
    let mut out = Servability::default();
    for image in &report.images {
        let Some(running) = image
            .image
            .running
            .as_ref()
            .filter(|r| r.digest().is_some())
        else {
            continue;
        };
        let seen = |r: &ImageRef| r.digest() == running.digest();
        if let Some(f) = image.findings.iter().find(|f| f.kind == running_unservable) {
            if !out.unservable.iter().any(|(r, _)| seen(r)) {
                let mut detail = f.message.clone();
                if detail.len() > DETAIL_MAX {
                    let mut end = DETAIL_MAX;
                    while !detail.is_char_boundary(end) {
                        end -= 1;
                    }
                    detail.truncate(end);
                    detail.push('…');
                }
                out.unservable.push((running.clone(), detail));
            }
        } else if image
            .checks
            .iter()
            .any(|c| c.kind == running_unservable && c.outcome == CheckOutcome::Passed)
            && !out.servable.iter().any(seen)
        {
            out.servable.push(running.clone());
        }
    }
    // One digest found unservable under one name and servable under another (pushed to two
    // repositories): the loss is what matters.
    out.servable
        .retain(|r| !out.unservable.iter().any(|(u, _)| u.digest() == r.digest()));
    out
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

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::audit::run::{AuditFinding, Check, ImageResult};
    use crate::audit::{AuditImage, Role, Usage};
    use crate::policy::Level;
    use crate::reference::WrittenImage;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[derive(Clone, Copy)]
    enum Walk {
        Unservable,
        Passed,
        Unchecked,
    }

    fn result(running: Option<&str>, walk: Walk) -> ImageResult {
        let kind = FindingKind::from(AuditKind::RunningUnservable);
        let check = |outcome| Check {
            kind,
            level: Level::Deny,
            outcome,
            message: String::new(),
        };
        let (findings, checks) = match walk {
            Walk::Unservable => (
                vec![AuditFinding {
                    kind,
                    level: Level::Deny,
                    message: "the next restart of this pod will fail to pull it: 404".into(),
                    hint: String::new(),
                }],
                vec![],
            ),
            Walk::Passed => (vec![], vec![check(CheckOutcome::Passed)]),
            Walk::Unchecked => (vec![], vec![check(CheckOutcome::Unchecked)]),
        };
        ImageResult {
            image: AuditImage {
                image: WrittenImage::new("r.example.org/app:1"),
                running: running.map(|r| r.parse().unwrap()),
                usages: vec![Usage {
                    role: Role::Running,
                    namespace: "web".into(),
                    workload: "Deployment/app".into(),
                    container: "app".into(),
                    pods: 1,
                }],
            },
            findings,
            registry_requests: 0,
            checks,
        }
    }

    fn report(images: Vec<ImageResult>) -> AuditReport {
        AuditReport {
            images,
            errors: vec![],
            registry_requests: 0,
            retention_not_simulated: vec![],
            registry_checked: true,
        }
    }

    #[rstest]
    #[case::lost(vec![(Some("r.example.org/app"), Walk::Unservable)], 1, 0)]
    #[case::served(vec![(Some("r.example.org/app"), Walk::Passed)], 0, 1)]
    #[case::unanswered_claims_nothing(vec![(Some("r.example.org/app"), Walk::Unchecked)], 0, 0)]
    #[case::no_running_digest_claims_nothing(vec![(None, Walk::Unservable)], 0, 0)]
    #[case::one_digest_under_two_names_lost_in_one(
        vec![(Some("r.example.org/app"), Walk::Passed), (Some("r.example.org/mirror"), Walk::Unservable)],
        1, 0
    )]
    #[case::one_digest_under_two_tags_is_one(
        vec![(Some("r.example.org/app"), Walk::Unservable), (Some("r.example.org/app"), Walk::Unservable)],
        1, 0
    )]
    fn what_an_audit_says_of_running_digests(
        #[case] images: Vec<(Option<&str>, Walk)>,
        #[case] unservable: usize,
        #[case] servable: usize,
    ) {
        let images = images
            .into_iter()
            .map(|(repo, walk)| result(repo.map(|r| format!("{r}@{A}")).as_deref(), walk))
            .collect();
        let s = servability(&report(images));
        assert_eq!(
            (s.unservable.len(), s.servable.len()),
            (unservable, servable)
        );
    }

    #[test]
    fn a_long_detail_is_cut_on_a_character_boundary() {
        let mut r = result(Some(&format!("r.example.org/app@{A}")), Walk::Unservable);
        r.findings[0].message = "é".repeat(DETAIL_MAX);
        let s = servability(&report(vec![r]));
        let detail = &s.unservable[0].1;
        assert!(
            detail.len() <= DETAIL_MAX + '…'.len_utf8(),
            "{}",
            detail.len()
        );
        assert!(detail.ends_with('…'));
    }
}
