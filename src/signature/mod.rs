//! Signature verification: was this digest signed by the signers the policy trusts?
//!
//! - [`keys`]: public keys (PEM SubjectPublicKeyInfo) and signature checks with ring;
//! - [`cosign`]: cosign's tag scheme (`sha256-<hex>.sig`) and its simple-signing payloads;
//! - this file: a digest's signatures against a rule's signers and threshold.
//!
//! Pure: the registry walk (in [`crate::registry`]) fetches the signature manifest and the
//! payloads and passes their bytes in. Must not touch: the network, the clock, the policy's
//! matching (which rule applies to an image is the policy's business).

pub mod bundle;
pub mod cosign;
pub mod dsse;
pub mod keys;
pub mod tlog;

pub use cosign::{SignatureError, SignatureLayer};
pub use keys::{KeyError, KeyKind, PublicKey};

use crate::reference::Digest;

/// A signer a policy trusts: a name for reports, and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The name reports use (`release-pipeline`).
    pub name: String,
    /// Its public key.
    pub key: PublicKey,
}

/// A signature as fetched: its layer, and the payload blob's bytes (or why it could not be
/// read).
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The layer of the signature manifest.
    pub layer: SignatureLayer,
    /// The payload's bytes; `Err`: the registry's reason, in one line.
    pub payload: Result<Vec<u8>, String>,
}

/// What a digest's signatures prove about a rule's signers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The signers with at least one valid signature over the digest, in the rule's order.
    pub signed_by: Vec<String>,
    /// How many of them the rule requires.
    pub threshold: usize,
    /// How many signatures were read.
    pub signatures: usize,
    /// Why each signature that proves nothing does not: one line each.
    pub problems: Vec<String>,
}

impl Verdict {
    /// Whether the threshold is met.
    pub fn is_verified(&self) -> bool {
        self.signed_by.len() >= self.threshold
    }

    /// One line for reports: who signed, or why nobody counts.
    pub fn summary(&self, digest: &Digest) -> String {
        if self.signatures == 0 {
            return format!("{digest} has no signature (no cosign signature manifest)");
        }
        let by = if self.signed_by.is_empty() {
            "none of the trusted signers".to_owned()
        } else {
            self.signed_by.join(", ")
        };
        let mut s = format!(
            "{digest} is signed by {by} ({} of {} required, {} signature{} read)",
            self.signed_by.len(),
            self.threshold,
            self.signatures,
            if self.signatures == 1 { "" } else { "s" }
        );
        if !self.is_verified() && !self.problems.is_empty() {
            s.push_str(": ");
            s.push_str(&self.problems.join("; "));
        }
        s
    }
}

/// Check every signature of `digest` against every signer. Each payload is checked once
/// (its digest, its type, the digest it names) before any key is tried, and each key is tried
/// on each remaining signature: signatures × keys verifications, all in memory; the registry
/// was asked once per signature.
pub fn verify(
    digest: &Digest,
    signatures: &[Fetched],
    signers: &[Signer],
    threshold: usize,
) -> Verdict {
    let mut signed = vec![false; signers.len()];
    let mut problems = Vec::new();
    for (i, s) in signatures.iter().enumerate() {
        let payload = match &s.payload {
            Ok(p) => p,
            Err(why) => {
                problems.push(format!(
                    "signature {}: its payload could not be read: {why}",
                    i + 1
                ));
                continue;
            }
        };
        if let Err(e) = cosign::check_payload(&s.layer, payload, digest) {
            problems.push(format!(
                "signature {}: {}",
                i + 1,
                crate::error_text::error_text(&e)
            ));
            continue;
        }
        let mut any = false;
        for (j, signer) in signers.iter().enumerate() {
            if signer.key.verify(payload, &s.layer.signature) {
                signed[j] = true;
                any = true;
            }
        }
        if !any {
            problems.push(format!(
                "signature {} is valid for none of the trusted keys",
                i + 1
            ));
        }
    }
    Verdict {
        signed_by: signers
            .iter()
            .zip(&signed)
            .filter(|(_, s)| **s)
            .map(|(k, _)| k.name.clone())
            .collect(),
        threshold,
        signatures: signatures.len(),
        problems,
    }
}

#[cfg(test)]
mod tests;
