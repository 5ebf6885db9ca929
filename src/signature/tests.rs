use base64::Engine as _;
use proptest::prelude::*;
use rcgen::{KeyPair, SigningKey as _};
use rstest::rstest;
use sha2::{Digest as _, Sha256};

use super::cosign::{
    SIGNATURE_TYPE, SignatureLayer, check_payload, signature_layers, signature_tag,
};
use super::*;

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const OTHER: &str = "sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn digest(d: &str) -> Digest {
    d.parse().unwrap()
}

/// A simple-signing payload over `d`, as cosign writes it.
fn payload(d: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"registry.example.org/app"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"{SIGNATURE_TYPE}"}},"optional":null}}"#
    )
    .into_bytes()
}

fn sha256(bytes: &[u8]) -> Digest {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}").parse().unwrap()
}

fn signed(key: &KeyPair, payload: Vec<u8>) -> Fetched {
    Fetched {
        layer: SignatureLayer {
            payload: sha256(&payload),
            size: payload.len() as u64,
            signature: key.sign(&payload).unwrap(),
            certificate: None,
            bundle: None,
        },
        payload: Ok(payload),
    }
}

fn signer(name: &str, key: &KeyPair) -> Signer {
    Signer {
        name: name.into(),
        key: PublicKey::from_pem(&key.public_key_pem()).unwrap(),
    }
}

fn key(alg: &'static rcgen::SignatureAlgorithm) -> KeyPair {
    KeyPair::generate_for(alg).unwrap()
}

#[rstest]
#[case::p256(&rcgen::PKCS_ECDSA_P256_SHA256, KeyKind::EcdsaP256)]
#[case::p384(&rcgen::PKCS_ECDSA_P384_SHA384, KeyKind::EcdsaP384)]
#[case::ed25519(&rcgen::PKCS_ED25519, KeyKind::Ed25519)]
fn each_key_kind_verifies_its_own_signature_only(
    #[case] alg: &'static rcgen::SignatureAlgorithm,
    #[case] kind: KeyKind,
) {
    let k = key(alg);
    let s = signer("ci", &k);
    assert_eq!(s.key.kind(), kind);
    let v = verify(
        &digest(D),
        &[signed(&k, payload(D))],
        std::slice::from_ref(&s),
        1,
    );
    assert!(v.is_verified(), "{v:?}");
    assert_eq!(v.signed_by, ["ci"]);
    let stranger = key(alg);
    let v = verify(&digest(D), &[signed(&stranger, payload(D))], &[s], 1);
    assert!(!v.is_verified());
    assert_eq!(
        v.problems,
        ["signature 1 is valid for none of the trusted keys"]
    );
}

#[test]
fn a_signature_over_another_digest_never_counts() {
    let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let v = verify(
        &digest(D),
        &[signed(&k, payload(OTHER))],
        &[signer("ci", &k)],
        1,
    );
    assert!(!v.is_verified());
    assert!(
        v.problems[0].contains(&format!("the signature is over {OTHER}, not over {D}")),
        "{v:?}"
    );
}

#[test]
fn a_tampered_payload_fails_its_digest_before_any_key() {
    let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut s = signed(&k, payload(D));
    if let Ok(p) = &mut s.payload {
        p[10] ^= 1;
    }
    let v = verify(&digest(D), &[s], &[signer("ci", &k)], 1);
    assert!(v.problems[0].contains("do not match its digest"), "{v:?}");
}

#[test]
fn a_re_hashed_tampered_payload_fails_the_signature() {
    let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut s = signed(&k, payload(D));
    let forged = String::from_utf8(payload(D))
        .unwrap()
        .replace("registry.example.org", "evil.example.org");
    s.layer.payload = sha256(forged.as_bytes());
    s.payload = Ok(forged.into_bytes());
    let v = verify(&digest(D), &[s], &[signer("ci", &k)], 1);
    assert!(!v.is_verified());
}

