//! A digest's cosign signatures and attestations, read from the registry: the
//! `sha256-<hex>.sig` (`.att`) tag, its manifest, and each payload (envelope) blob. Verification itself is pure ([`crate::signature`]).
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
use crate::signature::attestation::MAX_ENVELOPE_BYTES;
use crate::signature::cosign::{self, MAX_PAYLOAD_BYTES};
use crate::signature::referred::{BUNDLE_ARTIFACT_TYPE, FetchedBundle, MAX_BUNDLE_BYTES};
use crate::signature::{Fetched, FetchedAttestation, SignatureError};

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

/// What the registry holds for a digest's attestations (`sha256-<hex>.att`).
#[derive(Debug, Clone, Default)]
pub struct AttestationSet {
    /// The attestation manifest's digest; `None`: no `.att` tag.
    pub manifest: Option<Digest>,
    /// Every attestation layer, with its envelope.
    pub attestations: Vec<FetchedAttestation>,
    /// Why the set is unusable, when it is: no attestation counts then.
    pub problem: Option<SignatureError>,
}

/// A tag-scheme manifest, read: its digest, and its body or why it cannot be used.
type Artifact = Option<(Digest, Result<Vec<u8>, SignatureError>)>;

impl Resolver {
    /// The manifest under cosign's `tag` for a digest (`None`: no such tag, or the tag names a
    /// manifest the registry no longer has, with its digest).
    async fn artifact_manifest(
        &self,
        ep: &super::http::Endpoint,
        repo: &str,
        tag: &str,
    ) -> Result<Artifact, RegistryError> {
        let manifest = match self.tag_digest(ep, repo, tag).await? {
            Got::Found(d) => d,
            Got::NotFound(_) => return Ok(None),
        };
        let body = match self.document(ep, repo, &manifest.to_string(), true).await? {
            Got::Found(doc) => match &doc.mismatch {
                Some(actual) => Err(SignatureError::ManifestDigest(actual.clone())),
                None => Ok(doc.body.to_vec()),
            },
            // The tag names a manifest the registry no longer has: as if there were none.
            Got::NotFound(_) => Ok(br#"{"layers":[]}"#.to_vec()),
        };
        Ok(Some((manifest, body)))
    }

    /// A payload or envelope blob, at most `max` bytes: its bytes, or why not in one line.
    async fn artifact_blob(
        &self,
        ep: &super::http::Endpoint,
        repo: &str,
        digest: &Digest,
        size: u64,
        max: u64,
    ) -> Result<Result<Vec<u8>, String>, RegistryError> {
        if size > max {
            return Ok(Err(format!("it is {size} bytes; at most {max} are read")));
        }
        Ok(
            match self.document(ep, repo, &digest.to_string(), false).await? {
                Got::Found(d) if d.mismatch.is_none() => Ok(d.body.to_vec()),
                Got::Found(d) => Err(format!(
                    "its bytes hash to {}",
                    d.mismatch.unwrap_or_default()
                )),
                Got::NotFound(why) => Err(format!("the blob is missing: {why}")),
            },
        )
    }

    /// The manifest digests of `digest`'s `.sig` and `.att` tags (`None`: no such tag), each
    /// asked only when `signatures` / `attestations` says so. The tag lookups are cached, so
    /// this is what a warm check costs before its remembered verdict answers.
    pub async fn artifact_tags(
        &self,
        image: &ImageRef,
        digest: &Digest,
        signatures: bool,
        attestations: bool,
    ) -> Result<(Option<Digest>, Option<Digest>), RegistryError> {
        let ep = self.endpoint(image)?;
        let repo = image.repository().as_str();
        let mut out = (None, None);
        if signatures
            && let Got::Found(d) = self
                .tag_digest(&ep, repo, &cosign::signature_tag(digest))
                .await?
        {
            out.0 = Some(d);
        }
        if attestations
            && let Got::Found(d) = self
                .tag_digest(&ep, repo, &cosign::attestation_tag(digest))
                .await?
        {
            out.1 = Some(d);
        }
        Ok(out)
    }

    /// The cosign signatures of `digest`, in `image`'s repository. An unanswered registry is an
    /// error (never "unsigned"); a missing tag or payload is an answer.
    pub async fn signatures(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<SignatureSet, RegistryError> {
        let ep = self.endpoint(image)?;
        let repo = image.repository().as_str();
        let Some((manifest, body)) = self
            .artifact_manifest(&ep, repo, &cosign::signature_tag(digest))
            .await?
        else {
            return Ok(SignatureSet::default());
        };
        let layers = match body.and_then(|b| cosign::signature_layers(&b)) {
            Ok(l) => l,
            Err(e) => {
                return Ok(SignatureSet {
                    manifest: Some(manifest),
                    signatures: Vec::new(),
                    problem: Some(e),
                });
            }
        };
        let payloads = join_all(
            layers
                .iter()
                .map(|l| self.artifact_blob(&ep, repo, &l.payload, l.size, MAX_PAYLOAD_BYTES)),
        )
        .await;
        let mut signatures = Vec::with_capacity(layers.len());
        for (layer, payload) in layers.into_iter().zip(payloads) {
            signatures.push(Fetched {
                layer,
                payload: payload?.map_err(|why| format!("the payload: {why}")),
            });
        }
        Ok(SignatureSet {
            manifest: Some(manifest),
            signatures,
            problem: None,
        })
    }

    /// The cosign attestations of `digest` (`sha256-<hex>.att`), as [`Self::signatures`].
    pub async fn attestations(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<AttestationSet, RegistryError> {
        let ep = self.endpoint(image)?;
        let repo = image.repository().as_str();
        let Some((manifest, body)) = self
            .artifact_manifest(&ep, repo, &cosign::attestation_tag(digest))
            .await?
        else {
            return Ok(AttestationSet::default());
        };
        let layers = match body.and_then(|b| cosign::attestation_layers(&b)) {
            Ok(l) => l,
            Err(e) => {
                return Ok(AttestationSet {
                    manifest: Some(manifest),
                    attestations: Vec::new(),
                    problem: Some(e),
                });
            }
        };
        let envelopes = join_all(
            layers
                .iter()
                .map(|l| self.artifact_blob(&ep, repo, &l.envelope, l.size, MAX_ENVELOPE_BYTES)),
        )
        .await;
        let mut attestations = Vec::with_capacity(layers.len());
        for (layer, envelope) in layers.into_iter().zip(envelopes) {
            attestations.push(FetchedAttestation {
                layer,
                envelope: envelope?,
            });
        }
        Ok(AttestationSet {
            manifest: Some(manifest),
            attestations,
            problem: None,
        })
    }
}

/// The most bundle referrers read for one digest: each costs a manifest and a blob.
const MAX_BUNDLES: usize = 32;

impl Resolver {
    /// The Sigstore bundles among `digest`'s referrers (cosign 3's default storage): the
    /// referrers API when the registry has it, else the referrers tag schema. Each bundle's
    /// referrer manifest and blob are read and checked (subject, size, digest); one that
    /// cannot be used is reported, never skipped. The referrer manifests' digests, in order,
    /// come first: what a verdict made from them depends on.
    pub async fn bundles(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<FetchedBundle>, RegistryError> {
        let referrers = self
            .referrers(image, digest, Some(BUNDLE_ARTIFACT_TYPE))
            .await?;
        let read = join_all(
            referrers
                .iter()
                .take(MAX_BUNDLES)
                .map(|r| self.referrer_artifact(image, digest, r, MAX_BUNDLE_BYTES)),
        )
        .await;
        let mut out = Vec::with_capacity(read.len());
        for (r, got) in referrers.iter().zip(read) {
            out.push(FetchedBundle {
                referrer: r.digest.clone(),
                bytes: got?
                    .map(|a| a.blob)
                    .map_err(|e| crate::error_text::error_text(&e)),
            });
        }
        if referrers.len() > MAX_BUNDLES {
            out.push(FetchedBundle {
                referrer: String::new(),
                bytes: Err(format!(
                    "{} bundles refer to the digest; the first {MAX_BUNDLES} were read",
                    referrers.len()
                )),
            });
        }
        Ok(out)
    }
}
