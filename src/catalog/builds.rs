//! Builds: what an image builder says it made (the digest, from which source and commit, by
//! which builder, when, on which parent images). Validated here once, whether it came from
//! `tollgate catalog register-build` or from `POST /v1/builds`, then written in one
//! transaction.

use sqlx::Row as _;

use super::error::{CatalogError, query};
use super::store::Catalog;
use crate::reference::{Digest, ImageRef};

/// Longest source repository URL accepted.
const MAX_SOURCE: usize = 2048;
/// Longest commit and builder accepted (a commit id is 40 or 64 hex; a builder a name).
const MAX_SHORT: usize = 256;
/// Most parent images one build may declare.
pub const MAX_PARENTS: usize = 64;

/// A build as a builder sends it: untrusted text, checked by [`BuildRequest::validate`].
/// Unknown keys are refused, so that a misspelt `parents` is an error rather than a build
/// recorded without its base.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// The image's digest (`sha256:…`).
    pub digest: String,
    /// Where its source lives (a URL).
    pub source_repository: String,
    /// The commit it was built from.
    pub commit: String,
    /// Who built it (`jenkins`, `kokkuri`, a CI job's name).
    pub builder: String,
    /// When, RFC 3339; absent: when the catalog received it.
    #[serde(default)]
    pub built_at: Option<String>,
    /// Parent images, each `IMAGE@DIGEST`.
    #[serde(default)]
    pub parents: Vec<String>,
}

/// A validated build, ready to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBuild {
    /// The image's digest.
    pub digest: Digest,
    /// Where its source lives.
    pub source_repository: String,
    /// The commit.
    pub commit: String,
    /// Who built it.
    pub builder: String,
    /// When (None: when received).
    pub built_at: Option<jiff::Timestamp>,
    /// Parent images, each with its digest.
    pub parents: Vec<ImageRef>,
}

/// A recorded build, as the queries return it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Build {
    /// The image's digest.
    pub digest: Digest,
    /// Where its source lives (untrusted text: escape when shown).
    pub source_repository: String,
    /// The commit (untrusted text).
    pub commit: String,
    /// Who built it (untrusted text).
    pub builder: String,
    /// When it was built.
    pub built_at: jiff::Timestamp,
    /// When the catalog received it.
    pub registered_at: jiff::Timestamp,
    /// Its declared parent images.
    pub parents: Vec<ImageRef>,
}

/// Why a build was refused.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The digest does not parse.
    #[error("digest {value:?} is not a digest")]
    Digest {
        /// What was sent.
        value: String,
        /// Why.
        #[source]
        source: crate::reference::DigestError,
    },
    /// A field is empty, too long, or holds control characters.
    #[error("{field} {problem}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong (`is empty`, `is longer than 256 bytes`...).
        problem: String,
    },
    /// `built_at` is not an RFC 3339 time.
    #[error("built_at {value:?} is not an RFC 3339 time")]
    Time {
        /// What was sent.
        value: String,
        /// jiff's reason.
        #[source]
        source: jiff::Error,
    },
    /// A parent is not a reference.
    #[error("parent {value:?} is not an image reference")]
    Parent {
        /// What was sent.
        value: String,
        /// Why.
        #[source]
        source: crate::reference::ReferenceError,
    },
    /// A parent has no digest: a tag moves, so a parent by tag says nothing later.
    #[error("parent {value:?} has no digest: give it as IMAGE@DIGEST")]
    ParentWithoutDigest {
        /// What was sent.
        value: String,
    },
    /// Too many parents.
    #[error("{count} parents is more than the {MAX_PARENTS} a build may declare")]
    TooManyParents {
        /// How many were sent.
        count: usize,
    },
}

