//! Sigstore bundles (protobuf-specs `sigstore_bundle.proto`, `sigstore_rekor.proto`) as cosign
//! writes them: their proto3 JSON parsed into what verification needs, the version's rules
//! checked. Pure: nothing here verifies a signature, a certificate or a log proof; it only says
//! what the bundle claims, in typed form, or precisely why it is malformed.
//!
//! proto3 JSON (protobuf's JSON mapping) shapes every reader here: field names are
//! lowerCamelCase (the proto names are accepted too), `int64` and `uint64` may arrive as
//! strings or numbers, `bytes` are base64 (standard or URL-safe, padded or not), and fields
//! holding their default value (0, empty) are left out, so an absent number is 0.

use std::sync::Arc;

use serde::Deserialize;

use super::dsse::{self, DsseError, decode_base64};

/// The most transparency-log entries read from one bundle: cosign writes one.
pub const MAX_TLOG_ENTRIES: usize = 8;
/// The most hashes of one inclusion proof: a Merkle tree of 2^64 leaves needs 64.
pub const MAX_PROOF_HASHES: usize = 64;
/// The most certificates of one chain: Fulcio's chains are two or three long.
pub const MAX_CERTIFICATES: usize = 10;
/// The most RFC 3161 timestamps read from one bundle: a signer asks one or two authorities.
pub const MAX_TIMESTAMPS: usize = 8;

/// Which bundle format version (its media type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BundleVersion {
    /// `application/vnd.dev.sigstore.bundle+json;version=0.1`: log entries carry an inclusion
    /// promise (a SET).
    V0_1,
    /// `…;version=0.2`: log entries carry an inclusion proof with a checkpoint.
    V0_2,
    /// `…;version=0.3` or `application/vnd.dev.sigstore.bundle.v0.3+json`: as 0.2, and a
    /// single leaf certificate instead of a chain.
    V0_3,
}

/// What the signature is checked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// `x509CertificateChain.certificates[].rawBytes`, DER, leaf first (v0.1 and v0.2).
    Chain(Vec<Vec<u8>>),
    /// `certificate.rawBytes`, the DER leaf certificate (v0.3).
    Certificate(Vec<u8>),
    /// `publicKey`: a key the verifier must already know; `hint` names it, unauthenticated.
    PublicKey {
        /// `publicKey.hint`; `None` when absent or empty.
        hint: Option<String>,
    },
}

/// A transparency log entry (`TransparencyLogEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogEntry {
    /// `logIndex`: the entry's index in the log (its shard, for Rekor v1).
    pub log_index: u64,
    /// `logId.keyId`, decoded: the SHA-256 of the log's public key (DER).
    pub log_id: Vec<u8>,
    /// `kindVersion.kind` (`hashedrekord`, `dsse`, `intoto`).
    pub kind: String,
    /// `kindVersion.version` (`0.0.1`).
    pub version: String,
    /// `integratedTime`, Unix seconds; 0 when absent (logs that do not attest a time).
    pub integrated_time: i64,
    /// `inclusionPromise.signedEntryTimestamp`, decoded: the log's SET.
    pub set: Option<Vec<u8>>,
    /// `inclusionProof`.
    pub proof: Option<InclusionProof>,
    /// `canonicalizedBody`, decoded: the entry's body as the log hashed it.
    pub body: Vec<u8>,
}

/// An RFC 6962 inclusion proof with the checkpoint it is relative to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// `logIndex`: the leaf's index in the tree the proof is for.
    pub log_index: u64,
    /// `rootHash`: the tree's root.
    pub root_hash: [u8; 32],
    /// `treeSize`.
    pub tree_size: u64,
    /// `hashes`: the audit path, leaf to root.
    pub hashes: Vec<[u8; 32]>,
    /// `checkpoint.envelope`: the signed note committing to `root_hash` and `tree_size`.
    pub checkpoint: String,
}

/// What was signed, and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// `messageSignature`: a signature over an artifact's bytes.
    Message {
        /// `messageDigest.algorithm` (`SHA2_256`); empty when the bundle gives no digest (the
        /// spec makes it optional: it identifies the artifact, it does not verify it).
        algorithm: String,
        /// `messageDigest.digest`, decoded; empty when absent.
        digest: Vec<u8>,
        /// `signature`, decoded.
        signature: Vec<u8>,
    },
    /// `dsseEnvelope`: a DSSE envelope (an in-toto statement, usually).
    Dsse(dsse::Envelope),
}

