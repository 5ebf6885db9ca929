//! A Sigstore of the tests' own making: a Fulcio-like CA (a P-384 root and a P-384
//! intermediate, as the public-good instance has), a Rekor-like log key (P-256), and the
//! `trusted_root.json` that names them. It issues short-lived code-signing certificates with
//! Fulcio's identity extensions and writes Rekor bundles in cosign's exact shape, with knobs
//! to get each part wrong. Shared by the library's unit tests and the integration tests
//! (`#[path]`), so both check one format.

#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData as _, SanType, SigningKey as _,
};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// Fulcio's OIDC issuer extension (v2: a DER UTF8String).
const ISSUER_V2: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 8];

/// The embedded SCT list extension (RFC 6962 §3.3).
const SCT_LIST: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2];

/// 2026-11-01T00:00:00Z: the test CA's and log's start.
pub const EPOCH: i64 = 1_793_491_200;

pub struct TestSigstore {
    root: rcgen::Certificate,
    root_key: KeyPair,
    root_params: CertificateParams,
    pub intermediate: rcgen::Certificate,
    intermediate_key: KeyPair,
    intermediate_params: CertificateParams,
    pub rekor: KeyPair,
    /// The certificate transparency log's key: it signs the SCT embedded in each certificate.
    pub ct: KeyPair,
}

/// What to get wrong in one keyless signature.
#[derive(Debug, Clone, Default)]
pub struct Keyless {
    /// The OIDC issuer written into the certificate.
    pub issuer: String,
    /// The subject (an email if it has `@` and no `://`, else a URI).
    pub subject: String,
    /// When Rekor says it logged the signature (seconds since the epoch).
    pub integrated_time: i64,
    /// The certificate's validity, as offsets from `integrated_time` (default -60 s .. +540 s,
    /// Fulcio's ten minutes).
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    /// Sign the SET over other bytes.
    pub forge_set: bool,
    /// Leave the Rekor bundle out.
    pub no_bundle: bool,
    /// The log entry names another payload hash.
    pub entry_for_other_payload: bool,
    /// Issue the certificate from a CA the trusted root does not name.
    pub foreign_ca: bool,
    /// Leave out the code-signing extended key usage.
    pub no_code_signing: bool,
    /// In a Sigstore bundle: an inclusion proof whose root is not the tree's.
    pub forge_proof: bool,
    /// Embed no SCT in the certificate.
    pub no_sct: bool,
    /// The SCT is signed by a CT log the trusted root does not name.
    pub sct_foreign_log: bool,
    /// The SCT signs another precertificate than the one issued.
    pub forge_sct: bool,
}

/// One keyless signature as cosign stores it in a signature layer's annotations.
pub struct Signed {
    pub signature: Vec<u8>,
    pub certificate_pem: String,
    pub chain_pem: String,
    pub bundle: Option<String>,
}

impl Signed {
    /// The layer annotations cosign writes.
    pub fn annotations(&self) -> serde_json::Value {
        let mut a = json!({
            "dev.cosignproject.cosign/signature": STANDARD.encode(&self.signature),
            "dev.sigstore.cosign/certificate": self.certificate_pem,
            "dev.sigstore.cosign/chain": self.chain_pem,
        });
        if let Some(b) = &self.bundle {
            a["dev.sigstore.cosign/bundle"] = json!(b);
        }
        a
    }
}

fn at(t: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t).unwrap()
}

fn der_utf8(s: &str) -> Vec<u8> {
    // A short UTF8String: tag 12, one length byte.
    assert!(s.len() < 128);
    let mut v = vec![12, s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn ca(
    name: &str,
    key: &KeyPair,
    issuer: Option<&Issuer<'_, &KeyPair>>,
) -> (rcgen::Certificate, CertificateParams) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::OrganizationName, "sigstore.test");
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(EPOCH);
    p.not_after = at(EPOCH + 10 * 365 * 86_400);
    let cert = match issuer {
        None => p.self_signed(key).unwrap(),
        Some(i) => p.signed_by(key, i).unwrap(),
    };
    (cert, p)
}

impl TestSigstore {
    pub fn new() -> TestSigstore {
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let (root, root_params) = ca("sigstore-test", &root_key, None);
        let intermediate_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let issuer = Issuer::from_params(&root_params, &root_key);
        let (intermediate, intermediate_params) = ca(
            "sigstore-test-intermediate",
            &intermediate_key,
            Some(&issuer),
        );
        TestSigstore {
            root,
            root_key,
            root_params,
            intermediate,
            intermediate_key,
            intermediate_params,
            rekor: KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
            ct: KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        }
    }