fn text(field: &'static str, value: &str, max: usize) -> Result<String, BuildError> {
    let problem = if value.trim().is_empty() {
        Some("is empty".to_owned())
    } else if value.len() > max {
        Some(format!("is longer than {max} bytes"))
    } else if value.chars().any(char::is_control) {
        Some("holds control characters".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(BuildError::Field { field, problem }),
        None => Ok(value.to_owned()),
    }
}

impl BuildRequest {
    /// Check every field once; the first problem is the error.
    pub fn validate(&self) -> Result<NewBuild, BuildError> {
        let digest = self.digest.parse().map_err(|source| BuildError::Digest {
            value: self.digest.clone(),
            source,
        })?;
        let built_at = self
            .built_at
            .as_deref()
            .map(|t| {
                t.parse::<jiff::Timestamp>()
                    .map_err(|source| BuildError::Time {
                        value: t.to_owned(),
                        source,
                    })
            })
            .transpose()?;
        if self.parents.len() > MAX_PARENTS {
            return Err(BuildError::TooManyParents {
                count: self.parents.len(),
            });
        }
        let parents = self
            .parents
            .iter()
            .map(|p| {
                let r: ImageRef = p.parse().map_err(|source| BuildError::Parent {
                    value: p.clone(),
                    source,
                })?;
                if r.digest().is_none() {
                    return Err(BuildError::ParentWithoutDigest { value: p.clone() });
                }
                Ok(r)
            })
            .collect::<Result<_, _>>()?;
        Ok(NewBuild {
            digest,
            source_repository: text("source_repository", &self.source_repository, MAX_SOURCE)?,
            commit: text("commit", &self.commit, MAX_SHORT)?,
            builder: text("builder", &self.builder, MAX_SHORT)?,
            built_at,
            parents,
        })
    }
}

impl Catalog {
    /// Record a build and its parents in one transaction; `registered_at` is now, and the
    /// build time when the builder gave none. Returns the build's id.
    pub async fn record_build(
        &self,
        build: &NewBuild,
        registered_at: jiff::Timestamp,
    ) -> Result<i64, CatalogError> {
        let what = || format!("recording the build of {}", build.digest);
        let registered = registered_at.as_second();
        let built = build.built_at.map_or(registered, |t| t.as_second());
        let mut tx = self.pool.begin().await.map_err(query(what()))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO builds (digest, source_repository, source_commit, builder, built_at, registered_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(build.digest.to_string())
        .bind(build.source_repository.as_str())
        .bind(build.commit.as_str())
        .bind(build.builder.as_str())
        .bind(built)
        .bind(registered)
        .fetch_one(&mut *tx)
        .await
        .map_err(query(what()))?;
        for (position, parent) in build.parents.iter().enumerate() {
            sqlx::query(
                "INSERT INTO build_dependencies (build_id, position, kind, name, version, digest) \
                 VALUES ($1, $2, 'image', $3, $4, $5)",
            )
            .bind(id)
            .bind(position as i64)
            .bind(parent.canonical_name())
            .bind(parent.tag().map(|t| t.as_str().to_owned()))
            .bind(parent.digest().map(ToString::to_string))
            .execute(&mut *tx)
            .await
            .map_err(query(what()))?;
        }
        tx.commit().await.map_err(query(what()))?;
        Ok(id)
    }

    /// The builds of these digests, oldest first, each with its parents.
    pub async fn builds_of(&self, digests: &[Digest]) -> Result<Vec<Build>, CatalogError> {
        let mut out = Vec::new();
        for digest in digests {
            let rows = sqlx::query(
                "SELECT id, digest, source_repository, source_commit, builder, built_at, registered_at \
                 FROM builds WHERE digest = $1 ORDER BY built_at, id",
            )
            .bind(digest.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(query(format!("listing the builds of {digest}")))?;
            for row in rows {
                let id: i64 = row.try_get(0).map_err(query("reading builds.id"))?;
                let parents = self.parents(id).await?;
                let get = |i: usize, c: &'static str| -> Result<String, CatalogError> {
                    let v: Option<String> =
                        row.try_get(i).map_err(query(format!("reading {c}")))?;
                    Ok(v.unwrap_or_default())
                };
                let int = |i: usize, c: &'static str| -> Result<i64, CatalogError> {
                    row.try_get(i).map_err(query(format!("reading {c}")))
                };
                out.push(Build {
                    digest: digest.clone(),
                    source_repository: get(2, "builds.source_repository")?,
                    commit: get(3, "builds.source_commit")?,
                    builder: get(4, "builds.builder")?,
                    built_at: super::runs::time("builds.built_at", int(5, "builds.built_at")?)?,
                    registered_at: super::runs::time(
                        "builds.registered_at",
                        int(6, "builds.registered_at")?,
                    )?,
                    parents,
                });
            }
        }
        out.sort_by_key(|b| b.built_at);
        Ok(out)
    }

    async fn parents(&self, build_id: i64) -> Result<Vec<ImageRef>, CatalogError> {
        let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT name, version, digest FROM build_dependencies \
             WHERE build_id = $1 AND kind = 'image' ORDER BY position",
        )
        .bind(build_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("listing a build's parents"))?;
        rows.into_iter()
            .map(|(name, tag, digest)| {
                let mut text = name;
                if let Some(tag) = tag {
                    text = format!("{text}:{tag}");
                }
                if let Some(digest) = digest {
                    text = format!("{text}@{digest}");
                }
                text.parse().map_err(|e| CatalogError::Corrupt {
                    column: "build_dependencies.name",
                    value: text.clone(),
                    source: Box::new(e),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn request() -> BuildRequest {
        BuildRequest {
            digest: format!("sha256:{}", "a".repeat(64)),
            source_repository: "https://gitlab.example.org/app".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            builder: "kokkuri".into(),
            built_at: Some("2026-01-02T03:04:05Z".into()),
            parents: vec![format!(
                "docker-registry.example.org/base:bookworm@sha256:{}",
                "b".repeat(64)
            )],
        }
    }

    #[test]
    fn a_whole_build_validates() {
        let b = request().validate().unwrap();
        assert_eq!(b.parents.len(), 1);
        assert_eq!(b.built_at.unwrap().as_second(), 1_767_323_045);
    }

    #[rstest]
    #[case::bad_digest(|r: &mut BuildRequest| r.digest = "sha256:abc".into(), "is not a digest")]
    #[case::empty_commit(|r: &mut BuildRequest| r.commit = " ".into(), "commit is empty")]
    #[case::newline_in_builder(|r: &mut BuildRequest| r.builder = "a\nb".into(), "builder holds control characters")]
    #[case::long_source(|r: &mut BuildRequest| r.source_repository = "x".repeat(3000), "longer than 2048")]
    #[case::bad_time(|r: &mut BuildRequest| r.built_at = Some("yesterday".into()), "not an RFC 3339 time")]
    #[case::parent_by_tag(|r: &mut BuildRequest| r.parents = vec!["debian:bookworm".into()], "has no digest")]
    #[case::parent_not_a_reference(|r: &mut BuildRequest| r.parents = vec!["UPPER/Case@x".into()], "is not an image reference")]
    #[case::too_many_parents(|r: &mut BuildRequest| r.parents = vec![r.parents[0].clone(); 65], "65 parents")]
    fn a_bad_field_is_named(#[case] spoil: fn(&mut BuildRequest), #[case] want: &str) {
        let mut r = request();
        spoil(&mut r);
        let e = r.validate().unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}
