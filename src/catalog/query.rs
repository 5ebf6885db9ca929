//! The questions the catalog answers, shared by the CLI, the JSON API and the web page: what
//! the registry holds and where each version runs (`images`), and the helpers `history` and
//! `who-uses` build on. The same SQL on both engines; grouping is done here, in Rust, so that
//! no engine-specific aggregate is needed.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row as _;

use super::error::{CatalogError, query};
use super::runs::{RUN_COLUMNS, Run, run, time};
use super::store::Catalog;
use crate::reference::{Digest, ImageRef};

/// Digests per `IN (...)` list.
const DIGESTS_PER_QUERY: usize = 500;

/// `--cluster` and `--namespace`: which runs count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Only this namespace.
    pub namespace: Option<String>,
}

impl RunFilter {
    /// Whether this filter lets anything through that a plain listing would not.
    pub fn is_empty(&self) -> bool {
        self.cluster.is_none() && self.namespace.is_none()
    }

    /// Whether `run` passes.
    pub fn keeps(&self, run: &Run) -> bool {
        self.cluster.as_ref().is_none_or(|c| *c == run.cluster)
            && self.namespace.as_ref().is_none_or(|n| *n == run.namespace)
    }
}

/// What the question is about: a digest, or an image by name, tag or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `sha256:…`.
    Digest(Digest),
    /// `registry/repository[:tag][@digest]`.
    Image(ImageRef),
}

/// Why a subject was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    /// It starts like a digest (`sha256:`) but is not one. Read as a reference it would be
    /// the Docker Hub image `sha256` with a tag: never what was meant.
    #[error("{value:?} is not a digest")]
    Digest {
        /// What was given.
        value: String,
        /// Why.
        #[source]
        source: crate::reference::DigestError,
    },
    /// Neither a digest nor a reference.
    #[error("{value:?} is neither a digest (sha256:…) nor an image reference")]
    Reference {
        /// What was given.
        value: String,
        /// Why it is not a reference.
        #[source]
        source: crate::reference::ReferenceError,
    },
}

impl std::str::FromStr for Subject {
    type Err = SubjectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let looks_like_digest = ["sha256:", "sha384:", "sha512:"]
            .iter()
            .any(|a| s.starts_with(a))
            && !s.contains('/');
        match s.parse::<Digest>() {
            Ok(d) => return Ok(Subject::Digest(d)),
            Err(source) if looks_like_digest => {
                return Err(SubjectError::Digest {
                    value: s.to_owned(),
                    source,
                });
            }
            Err(_) => {}
        }
        s.parse::<ImageRef>()
            .map(Subject::Image)
            .map_err(|source| SubjectError::Reference {
                value: s.to_owned(),
                source,
            })
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Digest(d) => d.fmt(f),
            Subject::Image(i) => i.fmt(f),
        }
    }
}

/// What sync recorded about a manifest (None of it before sync has seen the digest).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManifestInfo {
    /// `index` or `image`.
    pub kind: String,
    /// `os/architecture[/variant]`, when known.
    pub platform: Option<String>,
    /// The config's created time.
    pub created_at: Option<jiff::Timestamp>,
    /// The config's labels (untrusted text: escape when shown).
    pub labels: BTreeMap<String, String>,
}

/// One repository and its versions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Repository {
    /// `registry/repository`, the registry canonical.
    pub name: String,
    /// Its versions, newest first (by creation, else by first sighting).
    pub versions: Vec<Version>,
}

/// One version (digest) of a repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Version {
    /// The digest.
    pub digest: Digest,
    /// The tags that point at it now.
    pub tags: Vec<String>,
    /// What sync recorded, if it has seen it.
    pub manifest: Option<ManifestInfo>,
    /// What it is built on: declared by its builds, or found by its layers.
    pub base: Vec<Base>,
    /// Where it runs now (open intervals).
    pub running: Vec<Run>,
    /// When the catalog first saw it (a tag pointing at it, the registry, a run).
    #[serde(skip)]
    first_seen: i64,
}

/// A base image a version is built on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Base {
    /// The base, `registry/repository[:tag]@digest` when known by name, else its digest.
    pub image: String,
    /// The base's digest.
    pub digest: Digest,
    /// How the catalog knows: `declared` (a build named it) or `layers` (the version's
    /// layers start with all of the base's).
    pub by: BaseBy,
}

/// How a base is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseBy {
    /// A build declared it as a parent.
    Declared,
    /// The version's layers start with all of the base's layers.
    Layers,
}

impl std::fmt::Display for BaseBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BaseBy::Declared => "declared",
            BaseBy::Layers => "layers",
        })
    }
}