    /// The log id: SHA-256 of the Rekor key's DER SubjectPublicKeyInfo.
    pub fn log_id(&self) -> Vec<u8> {
        Sha256::digest(self.rekor.subject_public_key_info()).to_vec()
    }

    /// `trusted_root.json` naming this CA (intermediate first, root last) and this log.
    pub fn trusted_root(&self) -> String {
        json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": "https://rekor.sigstore.test",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": STANDARD.encode(self.rekor.subject_public_key_info()),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2026-11-01T00:00:00Z"}
                },
                "logId": {"keyId": STANDARD.encode(self.log_id())}
            }],
            "certificateAuthorities": [{
                "subject": {"organization": "sigstore.test", "commonName": "sigstore-test"},
                "uri": "https://fulcio.sigstore.test",
                "certChain": {"certificates": [
                    {"rawBytes": STANDARD.encode(self.intermediate.der())},
                    {"rawBytes": STANDARD.encode(self.root.der())}
                ]},
                "validFor": {"start": "2026-11-01T00:00:00Z"}
            }],
            "ctlogs": [{
                "baseUrl": "https://ctfe.sigstore.test/test",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": STANDARD.encode(self.ct.subject_public_key_info()),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2026-11-01T00:00:00Z"}
                },
                "logId": {"keyId": STANDARD.encode(Sha256::digest(self.ct.subject_public_key_info()))}
            }],
            "timestampAuthorities": []
        })
        .to_string()
    }

    /// A fresh key and a certificate for it from this CA (or a foreign one), as `k` says.
    fn issue(&self, k: &Keyless) -> (KeyPair, rcgen::Certificate) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        let san = if k.subject.contains('@') && !k.subject.contains("://") {
            SanType::Rfc822Name(k.subject.clone().try_into().unwrap())
        } else {
            SanType::URI(k.subject.clone().try_into().unwrap())
        };
        p.subject_alt_names = vec![san];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if !k.no_code_signing {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        }
        p.custom_extensions = vec![CustomExtension::from_oid_content(
            ISSUER_V2,
            der_utf8(&k.issuer),
        )];
        p.not_before = at(k.integrated_time + k.valid_from.unwrap_or(-60));
        p.not_after = at(k.integrated_time + k.valid_until.unwrap_or(540));
        let foreign = k.foreign_ca.then(|| {
            let other_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
            let (_, other) = ca("sigstore-test-intermediate", &other_key, None);
            (other, other_key)
        });
        let (issuer_params, issuer_key) = match &foreign {
            Some((params, key)) => (params, key),
            None => (&self.intermediate_params, &self.intermediate_key),
        };
        let issuer = Issuer::from_params(issuer_params, issuer_key);
        // The precertificate: the same certificate without the SCT list (rcgen derives the
        // serial from the key and writes custom extensions last, so the two agree but for
        // that extension). Fulcio has the CT log sign it, then embeds the SCT.
        let precert = p.signed_by(&key, &issuer).unwrap();
        if k.no_sct {
            return (key, precert);
        }
        let tbs = {
            use x509_cert::der::{Decode as _, Encode as _};
            x509_cert::Certificate::from_der(precert.der())
                .unwrap()
                .tbs_certificate()
                .to_der()
                .unwrap()
        };
        let mut precert_tbs = tbs.clone();
        if k.forge_sct {
            precert_tbs.push(0);
        }
        let log = if k.sct_foreign_log {
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
        } else {
            clone_key(&self.ct)
        };
        let timestamp = u64::try_from(k.integrated_time).unwrap() * 1000;
        let issuer_spki = issuer_key.subject_public_key_info();
        let signed = sct_signed_data(timestamp, &Sha256::digest(&issuer_spki), &precert_tbs);
        let signature = log.sign(&signed).unwrap();
        p.custom_extensions.push(CustomExtension::from_oid_content(
            SCT_LIST,
            sct_list(&log, timestamp, &signature),
        ));
        let cert = p.signed_by(&key, &issuer).unwrap();
        (key, cert)
    }

    /// Sign `payload` keylessly: a fresh key, a certificate for it, and a Rekor bundle over a
    /// hashedrekord entry of it.
    pub fn sign(&self, payload: &[u8], k: &Keyless) -> Signed {
        let (key, cert) = self.issue(k);
        let signature = key.sign(payload).unwrap();
        let certificate_pem = cert.pem();
        let hashed = if k.entry_for_other_payload {
            Sha256::digest(b"another payload")
        } else {
            Sha256::digest(payload)
        };
        let entry = json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex(&hashed)}},
                "signature": {
                    "content": STANDARD.encode(&signature),
                    "publicKey": {"content": STANDARD.encode(certificate_pem.as_bytes())}
                }
            }
        });
        let bundle =
            (!k.no_bundle).then(|| self.bundle(&entry.to_string(), k.integrated_time, k.forge_set));
        Signed {
            signature,
            certificate_pem,
            chain_pem: format!("{}{}", self.intermediate.pem(), self.root.pem()),
            bundle,
        }
    }

    /// Attest `statement` keylessly: a DSSE envelope (its JSON) signed over its PAE, and the
    /// annotations with a Rekor bundle over a `dsse` entry of it.
    pub fn attest(&self, statement: &[u8], k: &Keyless) -> (Vec<u8>, Signed) {
        let (key, cert) = self.issue(k);
        let signature = key.sign(&pae(IN_TOTO, statement)).unwrap();
        let certificate_pem = cert.pem();
        let entry = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "payloadHash": {"algorithm": "sha256", "value": hex(&Sha256::digest(statement))},
                "signatures": [{
                    "signature": STANDARD.encode(&signature),
                    "verifier": STANDARD.encode(certificate_pem.as_bytes())
                }]
            }
        });
        let bundle =
            (!k.no_bundle).then(|| self.bundle(&entry.to_string(), k.integrated_time, k.forge_set));
        (
            envelope(statement, &signature),
            Signed {
                signature,
                certificate_pem,
                chain_pem: format!("{}{}", self.intermediate.pem(), self.root.pem()),
                bundle,
            },
        )
    }

    /// cosign's bundle annotation for a logged `entry`: the SET is the log key's signature over
    /// the canonical JSON of the payload (keys in order, no spaces).
    pub fn bundle(&self, entry: &str, integrated_time: i64, forge: bool) -> String {
        let body = STANDARD.encode(entry.as_bytes());
        let log_id = hex(&self.log_id());
        let log_index = 4242;
        let canonical = format!(
            "{{\"body\":\"{body}\",\"integratedTime\":{integrated_time},\"logID\":\"{log_id}\",\"logIndex\":{log_index}}}"
        );
        let signed = if forge {
            format!("{canonical} ")
        } else {
            canonical
        };
        let set = self.rekor.sign(signed.as_bytes()).unwrap();
        json!({
            "SignedEntryTimestamp": STANDARD.encode(set),
            "Payload": {
                "body": body,
                "integratedTime": integrated_time,
                "logIndex": log_index,
                "logID": log_id
            }
        })
        .to_string()
    }
}

