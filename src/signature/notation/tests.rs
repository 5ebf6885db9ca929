use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use rstest::rstest;
use serde_json::Value;

use super::*;

#[path = "../../../tests/common/notary.rs"]
mod notary;

use notary::{Notation, SIGNED_AT, TestNotary};

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const OTHER: &str = "sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// A day after the signing time: when the tests verify.
const NOW: i64 = SIGNED_AT + 86_400;

fn digest(d: &str) -> Digest {
    d.parse().unwrap()
}

fn signer(name: &str, store_pem: &str, identities: &[&str]) -> Signer {
    Signer {
        name: name.into(),
        trusted: Trusted::Notation(NotationSigner {
            store: Arc::new(trust_store("truststore.pem", store_pem.as_bytes()).unwrap()),
            identities: identities
                .iter()
                .map(|i| parse_identity(i).unwrap())
                .collect(),
        }),
    }
}

fn fetched(envelope: Vec<u8>) -> FetchedNotation {
    FetchedNotation {
        manifest: digest(OTHER),
        envelope: Ok(envelope),
    }
}

/// Replace the envelope's member `field` (a base64url one) with `f` of its decoded bytes.
fn rewrite(envelope: &[u8], field: &str, f: impl Fn(Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(envelope).unwrap();
    let bytes = URL_SAFE_NO_PAD.decode(v[field].as_str().unwrap()).unwrap();
    v[field] = Value::String(URL_SAFE_NO_PAD.encode(f(bytes)));
    v.to_string().into_bytes()
}

/// The two envelope formats: every case is checked in both, with the same answer.
#[derive(Debug, Clone, Copy)]
enum Envelope {
    Jws,
    Cose,
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Valid,
    TamperedPayload,
    OtherDigest,
    UntrustedRoot,
    IdentityNotTrusted,
    CertificateExpired,
    UnknownCrit,
    Expired,
    OtherContentType,
    NoCodeSigning,
    AnyIdentity,
    Rsa,
    AlgOfAnotherKey,
}

#[rstest]
#[case::valid(Case::Valid, None)]
#[case::tampered_payload(
    Case::TamperedPayload,
    Some("does not verify with its certificate's key")
)]
#[case::signature_over_another_digest(Case::OtherDigest, Some("it signs sha256:1123"))]
#[case::untrusted_root(Case::UntrustedRoot, Some("issued by none of the trusted authorities"))]
#[case::identity_not_trusted(
    Case::IdentityNotTrusted,
    Some("subject C=US, ST=WA, L=Seattle, O=acme, CN=intern is none of the signer's identities")
)]
#[case::certificate_expired(Case::CertificateExpired, Some("the certificate had expired"))]
#[case::unknown_crit(
    Case::UnknownCrit,
    Some("marks \"io.cncf.notary.verificationPlugin\" critical")
)]
#[case::expired_notary_expiry(Case::Expired, Some("it expired at 2026-11-15T12:00:00Z"))]
#[case::another_content_type(Case::OtherContentType, Some("content type is \"application/json\""))]
#[case::no_code_signing_usage(Case::NoCodeSigning, Some("not for code signing"))]
#[case::any_identity_of_the_store(Case::AnyIdentity, None)]
#[case::rsa_pss(Case::Rsa, None)]
#[case::an_alg_of_another_key(
    Case::AlgOfAnotherKey,
    Some("algorithm \"ES384\" does not fit the certificate's ECDSA P-256 key")
)]
fn a_notation_signature_is_checked_end_to_end(
    #[case] case: Case,
    #[case] why: Option<&str>,
    #[values(Envelope::Jws, Envelope::Cose)] kind: Envelope,
) {
    let n = TestNotary::new();
    let mut knobs = Notation::default();
    match case {
        Case::IdentityNotTrusted | Case::AnyIdentity => {
            knobs.subject = Some(["US", "WA", "Seattle", "acme", "intern"]);
        }
        Case::CertificateExpired => knobs.valid_until = Some(3_600),
        Case::UnknownCrit => knobs.extra_crit = Some("io.cncf.notary.verificationPlugin"),
        Case::Expired => knobs.expiry = Some(SIGNED_AT + 12 * 3_600),
        Case::OtherContentType => knobs.cty = Some("application/json"),
        Case::UntrustedRoot => knobs.foreign_ca = true,
        Case::NoCodeSigning => knobs.no_code_signing = true,
        Case::Rsa => knobs.rsa = true,
        Case::AlgOfAnotherKey => knobs.alg = Some("ES384"),
        _ => {}
    }
    let signed = if matches!(case, Case::OtherDigest) {
        OTHER
    } else {
        D
    };
    let tampered = matches!(case, Case::TamperedPayload);
    let envelope = match kind {
        Envelope::Jws => {
            let envelope = n.sign(signed, 512, &knobs);
            if tampered {
                rewrite(&envelope, "payload", |p| {
                    String::from_utf8(p)
                        .unwrap()
                        .replace("512", "513")
                        .into_bytes()
                })
            } else {
                envelope
            }
        }
        Envelope::Cose => {
            let mut envelope = n.sign_cose(signed, if tampered { 5120 } else { 512 }, &knobs);
            if tampered {
                // The payload's size 5120 becomes 5130, the same length: only the signature
                // breaks.
                let at = envelope.windows(4).position(|w| w == b"5120").unwrap();
                envelope[at + 2] = b'3';
            }
            envelope
        }
    };
    let identities: &[&str] = if matches!(case, Case::AnyIdentity) {
        &["*"]
    } else {
        &["x509.subject: C=US, ST=WA, O=acme, CN=release"]
    };
    let signers = [signer("release", &n.root_pem(), identities)];
    let v = verify(&digest(D), &[fetched(envelope)], &signers, Some(NOW));
    assert_eq!(v.signatures, 1);
    match why {
        None => {
            assert_eq!(v.signed, vec![true], "{:?}", v.problems);
            assert!(v.problems.is_empty());
        }
        Some(why) => {
            assert_eq!(v.signed, vec![false]);
            assert_eq!(v.problems.len(), 1);
            assert!(v.problems[0].contains(why), "{}", v.problems[0]);
            assert!(v.problems[0].starts_with("notation signature 1 (sha256:1123"));
        }
    }
}

