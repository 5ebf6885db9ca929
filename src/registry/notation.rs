//! A digest's Notary Project (notation) signatures, read from the registry: its referrers of
//! artifactType `application/vnd.cncf.notary.signature` (the referrers API, or its tag schema
//! fallback, [`super::referrers`]), each one's manifest and its JWS envelope blob.
//! Verification itself is pure ([`crate::signature::notation`]).
//!
//! Cost, cold: the referrers list (one GET with the API; a 404, a HEAD and a GET without it),
//! then a manifest GET and a blob GET per signature, all content-addressed and cached.

use futures_util::future::join_all;

use super::RegistryError;
use super::resolve::Resolver;
use crate::reference::{Digest, ImageRef};
use crate::signature::notation::{
    ARTIFACT_TYPE, FetchedNotation, MAX_ENVELOPE_BYTES, MAX_SIGNATURES, MEDIA_TYPE_COSE,
    MEDIA_TYPE_JWS,
};

/// What the registry holds for a digest's notation signatures.
#[derive(Debug, Clone, Default)]
pub struct NotationSet {
    /// Every signature read, in the registry's order: the first [`MAX_SIGNATURES`] listed.
    pub signatures: Vec<FetchedNotation>,
}

impl NotationSet {
    /// What a verdict of these signatures depends on: their manifests, in order.
    pub fn manifests(&self) -> String {
        self.signatures
            .iter()
            .map(|s| s.manifest.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Resolver {
    /// The notation signatures of `digest` in `image`'s repository. An unanswered registry is
    /// an error (never "unsigned"); a missing or malformed artifact is an answer about that
    /// one signature.
    pub async fn notation_signatures(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<NotationSet, RegistryError> {
        let mut listed = self.referrers(image, digest, Some(ARTIFACT_TYPE)).await?;
        listed.truncate(MAX_SIGNATURES);
        let artifacts = join_all(
            listed
                .iter()
                .map(|d| self.referrer_artifact(image, digest, d, MAX_ENVELOPE_BYTES)),
        )
        .await;
        let mut signatures = Vec::with_capacity(listed.len());
        for (descriptor, artifact) in listed.iter().zip(artifacts) {
            let manifest = match descriptor.parsed_digest() {
                Ok(d) => d,
                // The listing's own descriptor is unusable: nothing to name it by, nothing
                // to read. `referrer_artifact` said so too.
                Err(_) => continue,
            };
            let envelope = match artifact? {
                Err(problem) => Err(crate::error_text::error_text(&problem)),
                Ok(a) if a.artifact_type != ARTIFACT_TYPE => Err(format!(
                    "its artifactType is {}, not {ARTIFACT_TYPE}",
                    a.artifact_type
                )),
                Ok(a)
                    if a.layer.media_type != MEDIA_TYPE_JWS
                        && a.layer.media_type != MEDIA_TYPE_COSE =>
                {
                    Err(format!(
                        "its envelope is {}; tollgate reads {MEDIA_TYPE_JWS} (JWS) and \
                     {MEDIA_TYPE_COSE} (COSE) envelopes",
                        a.layer.media_type
                    ))
                }
                Ok(a) => Ok(a.blob),
            };
            signatures.push(FetchedNotation { manifest, envelope });
        }
        Ok(NotationSet { signatures })
    }
}
