//! What a Sigstore signature brings from a registry: a bundle, the DSSE envelope inside it (or
//! alone), and a transparency log's checkpoint. Never a panic; a bundle that parses obeys its
//! version's rules and the bounds; its proofs and checkpoints give an answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::signature::bundle::{self, BundleVersion};
use tollgate::signature::{attestation, cosign, dsse, rekor, sct, tlog, trust, x509};

/// The DER SubjectPublicKeyInfo prefix of an Ed25519 key (RFC 8410); any 32 bytes after it
/// make a key that parses.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fuzz_target!(|data: &[u8]| {
    let der = [&ED25519_SPKI_PREFIX[..], &[7; 32]].concat();
    let key = tlog::LogKey::from_spki_der(&der).expect("the fixed key parses");

    if let Ok(envelope) = dsse::parse(data) {
        assert!(!envelope.signatures.is_empty());
        assert!(envelope.signatures.len() <= dsse::MAX_SIGNATURES);
        let pae = dsse::pae(&envelope.payload_type, &envelope.payload);
        assert!(pae.starts_with(b"DSSEv1 "));
        assert!(pae.ends_with(&envelope.payload));
    }

    if let Ok(b) = bundle::parse(data) {
        assert!(b.tlog.len() <= bundle::MAX_TLOG_ENTRIES);
        assert!(b.timestamps.len() <= bundle::MAX_TIMESTAMPS);
        if b.version >= BundleVersion::V0_3 {
            assert!(!matches!(b.material, bundle::Material::Chain(_)));
        }
        for e in &b.tlog {
            assert!(!e.body.is_empty());
            match &e.proof {
                Some(p) => {
                    assert!(p.hashes.len() <= bundle::MAX_PROOF_HASHES);
                    let _ = tlog::verify_inclusion(&e.body, p);
                    let _ = tlog::verify_proof_and_checkpoint(&e.body, p, &key);
                }
                None => assert_eq!(b.version, BundleVersion::V0_1),
            }
            if b.version == BundleVersion::V0_1 {
                assert!(e.set.is_some());
            } else {
                assert!(e.proof.as_ref().is_some_and(|p| !p.checkpoint.is_empty()));
            }
        }
    }

    let text = String::from_utf8_lossy(data);
    if let Ok(c) = tlog::parse_checkpoint(&text) {
        // The origin is the text's first line, as written.
        assert!(text.starts_with(&format!("{}\n", c.origin)));
    }
    // The fixed key's signatures never verify on fuzzed text (nobody holds its private half),
    // so every note is refused.
    assert!(tlog::verify_checkpoint(&text, &key).is_err());

    // The rest of what keyless signing and attestations bring: a trusted root, a cosign Rekor
    // bundle annotation, certificates, attestation manifests and in-toto statements. Each
    // gives an answer; nothing fuzzed verifies.
    if let Ok(root) = trust::parse(data) {
        assert!(!root.authorities.is_empty() || !root.logs.is_empty());
    }
    if let Ok(b) = rekor::parse(&text) {
        let _ = rekor::canonical_payload(&b);
    }
    let _ = x509::identity(data);
    // A certificate's embedded SCTs: the precertificate is the certificate's own bytes less
    // one extension, never longer; no fuzzed SCT verifies with the fixed key.
    if let Ok(tbs) = sct::precertificate_tbs(data) {
        assert!(tbs.len() <= data.len());
    }
    let ct = trust::TransparencyLog {
        url: "ct".into(),
        key_id: vec![7; 32],
        key: tollgate::signature::keys::PublicKey::from_spki_der(&der)
            .expect("the fixed key parses"),
        der: der.clone(),
        valid: trust::Window {
            start: i64::MIN,
            end: None,
        },
    };
    assert!(sct::check_embedded(data, &der, &[ct]).is_err());
    if let Ok(chain) = x509::pem_chain(&text) {
        assert!(!chain.is_empty() && chain.len() <= 10);
    }
    let _ = cosign::attestation_layers(data);
    let _ = attestation::parse_statement(attestation::IN_TOTO_PAYLOAD, data)
        .map(|s| attestation::provenance(&s.predicate));
});