/// A parsed bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// `mediaType`, as written.
    pub media_type: String,
    /// The version the media type names.
    pub version: BundleVersion,
    /// `verificationMaterial.{x509CertificateChain, certificate, publicKey}`.
    pub material: Material,
    /// `verificationMaterial.tlogEntries`.
    pub tlog: Vec<TlogEntry>,
    /// `verificationMaterial.timestampVerificationData.rfc3161Timestamps[].signedTimestamp`,
    /// decoded: RFC 3161 timestamp tokens (DER), the signing time's evidence when the log
    /// attests none (Rekor v2 entries have no integrated time).
    pub timestamps: Vec<Vec<u8>>,
    /// `messageSignature` or `dsseEnvelope`.
    pub content: Content,
}

/// Why bytes are not a usable bundle.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BundleError {
    /// Not JSON, or a field of the wrong JSON type.
    #[error("the bundle is not valid JSON of the bundle's shape (at {path})")]
    Json {
        /// Where (`verificationMaterial.tlogEntries[0].logId`).
        path: String,
        /// The parser's complaint.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// No `mediaType`.
    #[error("the bundle has no mediaType")]
    NoMediaType,
    /// A media type that is not a Sigstore bundle's, or of a version this does not know: its
    /// rules are unknown, so nothing in it can be trusted.
    #[error(
        "the bundle's mediaType {0:?} is not a supported Sigstore bundle (versions 0.1 to 0.3)"
    )]
    UnsupportedMediaType(String),
    /// A required field is absent.
    #[error("the bundle has no {0}")]
    Missing(&'static str),
    /// Two members of a proto `oneof` are both set.
    #[error("the bundle has both {0} and {1}; a bundle holds one")]
    Both(&'static str, &'static str),
    /// A `bytes` field that is not base64.
    #[error("the bundle's {field} is not base64")]
    Base64 {
        /// Which field.
        field: String,
        /// The decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
    /// An integer field that is not one (or out of range).
    #[error("the bundle's {field} is {value:?}, not an integer in range")]
    Integer {
        /// Which field.
        field: String,
        /// As written.
        value: String,
    },
    /// A hash that is not 32 bytes (SHA-256).
    #[error("the bundle's {field} is {len} bytes; a SHA-256 hash is 32")]
    HashLength {
        /// Which field.
        field: String,
        /// Its length.
        len: usize,
    },
    /// A list longer than tollgate reads.
    #[error("the bundle's {field} has {count} items; at most {max} are read")]
    TooMany {
        /// Which list.
        field: &'static str,
        /// How many it has.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// A v0.1 log entry without its inclusion promise.
    #[error("the bundle's log entry {entry} has no inclusionPromise, which version 0.1 requires")]
    NoPromise {
        /// Its position, from 1.
        entry: usize,
    },
    /// A v0.2+ log entry without its inclusion proof.
    #[error(
        "the bundle's log entry {entry} has no inclusionProof, which version 0.2 and later require"
    )]
    NoProof {
        /// Its position, from 1.
        entry: usize,
    },
    /// A v0.2+ inclusion proof without its checkpoint.
    #[error(
        "the bundle's log entry {entry} has an inclusionProof without a checkpoint, which \
         version 0.2 and later require"
    )]
    NoCheckpoint {
        /// Its position, from 1.
        entry: usize,
    },
    /// A v0.3 bundle with a certificate chain.
    #[error(
        "the bundle is version 0.3 but carries an x509CertificateChain; version 0.3 carries a \
         single certificate"
    )]
    ChainInV03,
    /// The DSSE envelope is malformed.
    #[error("the bundle's dsseEnvelope")]
    Dsse(#[source] DsseError),
}

/// An `int64`/`uint64` as proto3 JSON writes it: a string, or (accepted) a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int {
    Number(serde_json::Number),
    Text(String),
}

impl Int {
    fn text(&self) -> String {
        match self {
            Int::Number(n) => n.to_string(),
            Int::Text(s) => s.clone(),
        }
    }
}

fn int<T: std::str::FromStr + Default>(
    v: &Option<Int>,
    field: impl Fn() -> String,
) -> Result<T, BundleError> {
    match v {
        None => Ok(T::default()),
        // A number is parsed from its text too: `1e3` or `-1` for a u64 is refused, not rounded.
        Some(i) => i.text().parse().map_err(|_| BundleError::Integer {
            field: field(),
            value: i.text(),
        }),
    }
}

fn b64(v: &str, field: impl Fn() -> String) -> Result<Vec<u8>, BundleError> {
    decode_base64(v).map_err(|source| BundleError::Base64 {
        field: field(),
        source,
    })
}

