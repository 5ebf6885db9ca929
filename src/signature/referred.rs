//! Signatures and attestations in Sigstore bundles, as cosign 3 stores them by default: one
//! bundle per OCI 1.1 referrer of the image (artifactType
//! `application/vnd.dev.sigstore.bundle.v0.3+json`), found through the referrers API or the
//! referrers tag schema ([`crate::registry`] reads them).
//!
//! cosign 3's bundles for images carry a DSSE envelope whose payload is an in-toto statement
//! about the image digest: predicate type `https://sigstore.dev/cosign/sign/v1` for
//! `cosign sign`, the attestation's own type for `cosign attest`. Bundles with a bare
//! `messageSignature` sign an artifact's bytes, which for an image tollgate does not hold
//! (it has the manifest's digest, and ring does not verify a prehashed message): they are
//! reported as not read, never counted.
//!
//! What a bundle must prove (sigstore's protobuf-specs, `sigstore_bundle.proto`, and the
//! client spec's verification steps):
//! - exactly one signature in the envelope (the bundle spec's MUST);
//! - with a certificate: a transparency-log entry whose SET verifies with a log of the trusted
//!   root (the signing time), whose inclusion proof (v0.2 and later) leads to a checkpoint the
//!   same log signed, and whose body names this signature, certificate and payload; the
//!   certificate checked at that time as for cosign's annotations;
//! - with a public key: the signature verifies with one of the rule's keys over the PAE.

use super::attestation::{self, Statement};
use super::bundle::{self, Content, Material};
use super::{Proven, Signer, Trusted, TrustedRoot, dsse, mark_keyless, prove_keyless, rekor, tlog};
use crate::reference::Digest;

/// The artifact type cosign 3 gives a bundle referrer.
pub const BUNDLE_ARTIFACT_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The predicate type of cosign 3's image signature statement.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The largest bundle read.
pub const MAX_BUNDLE_BYTES: u64 = 1 << 20;

/// A bundle referrer as fetched: the referrer manifest's digest (for messages), and the
/// bundle's bytes or why they could not be read.
#[derive(Debug, Clone)]
pub struct FetchedBundle {
    /// The referrer manifest's digest.
    pub referrer: String,
    /// The bundle JSON; `Err`: why not, in one line.
    pub bytes: Result<Vec<u8>, String>,
}

/// What a digest's bundles prove.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BundleFindings {
    /// The signers of a valid image-signature bundle over the digest, in the rule's order.
    pub signed_by: Vec<String>,
    /// Attestation statements, each with the signers that signed it.
    pub attested: Vec<(Vec<String>, Statement)>,
    /// Why each bundle that proves nothing does not.
    pub problems: Vec<String>,
    /// How many bundles were read.
    pub read: usize,
}

/// Check each bundle against the rule's signers.
pub fn verify_bundles(
    digest: &Digest,
    bundles: &[FetchedBundle],
    signers: &[Signer],
    root: Option<&TrustedRoot>,
) -> BundleFindings {
    let mut out = BundleFindings {
        read: bundles.len(),
        ..BundleFindings::default()
    };
    let mut signed = vec![false; signers.len()];
    for b in bundles {
        match one(digest, b, signers, root) {
            Ok((by, statement)) if statement.predicate_type == COSIGN_SIGN_PREDICATE => {
                for (j, s) in signers.iter().enumerate() {
                    signed[j] |= by.contains(&s.name);
                }
            }
            Ok((by, statement)) => out.attested.push((by, statement)),
            Err(why) => out
                .problems
                .push(format!("bundle {}: {why}", short(&b.referrer))),
        }
    }
    out.signed_by = signers
        .iter()
        .zip(&signed)
        .filter(|(_, s)| **s)
        .map(|(k, _)| k.name.clone())
        .collect();
    out
}

fn short(referrer: &str) -> &str {
    referrer.get(..19).unwrap_or(referrer)
}

