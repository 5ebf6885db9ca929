//! Signature verification: was this digest signed by the signers the policy trusts?
//!
//! - [`keys`]: public keys (PEM SubjectPublicKeyInfo) and signature checks with ring;
//! - [`cosign`]: cosign's tag scheme (`sha256-<hex>.sig`) and its simple-signing payloads;
//! - [`trust`]: the Sigstore `trusted_root.json` keyless signatures are checked against;
//! - [`x509`]: signing certificates: path validation, and the identity Fulcio writes;
//! - [`rekor`]: Rekor's signed entry timestamp, which proves when a signature was made;
//! - [`tlog`]: transparency-log inclusion proofs and signed checkpoints;
//! - [`attestation`]: in-toto attestations and SLSA provenance conditions;
//! - [`dsse`]: DSSE envelopes (attestations, Sigstore bundles) and their PAE;
//! - [`bundle`]: Sigstore bundles, as cosign v3 writes them;
//! - [`notation`]: Notary Project signatures (JWS envelopes) and their trust stores;
//! - this file: a digest's signatures against a rule's signers and threshold.
//!
//! Pure: the registry walk (in [`crate::registry`]) fetches the signature manifest and the
//! payloads and passes their bytes in. Must not touch: the network, the clock, the policy's
//! matching (which rule applies to an image is the policy's business).

pub mod attestation;
pub mod bundle;
pub mod cosign;
pub mod dsse;
pub mod keys;
pub mod notation;
pub mod referred;
pub mod rekor;
pub mod sct;
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
    /// Notation: a Notary Project signature whose certificate chains to this signer's trust
    /// store and names one of its identities.
    Notation(notation::NotationSigner),
}