fn hash32(v: &str, field: impl Fn() -> String) -> Result<[u8; 32], BundleError> {
    let b = b64(v, &field)?;
    <[u8; 32]>::try_from(b.as_slice()).map_err(|_| BundleError::HashLength {
        field: field(),
        len: b.len(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    #[serde(default, alias = "media_type")]
    media_type: Option<String>,
    #[serde(default, alias = "verification_material")]
    verification_material: Option<RawMaterial>,
    #[serde(default, alias = "message_signature")]
    message_signature: Option<RawMessageSignature>,
    #[serde(default, alias = "dsse_envelope")]
    dsse_envelope: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMaterial {
    #[serde(default, alias = "public_key")]
    public_key: Option<RawPublicKey>,
    #[serde(default, alias = "x509_certificate_chain")]
    x509_certificate_chain: Option<RawChain>,
    #[serde(default)]
    certificate: Option<RawCertificate>,
    #[serde(default, alias = "tlog_entries")]
    tlog_entries: Vec<RawEntry>,
    #[serde(default, alias = "timestamp_verification_data")]
    timestamp_verification_data: Option<RawTimestamps>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTimestamps {
    #[serde(default, alias = "rfc3161_timestamps")]
    rfc3161_timestamps: Vec<RawTimestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTimestamp {
    #[serde(default, alias = "signed_timestamp")]
    signed_timestamp: String,
}

#[derive(Deserialize)]
struct RawPublicKey {
    #[serde(default)]
    hint: Option<String>,
}

#[derive(Deserialize)]
struct RawChain {
    #[serde(default)]
    certificates: Vec<RawCertificate>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCertificate {
    #[serde(default, alias = "raw_bytes")]
    raw_bytes: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    #[serde(default, alias = "log_index")]
    log_index: Option<Int>,
    #[serde(default, alias = "log_id")]
    log_id: Option<RawLogId>,
    #[serde(default, alias = "kind_version")]
    kind_version: Option<RawKindVersion>,
    #[serde(default, alias = "integrated_time")]
    integrated_time: Option<Int>,
    #[serde(default, alias = "inclusion_promise")]
    inclusion_promise: Option<RawPromise>,
    #[serde(default, alias = "inclusion_proof")]
    inclusion_proof: Option<RawProof>,
    #[serde(default, alias = "canonicalized_body")]
    canonicalized_body: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    #[serde(default, alias = "key_id")]
    key_id: String,
}

#[derive(Deserialize)]
struct RawKindVersion {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPromise {
    #[serde(default, alias = "signed_entry_timestamp")]
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProof {
    #[serde(default, alias = "log_index")]
    log_index: Option<Int>,
    #[serde(default, alias = "root_hash")]
    root_hash: String,
    #[serde(default, alias = "tree_size")]
    tree_size: Option<Int>,
    #[serde(default)]
    hashes: Vec<String>,
    #[serde(default)]
    checkpoint: Option<RawCheckpoint>,
}

#[derive(Deserialize)]
struct RawCheckpoint {
    #[serde(default)]
    envelope: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessageSignature {
    #[serde(default, alias = "message_digest")]
    message_digest: Option<RawDigest>,
    #[serde(default)]
    signature: String,
}

#[derive(Deserialize)]
struct RawDigest {
    #[serde(default)]
    algorithm: Option<Algorithm>,
    #[serde(default)]
    digest: String,
}

/// `HashAlgorithm` (sigstore_common.proto): proto3 JSON writes the enum's name, and parsers
/// accept its number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Algorithm {
    Name(String),
    Number(u32),
}

impl Algorithm {
    fn name(self) -> String {
        match self {
            Algorithm::Name(n) => n,
            Algorithm::Number(n) => match n {
                0 => "HASH_ALGORITHM_UNSPECIFIED",
                1 => "SHA2_256",
                2 => "SHA2_384",
                3 => "SHA2_512",
                4 => "SHA3_256",
                5 => "SHA3_384",
                _ => return n.to_string(),
            }
            .to_owned(),
        }
    }
}

/// The version a bundle media type names; `None` for anything else.
pub fn media_type_version(media_type: &str) -> Option<BundleVersion> {
    // 0.1 and 0.2 put the version in a parameter; 0.3 may too, or in the subtype, which is the
    // form protobuf-specs recommends from 0.3 on.
    let version = if let Some(v) =
        media_type.strip_prefix("application/vnd.dev.sigstore.bundle+json;version=")
    {
        v
    } else {
        media_type
            .strip_prefix("application/vnd.dev.sigstore.bundle.v")?
            .strip_suffix("+json")?
    };
    match version {
        "0.1" => Some(BundleVersion::V0_1),
        "0.2" => Some(BundleVersion::V0_2),
        "0.3" => Some(BundleVersion::V0_3),
        // A patch release keeps the format: semver's promise, which sigstore clients rely on.
        v if v
            .strip_prefix("0.3.")
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
        {
            Some(BundleVersion::V0_3)
        }
        _ => None,
    }
}

/// Parse a bundle (JSON) and check its version's rules. The caller bounds `bytes`; this bounds
/// every list in it.
pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let raw: RawBundle = serde_path_to_error::deserialize(de).map_err(|e| BundleError::Json {
        path: e.path().to_string(),
        source: Arc::new(e.into_inner()),
    })?;
    let media_type = raw.media_type.ok_or(BundleError::NoMediaType)?;
    let version = media_type_version(&media_type)
        .ok_or_else(|| BundleError::UnsupportedMediaType(media_type.clone()))?;
    let vm = raw
        .verification_material
        .ok_or(BundleError::Missing("verificationMaterial"))?;
    let material = material(&vm, version)?;
    if vm.tlog_entries.len() > MAX_TLOG_ENTRIES {
        return Err(BundleError::TooMany {
            field: "verificationMaterial.tlogEntries",
            count: vm.tlog_entries.len(),
            max: MAX_TLOG_ENTRIES,
        });
    }
    let tlog = vm
        .tlog_entries
        .iter()
        .enumerate()
        .map(|(i, e)| entry(i, e, version))
        .collect::<Result<Vec<_>, _>>()?;
    let stamps = vm
        .timestamp_verification_data
        .as_ref()
        .map(|t| t.rfc3161_timestamps.as_slice())
        .unwrap_or_default();
    if stamps.len() > MAX_TIMESTAMPS {
        return Err(BundleError::TooMany {
            field: "verificationMaterial.timestampVerificationData.rfc3161Timestamps",
            count: stamps.len(),
            max: MAX_TIMESTAMPS,
        });
    }
    let timestamps = stamps
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let field = || {
                format!(
                    "verificationMaterial.timestampVerificationData.rfc3161Timestamps[{i}].signedTimestamp"
                )
            };
            match b64(&t.signed_timestamp, field)? {
                der if der.is_empty() => Err(BundleError::Base64 {
                    field: field(),
                    source: base64::DecodeError::InvalidLength(0),
                }),
                der => Ok(der),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let content = match (raw.message_signature, raw.dsse_envelope) {
        (Some(_), Some(_)) => return Err(BundleError::Both("messageSignature", "dsseEnvelope")),
        (None, None) => return Err(BundleError::Missing("messageSignature or dsseEnvelope")),
        (Some(m), None) => {
            let (algorithm, digest) = match m.message_digest {
                Some(d) => (
                    d.algorithm.map(Algorithm::name).unwrap_or_default(),
                    b64(&d.digest, || "messageSignature.messageDigest.digest".into())?,
                ),
                None => (String::new(), Vec::new()),
            };
            if m.signature.is_empty() {
                return Err(BundleError::Missing("messageSignature.signature"));
            }
            Content::Message {
                algorithm,
                digest,
                signature: b64(&m.signature, || "messageSignature.signature".into())?,
            }
        }
        (None, Some(v)) => Content::Dsse(dsse::from_value(v).map_err(BundleError::Dsse)?),
    };
    Ok(Bundle {
        media_type,
        version,
        material,
        tlog,
        timestamps,
        content,
    })
}

fn material(vm: &RawMaterial, version: BundleVersion) -> Result<Material, BundleError> {
    let set = [
        vm.public_key.is_some(),
        vm.x509_certificate_chain.is_some(),
        vm.certificate.is_some(),
    ];
    let names = [
        "verificationMaterial.publicKey",
        "verificationMaterial.x509CertificateChain",
        "verificationMaterial.certificate",
    ];
    let mut present = names.iter().zip(set).filter(|(_, s)| *s).map(|(n, _)| *n);
    if let (Some(a), Some(b)) = (present.next(), present.next()) {
        return Err(BundleError::Both(a, b));
    }
    if let Some(chain) = &vm.x509_certificate_chain {
        if version >= BundleVersion::V0_3 {
            return Err(BundleError::ChainInV03);
        }
        if chain.certificates.is_empty() {
            return Err(BundleError::Missing(
                "verificationMaterial.x509CertificateChain.certificates",
            ));
        }
        if chain.certificates.len() > MAX_CERTIFICATES {
            return Err(BundleError::TooMany {
                field: "verificationMaterial.x509CertificateChain.certificates",
                count: chain.certificates.len(),
                max: MAX_CERTIFICATES,
            });
        }
        return chain
            .certificates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                certificate(c, || {
                    format!("verificationMaterial.x509CertificateChain.certificates[{i}].rawBytes")
                })
            })
            .collect::<Result<_, _>>()
            .map(Material::Chain);
    }
    if let Some(c) = &vm.certificate {
        return certificate(c, || "verificationMaterial.certificate.rawBytes".into())
            .map(Material::Certificate);
    }
    if let Some(k) = &vm.public_key {
        return Ok(Material::PublicKey {
            hint: k.hint.clone().filter(|h| !h.is_empty()),
        });
    }
    Err(BundleError::Missing(
        "verificationMaterial.{publicKey, x509CertificateChain, certificate}",
    ))
}

fn certificate(c: &RawCertificate, field: impl Fn() -> String) -> Result<Vec<u8>, BundleError> {
    let der = b64(&c.raw_bytes, &field)?;
    if der.is_empty() {
        return Err(BundleError::Base64 {
            field: field(),
            source: base64::DecodeError::InvalidLength(0),
        });
    }
    Ok(der)
}

fn entry(i: usize, e: &RawEntry, version: BundleVersion) -> Result<TlogEntry, BundleError> {
    let at = |field: &str| format!("verificationMaterial.tlogEntries[{i}].{field}");
    let log_id = match &e.log_id {
        Some(id) => b64(&id.key_id, || at("logId.keyId"))?,
        None => Vec::new(),
    };
    if log_id.is_empty() {
        return Err(BundleError::Missing(
            "verificationMaterial.tlogEntries[].logId.keyId",
        ));
    }
    let kv = e.kind_version.as_ref().ok_or(BundleError::Missing(
        "verificationMaterial.tlogEntries[].kindVersion",
    ))?;
    let body = match &e.canonicalized_body {
        Some(b) if !b.is_empty() => b64(b, || at("canonicalizedBody"))?,
        _ => {
            return Err(BundleError::Missing(
                "verificationMaterial.tlogEntries[].canonicalizedBody",
            ));
        }
    };
    let set = match &e.inclusion_promise {
        Some(p) if !p.signed_entry_timestamp.is_empty() => {
            Some(b64(&p.signed_entry_timestamp, || {
                at("inclusionPromise.signedEntryTimestamp")
            })?)
        }
        _ => None,
    };
    let proof = match &e.inclusion_proof {
        Some(p) => Some(proof(p, &at)?),
        None => None,
    };
    // The version rules (sigstore_bundle.proto): a 0.1 bundle's offline evidence is the SET; a
    // 0.2+ bundle's is the proof and its checkpoint, which a SET does not replace.
    if version == BundleVersion::V0_1 {
        if set.is_none() {
            return Err(BundleError::NoPromise { entry: i + 1 });
        }
    } else {
        match &proof {
            None => return Err(BundleError::NoProof { entry: i + 1 }),
            Some(p) if p.checkpoint.is_empty() => {
                return Err(BundleError::NoCheckpoint { entry: i + 1 });
            }
            Some(_) => {}
        }
    }
    Ok(TlogEntry {
        log_index: int(&e.log_index, || at("logIndex"))?,
        log_id,
        kind: kv.kind.clone(),
        version: kv.version.clone(),
        integrated_time: int(&e.integrated_time, || at("integratedTime"))?,
        set,
        proof,
        body,
    })
}

fn proof(p: &RawProof, at: &dyn Fn(&str) -> String) -> Result<InclusionProof, BundleError> {
    if p.hashes.len() > MAX_PROOF_HASHES {
        return Err(BundleError::TooMany {
            field: "verificationMaterial.tlogEntries[].inclusionProof.hashes",
            count: p.hashes.len(),
            max: MAX_PROOF_HASHES,
        });
    }
    Ok(InclusionProof {
        log_index: int(&p.log_index, || at("inclusionProof.logIndex"))?,
        root_hash: hash32(&p.root_hash, || at("inclusionProof.rootHash"))?,
        tree_size: int(&p.tree_size, || at("inclusionProof.treeSize"))?,
        hashes: p
            .hashes
            .iter()
            .enumerate()
            .map(|(j, h)| hash32(h, || at(&format!("inclusionProof.hashes[{j}]"))))
            .collect::<Result<_, _>>()?,
        checkpoint: p
            .checkpoint
            .as_ref()
            .map(|c| c.envelope.clone())
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests;
