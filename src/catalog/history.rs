//! `history IMAGE|DIGEST`: what a tag pointed at and when it moved, the builds, where and when
//! each digest ran, and what the registry did to it, on one timeline.

use std::collections::BTreeSet;

use super::builds::Build;
use super::error::{CatalogError, query};
use super::events::RegistryEvent;
use super::query::{Base, ManifestInfo, RunFilter, Subject, parse_digest};
use super::runs::{Run, time};
use super::store::Catalog;
use crate::reference::Digest;

/// A tag's interval on one digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TagInterval {
    /// `registry/repository:tag`.
    pub tag: String,
    /// What it pointed at.
    pub digest: Digest,
    /// The first sighting.
    pub first_seen: jiff::Timestamp,
    /// The latest sighting.
    pub last_seen: jiff::Timestamp,
    /// The sighting that found it pointing elsewhere (None while current).
    pub moved_at: Option<jiff::Timestamp>,
}

/// One digest of the subject, with what sync knows of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DigestInfo {
    /// The digest.
    pub digest: Digest,
    /// What sync recorded.
    pub manifest: Option<ManifestInfo>,
    /// What it is built on.
    pub base: Vec<Base>,
}

/// A point on the timeline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// When.
    pub at: jiff::Timestamp,
    /// What happened.
    pub what: What,
    /// Which digest.
    pub digest: Digest,
    /// The tag, the run (`cluster/namespace/Kind/name/container`), the builder or the
    /// event's repository.
    pub subject: String,
}

/// What happened at a timeline point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum What {
    /// The image was built.
    Built,
    /// The tag was seen pointing elsewhere (before the new digest's `tagged`).
    TagMoved,
    /// A tag was first seen pointing at the digest.
    Tagged,
    /// A run ended (first snapshot that no longer saw it; before what replaced it started).
    Stopped,
    /// A run started (first snapshot that saw it).
    Started,
    /// The registry was noticed doing something to the digest.
    Registry,
}

impl std::fmt::Display for What {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that `{:<9}` lines the timeline's columns up.
        f.pad(match self {
            What::Built => "built",
            What::Tagged => "tagged",
            What::TagMoved => "tag-moved",
            What::Started => "started",
            What::Stopped => "stopped",
            What::Registry => "registry",
        })
    }
}

/// Everything the catalog knows about a subject.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct History {
    /// What was asked about, as parsed.
    pub subject: String,
    /// Its digests.
    pub digests: Vec<DigestInfo>,
    /// Tag intervals, oldest first.
    pub tags: Vec<TagInterval>,
    /// Builds, oldest first.
    pub builds: Vec<Build>,
    /// Runs, oldest first.
    pub runs: Vec<Run>,
    /// Registry events, oldest first.
    pub events: Vec<RegistryEvent>,
    /// All of the above as points in time, oldest first.
    pub timeline: Vec<Entry>,
}

