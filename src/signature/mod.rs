//! Signature verification: was this digest signed by the signers the policy trusts?
//!
//! - [`keys`]: public keys (PEM SubjectPublicKeyInfo) and signature checks with ring;
//! - [`cosign`]: cosign's tag scheme (`sha256-<hex>.sig`) and its simple-signing payloads;
//! - [`trust`]: the Sigstore `trusted_root.json` keyless signatures are checked against;
//! - [`x509`]: signing certificates: path validation, and the identity Fulcio writes;
//! - [`rekor`]: Rekor's signed entry timestamp, which proves when a signature was made;
//! - [`tlog`]: transparency-log inclusion proofs and signed checkpoints;
//! - [`dsse`]: DSSE envelopes (attestations, Sigstore bundles) and their PAE;
//! - [`bundle`]: Sigstore bundles, as cosign v3 writes them;
//! - this file: a digest's signatures against a rule's signers and threshold.
//!
//! Pure: the registry walk (in [`crate::registry`]) fetches the signature manifest and the
//! payloads and passes their bytes in. Must not touch: the network, the clock, the policy's
//! matching (which rule applies to an image is the policy's business).

pub mod bundle;
pub mod cosign;
pub mod dsse;
pub mod keys;
pub mod rekor;
pub mod tlog;
pub mod trust;
pub mod x509;

pub use cosign::{SignatureError, SignatureLayer};
pub use keys::{KeyError, KeyKind, PublicKey};
pub use trust::{TrustError, TrustedRoot};

use crate::reference::Digest;

/// A signer a policy trusts: a name for reports, and what its signatures verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The name reports use (`release-pipeline`).
    pub name: String,
    /// Its key, or the identity its Fulcio certificates carry.
    pub trusted: Trusted,
}

/// What makes a signature a signer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trusted {
    /// A public key: the signature verifies with it.
    Key(PublicKey),
    /// Keyless: a certificate from a trusted Fulcio CA, valid when Rekor logged the
    /// signature, naming this OIDC issuer and subject.
    Keyless(Identity),
}

impl Trusted {
    /// What verdicts of this signer depend on, as text (the key's fingerprint, or the issuer
    /// and subject rules).
    pub fn fingerprint(&self) -> String {
        match self {
            Trusted::Key(k) => k.fingerprint(),
            Trusted::Keyless(i) => format!("keyless:{}|{}", i.issuer.shown(), i.subject.shown()),
        }
    }
}

/// A keyless signer's identity: the OIDC issuer and subject its certificate must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The issuer (`https://token.actions.githubusercontent.com`).
    pub issuer: Matcher,
    /// The subject: an email, or a URI such as a workflow's
    /// (`https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main`).
    pub subject: Matcher,
}