impl Trusted {
    /// What verdicts of this signer depend on, as text (the key's fingerprint, or the issuer
    /// and subject rules).
    pub fn fingerprint(&self) -> String {
        match self {
            Trusted::Key(k) => k.fingerprint(),
            Trusted::Keyless(i) => format!(
                "keyless:{}|{}{}",
                i.issuer.shown(),
                i.subject.shown(),
                if i.insecure_ignore_sct { "|no-sct" } else { "" }
            ),
            Trusted::Notation(n) => n.fingerprint(),
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
    /// Count a certificate without a valid SCT from a CT log of the trusted root
    /// (`insecureIgnoreSCT`, policy-controller's name; cosign's `--insecure-ignore-sct`): for
    /// a private Fulcio that runs without certificate transparency.
    pub insecure_ignore_sct: bool,
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
        let proof = keyless_proof(
            &Keyless {
                certificate: cert,
                chain: s.layer.chain.as_deref(),
                bundle: s.layer.bundle.as_deref(),
            },
            payload,
            &s.layer.signature,
            rekor::sha256(payload),
            root,
        );
        match proof {
            Ok(identity) => {
                if let Err(why) = mark_keyless(&identity, signers, &mut signed) {
                    problems.push(format!("signature {n} {why}"));
                }
            }
            Err(why) => problems.push(format!("signature {n}: {why}")),
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

/// Mark the keyless signers whose identity `identity` is. `Err`: why it counts for none, as
/// a predicate ("is by …, which no keyless signer trusts", or "is by …, but …" when its
/// identity is trusted and its certificate was not logged for certificate transparency).
pub(crate) fn mark_keyless(
    identity: &x509::Identity,
    signers: &[Signer],
    signed: &mut [bool],
) -> Result<(), String> {
    let mut any = false;
    // Why a signer whose identity this is did not count it, if one did not.
    let mut unlogged = None;
    for (j, signer) in signers.iter().enumerate() {
        if let Trusted::Keyless(want) = &signer.trusted
            && identity
                .issuer
                .as_deref()
                .is_some_and(|i| want.issuer.matches(i))
            && identity.subjects.iter().any(|s| want.subject.matches(s))
        {
            if let Some(why) = identity
                .unlogged
                .as_ref()
                .filter(|_| !want.insecure_ignore_sct)
            {
                unlogged = Some(why);
                continue;
            }
            signed[j] = true;
            any = true;
        }
    }
    match unlogged {
        _ if any => Ok(()),
        Some(why) => Err(format!("is by {}, but {why}", shown(identity))),
        None => Err(untrusted(identity)),
    }
}

/// "is by … (issuer …), which no keyless signer trusts".
pub(crate) fn untrusted(identity: &x509::Identity) -> String {
    format!("is by {}, which no keyless signer trusts", shown(identity))
}

/// "… (issuer …)": a certificate's identity, for reports.
fn shown(identity: &x509::Identity) -> String {
    format!(
        "{} (issuer {})",
        if identity.subjects.is_empty() {
            "a certificate without an email or URI".to_owned()
        } else {
            identity.subjects.join(", ")
        },
        identity.issuer.as_deref().unwrap_or("not named")
    )
}

/// A keyless signature's material, as cosign's layer annotations carry it.
struct Keyless<'a> {
    /// The signing certificate, PEM.
    certificate: &'a str,
    /// The rest of its chain, PEM.
    chain: Option<&'a str>,
    /// The Rekor bundle, JSON.
    bundle: Option<&'a str>,
}

/// A keyless signature's proven identity: the Rekor bundle's SET verifies with a trusted log
/// and dates the signature; the certificate chains to a Fulcio CA of the trusted root at
/// that time; `signature` over `message` verifies with the certificate's key; and the log
/// entry is of this signature, certificate and payload (`payload_sha256`: for a signature the
/// payload's hash, for an attestation its envelope payload's). Whether the certificate was
/// logged for certificate transparency (an embedded SCT by a CT log of the trusted root) is
/// the identity's `unlogged`, judged per signer. The order is cosign's: no
/// identity is read from a certificate that has not been proven.
fn keyless_proof(
    k: &Keyless<'_>,
    message: &[u8],
    signature: &[u8],
    payload_sha256: [u8; 32],
    root: Option<&TrustedRoot>,
) -> Result<x509::Identity, String> {
    let text = |e: &(dyn std::error::Error + 'static)| crate::error_text::error_text(e);
    let leaf = x509::pem_chain(k.certificate)
        .map_err(|e| text(&e))?
        .into_iter()
        .next()
        .ok_or("its certificate annotation is empty")?;
    let bundle = k.bundle.ok_or(
        "it is keyless but has no Rekor bundle (dev.sigstore.cosign/bundle): nothing proves \
         when it was signed, so its short-lived certificate cannot be judged",
    )?;
    let log = rekor::parse(bundle).map_err(|e| text(&e))?;
    let extra = match k.chain {
        Some(chain) => x509::pem_chain(chain).map_err(|e| format!("its chain: {}", text(&e)))?,
        None => Vec::new(),
    };
    prove_keyless(
        &Proven {
            leaf: &leaf,
            extra: &extra,
            log: &log,
        },
        message,
        signature,
        payload_sha256,
        root,
    )
}

/// A keyless signature's certificate and log entry, decoded.
pub(crate) struct Proven<'a> {
    /// The signing certificate, DER.
    pub leaf: &'a [u8],
    /// Certificates towards its root, DER.
    pub extra: &'a [Vec<u8>],
    /// The Rekor entry with its SET.
    pub log: &'a rekor::Bundle,
}

/// [`keyless_proof`] on decoded parts (a cosign annotation's or a Sigstore bundle's).
pub(crate) fn prove_keyless(
    p: &Proven<'_>,
    message: &[u8],
    signature: &[u8],
    payload_sha256: [u8; 32],
    root: Option<&TrustedRoot>,
) -> Result<x509::Identity, String> {
    let text = |e: &(dyn std::error::Error + 'static)| crate::error_text::error_text(e);
    let root = root.ok_or("it is keyless, and the policy names no trustedRoot to check it with")?;
    let at = rekor::verify_set(p.log, root).map_err(|e| text(&e))?;
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
    let verified = x509::verify_chain(p.leaf, p.extra, &anchors, at).map_err(|e| text(&e))?;
    if !verified.key.verify(message, signature) {
        return Err("it does not verify with its certificate's key".into());
    }
    rekor::check_entry(
        p.log,
        &rekor::Expected {
            signature,
            certificate: p.leaf,
            payload_sha256,
        },
    )
    .map_err(|e| text(&e))?;
    let mut identity = x509::identity(p.leaf).map_err(|e| text(&e))?;
    identity.unlogged = sct::check_embedded(p.leaf, &verified.issuer_spki, &root.ct_logs).err();
    Ok(identity)
}

/// An attestation as fetched: its layer, and the envelope blob's bytes (or why it could not
/// be read).
#[derive(Debug, Clone)]
pub struct FetchedAttestation {
    /// The layer of the attestation manifest.
    pub layer: cosign::AttestationLayer,
    /// The envelope's bytes; `Err`: the registry's reason, in one line.
    pub envelope: Result<Vec<u8>, String>,
}

/// Each of `required` that `digest`'s attestations do not meet, and why: one line each
/// (empty: all are met). An attestation counts when one of `signers` signed its envelope
/// (any one: the threshold is the image signature's) and its statement is about `digest`, of
/// the required predicate type, and meets the conditions. Each envelope is parsed and its
/// signatures checked once, whatever the number of requirements. `bundled`: statements
/// already proven from Sigstore bundles ([`referred`]), with their signers.
pub fn verify_attestations(
    digest: &Digest,
    attestations: &[FetchedAttestation],
    required: &[attestation::Requirement],
    signers: &[Signer],
    root: Option<&TrustedRoot>,
    bundled: &[(Vec<String>, attestation::Statement)],
) -> Vec<String> {
    let read: Vec<Result<(Vec<String>, attestation::Statement), String>> = attestations
        .iter()
        .map(|a| read_attestation(a, signers, root))
        .chain(bundled.iter().map(|b| Ok(b.clone())))
        .collect();
    let mut problems = Vec::new();
    for req in required {
        let mut why = Vec::new();
        let met = read.iter().enumerate().any(|(i, r)| {
            let result = r.as_ref().map_err(Clone::clone).and_then(|(by, st)| {
                attestation::check(req, st, digest)?;
                if by.is_empty() {
                    return Err("it is signed by none of the trusted signers".into());
                }
                Ok(())
            });
            if let Err(e) = &result {
                why.push(format!("attestation {}: {e}", i + 1));
            }
            result.is_ok()
        });
        if met {
            continue;
        }
        let head = format!("attestation {:?} ({})", req.name, req.predicate_type);
        problems.push(if read.is_empty() {
            format!("{head} is missing: {digest} has no attestation (no cosign .att manifest)")
        } else {
            format!("{head} is not met: {}", why.join("; "))
        });
    }
    problems
}

/// One attestation: the signers who signed its envelope, and its statement.
fn read_attestation(
    a: &FetchedAttestation,
    signers: &[Signer],
    root: Option<&TrustedRoot>,
) -> Result<(Vec<String>, attestation::Statement), String> {
    let bytes = a
        .envelope
        .as_ref()
        .map_err(|why| format!("its envelope could not be read: {why}"))?;
    if a.layer.envelope.to_string() != format!("sha256:{}", cosign::hex(&rekor::sha256(bytes))) {
        return Err(format!(
            "its envelope's bytes do not match its digest {}",
            a.layer.envelope
        ));
    }
    let env = dsse::parse(bytes).map_err(|e| crate::error_text::error_text(&e))?;
    let statement = attestation::parse_statement(&env.payload_type, &env.payload)?;
    let pae = dsse::pae(&env.payload_type, &env.payload);
    let mut signed = vec![false; signers.len()];
    let mut keyless_why = None;
    for sig in &env.signatures {
        for (j, signer) in signers.iter().enumerate() {
            if let Trusted::Key(key) = &signer.trusted
                && key.verify(&pae, &sig.sig)
            {
                signed[j] = true;
            }
        }
    }
    let keyless = signers
        .iter()
        .any(|s| matches!(s.trusted, Trusted::Keyless(_)));
    if let (true, Some(cert), Some(first)) = (
        keyless,
        a.layer.certificate.as_deref(),
        env.signatures.first(),
    ) {
        let proof = keyless_proof(
            &Keyless {
                certificate: cert,
                chain: a.layer.chain.as_deref(),
                bundle: a.layer.bundle.as_deref(),
            },
            &pae,
            &first.sig,
            rekor::sha256(&env.payload),
            root,
        );
        match proof {
            Ok(identity) => {
                if let Err(why) = mark_keyless(&identity, signers, &mut signed) {
                    keyless_why = Some(format!("it {why}"));
                }
            }
            Err(why) => keyless_why = Some(why),
        }
    }
    let by: Vec<String> = signers
        .iter()
        .zip(&signed)
        .filter(|(_, s)| **s)
        .map(|(k, _)| k.name.clone())
        .collect();
    match (by.is_empty(), keyless_why) {
        (true, Some(why)) => Err(why),
        _ => Ok((by, statement)),
    }
}

#[cfg(test)]
mod tests;
