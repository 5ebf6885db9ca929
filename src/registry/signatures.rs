//! A digest's cosign signatures, read from the registry: the `sha256-<hex>.sig` tag, its
//! manifest, and each payload blob. Verification itself is pure ([`crate::signature`]).
//!
//! Cost, cold: one HEAD for the tag, one GET for the signature manifest, one GET per payload
//! (three requests for a digest signed once). The manifest and payloads are content-addressed
//! and cached by digest like every other document; only the tag is asked again once its short
//! cache entry expires.

use futures_util::future::join_all;

use super::RegistryError;
use super::cache::Fetched as Got;
use super::resolve::Resolver;
use crate::reference::{Digest, ImageRef};
use crate::signature::cosign::{self, MAX_PAYLOAD_BYTES};
use crate::signature::{Fetched, SignatureError};

/// What the registry holds for a digest's signatures.
#[derive(Debug, Clone, Default)]
pub struct SignatureSet {
    /// The signature manifest's digest; `None`: no `.sig` tag (the digest is unsigned).
    pub manifest: Option<Digest>,
    /// Every signature layer, with its payload.
    pub signatures: Vec<Fetched>,
    /// Why the set is unusable, when it is (a malformed manifest): no signature counts then.
    pub problem: Option<SignatureError>,
}

impl Resolver {
    /// The cosign signatures of `digest`, in `image`'s repository. An unanswered registry is an
    /// error (never "unsigned"); a missing tag or payload is an answer.
    pub async fn signatures(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<SignatureSet, RegistryError> {
        let ep = self.endpoint(image)?;
        let repo = image.repository().as_str();
        let tag = cosign::signature_tag(digest);
        let manifest = match self.tag_digest(&ep, repo, &tag).await? {
            Got::Found(d) => d,
            Got::NotFound(_) => return Ok(SignatureSet::default()),
        };
        let doc = match self
            .document(&ep, repo, &manifest.to_string(), true)
            .await?
        {
            Got::Found(doc) => doc,
            // The tag names a manifest the registry no longer has: nothing is signed.
            Got::NotFound(_) => {
                return Ok(SignatureSet {
                    manifest: Some(manifest),
                    ..SignatureSet::default()
                });
            }
        };
        if let Some(actual) = &doc.mismatch {
            return Ok(SignatureSet {
                manifest: Some(manifest),
                signatures: Vec::new(),
                problem: Some(SignatureError::ManifestDigest(actual.clone())),
            });
        }
        let layers = match cosign::signature_layers(&doc.body) {
            Ok(l) => l,
            Err(e) => {
                return Ok(SignatureSet {
                    manifest: Some(manifest),
                    signatures: Vec::new(),
                    problem: Some(e),
                });
            }
        };
        let payloads = join_all(layers.iter().map(|l| async {
            if l.size > MAX_PAYLOAD_BYTES {
                return Ok(Err(format!(
                    "the payload is {} bytes; at most {MAX_PAYLOAD_BYTES} are read",
                    l.size
                )));
            }
            Ok(
                match self
                    .document(&ep, repo, &l.payload.to_string(), false)
                    .await?
                {
                    Got::Found(d) if d.mismatch.is_none() => Ok(d.body.to_vec()),
                    Got::Found(d) => Err(format!(
                        "the payload's bytes hash to {}",
                        d.mismatch.unwrap_or_default()
                    )),
                    Got::NotFound(why) => Err(format!("the payload blob is missing: {why}")),
                },
            )
        }))
        .await;
        let mut signatures = Vec::with_capacity(layers.len());
        for (layer, payload) in layers.into_iter().zip(payloads) {
            signatures.push(Fetched {
                layer,
                payload: payload?,
            });
        }
        Ok(SignatureSet {
            manifest: Some(manifest),
            signatures,
            problem: None,
        })
    }
}
