//! cosign's tag scheme: the signatures of `repo@sha256:<hex>` are the layers of the manifest
//! tagged `sha256-<hex>.sig` in the same repository. Each layer is a simple-signing payload
//! (`application/vnd.dev.cosign.simplesigning.v1+json`) whose signature is the layer's
//! `dev.cosignproject.cosign/signature` annotation (base64), with the certificate, chain and
//! Rekor bundle of keyless signing beside it (`dev.sigstore.cosign/certificate`, `…/chain`,
//! `…/bundle`).
//!
//! The payload is the "simple signing" format cosign took from containers/image
//! (cosign's specs/SIGNATURE_SPEC.md): `critical.identity.docker-reference`,
//! `critical.image.docker-manifest-digest`, `critical.type` = `cosign container image
//! signature`, and an `optional` object.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::reference::Digest;

/// The media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation that holds a layer's signature, base64.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The annotation that holds a keyless signature's certificate, PEM.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The annotation that holds the certificates between a keyless certificate and its root, PEM.
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The annotation that holds a signature's Rekor bundle (SET and entry), JSON.
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// `critical.type` of an image signature.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// More signatures than this on one digest are not read: each costs a blob download, and a
/// real pipeline signs an image a handful of times.
pub const MAX_SIGNATURES: usize = 32;
/// The largest payload read; a simple-signing payload is a few hundred bytes.
pub const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;

/// The tag cosign stores `digest`'s signatures under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm().as_str(), digest.hex())
}

/// The tag cosign stores `digest`'s attestations under: `sha256-<hex>.att`.
pub fn attestation_tag(digest: &Digest) -> String {
    format!("{}-{}.att", digest.algorithm().as_str(), digest.hex())
}

/// Whether `tag` is one of cosign's artifact tags (`sha256-<hex>.sig`, `.att`, `.sbom`): a
/// signature, attestation or SBOM stored beside an image, never an image to sign itself.
pub fn is_artifact_tag(tag: &str) -> bool {
    let Some((alg, rest)) = tag.split_once('-') else {
        return false;
    };
    let Some((hex, suffix)) = rest.split_once('.') else {
        return false;
    };
    matches!(alg, "sha256" | "sha384" | "sha512")
        && matches!(suffix, "sig" | "att" | "sbom")
        && !hex.is_empty()
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// One signature layer of a signature manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLayer {
    /// The payload blob's digest.
    pub payload: Digest,
    /// The payload's size as the manifest declares it.
    pub size: u64,
    /// The signature, decoded.
    pub signature: Vec<u8>,
    /// The certificate of a keyless signature, PEM.
    pub certificate: Option<String>,
    /// The rest of its chain, PEM.
    pub chain: Option<String>,
    /// The Rekor bundle, JSON.
    pub bundle: Option<String>,
}

