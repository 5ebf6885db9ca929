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
            chain: None,
            bundle: None,
        },
        payload: Ok(payload),
    }
}

fn signer(name: &str, key: &KeyPair) -> Signer {
    Signer {
        name: name.into(),
        trusted: Trusted::Key(PublicKey::from_pem(&key.public_key_pem()).unwrap()),
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
    let Trusted::Key(pk) = &s.trusted else {
        unreachable!("a key signer")
    };
    assert_eq!(pk.kind(), kind);
    let v = verify(
        &digest(D),
        &[signed(&k, payload(D))],
        std::slice::from_ref(&s),
        1,
        None,
    );
    assert!(v.is_verified(), "{v:?}");
    assert_eq!(v.signed_by, ["ci"]);
    let stranger = key(alg);
    let v = verify(&digest(D), &[signed(&stranger, payload(D))], &[s], 1, None);
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
        None,
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
    let v = verify(&digest(D), &[s], &[signer("ci", &k)], 1, None);
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
    let v = verify(&digest(D), &[s], &[signer("ci", &k)], 1, None);
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
    let v = verify(&digest(D), &twice, &signers, 2, None);
    assert_eq!(
        (v.is_verified(), v.signed_by.clone()),
        (false, vec!["a".to_owned()])
    );
    let two = [signed(&a, payload(D)), signed(&c, payload(D))];
    let v = verify(&digest(D), &two, &signers, 2, None);
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
    let v = verify(&digest(D), &[], &[signer("ci", &k)], 1, None);
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
        prop_assert!(!verify(&digest(D), &[f], &[s], 1, None).is_verified());
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

#[path = "../../tests/common/sigstore.rs"]
mod sigstore;

/// Keyless signatures against a trusted root the test makes (tests/common/sigstore.rs, shared
/// with the integration tests).
mod keyless {
    use super::*;

    use super::sigstore::{self, EPOCH, Keyless, TestSigstore};

    const ISSUER: &str = "https://token.actions.githubusercontent.com";
    const SUBJECT: &str =
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
    /// 2026-11-15, inside the test CA's and log's windows.
    const SIGNED_AT: i64 = EPOCH + 14 * 86_400;

    fn good() -> Keyless {
        Keyless {
            issuer: ISSUER.into(),
            subject: SUBJECT.into(),
            integrated_time: SIGNED_AT,
            ..Keyless::default()
        }
    }

    fn fetched(s: &sigstore::Signed, payload: Vec<u8>) -> Fetched {
        Fetched {
            layer: SignatureLayer {
                payload: sha256(&payload),
                size: payload.len() as u64,
                signature: s.signature.clone(),
                certificate: Some(s.certificate_pem.clone()),
                chain: Some(s.chain_pem.clone()),
                bundle: s.bundle.clone(),
            },
            payload: Ok(payload),
        }
    }

    fn identity(issuer: Matcher, subject: Matcher) -> Signer {
        Signer {
            name: "release".into(),
            trusted: Trusted::Keyless(Identity {
                issuer,
                subject,
                insecure_ignore_sct: false,
            }),
        }
    }

    /// [`exact`] with `insecureIgnoreSCT: true`.
    fn ignoring_sct() -> Signer {
        let mut s = exact();
        if let Trusted::Keyless(i) = &mut s.trusted {
            i.insecure_ignore_sct = true;
        }
        s
    }

    fn exact() -> Signer {
        identity(
            Matcher::Exact(ISSUER.into()),
            Matcher::Exact(SUBJECT.into()),
        )
    }

    fn root(s: &TestSigstore) -> TrustedRoot {
        trust::parse(s.trusted_root().as_bytes()).unwrap()
    }

    #[rstest]
    #[case::valid(good(), exact(), None)]
    #[case::subject_pattern(good(), identity(Matcher::Exact(ISSUER.into()), Matcher::pattern(r"https://github\.com/acme/[^/]+/\.github/workflows/release\.yml@refs/heads/main").unwrap()), None)]
    #[case::an_email(Keyless { subject: "release@acme.example".into(), ..good() }, identity(Matcher::Exact(ISSUER.into()), Matcher::Exact("release@acme.example".into())), None)]
    #[case::wrong_subject(Keyless { subject: "https://github.com/mallory/app/.github/workflows/release.yml@refs/heads/main".into(), ..good() }, exact(), Some("which no keyless signer trusts"))]
    #[case::wrong_issuer(Keyless { issuer: "https://accounts.google.com".into(), ..good() }, exact(), Some("(issuer https://accounts.google.com)"))]
    #[case::expired_at_signing(Keyless { valid_from: Some(-900), valid_until: Some(-300), ..good() }, exact(), Some("the certificate had expired"))]
    #[case::not_yet_valid(Keyless { valid_from: Some(60), valid_until: Some(600), ..good() }, exact(), Some("not valid yet"))]
    #[case::no_rekor_bundle(Keyless { no_bundle: true, ..good() }, exact(), Some("has no Rekor bundle"))]
    #[case::forged_set(Keyless { forge_set: true, ..good() }, exact(), Some("signed entry timestamp does not verify"))]
    #[case::entry_of_another_payload(Keyless { entry_for_other_payload: true, ..good() }, exact(), Some("its payload hash differs"))]
    #[case::foreign_ca(Keyless { foreign_ca: true, ..good() }, exact(), Some("does not chain to a trusted root"))]
    #[case::not_for_code_signing(Keyless { no_code_signing: true, ..good() }, exact(), Some("not for code signing"))]
    #[case::before_the_ca(Keyless { integrated_time: EPOCH - 86_400, ..good() }, exact(), Some("Rekor log's key was not valid"))]
    #[case::no_sct(Keyless { no_sct: true, ..good() }, exact(), Some("but its certificate carries no signed certificate timestamp (SCT)"))]
    #[case::sct_by_an_unknown_log(Keyless { sct_foreign_log: true, ..good() }, exact(), Some("an SCT is by a log the trusted root does not name"))]
    #[case::sct_over_another_precertificate(Keyless { forge_sct: true, ..good() }, exact(), Some("does not verify with its key"))]
    #[case::no_sct_ignored(Keyless { no_sct: true, ..good() }, ignoring_sct(), None)]
    #[case::no_sct_and_another_subject(Keyless { no_sct: true, subject: "https://github.com/mallory/x".into(), ..good() }, exact(), Some("which no keyless signer trusts"))]
    fn keyless_signatures(
        #[case] how: Keyless,
        #[case] signer: Signer,
        #[case] problem: Option<&str>,
    ) {
        let s = TestSigstore::new();
        let signed = s.sign(&payload(D), &how);
        let v = verify(
            &digest(D),
            &[fetched(&signed, payload(D))],
            &[signer],
            1,
            Some(&root(&s)),
        );
        match problem {
            None => assert!(v.is_verified(), "{}", v.summary(&digest(D))),
            Some(p) => {
                assert!(!v.is_verified());
                let text = v.summary(&digest(D));
                assert!(text.contains(p), "{text}");
            }
        }
    }

    /// A trusted root without `ctlogs` proves no SCT: a keyless signer then needs
    /// `insecureIgnoreSCT` (cosign fails the same way without CT log keys).
    #[rstest]
    #[case::required(exact(), false)]
    #[case::ignored(ignoring_sct(), true)]
    fn a_root_without_ct_logs(#[case] signer: Signer, #[case] verified: bool) {
        let s = TestSigstore::new();
        let signed = s.sign(&payload(D), &good());
        let mut r = root(&s);
        r.ct_logs.clear();
        let v = verify(
            &digest(D),
            &[fetched(&signed, payload(D))],
            &[signer],
            1,
            Some(&r),
        );
        assert_eq!(v.is_verified(), verified, "{}", v.summary(&digest(D)));
        if !verified {
            assert!(
                v.summary(&digest(D))
                    .contains("the trusted root names no certificate transparency log"),
                "{}",
                v.summary(&digest(D))
            );
        }
    }

    #[test]
    fn a_tampered_payload_does_not_verify_with_the_certificates_key() {
        let s = TestSigstore::new();
        let signed = s.sign(&payload(D), &good());
        let mut tampered = payload(D);
        tampered.extend_from_slice(b" ");
        let v = verify(
            &digest(D),
            &[fetched(&signed, tampered)],
            &[exact()],
            1,
            Some(&root(&s)),
        );
        assert!(
            v.summary(&digest(D))
                .contains("does not verify with its certificate's key"),
            "{}",
            v.summary(&digest(D))
        );
    }

    #[test]
    fn a_signature_over_another_digest_never_counts() {
        let s = TestSigstore::new();
        let signed = s.sign(&payload(OTHER), &good());
        let v = verify(
            &digest(D),
            &[fetched(&signed, payload(OTHER))],
            &[exact()],
            1,
            Some(&root(&s)),
        );
        assert!(
            v.summary(&digest(D)).contains("not over"),
            "{}",
            v.summary(&digest(D))
        );
    }

    #[test]
    fn another_trusted_root_proves_nothing() {
        let s = TestSigstore::new();
        let other = TestSigstore::new();
        let signed = s.sign(&payload(D), &good());
        let v = verify(
            &digest(D),
            &[fetched(&signed, payload(D))],
            &[exact()],
            1,
            Some(&root(&other)),
        );
        assert!(
            v.summary(&digest(D)).contains("is not in the trusted root"),
            "{}",
            v.summary(&digest(D))
        );
    }

    #[test]
    fn a_key_signer_does_not_accept_a_keyless_signature_nor_the_reverse() {
        let s = TestSigstore::new();
        let signed = s.sign(&payload(D), &good());
        let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let v = verify(
            &digest(D),
            &[fetched(&signed, payload(D))],
            &[signer("ci", &k)],
            1,
            Some(&root(&s)),
        );
        assert!(!v.is_verified());
        let v = verify(
            &digest(D),
            &[signed_by_key(&k)],
            &[exact()],
            1,
            Some(&root(&s)),
        );
        assert!(!v.is_verified());
    }

    fn signed_by_key(k: &KeyPair) -> Fetched {
        super::signed(k, payload(D))
    }

    #[test]
    fn a_threshold_counts_keyless_and_key_signers_together() {
        let s = TestSigstore::new();
        let k = key(&rcgen::PKCS_ED25519);
        let keyless = fetched(&s.sign(&payload(D), &good()), payload(D));
        let signers = [exact(), signer("ci", &k)];
        let root = root(&s);
        let one = verify(
            &digest(D),
            std::slice::from_ref(&keyless),
            &signers,
            2,
            Some(&root),
        );
        assert!(!one.is_verified());
        let both = verify(
            &digest(D),
            &[keyless, signed_by_key(&k)],
            &signers,
            2,
            Some(&root),
        );
        assert!(both.is_verified(), "{}", both.summary(&digest(D)));
    }

    #[rstest]
    #[case::whole_value_only(r"https://github\.com/acme/", "https://github.com/acme/app", false)]
    #[case::no_prefix_match(r"release@acme\.example", "x-release@acme.example", false)]
    #[case::alternation_stays_anchored("a|b", "ab", false)]
    #[case::matches("refs/(heads/main|tags/v.*)", "refs/tags/v1.2", true)]
    fn patterns_match_the_whole_value(
        #[case] pattern: &str,
        #[case] value: &str,
        #[case] matches: bool,
    ) {
        assert_eq!(Matcher::pattern(pattern).unwrap().matches(value), matches);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
        /// No byte flip in the certificate verifies.
        #[test]
        fn no_byte_flip_in_the_certificate_verifies(at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let s = TestSigstore::new();
            let signed = s.sign(&payload(D), &good());
            let mut f = fetched(&signed, payload(D));
            let mut der = x509::pem_chain(&signed.certificate_pem).unwrap().remove(0);
            let i = at.index(der.len());
            der[i] ^= 1 << bit;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
            f.layer.certificate = Some(format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"));
            prop_assert!(!verify(&digest(D), &[f], &[exact()], 1, Some(&root(&s))).is_verified());
        }
    }
}

/// in-toto attestations and SLSA provenance v1 conditions.
mod attestations {
    use super::attestation::{RefPattern, Requirement, SLSA_PROVENANCE_V1, SlsaConditions};
    use super::sigstore::{self, EPOCH, Keyless, TestSigstore};
    use super::*;

    const BUILDER: &str = "https://github.com/actions/runner/github-hosted";
    const REPO: &str = "https://github.com/acme/app";

    fn statement(d: &str, git_ref: &str) -> Vec<u8> {
        sigstore::provenance("registry.example.org/app", d, BUILDER, REPO, git_ref)
    }

    fn fetched(envelope: Vec<u8>, keyless: Option<&sigstore::Signed>) -> FetchedAttestation {
        FetchedAttestation {
            layer: cosign::AttestationLayer {
                envelope: sha256(&envelope),
                size: envelope.len() as u64,
                predicate_type: Some(SLSA_PROVENANCE_V1.into()),
                certificate: keyless.map(|s| s.certificate_pem.clone()),
                chain: keyless.map(|s| s.chain_pem.clone()),
                bundle: keyless.and_then(|s| s.bundle.clone()),
            },
            envelope: Ok(envelope),
        }
    }

    fn by_key(k: &KeyPair, st: &[u8]) -> FetchedAttestation {
        let sig = k.sign(&dsse::pae(sigstore::IN_TOTO, st)).unwrap();
        fetched(sigstore::envelope(st, &sig), None)
    }

    fn provenance_rule(refs: &[&str]) -> Requirement {
        Requirement {
            name: "provenance".into(),
            predicate_type: SLSA_PROVENANCE_V1.into(),
            slsa: Some(SlsaConditions {
                builder_id: Some(Matcher::Exact(BUILDER.into())),
                source_repository: Some(Matcher::Exact(REPO.into())),
                source_refs: refs.iter().map(|r| RefPattern::parse(r).unwrap()).collect(),
            }),
        }
    }

    #[rstest]
    #[case::main(statement(D, "refs/heads/main"), vec!["refs/heads/main"], None)]
    #[case::a_release_tag(statement(D, "refs/tags/v1.4.0"), vec!["refs/heads/main", "refs/tags/v*"], None)]
    #[case::a_feature_branch(statement(D, "refs/heads/feature/x"), vec!["refs/heads/main", "refs/tags/v*"], Some("its source ref refs/heads/feature/x matches none of refs/heads/main, refs/tags/v*"))]
    #[case::star_stays_in_its_segment(statement(D, "refs/tags/v1/evil"), vec!["refs/tags/v*"], Some("matches none of"))]
    #[case::another_digest(statement(OTHER, "refs/heads/main"), vec![], Some("its subject is not sha256:0123456789abcdef"))]
    #[case::another_builder(sigstore::provenance("x", D, "https://evil.example/builder", REPO, "refs/heads/main"), vec![], Some("its builder id is https://evil.example/builder, not https://github.com/actions/runner/github-hosted"))]
    #[case::another_repository(sigstore::provenance("x", D, BUILDER, "https://github.com/acme/app-fork", "refs/heads/main"), vec![], Some("its source repository is https://github.com/acme/app-fork"))]
    fn slsa_provenance_conditions(
        #[case] st: Vec<u8>,
        #[case] refs: Vec<&str>,
        #[case] problem: Option<&str>,
    ) {
        let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let got = verify_attestations(
            &digest(D),
            &[by_key(&k, &st)],
            &[provenance_rule(&refs)],
            &[signer("ci", &k)],
            None,
            &[],
        );
        match problem {
            None => assert!(got.is_empty(), "{got:?}"),
            Some(p) => assert!(got.len() == 1 && got[0].contains(p), "{p}\n{got:?}"),
        }
    }

    #[test]
    fn the_source_is_read_from_resolved_dependencies_when_the_workflow_does_not_say() {
        let p = serde_json::json!({
            "buildDefinition": {"resolvedDependencies": [
                {"uri": "pkg:npm/x@1"},
                {"uri": "git+https://gitlab.com/acme/app@refs/tags/v2"}
            ]},
            "runDetails": {"builder": {"id": "b"}}
        });
        let got = attestation::provenance(&p);
        assert_eq!(
            got.source_repository.as_deref(),
            Some("https://gitlab.com/acme/app")
        );
        assert_eq!(got.source_ref.as_deref(), Some("refs/tags/v2"));
    }

    #[test]
    fn an_attestation_signed_by_nobody_trusted_or_tampered_or_missing_does_not_count() {
        let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let stranger = key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let st = statement(D, "refs/heads/main");
        let rule = [provenance_rule(&[])];
        let signers = [signer("ci", &k)];
        let got = verify_attestations(
            &digest(D),
            &[by_key(&stranger, &st)],
            &rule,
            &signers,
            None,
            &[],
        );
        assert!(
            got[0].contains("signed by none of the trusted signers"),
            "{got:?}"
        );

        // The statement changed after signing (and the layer digest with it).
        let sig = k.sign(&dsse::pae(sigstore::IN_TOTO, &st)).unwrap();
        let forged = statement(D, "refs/heads/feature");
        let got = verify_attestations(
            &digest(D),
            &[fetched(sigstore::envelope(&forged, &sig), None)],
            &rule,
            &signers,
            None,
            &[],
        );
        assert!(
            got[0].contains("signed by none of the trusted signers"),
            "{got:?}"
        );

        let got = verify_attestations(&digest(D), &[], &rule, &signers, None, &[]);
        assert_eq!(
            got,
            [format!(
                "attestation \"provenance\" ({SLSA_PROVENANCE_V1}) is missing: {D} has no attestation (no cosign .att manifest)"
            )]
        );

        // A predicate of another type does not stand in for the one required.
        let other = String::from_utf8(st.clone())
            .unwrap()
            .replace(SLSA_PROVENANCE_V1, "https://spdx.dev/Document");
        let got = verify_attestations(
            &digest(D),
            &[by_key(&k, other.as_bytes())],
            &rule,
            &signers,
            None,
            &[],
        );
        assert!(
            got[0].contains("its predicateType is https://spdx.dev/Document"),
            "{got:?}"
        );
    }

    #[rstest]
    #[case::valid(Keyless::default(), None)]
    #[case::forged_set(Keyless { forge_set: true, ..Keyless::default() }, Some("signed entry timestamp does not verify"))]
    #[case::another_subject(Keyless { subject: "https://github.com/mallory/app/.github/workflows/x.yml@refs/heads/main".into(), ..Keyless::default() }, Some("which no keyless signer trusts"))]
    fn keyless_attestations(#[case] mut how: Keyless, #[case] problem: Option<&str>) {
        let s = TestSigstore::new();
        how.issuer = "https://token.actions.githubusercontent.com".into();
        if how.subject.is_empty() {
            how.subject =
                "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main".into();
        }
        how.integrated_time = EPOCH + 86_400;
        let st = statement(D, "refs/heads/main");
        let (env, signed) = s.attest(&st, &how);
        let signer = Signer {
            name: "release".into(),
            trusted: Trusted::Keyless(Identity {
                issuer: Matcher::Exact("https://token.actions.githubusercontent.com".into()),
                subject: Matcher::pattern(r"https://github\.com/acme/app/.+").unwrap(),
                insecure_ignore_sct: false,
            }),
        };
        let root = trust::parse(s.trusted_root().as_bytes()).unwrap();
        let got = verify_attestations(
            &digest(D),
            &[fetched(env, Some(&signed))],
            &[provenance_rule(&["refs/heads/main"])],
            &[signer],
            Some(&root),
            &[],
        );
        match problem {
            None => assert!(got.is_empty(), "{got:?}"),
            Some(p) => assert!(got.len() == 1 && got[0].contains(p), "{p}\n{got:?}"),
        }
    }
}

/// cosign 3's Sigstore bundles (found as referrers).
mod bundles {
    use super::referred::{FetchedBundle, verify_bundles};
    use super::sigstore::{self, EPOCH, Keyless, TestSigstore};
    use super::*;

    const ISSUER: &str = "https://token.actions.githubusercontent.com";
    const SUBJECT: &str =
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";

    fn good() -> Keyless {
        Keyless {
            issuer: ISSUER.into(),
            subject: SUBJECT.into(),
            integrated_time: EPOCH + 86_400,
            ..Keyless::default()
        }
    }

    fn release() -> Signer {
        Signer {
            name: "release".into(),
            trusted: Trusted::Keyless(Identity {
                issuer: Matcher::Exact(ISSUER.into()),
                subject: Matcher::Exact(SUBJECT.into()),
                insecure_ignore_sct: false,
            }),
        }
    }

    fn fetched(bytes: Vec<u8>) -> FetchedBundle {
        FetchedBundle {
            referrer: OTHER.into(),
            bytes: Ok(bytes),
        }
    }

    #[rstest]
    #[case::valid(good(), D, None)]
    #[case::forged_set(Keyless { forge_set: true, ..good() }, D, Some("signed entry timestamp does not verify"))]
    #[case::forged_inclusion_proof(Keyless { forge_proof: true, ..good() }, D, Some("its inclusion proof"))]
    #[case::no_set(Keyless { no_bundle: true, ..good() }, D, Some("no signed entry timestamp"))]
    #[case::another_identity(Keyless { subject: "https://github.com/mallory/x/.github/workflows/r.yml@refs/heads/main".into(), ..good() }, D, Some("which no keyless signer trusts"))]
    #[case::expired_when_signed(Keyless { valid_from: Some(-900), valid_until: Some(-300), ..good() }, D, Some("the certificate had expired"))]
    #[case::about_another_digest(good(), OTHER, Some("its statement's subject is not"))]
    fn cosign_3_image_signature_bundles(
        #[case] how: Keyless,
        #[case] about: &str,
        #[case] problem: Option<&str>,
    ) {
        let s = TestSigstore::new();
        let b = s.bundle_v03(
            &sigstore::cosign_sign_statement("r.example.org/app", about),
            &how,
        );
        let root = trust::parse(s.trusted_root().as_bytes()).unwrap();
        let found = verify_bundles(&digest(D), &[fetched(b)], &[release()], Some(&root));
        match problem {
            None => assert_eq!(found.signed_by, ["release"], "{found:?}"),
            Some(p) => {
                assert!(found.signed_by.is_empty());
                assert!(
                    found.problems.len() == 1 && found.problems[0].contains(p),
                    "{p}\n{found:?}"
                );
            }
        }
    }

    #[test]
    fn an_attestation_bundle_is_kept_as_an_attestation() {
        let s = TestSigstore::new();
        let st = sigstore::provenance(
            "r.example.org/app",
            D,
            "b",
            "https://github.com/acme/app",
            "refs/heads/main",
        );
        let root = trust::parse(s.trusted_root().as_bytes()).unwrap();
        let found = verify_bundles(
            &digest(D),
            &[fetched(s.bundle_v03(&st, &good()))],
            &[release()],
            Some(&root),
        );
        assert!(found.signed_by.is_empty());
        assert_eq!(found.attested.len(), 1);
        assert_eq!(found.attested[0].0, ["release"]);
        assert_eq!(
            found.attested[0].1.predicate_type,
            attestation::SLSA_PROVENANCE_V1
        );
    }

    #[test]
    fn a_message_signature_bundle_is_reported_not_counted() {
        let b = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": "k"}, "tlogEntries": []},
            "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": "AAAA"}, "signature": "AAAA"}
        });
        let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let found = verify_bundles(
            &digest(D),
            &[fetched(b.to_string().into_bytes())],
            &[signer("ci", &k)],
            None,
        );
        assert!(found.signed_by.is_empty());
        assert!(
            found.problems[0].contains("messageSignature bundle")
                || found.problems[0].contains("tlog"),
            "{found:?}"
        );
    }
}