#[rstest]
#[case::at_verification_time(Some(NOW), false)]
#[case::at_the_claimed_signing_time(None, true)]
fn without_now_the_claimed_signing_time_decides(#[case] now: Option<i64>, #[case] ok: bool) {
    // The certificate lived an hour after signing; it is a day later.
    let n = TestNotary::new();
    let envelope = n.sign(
        D,
        512,
        &Notation {
            valid_until: Some(3_600),
            ..Notation::default()
        },
    );
    let signers = [signer("release", &n.root_pem(), &["*"])];
    let v = verify(&digest(D), &[fetched(envelope)], &signers, now);
    assert_eq!(v.signed, vec![ok], "{:?}", v.problems);
}

#[test]
fn one_signature_counts_for_every_signer_that_trusts_it_and_merges_with_cosigns() {
    let n = TestNotary::new();
    let envelope = n.sign(D, 512, &Notation::default());
    let signers = [
        signer(
            "release",
            &n.root_pem(),
            &["x509.subject: C=US, ST=WA, O=acme"],
        ),
        signer("other", &TestNotary::new().root_pem(), &["*"]),
        signer(
            "cn",
            &n.root_pem(),
            &["x509.subject: C=US, ST=WA, O=acme, CN=release"],
        ),
    ];
    let v = verify(&digest(D), &[fetched(envelope)], &signers, Some(NOW));
    assert_eq!(v.signed, vec![true, false, true]);
    let cosign = Verdict {
        signed_by: Vec::new(),
        threshold: 2,
        signatures: 0,
        problems: Vec::new(),
    };
    let merged = merge(cosign, v, &signers);
    assert!(merged.is_verified());
    assert_eq!(merged.signed_by, ["release", "cn"]);
    assert!(
        summary(&merged, &digest(D))
            .contains("is signed by release, cn (2 of 2 required, 1 signature read)"),
        "{}",
        summary(&merged, &digest(D))
    );
}

#[test]
fn no_signature_says_where_it_looked() {
    let v = Verdict {
        signed_by: Vec::new(),
        threshold: 1,
        signatures: 0,
        problems: Vec::new(),
    };
    assert!(summary(&v, &digest(D)).contains("no notation signature among its referrers"));
}

#[test]
fn an_unreadable_envelope_is_a_problem_of_that_signature() {
    let n = TestNotary::new();
    let signers = [signer("release", &n.root_pem(), &["*"])];
    let sigs = [
        FetchedNotation {
            manifest: digest(OTHER),
            envelope: Err("the blob is missing".into()),
        },
        fetched(b"{\"signatures\":[]}".to_vec()),
    ];
    let v = verify(&digest(D), &sigs, &signers, Some(NOW));
    assert_eq!(v.signed, vec![false]);
    assert!(v.problems[0].contains("could not be read: the blob is missing"));
    assert!(v.problems[1].contains("not a flattened JWS JSON serialization"));
}