#[test]
fn a_threshold_counts_distinct_signers() {
    let (a, b, c) = (
        key(&rcgen::PKCS_ECDSA_P256_SHA256),
        key(&rcgen::PKCS_ED25519),
        key(&rcgen::PKCS_ECDSA_P384_SHA384),
    );
    let signers = [signer("a", &a), signer("b", &b), signer("c", &c)];
    // Two signatures by the same signer are one signer.
    let twice = [signed(&a, payload(D)), signed(&a, payload(D))];
    let v = verify(&digest(D), &twice, &signers, 2);
    assert_eq!(
        (v.is_verified(), v.signed_by.clone()),
        (false, vec!["a".to_owned()])
    );
    let two = [signed(&a, payload(D)), signed(&c, payload(D))];
    let v = verify(&digest(D), &two, &signers, 2);
    assert_eq!(
        (v.is_verified(), v.signed_by.clone()),
        (true, vec!["a".to_owned(), "c".to_owned()])
    );
    assert_eq!(
        v.summary(&digest(D)),
        format!("{D} is signed by a, c (2 of 2 required, 2 signatures read)")
    );
}

#[test]
fn no_signature_says_so() {
    let k = key(&rcgen::PKCS_ED25519);
    let v = verify(&digest(D), &[], &[signer("ci", &k)], 1);
    assert!(!v.is_verified());
    assert_eq!(
        v.summary(&digest(D)),
        format!("{D} has no signature (no cosign signature manifest)")
    );
}

#[test]
fn the_tag_scheme_names_the_digest() {
    assert_eq!(
        signature_tag(&digest(D)),
        "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sig"
    );
}

#[test]
fn a_signature_manifest_in_cosigns_shape_is_read() {
    let p = payload(D);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 233,
                   "digest": OTHER},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "size": p.len(),
            "digest": sha256(&p).to_string(),
            "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="}
        }]
    });
    let layers = signature_layers(manifest.to_string().as_bytes()).unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0].signature,
        base64::engine::general_purpose::STANDARD
            .decode("MEUCIQ==")
            .unwrap()
    );
    assert!(check_payload(&layers[0], &p, &digest(D)).is_ok());
}

#[rstest]
#[case::not_json(b"{".to_vec(), "not an image manifest")]
#[case::no_signature(br#"{"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":1,"digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}]}"#.to_vec(), "has no dev.cosignproject.cosign/signature")]
#[case::bad_base64(br#"{"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":1,"digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","annotations":{"dev.cosignproject.cosign/signature":"%%%"}}]}"#.to_vec(), "not base64")]
fn bad_signature_manifests_say_why(#[case] body: Vec<u8>, #[case] message: &str) {
    let e = signature_layers(&body).unwrap_err().to_string();
    assert!(e.contains(message), "{e}");
}

#[rstest]
#[case::private_key(
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
    "never a private one"
)]
#[case::not_pem("ssh-ed25519 AAAA", "not a PEM public key")]
fn keys_that_are_not_public_keys_are_refused(#[case] text: &str, #[case] message: &str) {
    let e = PublicKey::from_pem(text).unwrap_err().to_string();
    assert!(e.contains(message), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// No byte flip in the payload or the signature verifies.
    #[test]
    fn no_byte_flip_verifies(which in 0usize..2, at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let s = signer("ci", &k);
        let mut f = signed(&k, payload(D));
        match which {
            0 => {
                let p = f.payload.as_mut().unwrap();
                let i = at.index(p.len());
                p[i] ^= 1 << bit;
                // Even with the layer digest recomputed for the flipped bytes.
                f.layer.payload = sha256(p);
            }
            _ => {
                let i = at.index(f.layer.signature.len());
                f.layer.signature[i] ^= 1 << bit;
            }
        }
        prop_assert!(!verify(&digest(D), &[f], &[s], 1).is_verified());
    }
}

#[rstest]
#[case::signature(
    "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sig",
    true
)]
#[case::attestation(
    "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.att",
    true
)]
#[case::sbom(
    "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sbom",
    true
)]
#[case::a_release("1.2.3", false)]
#[case::a_lookalike("sha256-notreallyhex.sig", false)]
#[case::another_suffix("sha256-0123.bak", false)]
fn cosigns_artifact_tags_are_recognised(#[case] tag: &str, #[case] artifact: bool) {
    assert_eq!(super::cosign::is_artifact_tag(tag), artifact);
}
