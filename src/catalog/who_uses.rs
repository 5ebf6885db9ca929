//! `who-uses BASE|DIGEST`: the images built on a base, found by their layers (they start with
//! all of the base's layers, in order) or by their builds (which declared it as a parent), and
//! where they run.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{CatalogError, query};
use super::query::{BaseBy, RunFilter, Subject, parse_digest, placeholders};
use super::runs::Run;
use super::store::Catalog;
use crate::reference::Digest;

/// An image built on the base.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    /// The image's digest.
    pub digest: Digest,
    /// The repositories that hold it (or an index of it), `registry/repository`.
    pub repositories: Vec<String>,
    /// Tags that point at it (or at an index of it) now, `registry/repository:tag`.
    pub tags: Vec<String>,
    /// Which of the base's digests it is built on.
    pub on: Digest,
    /// How the catalog knows.
    pub by: Vec<BaseBy>,
    /// Where it (or an index of it) runs now.
    pub running: Vec<Run>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WhoUses {
    /// The base, as asked.
    pub base: String,
    /// The base's digests the catalog knows (a tag's every digest, an index's children).
    pub base_digests: Vec<Digest>,
    /// The images built on it, by digest.
    pub users: Vec<User>,
}

impl Catalog {
    /// The images built on `base`: a digest, an image by digest, a tag (every digest it
    /// pointed at, so that images built on an older version are found too), or a repository
    /// (every version). With a run filter, only the users running there are listed.
    pub async fn who_uses(
        &self,
        base: &Subject,
        filter: &RunFilter,
    ) -> Result<WhoUses, CatalogError> {
        let doing = || format!("finding the images built on {base}");
        let mut base_digests: BTreeSet<Digest> = BTreeSet::new();
        let mut by_name: Option<String> = None;
        match base {
            Subject::Digest(d) => {
                base_digests.insert(d.clone());
            }
            Subject::Image(i) => {
                if let Some(d) = i.digest() {
                    base_digests.insert(d.clone());
                } else {
                    let mut sql = String::from(
                        "SELECT h.digest FROM tag_history h JOIN tags t ON t.id = h.tag_id \
                         JOIN repositories r ON r.id = t.repository_id \
                         WHERE r.registry = $1 AND r.name = $2",
                    );
                    if i.tag().is_some() {
                        sql.push_str(" AND t.name = $3");
                    } else {
                        by_name = Some(i.canonical_name().to_owned());
                        sql.push_str(
                            " UNION SELECT rm.digest FROM repository_manifests rm \
                             JOIN repositories r ON r.id = rm.repository_id \
                             WHERE r.registry = $1 AND r.name = $2",
                        );
                    }
                    let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
                        .bind(i.registry().canonical())
                        .bind(i.repository().as_str().to_owned());
                    if let Some(t) = i.tag() {
                        q = q.bind(t.as_str().to_owned());
                    }
                    for d in q.fetch_all(&self.pool).await.map_err(query(doing()))? {
                        base_digests.insert(parse_digest("tag_history.digest", d)?);
                    }
                }
            }
        }
        // An index's children carry the layers.
        let listed: Vec<Digest> = base_digests.iter().cloned().collect();
        for d in &listed {
            let children: Vec<String> = sqlx::query_scalar(
                "SELECT child_digest FROM index_children WHERE index_digest = $1 ORDER BY position",
            )
            .bind(d.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(query(doing()))?;
            for c in children {
                base_digests.insert(parse_digest("index_children.child_digest", c)?);
            }
        }

        // user digest -> (base digest it is on, how)
        let mut users: BTreeMap<Digest, (Digest, BTreeSet<BaseBy>)> = BTreeMap::new();
        for b in &base_digests {
            let found: Vec<String> = sqlx::query_scalar(
                "SELECT x.manifest_digest FROM manifest_layers x \
                 JOIN manifest_layers b ON b.position = x.position AND b.layer_digest = x.layer_digest \
                 WHERE b.manifest_digest = $1 AND x.manifest_digest <> $1 \
                 GROUP BY x.manifest_digest \
                 HAVING COUNT(*) = (SELECT COUNT(*) FROM manifest_layers c WHERE c.manifest_digest = $1)",
            )
            .bind(b.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(query(doing()))?;
            for u in found {
                let u = parse_digest("manifest_layers.manifest_digest", u)?;
                users
                    .entry(u)
                    .or_insert_with(|| (b.clone(), BTreeSet::new()))
                    .1
                    .insert(BaseBy::Layers);
            }
            let declared: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT b.digest FROM build_dependencies d JOIN builds b ON b.id = d.build_id \
                 WHERE d.kind = 'image' AND d.digest = $1",
            )
            .bind(b.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(query(doing()))?;
            for u in declared {
                let u = parse_digest("builds.digest", u)?;
                users
                    .entry(u)
                    .or_insert_with(|| (b.clone(), BTreeSet::new()))
                    .1
                    .insert(BaseBy::Declared);
            }
        }
        if let Some(name) = &by_name {
            // Declared by name: a version of the base the catalog never saw still counts.
            let declared: Vec<(String, String)> = sqlx::query_as(
                "SELECT DISTINCT b.digest, d.digest FROM build_dependencies d JOIN builds b ON b.id = d.build_id \
                 WHERE d.kind = 'image' AND d.name = $1 AND d.digest IS NOT NULL",
            )
            .bind(name.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(query(doing()))?;
            for (u, on) in declared {
                let u = parse_digest("builds.digest", u)?;
                let on = parse_digest("build_dependencies.digest", on)?;
                users
                    .entry(u)
                    .or_insert_with(|| (on, BTreeSet::new()))
                    .1
                    .insert(BaseBy::Declared);
            }
        }
        for b in &base_digests {
            users.remove(b);
        }

        let mut out = Vec::new();
        for (digest, (on, by)) in users {
            // The user and the indexes that hold it: those are what repositories list, tags
            // point at and pods often run by.
            let related = self.related(&digest).await?;
            let (repositories, tags) = self.names(&related).await?;
            let running = self.runs_of(&related, filter, true).await?;
            if !filter.is_empty() && running.is_empty() {
                continue;
            }
            out.push(User {
                digest,
                repositories,
                tags,
                on,
                by: by.into_iter().collect(),
                running,
            });
        }
        out.sort_by(|a, b| {
            (a.repositories.first(), &a.digest).cmp(&(b.repositories.first(), &b.digest))
        });
        Ok(WhoUses {
            base: base.to_string(),
            base_digests: base_digests.into_iter().collect(),
            users: out,
        })
    }

    /// `digest` and the indexes that hold it: what tags point at and pods often run by.
    pub(super) async fn related(&self, digest: &Digest) -> Result<Vec<Digest>, CatalogError> {
        let mut related = vec![digest.clone()];
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT index_digest FROM index_children WHERE child_digest = $1",
        )
        .bind(digest.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(query(format!("finding the indexes of {digest}")))?;
        for i in indexes {
            related.push(parse_digest("index_children.index_digest", i)?);
        }
        Ok(related)
    }

    /// The repositories holding these digests and the tags pointing at them now, sorted.
    pub(super) async fn names(
        &self,
        digests: &[Digest],
    ) -> Result<(Vec<String>, Vec<String>), CatalogError> {
        let list = placeholders(1, digests.len());
        let doing = || "naming the images built on a base".to_owned();
        let bind = |sql: String| {
            let mut q =
                sqlx::query_as::<_, (String, String, Option<String>)>(sqlx::AssertSqlSafe(sql));
            for d in digests {
                q = q.bind(d.to_string());
            }
            q
        };
        let mut repositories = BTreeSet::new();
        let mut tags = BTreeSet::new();
        let held = bind(format!(
            "SELECT r.registry, r.name, CAST(NULL AS TEXT) FROM repository_manifests rm \
             JOIN repositories r ON r.id = rm.repository_id WHERE rm.digest IN ({list})"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(query(doing()))?;
        let tagged = bind(format!(
            "SELECT r.registry, r.name, t.name FROM tag_history h JOIN tags t ON t.id = h.tag_id \
             JOIN repositories r ON r.id = t.repository_id \
             WHERE h.moved_at IS NULL AND h.digest IN ({list})"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(query(doing()))?;
        for (registry, name, tag) in held.into_iter().chain(tagged) {
            if let Some(tag) = tag {
                tags.insert(format!("{registry}/{name}:{tag}"));
            }
            repositories.insert(format!("{registry}/{name}"));
        }
        Ok((
            repositories.into_iter().collect(),
            tags.into_iter().collect(),
        ))
    }
}
