//! Public keys as policies write them (PEM `PUBLIC KEY`, a DER SubjectPublicKeyInfo), and
//! signature verification with ring, the cryptography rustls already brings.
//!
//! Supported, as cosign writes them: ECDSA P-256 with SHA-256 and P-384 with SHA-384 (ASN.1 DER
//! signatures), Ed25519, and RSA from 2048 to 8192 bits with SHA-256, PKCS#1 v1.5 or PSS.

use std::fmt;

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::pem;
use x509_cert::spki::SubjectPublicKeyInfoRef;

/// `id-ecPublicKey` (RFC 5480 §2.1.1).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `secp256r1` (RFC 5480 §2.1.1.1).
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// `secp384r1` (RFC 5480 §2.1.1.1).
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// `id-Ed25519` (RFC 8410 §3).
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// `rsaEncryption` (RFC 8017 appendix C).
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Which kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on P-256, SHA-256.
    EcdsaP256,
    /// ECDSA on P-384, SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
    /// RSA, SHA-256.
    Rsa,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::EcdsaP256 => "ECDSA P-256",
            KeyKind::EcdsaP384 => "ECDSA P-384",
            KeyKind::Ed25519 => "Ed25519",
            KeyKind::Rsa => "RSA",
        })
    }
}

/// Why a public key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not PEM, or not a `PUBLIC KEY` block.
    #[error("not a PEM public key (-----BEGIN PUBLIC KEY-----): {0}")]
    Pem(String),
    /// The DER inside is not a SubjectPublicKeyInfo.
    #[error("the PEM block is not a SubjectPublicKeyInfo: {0}")]
    Der(String),
    /// A key of another algorithm or curve.
    #[error(
        "unsupported key algorithm {0}: tollgate verifies ECDSA P-256 and P-384, Ed25519 and RSA keys"
    )]
    Unsupported(String),
}

/// A verifying key, parsed once.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    kind: KeyKind,
    /// The SubjectPublicKeyInfo's key bits: an uncompressed point, 32 Ed25519 bytes, or a
    /// PKCS#1 RSAPublicKey, as ring takes them.
    bits: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {} bytes)", self.kind, self.bits.len())
    }
}

impl PublicKey {
    /// Parse a PEM `PUBLIC KEY` block.
    pub fn from_pem(text: &str) -> Result<PublicKey, KeyError> {
        let (label, der) =
            pem::decode_vec(text.trim().as_bytes()).map_err(|e| KeyError::Pem(e.to_string()))?;
        if label != "PUBLIC KEY" {
            return Err(KeyError::Pem(format!(
                "the block is {label:?}; give the public key (cosign.pub), never a private one"
            )));
        }
        Self::from_spki_der(&der)
    }

    /// Parse a DER SubjectPublicKeyInfo (a certificate's key, say).
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let spki =
            SubjectPublicKeyInfoRef::try_from(der).map_err(|e| KeyError::Der(e.to_string()))?;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| KeyError::Der("the key's BIT STRING has unused bits".into()))?
            .to_vec();
        let oid = spki.algorithm.oid;
        let kind = if oid == EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| KeyError::Der("an EC key without its named curve".into()))?;
            match curve {
                c if c == P256 => KeyKind::EcdsaP256,
                c if c == P384 => KeyKind::EcdsaP384,
                other => return Err(KeyError::Unsupported(format!("EC curve {other}"))),
            }
        } else if oid == ED25519 {
            KeyKind::Ed25519
        } else if oid == RSA {
            KeyKind::Rsa
        } else {
            return Err(KeyError::Unsupported(oid.to_string()));
        };
        Ok(PublicKey { kind, bits })
    }

    /// The SHA-256 of the key's kind and bits, hex: the same key pasted twice (under two names)
    /// has one fingerprint.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let mut h = Sha256::new();
        h.update(self.kind.to_string().as_bytes());
        h.update([0]);
        h.update(&self.bits);
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The kind of key.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Whether `signature` verifies over `message` with this key under exactly `algorithm`
    /// (a JWS `alg` names one: ES256 is P-256 with SHA-256 and a raw r||s signature, RFC 7518
    /// §3.4, where cosign's are ASN.1 DER). Callers check that the algorithm fits the key's
    /// kind; ring refuses a key of another algorithm anyway.
    pub fn verify_with(
        &self,
        algorithm: &'static dyn VerificationAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        UnparsedPublicKey::new(algorithm, &self.bits)
            .verify(message, signature)
            .is_ok()
    }

    /// Whether `signature` is this key's signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithms: &[&'static dyn VerificationAlgorithm] = match self.kind {
            KeyKind::EcdsaP256 => &[&signature::ECDSA_P256_SHA256_ASN1],
            KeyKind::EcdsaP384 => &[&signature::ECDSA_P384_SHA384_ASN1],
            KeyKind::Ed25519 => &[&signature::ED25519],
            // cosign signs with PKCS#1 v1.5 by default; PSS keys sign with PSS.
            KeyKind::Rsa => &[
                &signature::RSA_PKCS1_2048_8192_SHA256,
                &signature::RSA_PSS_2048_8192_SHA256,
            ],
        };
        algorithms.iter().any(|alg| {
            UnparsedPublicKey::new(*alg, &self.bits)
                .verify(message, signature)
                .is_ok()
        })
    }
}
