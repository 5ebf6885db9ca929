//! OCI 1.1 referrers (distribution-spec v1.1): the artifacts (Sigstore bundles, notation
//! signatures, attestations) whose manifest names an image as its `subject`, and one such
//! artifact's manifest and layer blob.
//!
//! Discovery asks the referrers API (`GET /v2/<name>/referrers/<digest>`); a registry without
//! it answers 404, and then the referrers tag schema's index (tag `<alg>-<hex>`) stands in, as
//! the spec tells clients to do. Pages are followed only on the registry's own origin. An
//! unanswered registry is an error, never "no referrers"; a missing fallback tag is an answer.
//!
//! Cost, cold: one GET per page of the API; without it, one GET for the 404, one HEAD for the
//! tag and one GET for the index. The list is cached as briefly as a tag; the index and every
//! artifact are content-addressed and cached by digest like every other document.

use std::sync::Arc;

use reqwest::StatusCode;
use serde::Deserialize;

use super::RegistryError;
use super::cache::Fetched as Got;
use super::http::{Endpoint, Response};
use super::oci::{self, Descriptor, Manifest};
use super::resolve::Resolver;
use crate::reference::{Digest, ImageRef};

/// The most pages of one referrers list followed.
pub const MAX_REFERRER_PAGES: usize = 8;
/// The most descriptors of one referrers list read: a digest has a few signatures and
/// attestations; thousands are a flood, and a list read in part could leave out what decides.
pub const MAX_REFERRERS: usize = 256;

/// The referrers tag schema's tag for `digest`: `<alg>-<ref>`, the digest's encoded part cut to
/// 64 characters (distribution-spec v1.1, "Referrers Tag Schema"), so that a sha512 digest
/// still makes a tag of at most 128 characters.
pub fn fallback_tag(digest: &Digest) -> String {
    let hex = digest.hex();
    format!(
        "{}-{}",
        digest.algorithm().as_str(),
        &hex[..hex.len().min(64)]
    )
}

/// A referrer's manifest and its one layer, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The artifact manifest's digest.
    pub manifest: Digest,
    /// The manifest's `artifactType`, or its config's media type when it has none (how the
    /// spec types an artifact).
    pub artifact_type: String,
    /// The manifest's `annotations`.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The layer's descriptor.
    pub layer: Descriptor,
    /// The layer's bytes, checked against its digest and size.
    pub blob: Vec<u8>,
}

/// Why a referrer's artifact is unusable: an answer about the artifact (no artifact counts),
/// never a registry failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactProblem {
    /// The referrers list's descriptor has no valid digest.
    #[error("the referrer's descriptor is invalid: {0}")]
    Descriptor(String),
    /// The manifest is not in the registry.
    #[error("the referrer manifest {digest} is missing: {answer}")]
    ManifestMissing {
        /// Its digest.
        digest: Digest,
        /// The registry's words.
        answer: String,
    },
    /// The manifest's bytes are not its digest's.
    #[error("the referrer manifest's bytes hash to {0}, not to its digest")]
    ManifestDigest(String),
    /// Not an OCI image manifest (an index, or not JSON).
    #[error("the referrer is not an OCI image manifest: {0}")]
    NotAManifest(String),
    /// The manifest's `subject` is not the image's digest: listed for another image.
    #[error("the referrer manifest's subject is {found}, not {want}")]
    Subject {
        /// The digest its referrers were listed for.
        want: Digest,
        /// What the manifest names (`none` when it has no subject).
        found: String,
    },
    /// Not exactly one layer.
    #[error("the referrer manifest has {0} layers; tollgate reads artifacts of one")]
    Layers(usize),
    /// The layer is larger than the caller reads.
    #[error("the artifact's layer is {size} bytes; at most {max} are read")]
    TooLarge {
        /// As its descriptor declares.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// The layer blob is not in the registry.
    #[error("the artifact's layer blob is missing: {0}")]
    BlobMissing(String),
    /// The layer's bytes are not its digest's, or not its size.
    #[error("the artifact's layer bytes {0}")]
    BlobContent(String),
}

/// An image index, as the referrers API and the fallback tag serve it.
#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// An artifact manifest's fields this reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactManifest {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

impl Resolver {
    /// The referrers of `digest` in `image`'s repository, of `artifact_type` only when given,
    /// in the registry's order. Through the referrers API, or its tag fallback when the
    /// registry answers the API with 404.
    pub async fn referrers(
        &self,
        image: &ImageRef,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let ep = self.endpoint(image)?;
        let repo = image.repository().as_str();
        // An empty filter filters nothing.
        let artifact_type = artifact_type.filter(|t| !t.is_empty());
        let key = (
            ep.clone(),
            repo.to_owned(),
            format!("referrers:{digest}:{}", artifact_type.unwrap_or("")),
        );
        let ep = &ep;
        let fetch = move || async move {
            Ok(Got::Found(Arc::new(
                self.discover(ep, repo, digest, artifact_type).await?,
            )))
        };
        match self
            .referrers
            .get(&self.not_found, key, fetch, |_| true)
            .await?
        {
            Got::Found(list) => Ok(list.to_vec()),
            // `discover` answers "none" as an empty list, never as not found.
            Got::NotFound(_) => Ok(Vec::new()),
        }
    }