/// An exact string or a regular expression, which must match the whole value.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Equal, byte for byte.
    Exact(String),
    /// Matches the whole value: the policy's text wrapped in `^(?:…)$`, so that
    /// `https://github.com/acme/.*` never matches `https://github.com/acme/x.evil.com` by a
    /// prefix and an unanchored pattern cannot match in the middle of a value.
    Pattern(regex::Regex, String),
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        match (self, other) {
            (Matcher::Exact(a), Matcher::Exact(b)) => a == b,
            (Matcher::Pattern(_, a), Matcher::Pattern(_, b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Matcher {}

impl Matcher {
    /// A regular expression over the whole value; the error says why it does not compile.
    pub fn pattern(text: &str) -> Result<Matcher, String> {
        regex::RegexBuilder::new(&format!("^(?:{text})$"))
            .size_limit(1 << 20)
            .build()
            .map(|r| Matcher::Pattern(r, text.to_owned()))
            .map_err(|e| e.to_string())
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == value,
            Matcher::Pattern(r, _) => r.is_match(value),
        }
    }

    /// For reports and fingerprints: the string, or `/pattern/`.
    pub fn shown(&self) -> String {
        match self {
            Matcher::Exact(s) => s.clone(),
            Matcher::Pattern(_, s) => format!("/{s}/"),
        }
    }
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
/// was asked once per signature. A signature with a certificate is checked once against the
/// trusted root (its Rekor time, its chain, its key) and its identity then compared with
/// each keyless signer.
pub fn verify(
    digest: &Digest,
    signatures: &[Fetched],
    signers: &[Signer],
    threshold: usize,
    root: Option<&TrustedRoot>,
) -> Verdict {
    let keyless = signers
        .iter()
        .any(|s| matches!(s.trusted, Trusted::Keyless(_)));
    let mut signed = vec![false; signers.len()];
    let mut problems = Vec::new();
    for (i, s) in signatures.iter().enumerate() {
        let n = i + 1;
        let payload = match &s.payload {
            Ok(p) => p,
            Err(why) => {
                problems.push(format!(
                    "signature {n}: its payload could not be read: {why}"
                ));
                continue;
            }
        };
        if let Err(e) = cosign::check_payload(&s.layer, payload, digest) {
            problems.push(format!(
                "signature {n}: {}",
                crate::error_text::error_text(&e)
            ));
            continue;
        }
        let mut any = false;
        for (j, signer) in signers.iter().enumerate() {
            if let Trusted::Key(key) = &signer.trusted
                && key.verify(payload, &s.layer.signature)
            {
                signed[j] = true;
                any = true;
            }
        }
        if any {
            continue;
        }
        let Some(cert) = s.layer.certificate.as_deref().filter(|_| keyless) else {
            problems.push(format!(
                "signature {n} is valid for none of the trusted keys"
            ));
            continue;
        };
        let identity = match keyless_identity(&s.layer, cert, payload, root) {
            Ok(id) => id,
            Err(why) => {
                problems.push(format!("signature {n}: {why}"));
                continue;
            }
        };
        for (j, signer) in signers.iter().enumerate() {
            if let Trusted::Keyless(want) = &signer.trusted
                && identity
                    .issuer
                    .as_deref()
                    .is_some_and(|i| want.issuer.matches(i))
                && identity.subjects.iter().any(|s| want.subject.matches(s))
            {
                signed[j] = true;
                any = true;
            }
        }
        if !any {
            problems.push(format!(
                "signature {n} is by {} (issuer {}), which no keyless signer trusts",
                if identity.subjects.is_empty() {
                    "a certificate without an email or URI".to_owned()
                } else {
                    identity.subjects.join(", ")
                },
                identity.issuer.as_deref().unwrap_or("not named")
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

/// A keyless signature's proven identity: the Rekor bundle's SET verifies with a trusted log
/// and dates the signature; the certificate chains to a Fulcio CA of the trusted root at
/// that time; the signature verifies with the certificate's key; and the log entry is of this
/// signature, certificate and payload. The order is cosign's: no identity is read from a
/// certificate that has not been proven.
fn keyless_identity(
    layer: &SignatureLayer,
    cert_pem: &str,
    payload: &[u8],
    root: Option<&TrustedRoot>,
) -> Result<x509::Identity, String> {
    let text = |e: &(dyn std::error::Error + 'static)| crate::error_text::error_text(e);
    let root = root.ok_or("it is keyless, and the policy names no trustedRoot to check it with")?;
    let leaf = x509::pem_chain(cert_pem)
        .map_err(|e| text(&e))?
        .into_iter()
        .next()
        .ok_or("its certificate annotation is empty")?;
    let bundle = layer.bundle.as_deref().ok_or(
        "it is keyless but has no Rekor bundle (dev.sigstore.cosign/bundle): nothing proves \
         when it was signed, so its short-lived certificate cannot be judged",
    )?;
    let bundle = rekor::parse(bundle).map_err(|e| text(&e))?;
    let at = rekor::verify_set(&bundle, root).map_err(|e| text(&e))?;
    let extra = match layer.chain.as_deref() {
        Some(chain) => x509::pem_chain(chain).map_err(|e| format!("its chain: {}", text(&e)))?,
        None => Vec::new(),
    };
    let anchors: Vec<x509::Anchor<'_>> = root
        .authorities
        .iter()
        .filter(|ca| ca.valid.contains(at))
        .map(|ca| x509::Anchor {
            root: &ca.root,
            intermediates: &ca.intermediates,
            name: &ca.uri,
        })
        .collect();
    let verified = x509::verify_chain(&leaf, &extra, &anchors, at).map_err(|e| text(&e))?;
    if !verified.key.verify(payload, &layer.signature) {
        return Err("it does not verify with its certificate's key".into());
    }
    rekor::check_entry(
        &bundle,
        &rekor::Expected {
            signature: &layer.signature,
            certificate: &leaf,
            payload_sha256: rekor::sha256(payload),
        },
    )
    .map_err(|e| text(&e))?;
    x509::identity(&leaf).map_err(|e| text(&e))
}

#[cfg(test)]
mod tests;
