//! What a registry holds, read for the catalog (`tollgate catalog sync`): the digest a tag
//! points at (one HEAD), and a manifest with its image config, each checked against its
//! digest. The same cached fetches as the walk ([`super::resolve`]): the same client, bounds,
//! auth and redirect rules; what the walk adds (a HEAD per layer, the base check) is left out,
//! since the catalog records a layer's size from the manifest that declares it.

use std::future::Future;
use std::sync::Arc;

use super::RegistryError;
use super::cache::Fetched;
use super::http::Endpoint;
use super::oci::{self, Manifest};
use super::resolve::Resolver;
use crate::reference::Digest;

/// What a tag's HEAD answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagDigest {
    /// The digest it points at.
    Found(Digest),
    /// The registry does not know the tag (listed, then deleted; or deleted under it): its
    /// answer.
    NotFound(String),
}

/// Run `fut` as one walk under the resolver's deadline and request budget (`--deadline`,
/// `--max-walk-requests`), as an image's resolution is.
async fn bounded<T>(
    resolver: &Resolver,
    fut: impl Future<Output = Result<T, RegistryError>> + Send,
) -> Result<T, RegistryError> {
    let deadline = resolver.opts.deadline;
    resolver
        .walk(tokio::time::timeout(deadline, fut))
        .await
        .map_err(|_| RegistryError::Deadline {
            millis: deadline.as_millis() as u64,
        })?
}

/// The digest `repo:tag` points at: a HEAD (a GET only from a registry that sends no
/// `Docker-Content-Digest`).
pub async fn tag_digest(
    resolver: &Resolver,
    ep: &Endpoint,
    repo: &str,
    tag: &str,
) -> Result<TagDigest, RegistryError> {
    Ok(
        match bounded(resolver, resolver.tag_digest(ep, repo, tag)).await? {
            Fetched::Found(d) => TagDigest::Found(d),
            Fetched::NotFound(answer) => TagDigest::NotFound(answer),
        },
    )
}

/// The config media types whose blob is an image config (read for created, labels,
/// platform). Other configs (signatures, SBOMs, charts) are artifacts' own formats: their
/// blobs are not fetched.
pub fn is_image_config(media_type: &str) -> bool {
    // Left out, as some old pushers do: the image config is what it would be.
    media_type.is_empty()
        || media_type == "application/vnd.oci.image.config.v1+json"
        || media_type == "application/vnd.docker.container.image.v1+json"
}

/// A manifest as fetched: bytes that hash to its digest, parsed, with its image config.
#[derive(Debug, Clone)]
pub struct ManifestDocument {
    /// The registry's `Content-Type`.
    pub content_type: Option<String>,
    /// The manifest's bytes.
    pub body: Arc<Vec<u8>>,
    /// Them, parsed.
    pub manifest: Manifest,
    /// An image's config blob, when its media type is an image config
    /// ([`is_image_config`]); `None` for an index or an artifact.
    pub config: Option<Arc<Vec<u8>>>,
}

/// Why a manifest could not be read. "Not found" and "corrupt" are facts about the registry;
/// [`Unreadable::Registry`] is the registry not answering, never a verdict.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    /// A 404.
    #[error("{what} {digest} not found: {answer}")]
    NotFound {
        /// `manifest` or `config`.
        what: &'static str,
        /// Its digest.
        digest: Digest,
        /// The registry's answer.
        answer: String,
    },
    /// The bytes do not hash to the digest, or are not the size declared.
    #[error("{what} {digest} is corrupt: {detail}")]
    Corrupt {
        /// `manifest` or `config`.
        what: &'static str,
        /// Its digest.
        digest: Digest,
        /// What does not match.
        detail: String,
    },
    /// Not a manifest tollgate reads.
    #[error("manifest {digest} is not valid: {message}")]
    Invalid {
        /// Its digest.
        digest: Digest,
        /// Why.
        message: String,
    },
    /// The registry did not answer (or answered an error status).
    #[error("cannot read {what} {digest}")]
    Registry {
        /// `manifest` or `config`.
        what: &'static str,
        /// Its digest.
        digest: Digest,
        /// The client's error.
        #[source]
        source: RegistryError,
    },
}