    async fn discover(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let url = format!("{}/{repo}/referrers/{digest}", ep.host);
        let subject = digest.to_string();
        let mut all = Vec::new();
        let mut next: Option<String> = None;
        for page in 0..MAX_REFERRER_PAGES {
            let r = self
                .client()
                .referrers(ep, repo, &subject, artifact_type, next.as_deref())
                .await?;
            // "Listing Referrers": a registry that supports the API never answers it with 404;
            // one that does not is read through the tag schema.
            if r.status == StatusCode::NOT_FOUND && page == 0 {
                return self.fallback(ep, repo, digest, artifact_type).await;
            }
            check(&r, &url)?;
            let index: Index =
                serde_json::from_slice(&r.body).map_err(|e| RegistryError::Json {
                    url: url.clone(),
                    what: "referrers index",
                    source: Arc::new(e),
                })?;
            let mut found = index.manifests;
            // The registry says whether it applied the filter (`OCI-Filters-Applied`); if not,
            // the client filters.
            let applied = r
                .filters_applied
                .as_deref()
                .is_some_and(|f| f.split(',').any(|f| f.trim() == "artifactType"));
            if let Some(t) = artifact_type
                && !applied
            {
                found.retain(|d| d.artifact_type.as_deref() == Some(t));
            }
            all.extend(found);
            if all.len() > MAX_REFERRERS {
                return Err(too_many(url, MAX_REFERRERS, "descriptors"));
            }
            match r.link_next {
                Some(link) => next = Some(link),
                None => return Ok(all),
            }
        }
        Err(too_many(url, MAX_REFERRER_PAGES, "pages"))
    }

    /// The referrers tag schema: an index tagged `<alg>-<hex>` whose children are the
    /// referrers. No tag, or a tag naming a manifest the registry no longer has: no referrers.
    async fn fallback(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let tag = fallback_tag(digest);
        let url = format!("{}/{repo}:{tag}", ep.host);
        let index = match self.tag_digest(ep, repo, &tag).await? {
            Got::Found(d) => d,
            Got::NotFound(_) => return Ok(Vec::new()),
        };
        let doc = match self.document(ep, repo, &index.to_string(), true).await? {
            Got::Found(doc) => doc,
            Got::NotFound(_) => return Ok(Vec::new()),
        };
        let invalid = |message: String| RegistryError::Invalid {
            url: url.clone(),
            what: "referrers tag index",
            message,
        };
        if let Some(actual) = &doc.mismatch {
            return Err(invalid(format!("its bytes hash to {actual}, not {index}")));
        }
        let mut found = match oci::parse(&doc.body, doc.content_type.as_deref()) {
            Ok(Manifest::Index { manifests }) => manifests,
            Ok(Manifest::Image { .. }) => {
                return Err(invalid("an image manifest, not an index".into()));
            }
            Err(message) => return Err(invalid(message)),
        };
        if found.len() > MAX_REFERRERS {
            return Err(too_many(url, MAX_REFERRERS, "descriptors"));
        }
        // An index written by clients filters nothing by itself.
        if let Some(t) = artifact_type {
            found.retain(|d| d.artifact_type.as_deref() == Some(t));
        }
        Ok(found)
    }