pub(crate) fn parse_digest(column: &'static str, value: String) -> Result<Digest, CatalogError> {
    value.parse().map_err(|e| CatalogError::Corrupt {
        column,
        value,
        source: Box::new(e),
    })
}

/// `$first, $first+1, ...`, `n` of them.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Catalog {
    /// Every repository the catalog knows (from sync, tag sightings and runs), with its
    /// versions, current tags, base and where each runs now. `repository` matches the
    /// repository path or `registry/repository`; with a run filter only the versions running
    /// there are listed.
    pub async fn images(
        &self,
        repository: Option<&globset::GlobMatcher>,
        filter: &RunFilter,
    ) -> Result<Vec<Repository>, CatalogError> {
        Ok(self.images_page(repository, filter, None).await?.0)
    }

    /// [`Catalog::images`], `limit` repositories from `offset` when `page` is given, and
    /// whether more follow. The tags, runs and repository contents are read whole; the
    /// per-version lookups (manifests, bases) only for the page.
    pub async fn images_page(
        &self,
        repository: Option<&globset::GlobMatcher>,
        filter: &RunFilter,
        page: Option<(usize, usize)>,
    ) -> Result<(Vec<Repository>, bool), CatalogError> {
        let doing = "listing the catalog's images";
        // (repository name, digest) -> first seen
        let mut versions: BTreeMap<(String, Digest), i64> = BTreeMap::new();
        let mut seen = |name: String, digest: Digest, at: i64| {
            let e = versions.entry((name, digest)).or_insert(at);
            *e = (*e).min(at);
        };
        let synced: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT r.registry, r.name, rm.digest, rm.first_seen FROM repository_manifests rm \
             JOIN repositories r ON r.id = rm.repository_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query(doing))?;
        for (registry, name, digest, at) in synced {
            seen(
                format!("{registry}/{name}"),
                parse_digest("repository_manifests.digest", digest)?,
                at,
            );
        }
        let tagged: Vec<(String, String, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT r.registry, r.name, t.name, h.digest, h.first_seen, h.moved_at FROM tag_history h \
             JOIN tags t ON t.id = h.tag_id JOIN repositories r ON r.id = t.repository_id \
             ORDER BY t.name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query(doing))?;
        let mut current_tags: BTreeMap<(String, Digest), Vec<String>> = BTreeMap::new();
        for (registry, name, tag, digest, at, moved_at) in tagged {
            let name = format!("{registry}/{name}");
            let digest = parse_digest("tag_history.digest", digest)?;
            if moved_at.is_none() {
                current_tags
                    .entry((name.clone(), digest.clone()))
                    .or_default()
                    .push(tag);
            }
            seen(name, digest, at);
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN clusters c ON c.id = r.cluster_id \
             WHERE r.closed_at IS NULL \
             ORDER BY c.name, r.namespace, r.controller_kind, r.controller_name, r.container"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(query(doing))?;
        let mut running: BTreeMap<(String, Digest), Vec<Run>> = BTreeMap::new();
        for row in &rows {
            let r = run(row)?;
            let key = (r.image.canonical_name().to_owned(), r.digest.clone());
            seen(key.0.clone(), key.1.clone(), r.first_seen.as_second());
            if filter.keeps(&r) {
                running.entry(key).or_default().push(r);
            }
        }

        let keep_repo = |name: &str| {
            repository.is_none_or(|g| {
                g.is_match(name)
                    || name
                        .split_once('/')
                        .is_some_and(|(_, path)| g.is_match(path))
            })
        };
        // Repositories with what they list, before the per-version lookups, so that a page
        // of the answer costs those lookups for its own versions only.
        let mut by_repo: BTreeMap<String, Vec<(Digest, i64)>> = BTreeMap::new();
        for ((name, digest), first_seen) in versions {
            if !keep_repo(&name)
                || (!filter.is_empty() && !running.contains_key(&(name.clone(), digest.clone())))
            {
                continue;
            }
            by_repo.entry(name).or_default().push((digest, first_seen));
        }
        let total = by_repo.len();
        let (offset, limit) = page.unwrap_or((0, usize::MAX));
        let selected: Vec<(String, Vec<(Digest, i64)>)> =
            by_repo.into_iter().skip(offset).take(limit).collect();
        let more = offset.saturating_add(limit) < total;
        let digests: BTreeSet<Digest> = selected
            .iter()
            .flat_map(|(_, v)| v.iter().map(|(d, _)| d.clone()))
            .collect();
        let digests: Vec<Digest> = digests.into_iter().collect();
        let manifests = self.manifests(&digests).await?;
        let bases = self.bases(&digests).await?;

        let repos = selected
            .into_iter()
            .map(|(name, list)| {
                let mut versions: Vec<Version> = list
                    .into_iter()
                    .map(|(digest, first_seen)| {
                        let key = (name.clone(), digest);
                        Version {
                            tags: current_tags.remove(&key).unwrap_or_default(),
                            manifest: manifests.get(&key.1).cloned(),
                            base: bases.get(&key.1).cloned().unwrap_or_default(),
                            running: running.remove(&key).unwrap_or_default(),
                            first_seen,
                            digest: key.1,
                        }
                    })
                    .collect();
                versions.sort_by(|a, b| {
                    let at = |v: &Version| {
                        v.manifest
                            .as_ref()
                            .and_then(|m| m.created_at)
                            .map_or(v.first_seen, |t| t.as_second())
                    };
                    at(b).cmp(&at(a)).then_with(|| a.digest.cmp(&b.digest))
                });
                Repository { name, versions }
            })
            .collect();
        Ok((repos, more))
    }

    /// What sync recorded about each of these digests (those it has seen).
    pub async fn manifests(
        &self,
        digests: &[Digest],
    ) -> Result<BTreeMap<Digest, ManifestInfo>, CatalogError> {
        let mut out = BTreeMap::new();
        for chunk in digests.chunks(DIGESTS_PER_QUERY) {
            let sql = format!(
                "SELECT digest, kind, os, architecture, variant, created_at, labels FROM manifests \
                 WHERE digest IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for d in chunk {
                q = q.bind(d.to_string());
            }
            let rows = q
                .fetch_all(&self.pool)
                .await
                .map_err(query("reading manifests"))?;
            for row in rows {
                let get = |i: usize| -> Result<Option<String>, CatalogError> {
                    row.try_get(i).map_err(query("reading manifests"))
                };
                let digest = parse_digest("manifests.digest", get(0)?.unwrap_or_default())?;
                let platform = match (get(2)?, get(3)?, get(4)?) {
                    (Some(os), Some(arch), Some(v)) => Some(format!("{os}/{arch}/{v}")),
                    (Some(os), Some(arch), None) => Some(format!("{os}/{arch}")),
                    _ => None,
                };
                let created: Option<i64> = row.try_get(5).map_err(query("reading manifests"))?;
                let labels = match get(6)? {
                    None => BTreeMap::new(),
                    Some(text) => labels(&text).map_err(|e| CatalogError::Corrupt {
                        column: "manifests.labels",
                        value: text.clone(),
                        source: Box::new(e),
                    })?,
                };
                out.insert(
                    digest,
                    ManifestInfo {
                        kind: get(1)?.unwrap_or_default(),
                        platform,
                        created_at: created
                            .map(|t| time("manifests.created_at", t))
                            .transpose()?,
                        labels,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Each digest's bases: the parents its builds declared, and the catalogued manifest with
    /// the most layers whose layers all begin this one's (its nearest ancestor by layers).
    pub async fn bases(
        &self,
        digests: &[Digest],
    ) -> Result<BTreeMap<Digest, Vec<Base>>, CatalogError> {
        let mut out: BTreeMap<Digest, Vec<Base>> = BTreeMap::new();
        for chunk in digests.chunks(DIGESTS_PER_QUERY) {
            let sql = format!(
                "SELECT b.digest, d.name, d.version, d.digest FROM builds b \
                 JOIN build_dependencies d ON d.build_id = b.id \
                 WHERE d.kind = 'image' AND d.digest IS NOT NULL AND b.digest IN ({}) \
                 ORDER BY b.built_at, b.id, d.position",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (String, String, Option<String>, String)>(
                sqlx::AssertSqlSafe(sql),
            );
            for d in chunk {
                q = q.bind(d.to_string());
            }
            for (digest, name, tag, parent) in q
                .fetch_all(&self.pool)
                .await
                .map_err(query("reading declared parents"))?
            {
                let digest = parse_digest("builds.digest", digest)?;
                let parent = parse_digest("build_dependencies.digest", parent)?;
                let image = match tag {
                    Some(tag) => format!("{name}:{tag}@{parent}"),
                    None => format!("{name}@{parent}"),
                };
                let list = out.entry(digest).or_default();
                if !list.iter().any(|b| b.digest == parent) {
                    list.push(Base {
                        image,
                        digest: parent,
                        by: BaseBy::Declared,
                    });
                }
            }
        }
        for digest in digests {
            // Candidates share this manifest's layers position by position; a candidate
            // whose every layer matched (and which has fewer) is an ancestor.
            let found: Option<(String, i64)> = sqlx::query_as(
                "SELECT b.manifest_digest, COUNT(*) FROM manifest_layers b \
                 JOIN manifest_layers x ON x.position = b.position AND x.layer_digest = b.layer_digest \
                 WHERE x.manifest_digest = $1 AND b.manifest_digest <> $1 \
                 GROUP BY b.manifest_digest \
                 HAVING COUNT(*) = (SELECT COUNT(*) FROM manifest_layers c WHERE c.manifest_digest = b.manifest_digest) \
                 AND COUNT(*) < (SELECT COUNT(*) FROM manifest_layers c WHERE c.manifest_digest = $1) \
                 ORDER BY COUNT(*) DESC, b.manifest_digest LIMIT 1",
            )
            .bind(digest.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(query(format!("finding the base of {digest}")))?;
            if let Some((base, _)) = found {
                let base = parse_digest("manifest_layers.manifest_digest", base)?;
                let list = out.entry(digest.clone()).or_default();
                if !list.iter().any(|b| b.digest == base) {
                    let image = self
                        .name_of(&base)
                        .await?
                        .unwrap_or_else(|| base.to_string());
                    list.push(Base {
                        image,
                        digest: base,
                        by: BaseBy::Layers,
                    });
                }
            }
        }
        Ok(out)
    }

    /// A name for a digest: `registry/repository:tag@digest` from a tag pointing at it now (or
    /// once), else `registry/repository@digest` from the registry, else None.
    pub(crate) async fn name_of(&self, digest: &Digest) -> Result<Option<String>, CatalogError> {
        let tagged: Option<(String, String, String)> = sqlx::query_as(
            "SELECT r.registry, r.name, t.name FROM tag_history h JOIN tags t ON t.id = h.tag_id \
             JOIN repositories r ON r.id = t.repository_id WHERE h.digest = $1 \
             ORDER BY CASE WHEN h.moved_at IS NULL THEN 0 ELSE 1 END, h.last_seen DESC, t.name LIMIT 1",
        )
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(query(format!("naming {digest}")))?;
        if let Some((registry, name, tag)) = tagged {
            return Ok(Some(format!("{registry}/{name}:{tag}@{digest}")));
        }
        let held: Option<(String, String)> = sqlx::query_as(
            "SELECT r.registry, r.name FROM repository_manifests rm \
             JOIN repositories r ON r.id = rm.repository_id WHERE rm.digest = $1 \
             ORDER BY r.registry, r.name LIMIT 1",
        )
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(query(format!("naming {digest}")))?;
        Ok(held.map(|(registry, name)| format!("{registry}/{name}@{digest}")))
    }

    /// Every open or closed interval of these digests that passes `filter`, oldest first.
    pub(crate) async fn runs_of(
        &self,
        digests: &[Digest],
        filter: &RunFilter,
        open_only: bool,
    ) -> Result<Vec<Run>, CatalogError> {
        let mut out = Vec::new();
        for d in digests {
            out.extend(
                self.runs_of_digest(d)
                    .await?
                    .into_iter()
                    .filter(|r| filter.keeps(r) && (!open_only || r.closed_at.is_none())),
            );
        }
        out.sort_by(|a, b| {
            (a.first_seen, &a.cluster, &a.namespace, &a.controller_name).cmp(&(
                b.first_seen,
                &b.cluster,
                &b.namespace,
                &b.controller_name,
            ))
        });
        Ok(out)
    }
}

/// A config's labels as sync stored them: a JSON object of strings.
fn labels(text: &str) -> Result<BTreeMap<String, String>, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::digest(&format!("sha256:{}", "a".repeat(64)), "digest")]
    #[case::tag("registry.example.org/app:1.0", "image")]
    #[case::repository("registry.example.org/app", "image")]
    #[case::by_digest(&format!("registry.example.org/app@sha256:{}", "a".repeat(64)), "image")]
    fn subjects_parse_once(#[case] text: &str, #[case] kind: &str) {
        let s: Subject = text.parse().unwrap();
        assert_eq!(matches!(s, Subject::Digest(_)), kind == "digest");
        assert_eq!(s.to_string(), text);
    }

    #[rstest]
    #[case::short_digest("sha256:abc", "is not a digest")]
    #[case::not_a_reference("UPPER/Case", "neither a digest")]
    fn a_mistyped_digest_is_not_read_as_a_docker_hub_image(#[case] text: &str, #[case] want: &str) {
        let e = text.parse::<Subject>().unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}