#[rstest]
#[case::any("*", Ok("*"))]
#[case::subject(
    "x509.subject: C=US, ST=WA, O=acme, CN=release",
    Ok("x509.subject: C=US, ST=WA, O=acme, CN=release")
)]
#[case::escaped_comma(
    r"x509.subject: C=US, ST=WA, O=acme\, inc.",
    Ok(r"x509.subject: C=US, ST=WA, O=acme\, inc.")
)]
#[case::lower_case_types(
    "x509.subject: c=US, st=WA, o=acme",
    Ok("x509.subject: C=US, ST=WA, O=acme")
)]
#[case::no_state(
    "x509.subject: C=US, O=acme, CN=release",
    Err("must name C, ST and O at least; it has no ST")
)]
#[case::misspelt_type("x509.subjct: C=US, ST=WA, O=acme", Err("did you mean x509.subject?"))]
#[case::misspelt_attribute("x509.subject: C=US, ST=WA, O=acme, CM=x", Err("did you mean CN?"))]
#[case::twice(
    "x509.subject: C=US, ST=WA, O=acme, O=evil",
    Err("attribute O is given twice")
)]
#[case::multi_valued("x509.subject: C=US+ST=WA, O=acme", Err("multi-valued"))]
#[case::no_kind("release", Err("neither \"*\" nor"))]
fn trusted_identities_parse_as_the_trust_policy_writes_them(
    #[case] text: &str,
    #[case] want: Result<&str, &str>,
) {
    match (parse_identity(text), want) {
        (Ok(id), Ok(shown)) => assert_eq!(id.to_string(), shown),
        (Err(e), Err(why)) => assert!(e.contains(why), "{e}"),
        (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn a_subject_identity_matches_the_certificates_attributes_not_its_text() {
    let id = parse_identity("x509.subject: O=acme, ST=WA, C=US").unwrap();
    let dn: Vec<(String, String)> = [("C", "US"), ("ST", "WA"), ("L", "Seattle"), ("O", "acme")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert!(id.matches(&dn));
    let mut other = dn.clone();
    other[3].1 = "acme-evil".into();
    assert!(!id.matches(&other));
}

#[test]
fn a_trust_store_must_hold_certificates() {
    let e = trust_store("ts.pem", b"not a pem").unwrap_err();
    assert!(e.to_string().contains("BEGIN CERTIFICATE"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// No single bit flip of a COSE envelope's signed parts, chain or structure verifies.
    #[test]
    fn no_byte_flip_of_a_cose_envelope_verifies(index in any::<prop::sample::Index>(), bit in 0u8..8) {
        thread_local! {
            static FIXTURE: (String, Vec<u8>) = {
                let n = TestNotary::new();
                (n.root_pem(), n.sign_cose(D, 512, &Notation::default()))
            };
        }
        let (root, mut envelope) = FIXTURE.with(Clone::clone);
        let i = index.index(envelope.len());
        // The unprotected signingAgent is signed by nothing (as in JWS): a flip there may verify.
        let find = |s: &[u8]| envelope.windows(s.len()).position(|w| w == s).unwrap();
        let agent = b"notation-go/1.3.0 (tollgate tests)";
        let unsigned = find(b"io.cncf.notary.signingAgent") - 1..find(agent) + agent.len();
        prop_assume!(!unsigned.contains(&i));
        envelope[i] ^= 1 << bit;
        let signers = [signer("release", &root, &["*"])];
        let v = verify(&digest(D), &[fetched(envelope)], &signers, Some(NOW));
        prop_assert_eq!(v.signed, vec![false]);
    }

    /// Whatever the bytes after a COSE_Sign1 tag, checking never panics.
    #[test]
    fn arbitrary_cose_envelopes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut b = vec![0xd2];
        b.extend(bytes);
        let _ = check_envelope(&b, &digest(D), NOW);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// No single byte flip of the payload, the protected header or the signature verifies.
    #[test]
    fn no_byte_flip_verifies(field in 0usize..3, index in any::<prop::sample::Index>(), bit in 0u8..8) {
        thread_local! {
            static FIXTURE: (String, Vec<u8>) = {
                let n = TestNotary::new();
                (n.root_pem(), n.sign(D, 512, &Notation::default()))
            };
        }
        let (root, envelope) = FIXTURE.with(Clone::clone);
        let field = ["payload", "protected", "signature"][field];
        let flipped = rewrite(&envelope, field, |mut b| {
            let i = index.index(b.len());
            b[i] ^= 1 << bit;
            b
        });
        let signers = [signer("release", &root, &["*"])];
        let v = verify(&digest(D), &[fetched(flipped)], &signers, Some(NOW));
        prop_assert_eq!(v.signed, vec![false]);
    }

    /// Whatever the bytes, checking an envelope never panics.
    #[test]
    fn arbitrary_envelopes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = check_envelope(&bytes, &digest(D), NOW);
    }
}