/// A copy of `key` (rcgen's key pairs are not `Clone`).
fn clone_key(key: &KeyPair) -> KeyPair {
    KeyPair::from_pem(&key.serialize_pem()).unwrap()
}

/// RFC 6962 §3.2's `digitally-signed struct` of a precertificate SCT, written out field by
/// field: v1, certificate_timestamp, the timestamp, precert_entry, the issuer key hash, the
/// TBSCertificate (24-bit length), no extensions.
fn sct_signed_data(timestamp: u64, issuer_key_hash: &[u8], tbs: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8, 0u8];
    m.extend_from_slice(&timestamp.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(issuer_key_hash);
    m.extend_from_slice(&(tbs.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(tbs);
    m.extend_from_slice(&[0, 0]);
    m
}

/// The SCT list extension's value: a DER OCTET STRING around the TLS-encoded
/// `SignedCertificateTimestampList` of one SCT by `log` (RFC 6962 §3.3).
fn sct_list(log: &KeyPair, timestamp: u64, signature: &[u8]) -> Vec<u8> {
    let mut sct = vec![0u8];
    sct.extend_from_slice(&Sha256::digest(log.subject_public_key_info()));
    sct.extend_from_slice(&timestamp.to_be_bytes());
    sct.extend_from_slice(&[0, 0]);
    // SHA-256 (4), ECDSA (3), then the signature with its 16-bit length.
    sct.extend_from_slice(&[4, 3]);
    sct.extend_from_slice(&(signature.len() as u16).to_be_bytes());
    sct.extend_from_slice(signature);
    let mut list = ((sct.len() + 2) as u16).to_be_bytes().to_vec();
    list.extend_from_slice(&(sct.len() as u16).to_be_bytes());
    list.extend_from_slice(&sct);
    let mut der = vec![0x04];
    match list.len() {
        n if n < 128 => der.push(n as u8),
        n if n < 256 => der.extend_from_slice(&[0x81, n as u8]),
        n => der.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    der.extend_from_slice(&list);
    der
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TestSigstore {
    /// A Sigstore bundle v0.3 as cosign 3 writes for an image: a DSSE envelope of
    /// `statement`, the leaf certificate, and one Rekor entry (`dsse` 0.0.1) with its SET and
    /// an inclusion proof in a one-leaf tree whose checkpoint the log signed.
    pub fn bundle_v03(&self, statement: &[u8], k: &Keyless) -> Vec<u8> {
        let (key, cert) = self.issue(k);
        let signature = key.sign(&pae(IN_TOTO, statement)).unwrap();
        let entry = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "payloadHash": {"algorithm": "sha256", "value": hex(&Sha256::digest(statement))},
                "signatures": [{
                    "signature": STANDARD.encode(&signature),
                    "verifier": STANDARD.encode(cert.pem().as_bytes())
                }]
            }
        })
        .to_string();
        let annotation: serde_json::Value =
            serde_json::from_str(&self.bundle(&entry, k.integrated_time, k.forge_set)).unwrap();
        let set = annotation["SignedEntryTimestamp"]
            .as_str()
            .unwrap()
            .to_owned();
        // A one-leaf tree: its root is the leaf's hash (RFC 9162 §2.1.1), the path is empty.
        let mut leaf = vec![0u8];
        leaf.extend_from_slice(entry.as_bytes());
        let mut root = Sha256::digest(&leaf).to_vec();
        if k.forge_proof {
            root[0] ^= 1;
        }
        let text = format!("rekor.sigstore.test - 42\n1\n{}\n", STANDARD.encode(&root));
        let hint = &Sha256::digest(self.rekor.subject_public_key_info())[..4];
        let note_sig = self.rekor.sign(text.as_bytes()).unwrap();
        let checkpoint = format!(
            "{text}\n\u{2014} rekor.sigstore.test {}\n",
            STANDARD.encode([hint, &note_sig[..]].concat())
        );
        let mut entry_json = json!({
            "logIndex": "4242",
            "logId": {"keyId": STANDARD.encode(self.log_id())},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": k.integrated_time.to_string(),
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": STANDARD.encode(&root),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": {"envelope": checkpoint}
            },
            "canonicalizedBody": STANDARD.encode(entry.as_bytes())
        });
        if !k.no_bundle {
            entry_json["inclusionPromise"] = json!({"signedEntryTimestamp": set});
        }
        json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": STANDARD.encode(cert.der())},
                "tlogEntries": [entry_json]
            },
            "dsseEnvelope": {
                "payload": STANDARD.encode(statement),
                "payloadType": IN_TOTO,
                "signatures": [{"sig": STANDARD.encode(&signature), "keyid": ""}]
            }
        })
        .to_string()
        .into_bytes()
    }
}