/// One bundle: the signers who signed it (at least one) and its statement.
fn one(
    digest: &Digest,
    fetched: &FetchedBundle,
    signers: &[Signer],
    root: Option<&TrustedRoot>,
) -> Result<(Vec<String>, Statement), String> {
    let text = |e: &(dyn std::error::Error + 'static)| crate::error_text::error_text(e);
    let bytes = fetched
        .bytes
        .as_ref()
        .map_err(|why| format!("it could not be read: {why}"))?;
    let b = bundle::parse(bytes).map_err(|e| text(&e))?;
    let Content::Dsse(env) = &b.content else {
        return Err(
            "it is a messageSignature bundle (a signature over an artifact's bytes), which \
             tollgate does not read for images; cosign 3 signs images with a DSSE envelope"
                .into(),
        );
    };
    if env.signatures.len() != 1 {
        return Err(format!(
            "its envelope has {} signatures; a bundle's must have exactly one",
            env.signatures.len()
        ));
    }
    let sig = &env.signatures[0].sig;
    let statement = attestation::parse_statement(&env.payload_type, &env.payload)?;
    let text_digest = digest.to_string();
    let hex = text_digest.strip_prefix("sha256:").unwrap_or(&text_digest);
    if !statement.subjects.iter().any(|s| s == hex) {
        return Err(format!("its statement's subject is not {digest}"));
    }
    let pae = dsse::pae(&env.payload_type, &env.payload);
    let mut signed = vec![false; signers.len()];
    // A certificate (v0.3) or a chain (v0.1, v0.2) is keyless; a bare key is one of the rule's.
    let keyless_material: Option<(&[u8], &[Vec<u8>])> = match &b.material {
        Material::PublicKey { .. } => None,
        Material::Certificate(leaf) => Some((leaf, &[])),
        Material::Chain(chain) => {
            let (leaf, extra) = chain
                .split_first()
                .ok_or("its certificate chain is empty")?;
            Some((leaf, extra))
        }
    };
    match keyless_material {
        None => {
            // The hint is unauthenticated: every key is tried.
            for (j, s) in signers.iter().enumerate() {
                if let Trusted::Key(k) = &s.trusted
                    && k.verify(&pae, sig)
                {
                    signed[j] = true;
                }
            }
            if !signed.iter().any(|s| *s) {
                return Err("it is valid for none of the trusted keys".into());
            }
        }
        Some((leaf, extra)) => {
            keyless(
                &b,
                leaf,
                extra,
                &pae,
                sig,
                &env.payload,
                signers,
                root,
                &mut signed,
            )?;
        }
    }
    Ok((
        signers
            .iter()
            .zip(&signed)
            .filter(|(_, s)| **s)
            .map(|(k, _)| k.name.clone())
            .collect(),
        statement,
    ))
}

/// A keyless bundle: its log entry proves the time (SET) and, when it carries one, its
/// inclusion (proof and checkpoint); then the certificate and identity as for cosign's
/// annotations.
#[allow(clippy::too_many_arguments)]
fn keyless(
    b: &bundle::Bundle,
    leaf: &[u8],
    extra: &[Vec<u8>],
    pae: &[u8],
    sig: &[u8],
    payload: &[u8],
    signers: &[Signer],
    root: Option<&TrustedRoot>,
    signed: &mut [bool],
) -> Result<(), String> {
    let text = |e: &(dyn std::error::Error + 'static)| crate::error_text::error_text(e);
    let root = root.ok_or("it is keyless, and the policy names no trustedRoot to check it with")?;
    let entry = b
        .tlog
        .first()
        .ok_or("it has no transparency-log entry: nothing proves when it was signed")?;
    let set = entry.set.clone().ok_or(
        "its log entry has no signed entry timestamp (inclusionPromise): nothing proves when it \
         was signed, so its short-lived certificate cannot be judged",
    )?;
    let log_hex: String = entry.log_id.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(proof) = &entry.proof {
        let log = root
            .log(&entry.log_id)
            .ok_or_else(|| format!("its log {log_hex} is not in the trusted root"))?;
        let key = tlog::LogKey::from_spki_der(&log.der).map_err(|e| text(&e))?;
        tlog::verify_proof_and_checkpoint(&entry.body, proof, &key)
            .map_err(|e| format!("its inclusion proof: {}", text(&e)))?;
    }
    let log = rekor::Bundle {
        set,
        body: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &entry.body),
        integrated_time: entry.integrated_time,
        log_index: i64::try_from(entry.log_index).map_err(|_| "its logIndex is out of range")?,
        log_id: log_hex,
    };
    let identity = prove_keyless(
        &Proven {
            leaf,
            extra,
            log: &log,
        },
        pae,
        sig,
        rekor::sha256(payload),
        Some(root),
    )?;
    if let Err(why) = mark_keyless(&identity, signers, signed) {
        return Err(format!("it {why}"));
    }
    Ok(())
}