    /// A referrer of `subject` (a descriptor [`Resolver::referrers`] listed) as an artifact:
    /// its manifest, which must be an OCI image manifest naming `subject`, and its one layer's
    /// blob, at most `max_bytes` (and never more than the resolver's document bound). A
    /// registry that does not answer is an error; anything wrong with the artifact itself is
    /// an [`ArtifactProblem`].
    pub async fn referrer_artifact(
        &self,
        image: &ImageRef,
        subject: &Digest,
        referrer: &Descriptor,
        max_bytes: u64,
    ) -> Result<Result<Artifact, ArtifactProblem>, RegistryError> {
        let ep = self.endpoint(image)?;
        let repo = image.repository().as_str();
        let manifest = match referrer.parsed_digest() {
            Ok(d) => d,
            Err(e) => return Ok(Err(ArtifactProblem::Descriptor(e))),
        };
        let doc = match self
            .document(&ep, repo, &manifest.to_string(), true)
            .await?
        {
            Got::Found(doc) => doc,
            Got::NotFound(answer) => {
                return Ok(Err(ArtifactProblem::ManifestMissing {
                    digest: manifest,
                    answer,
                }));
            }
        };
        if let Some(actual) = doc.mismatch {
            return Ok(Err(ArtifactProblem::ManifestDigest(actual)));
        }
        let parsed = match artifact_manifest(&doc.body, subject) {
            Ok(m) => m,
            Err(problem) => return Ok(Err(problem)),
        };
        let layer = match <[Descriptor; 1]>::try_from(parsed.layers) {
            Ok([l]) => l,
            Err(layers) => return Ok(Err(ArtifactProblem::Layers(layers.len()))),
        };
        let max = max_bytes.min(self.opts.max_document_bytes);
        if layer.size > max {
            return Ok(Err(ArtifactProblem::TooLarge {
                size: layer.size,
                max,
            }));
        }
        if let Err(e) = layer.parsed_digest() {
            return Ok(Err(ArtifactProblem::Descriptor(e)));
        }
        let blob = match self.document(&ep, repo, &layer.digest, false).await? {
            Got::Found(d) => d,
            Got::NotFound(answer) => return Ok(Err(ArtifactProblem::BlobMissing(answer))),
        };
        if let Some(actual) = blob.mismatch {
            return Ok(Err(ArtifactProblem::BlobContent(format!(
                "hash to {actual}"
            ))));
        }
        if blob.body.len() as u64 != layer.size {
            return Ok(Err(ArtifactProblem::BlobContent(format!(
                "are {} long; the descriptor says {}",
                blob.body.len(),
                layer.size
            ))));
        }
        let artifact_type = parsed
            .artifact_type
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| parsed.config.media_type.clone());
        Ok(Ok(Artifact {
            manifest,
            artifact_type,
            annotations: parsed.annotations,
            layer,
            blob: blob.body.to_vec(),
        }))
    }
}

/// Parse an artifact manifest and check that it is an image manifest whose subject is
/// `subject`.
fn artifact_manifest(body: &[u8], subject: &Digest) -> Result<ArtifactManifest, ArtifactProblem> {
    let m: ArtifactManifest = serde_json::from_slice(body)
        .map_err(|e| ArtifactProblem::NotAManifest(format!("not JSON of its shape: {e}")))?;
    if let Some(mt) = &m.media_type
        && mt != oci::OCI_MANIFEST
    {
        return Err(ArtifactProblem::NotAManifest(format!(
            "its mediaType is {mt}"
        )));
    }
    let found = m.subject.as_ref().map(|s| s.digest.as_str());
    if found != Some(subject.to_string().as_str()) {
        return Err(ArtifactProblem::Subject {
            want: subject.clone(),
            found: found.unwrap_or("none").to_owned(),
        });
    }
    Ok(m)
}

fn check(r: &Response, url: &str) -> Result<(), RegistryError> {
    if r.status.is_success() {
        Ok(())
    } else {
        Err(RegistryError::Status {
            url: url.to_owned(),
            status: r.status.as_u16(),
            message: r.error_text(),
        })
    }
}

fn too_many(url: String, limit: usize, unit: &'static str) -> RegistryError {
    RegistryError::TooMany {
        url,
        what: "referrers list",
        limit,
        unit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn digest(s: &str) -> Digest {
        s.parse().unwrap()
    }

    #[test]
    fn fallback_tags_follow_the_tag_schema() {
        assert_eq!(
            fallback_tag(&digest(&format!("sha256:{HEX}"))),
            format!("sha256-{HEX}")
        );
        // A sha512 digest's 128 hex characters are cut to 64.
        let long = format!("sha512:{HEX}{HEX}");
        assert_eq!(fallback_tag(&digest(&long)), format!("sha512-{HEX}"));
    }

    fn manifest(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/x",
               "config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:{HEX}","size":2}},
               "layers":[]{extra}}}"#,
            oci::OCI_MANIFEST
        )
    }

    #[rstest]
    #[case::its_subject(&format!(r#","subject":{{"mediaType":"m","digest":"sha256:{HEX}","size":1}}"#), None)]
    #[case::no_subject("", Some("subject is none"))]
    #[case::another_subject(&format!(r#","subject":{{"mediaType":"m","digest":"sha256:{}","size":1}}"#, HEX.replace('0', "f")), Some("subject is sha256:f"))]
    fn an_artifact_must_name_its_subject(#[case] extra: &str, #[case] why: Option<&str>) {
        let r = artifact_manifest(
            manifest(extra).as_bytes(),
            &digest(&format!("sha256:{HEX}")),
        );
        match why {
            None => assert!(r.is_ok()),
            Some(why) => assert!(r.unwrap_err().to_string().contains(why)),
        }
    }

    #[test]
    fn an_index_is_not_an_artifact() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"x","digest":"sha256:{HEX}","size":2}}}}"#,
            oci::OCI_INDEX
        );
        let e = artifact_manifest(body.as_bytes(), &digest(&format!("sha256:{HEX}"))).unwrap_err();
        assert!(matches!(e, ArtifactProblem::NotAManifest(_)), "{e}");
        let e = artifact_manifest(b"[]", &digest(&format!("sha256:{HEX}"))).unwrap_err();
        assert!(matches!(e, ArtifactProblem::NotAManifest(_)), "{e}");
    }
}