/// cosign 3's image signature statement about `digest` (`sha256:<hex>`).
pub fn cosign_sign_statement(name: &str, digest: &str) -> Vec<u8> {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": digest.trim_start_matches("sha256:")}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {}
    })
    .to_string()
    .into_bytes()
}

/// The in-toto payload type.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// DSSE's pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    v.extend_from_slice(payload);
    v
}

/// A DSSE envelope of an in-toto `statement` with one signature.
pub fn envelope(statement: &[u8], signature: &[u8]) -> Vec<u8> {
    json!({
        "payloadType": IN_TOTO,
        "payload": STANDARD.encode(statement),
        "signatures": [{"keyid": "", "sig": STANDARD.encode(signature)}]
    })
    .to_string()
    .into_bytes()
}

/// A SLSA provenance v1 statement about `digest` (`sha256:<hex>`), built by GitHub Actions
/// from `repository` at `git_ref`.
pub fn provenance(
    name: &str,
    digest: &str,
    builder: &str,
    repository: &str,
    git_ref: &str,
) -> Vec<u8> {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": digest.trim_start_matches("sha256:")}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {
                    "ref": git_ref,
                    "repository": repository,
                    "path": ".github/workflows/release.yml"
                }},
                "resolvedDependencies": [{
                    "uri": format!("git+{repository}@{git_ref}"),
                    "digest": {"gitCommit": "7d3fa9c2a5d9a6f0b6d3b1c1e2f3a4b5c6d7e8f9"}
                }]
            },
            "runDetails": {
                "builder": {"id": builder},
                "metadata": {"invocationId": "https://github.com/acme/app/actions/runs/1/attempts/1"}
            }
        }
    })
    .to_string()
    .into_bytes()
}