impl Catalog {
    /// The history of a digest, a tag (every digest it pointed at), an image by digest, or a
    /// repository (every tag and version). Runs pass `filter`.
    pub async fn history(
        &self,
        subject: &Subject,
        filter: &RunFilter,
    ) -> Result<History, CatalogError> {
        let doing = || format!("reading the history of {subject}");
        let mut sql = String::from(
            "SELECT r.registry, r.name, t.name, h.digest, h.first_seen, h.last_seen, h.moved_at \
             FROM tag_history h JOIN tags t ON t.id = h.tag_id \
             JOIN repositories r ON r.id = t.repository_id WHERE ",
        );
        let mut binds: Vec<String> = Vec::new();
        match subject {
            Subject::Digest(d) => {
                sql.push_str("h.digest = $1");
                binds.push(d.to_string());
            }
            Subject::Image(i) => {
                sql.push_str("r.registry = $1 AND r.name = $2");
                binds.push(i.registry().canonical());
                binds.push(i.repository().as_str().to_owned());
                if let Some(d) = i.digest() {
                    sql.push_str(" AND h.digest = $3");
                    binds.push(d.to_string());
                } else if let Some(t) = i.tag() {
                    sql.push_str(" AND t.name = $3");
                    binds.push(t.as_str().to_owned());
                }
            }
        }
        sql.push_str(" ORDER BY h.first_seen, t.name, h.id");
        let mut q = sqlx::query_as::<_, (String, String, String, String, i64, i64, Option<i64>)>(
            sqlx::AssertSqlSafe(sql),
        );
        for b in &binds {
            q = q.bind(b.clone());
        }
        let rows = q.fetch_all(&self.pool).await.map_err(query(doing()))?;
        let mut tags = Vec::new();
        for (registry, name, tag, digest, first, last, moved) in rows {
            tags.push(TagInterval {
                tag: format!("{registry}/{name}:{tag}"),
                digest: parse_digest("tag_history.digest", digest)?,
                first_seen: time("tag_history.first_seen", first)?,
                last_seen: time("tag_history.last_seen", last)?,
                moved_at: moved.map(|t| time("tag_history.moved_at", t)).transpose()?,
            });
        }

        let mut digests: BTreeSet<Digest> = tags.iter().map(|t| t.digest.clone()).collect();
        match subject {
            Subject::Digest(d) => {
                digests.insert(d.clone());
            }
            Subject::Image(i) => match i.digest() {
                Some(d) => {
                    digests.insert(d.clone());
                }
                None if i.tag().is_none() => {
                    // A repository: also what the registry holds and what ran from it.
                    let held: Vec<String> = sqlx::query_scalar(
                        "SELECT rm.digest FROM repository_manifests rm \
                         JOIN repositories r ON r.id = rm.repository_id \
                         WHERE r.registry = $1 AND r.name = $2",
                    )
                    .bind(i.registry().canonical())
                    .bind(i.repository().as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(query(doing()))?;
                    let ran: Vec<String> =
                        sqlx::query_scalar("SELECT DISTINCT digest FROM runs WHERE image = $1")
                            .bind(i.canonical_name())
                            .fetch_all(&self.pool)
                            .await
                            .map_err(query(doing()))?;
                    for d in held.into_iter().chain(ran) {
                        digests.insert(parse_digest("runs.digest", d)?);
                    }
                }
                None => {}
            },
        }
        let digests: Vec<Digest> = digests.into_iter().collect();
        let builds = self.builds_of(&digests).await?;
        let runs = self.runs_of(&digests, filter, false).await?;
        let events = self.events_of(&digests).await?;
        let manifests = self.manifests(&digests).await?;
        let bases = self.bases(&digests).await?;
        let infos = digests
            .iter()
            .map(|d| DigestInfo {
                digest: d.clone(),
                manifest: manifests.get(d).cloned(),
                base: bases.get(d).cloned().unwrap_or_default(),
            })
            .collect();
        let timeline = timeline(&tags, &builds, &runs, &events);
        Ok(History {
            subject: subject.to_string(),
            digests: infos,
            tags,
            builds,
            runs,
            events,
            timeline,
        })
    }

    /// The registry events of these digests, oldest first.
    pub async fn events_of(&self, digests: &[Digest]) -> Result<Vec<RegistryEvent>, CatalogError> {
        let mut out = Vec::new();
        for d in digests {
            out.extend(self.registry_events_of(d).await?);
        }
        out.sort_by_key(|e| e.noticed_at);
        Ok(out)
    }
}

/// The run's place: `cluster/namespace/Kind/name/container`.
pub fn run_place(r: &Run) -> String {
    format!(
        "{}/{}/{}/{}/{}",
        r.cluster, r.namespace, r.controller_kind, r.controller_name, r.container
    )
}

/// Every dated fact as a point, oldest first; at one instant, in the order things happen
/// (built, moved away, tagged, stopped, started, noticed).
fn timeline(
    tags: &[TagInterval],
    builds: &[Build],
    runs: &[Run],
    events: &[RegistryEvent],
) -> Vec<Entry> {
    let mut out = Vec::new();
    for b in builds {
        out.push(Entry {
            at: b.built_at,
            what: What::Built,
            digest: b.digest.clone(),
            subject: b.builder.clone(),
        });
    }
    for t in tags {
        out.push(Entry {
            at: t.first_seen,
            what: What::Tagged,
            digest: t.digest.clone(),
            subject: t.tag.clone(),
        });
        if let Some(at) = t.moved_at {
            out.push(Entry {
                at,
                what: What::TagMoved,
                digest: t.digest.clone(),
                subject: t.tag.clone(),
            });
        }
    }
    for r in runs {
        out.push(Entry {
            at: r.first_seen,
            what: What::Started,
            digest: r.digest.clone(),
            subject: run_place(r),
        });
        if let Some(at) = r.closed_at {
            out.push(Entry {
                at,
                what: What::Stopped,
                digest: r.digest.clone(),
                subject: run_place(r),
            });
        }
    }
    for e in events {
        out.push(Entry {
            at: e.noticed_at,
            what: What::Registry,
            digest: e.digest.clone(),
            subject: match &e.repository {
                Some(r) => format!("{} {r}", e.kind.as_str()),
                None => e.kind.as_str().to_owned(),
            },
        });
    }
    out.sort_by(|a, b| {
        (a.at, a.what, &a.subject, &a.digest).cmp(&(b.at, b.what, &b.subject, &b.digest))
    });
    out
}