/// GET one document by digest through the resolver's cache, hash-checked.
async fn document(
    resolver: &Resolver,
    ep: &Endpoint,
    repo: &str,
    digest: &Digest,
    what: &'static str,
    declared_size: Option<u64>,
) -> Result<(Option<String>, Arc<Vec<u8>>), Unreadable> {
    let is_manifest = what == "manifest";
    match resolver
        .document(ep, repo, &digest.to_string(), is_manifest)
        .await
    {
        Ok(Fetched::Found(doc)) => {
            if let Some(actual) = doc.mismatch {
                return Err(Unreadable::Corrupt {
                    what,
                    digest: digest.clone(),
                    detail: format!("its bytes hash to {actual}"),
                });
            }
            if let Some(declared) = declared_size
                && declared != doc.body.len() as u64
            {
                return Err(Unreadable::Corrupt {
                    what,
                    digest: digest.clone(),
                    detail: format!("{} bytes, where {declared} are declared", doc.body.len()),
                });
            }
            Ok((doc.content_type, doc.body))
        }
        Ok(Fetched::NotFound(answer)) => Err(Unreadable::NotFound {
            what,
            digest: digest.clone(),
            answer,
        }),
        Err(source) => Err(Unreadable::Registry {
            what,
            digest: digest.clone(),
            source,
        }),
    }
}

/// GET the manifest `digest` of `repo` (and its config, for an image), each at most the
/// resolver's `max_document_bytes` and checked against its digest; `declared_size` is the size
/// an index names for it.
pub async fn manifest(
    resolver: &Resolver,
    ep: &Endpoint,
    repo: &str,
    digest: &Digest,
    declared_size: Option<u64>,
) -> Result<ManifestDocument, Unreadable> {
    // The manifest and its config are one walk: one deadline, one budget.
    let deadline = resolver.opts.deadline;
    resolver
        .walk(tokio::time::timeout(
            deadline,
            manifest_inner(resolver, ep, repo, digest, declared_size),
        ))
        .await
        .unwrap_or_else(|_| {
            Err(Unreadable::Registry {
                what: "manifest",
                digest: digest.clone(),
                source: RegistryError::Deadline {
                    millis: deadline.as_millis() as u64,
                },
            })
        })
}

async fn manifest_inner(
    resolver: &Resolver,
    ep: &Endpoint,
    repo: &str,
    digest: &Digest,
    declared_size: Option<u64>,
) -> Result<ManifestDocument, Unreadable> {
    let (content_type, body) =
        document(resolver, ep, repo, digest, "manifest", declared_size).await?;
    let manifest =
        oci::parse(&body, content_type.as_deref()).map_err(|message| Unreadable::Invalid {
            digest: digest.clone(),
            message,
        })?;
    let config = match &manifest {
        Manifest::Image { config, .. } if is_image_config(&config.media_type) => {
            let config_digest = config
                .parsed_digest()
                .map_err(|message| Unreadable::Invalid {
                    digest: digest.clone(),
                    message,
                })?;
            let (_, bytes) = document(
                resolver,
                ep,
                repo,
                &config_digest,
                "config",
                Some(config.size),
            )
            .await?;
            Some(bytes)
        }
        _ => None,
    };
    Ok(ManifestDocument {
        content_type,
        body,
        manifest,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::oci("application/vnd.oci.image.config.v1+json", true)]
    #[case::docker("application/vnd.docker.container.image.v1+json", true)]
    #[case::left_out("", true)]
    #[case::cosign_signature("application/vnd.dev.cosign.artifact.sig.v1+json", false)]
    #[case::empty_artifact_config("application/vnd.oci.empty.v1+json", false)]
    fn only_image_configs_are_fetched(#[case] media_type: &str, #[case] fetched: bool) {
        assert_eq!(is_image_config(media_type), fetched);
    }
}