/// Why a signature manifest or payload cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignatureError {
    /// The manifest is not JSON of an image manifest's shape.
    #[error("the signature manifest is not an image manifest")]
    ManifestJson(#[source] Arc<serde_json::Error>),
    /// A layer of the manifest cannot be used.
    #[error("the signature manifest's layer {layer} {reason}")]
    Layer {
        /// Its index.
        layer: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A layer's digest does not parse.
    #[error("the signature manifest's layer {layer} has an invalid digest")]
    LayerDigest {
        /// Its index.
        layer: usize,
        /// Why.
        #[source]
        source: crate::reference::DigestError,
    },
    /// A layer's signature is not base64.
    #[error("the signature manifest's layer {layer} has a signature that is not base64")]
    LayerSignature {
        /// Its index.
        layer: usize,
        /// Why.
        #[source]
        source: base64::DecodeError,
    },
    /// The manifest's bytes do not hash to its digest.
    #[error("the signature manifest's bytes hash to {0}, not to its digest")]
    ManifestDigest(String),
    /// More layers than are read.
    #[error("the signature manifest has {0} layers; at most {MAX_SIGNATURES} are read")]
    TooMany(usize),
    /// The payload is not a simple-signing document.
    #[error("the signed payload is not a cosign simple-signing document")]
    Payload(#[source] Arc<serde_json::Error>),
    /// The payload signs something else than an image signature.
    #[error("the signed payload's critical.type is {0:?}, not {SIGNATURE_TYPE:?}")]
    Type(String),
    /// The payload names another digest.
    #[error("the signature is over {signed}, not over {expected}")]
    OtherDigest {
        /// The digest the payload names.
        signed: String,
        /// The digest that was verified.
        expected: Digest,
    },
    /// The payload's bytes do not hash to the layer's digest.
    #[error("the payload's bytes do not match its digest {0}")]
    PayloadDigest(Digest),
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layer {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// The signature layers of a signature manifest. Layers of another media type are skipped
/// (cosign writes only simple-signing layers under `.sig`); a simple-signing layer without a
/// decodable signature is an error, never skipped.
pub fn signature_layers(manifest: &[u8]) -> Result<Vec<SignatureLayer>, SignatureError> {
    let m: Manifest =
        serde_json::from_slice(manifest).map_err(|e| SignatureError::ManifestJson(Arc::new(e)))?;
    if m.layers.len() > MAX_SIGNATURES {
        return Err(SignatureError::TooMany(m.layers.len()));
    }
    let mut out = Vec::new();
    for (i, l) in m.layers.into_iter().enumerate() {
        if l.media_type != SIMPLE_SIGNING {
            continue;
        }
        let payload = l
            .digest
            .parse::<Digest>()
            .map_err(|source| SignatureError::LayerDigest { layer: i, source })?;
        let signature = l
            .annotations
            .get(SIGNATURE_ANNOTATION)
            .ok_or(SignatureError::Layer {
                layer: i,
                reason: "has no dev.cosignproject.cosign/signature annotation",
            })
            .and_then(|s| {
                STANDARD
                    .decode(s.trim())
                    .map_err(|source| SignatureError::LayerSignature { layer: i, source })
            })?;
        out.push(SignatureLayer {
            payload,
            size: l.size,
            signature,
            certificate: l.annotations.get(CERTIFICATE_ANNOTATION).cloned(),
            chain: l.annotations.get(CHAIN_ANNOTATION).cloned(),
            bundle: l.annotations.get(BUNDLE_ANNOTATION).cloned(),
        });
    }
    Ok(out)
}

/// One attestation layer of an attestation manifest: a DSSE envelope blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationLayer {
    /// The envelope blob's digest.
    pub envelope: Digest,
    /// Its size as the manifest declares it.
    pub size: u64,
    /// The `predicateType` annotation (unauthenticated: the statement inside is what counts).
    pub predicate_type: Option<String>,
    /// The certificate of a keyless attestation, PEM.
    pub certificate: Option<String>,
    /// The rest of its chain, PEM.
    pub chain: Option<String>,
    /// The Rekor bundle, JSON.
    pub bundle: Option<String>,
}

/// The attestation layers of an attestation manifest (`sha256-<hex>.att`): its DSSE envelope
/// layers; layers of another media type are skipped.
pub fn attestation_layers(manifest: &[u8]) -> Result<Vec<AttestationLayer>, SignatureError> {
    let m: Manifest =
        serde_json::from_slice(manifest).map_err(|e| SignatureError::ManifestJson(Arc::new(e)))?;
    if m.layers.len() > MAX_SIGNATURES {
        return Err(SignatureError::TooMany(m.layers.len()));
    }
    let mut out = Vec::new();
    for (i, mut l) in m.layers.into_iter().enumerate() {
        if l.media_type != crate::signature::attestation::DSSE_LAYER {
            continue;
        }
        out.push(AttestationLayer {
            envelope: l
                .digest
                .parse::<Digest>()
                .map_err(|source| SignatureError::LayerDigest { layer: i, source })?,
            size: l.size,
            predicate_type: l.annotations.remove("predicateType"),
            certificate: l.annotations.remove(CERTIFICATE_ANNOTATION),
            chain: l.annotations.remove(CHAIN_ANNOTATION),
            bundle: l.annotations.remove(BUNDLE_ANNOTATION),
        });
    }
    Ok(out)
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: PayloadImage,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    identity: Option<Identity>,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference", default)]
    reference: Option<String>,
}

/// What a verified payload says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedClaim {
    /// `critical.identity.docker-reference`: the repository the signer named.
    pub docker_reference: Option<String>,
}

/// Check that `payload` (the blob of `layer`) is a simple-signing document over `expected`.
/// Checked before any signature is: a payload over another digest never counts, whoever
/// signed it.
pub fn check_payload(
    layer: &SignatureLayer,
    payload: &[u8],
    expected: &Digest,
) -> Result<SignedClaim, SignatureError> {
    let actual = format!("sha256:{}", hex(&Sha256::digest(payload)));
    if actual != layer.payload.to_string() {
        return Err(SignatureError::PayloadDigest(layer.payload.clone()));
    }
    let p: Payload =
        serde_json::from_slice(payload).map_err(|e| SignatureError::Payload(Arc::new(e)))?;
    if p.critical.kind != SIGNATURE_TYPE {
        return Err(SignatureError::Type(p.critical.kind));
    }
    // Compared as digests, parsed: the payload is attacker input like the rest.
    if p.critical.image.digest.parse::<Digest>().ok().as_ref() != Some(expected) {
        return Err(SignatureError::OtherDigest {
            signed: p.critical.image.digest,
            expected: expected.clone(),
        });
    }
    Ok(SignedClaim {
        docker_reference: p.critical.identity.and_then(|i| i.reference),
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
