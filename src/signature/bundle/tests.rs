use proptest::prelude::*;
use rstest::rstest;
use serde_json::{Value, json};

use super::*;

const ONES: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const TWOS: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
/// `{"apiVersion":"0.0.1"}`.
const BODY: &str = "eyJhcGlWZXJzaW9uIjoiMC4wLjEifQ==";
const CHECKPOINT: &str = "rekor.sigstore.dev - 1\n3\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n\n— rekor.sigstore.dev AAAAAA==\n";

/// A v0.3 bundle as cosign v3 writes one for a message signature: a leaf certificate, one
/// Rekor entry with its promise and its proof, int64s as strings.
fn v03() -> Value {
    json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "certificate": {"rawBytes": "MIIB"},
            "tlogEntries": [{
                "logIndex": "25915956",
                "logId": {"keyId": ONES},
                "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                "integratedTime": "1712085549",
                "inclusionPromise": {"signedEntryTimestamp": "MEUCIQ=="},
                "inclusionProof": {
                    "logIndex": "2",
                    "rootHash": ONES,
                    "treeSize": "3",
                    "hashes": [TWOS, ONES],
                    "checkpoint": {"envelope": CHECKPOINT}
                },
                "canonicalizedBody": BODY
            }],
            "timestampVerificationData": {"rfc3161Timestamps": [{"signedTimestamp": "MIIE"}]}
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": TWOS},
            "signature": "MEUCIQ=="
        }
    })
}

/// A v0.1 bundle: a certificate chain, an entry with a SET and no proof, a DSSE envelope.
fn v01() -> Value {
    json!({
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "verificationMaterial": {
            "x509CertificateChain": {"certificates": [{"rawBytes": "MIIB"}, {"rawBytes": "MIIC"}]},
            "tlogEntries": [{
                "logIndex": 6800908,
                "logId": {"keyId": ONES},
                "kindVersion": {"kind": "intoto", "version": "0.0.2"},
                "integratedTime": 1668034836,
                "inclusionPromise": {"signedEntryTimestamp": "MEUCIQ=="},
                "canonicalizedBody": BODY
            }]
        },
        "dsseEnvelope": {
            "payload": "aGVsbG8=",
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": "MEUCIQ==", "keyid": ""}]
        }
    })
}

fn parse_value(v: &Value) -> Result<Bundle, BundleError> {
    parse(v.to_string().as_bytes())
}

/// `v` with the value at JSON pointer `at` replaced (`Some`) or removed (`None`).
fn with(mut v: Value, at: &str, new: Option<Value>) -> Value {
    let (parent, key) = at.rsplit_once('/').unwrap();
    let target = v.pointer_mut(parent).unwrap();
    match (target, new) {
        (Value::Object(m), Some(n)) => {
            m.insert(key.into(), n);
        }
        (Value::Object(m), None) => {
            m.remove(key);
        }
        (Value::Array(a), Some(n)) => a[key.parse::<usize>().unwrap()] = n,
        (Value::Array(a), None) => {
            a.remove(key.parse::<usize>().unwrap());
        }
        _ => panic!("{at}"),
    }
    v
}

#[test]
fn parses_a_v03_message_signature_bundle() {
    let b = parse_value(&v03()).unwrap();
    assert_eq!(b.version, BundleVersion::V0_3);
    assert_eq!(b.material, Material::Certificate(vec![0x30, 0x82, 0x01]));
    assert_eq!(b.timestamps, vec![vec![0x30, 0x82, 0x04]]);
    assert_eq!(b.tlog.len(), 1);
    let e = &b.tlog[0];
    assert_eq!(e.log_index, 25915956);
    assert_eq!(e.log_id, vec![1; 32]);
    assert_eq!(
        (e.kind.as_str(), e.version.as_str()),
        ("hashedrekord", "0.0.1")
    );
    assert_eq!(e.integrated_time, 1712085549);
    assert_eq!(e.set.as_deref(), Some(&[0x30, 0x45, 0x02, 0x21][..]));
    assert_eq!(e.body, br#"{"apiVersion":"0.0.1"}"#);
    let p = e.proof.as_ref().unwrap();
    assert_eq!((p.log_index, p.tree_size), (2, 3));
    assert_eq!(p.root_hash, [1; 32]);
    assert_eq!(p.hashes, vec![[2; 32], [1; 32]]);
    assert_eq!(p.checkpoint, CHECKPOINT);
    assert_eq!(
        b.content,
        Content::Message {
            algorithm: "SHA2_256".into(),
            digest: vec![2; 32],
            signature: vec![0x30, 0x45, 0x02, 0x21],
        }
    );
}

#[test]
fn parses_a_v01_dsse_bundle_with_a_chain() {
    let b = parse_value(&v01()).unwrap();
    assert_eq!(b.version, BundleVersion::V0_1);
    assert!(b.timestamps.is_empty());
    assert_eq!(
        b.material,
        Material::Chain(vec![vec![0x30, 0x82, 0x01], vec![0x30, 0x82, 0x02]])
    );
    assert_eq!(b.tlog[0].log_index, 6800908);
    assert_eq!(b.tlog[0].proof, None);
    let Content::Dsse(env) = &b.content else {
        panic!("{:?}", b.content)
    };
    assert_eq!(env.payload, b"hello");
    assert_eq!(env.signatures[0].keyid, None);
}

#[rstest]
#[case::v01_param(
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    Some(BundleVersion::V0_1)
)]
#[case::v02_param(
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    Some(BundleVersion::V0_2)
)]
#[case::v03_param(
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    Some(BundleVersion::V0_3)
)]
#[case::v03_subtype(
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    Some(BundleVersion::V0_3)
)]
#[case::v04_unknown("application/vnd.dev.sigstore.bundle.v0.4+json", None)]
#[case::v1_unknown("application/vnd.dev.sigstore.bundle+json;version=1.0", None)]
#[case::v02_subtype(
    "application/vnd.dev.sigstore.bundle.v0.2+json",
    Some(BundleVersion::V0_2)
)]
#[case::v03_patch(
    "application/vnd.dev.sigstore.bundle.v0.3.1+json",
    Some(BundleVersion::V0_3)
)]
#[case::v03_empty_patch("application/vnd.dev.sigstore.bundle.v0.3.+json", None)]
#[case::no_version("application/vnd.dev.sigstore.bundle+json", None)]
#[case::other_type("application/json", None)]
fn media_types(#[case] mt: &str, #[case] want: Option<BundleVersion>) {
    assert_eq!(media_type_version(mt), want);
}

#[rstest]
#[case::v02_with_proof_only(
    with(with(v03(), "/mediaType", Some(json!("application/vnd.dev.sigstore.bundle+json;version=0.2"))),
        "/verificationMaterial/tlogEntries/0/inclusionPromise", None))]
#[case::int64_as_numbers(with(v03(), "/verificationMaterial/tlogEntries/0/logIndex", Some(json!(25915956))))]
#[case::zero_values_left_out(with(
    with(v03(), "/verificationMaterial/tlogEntries/0/integratedTime", None),
    "/verificationMaterial/tlogEntries/0/inclusionProof/logIndex",
    None
))]
#[case::proto_field_names(json!({
    "media_type": "application/vnd.dev.sigstore.bundle.v0.3+json",
    "verification_material": {"public_key": {"hint": "k"}, "tlog_entries": []},
    "message_signature": {"signature": "MEUCIQ=="}
}))]
#[case::no_tlog_entries(with(v03(), "/verificationMaterial/tlogEntries", Some(json!([]))))]
#[case::url_safe_bytes(with(v03(), "/messageSignature/signature", Some(json!("-_8"))))]
#[case::algorithm_as_number(with(v03(), "/messageSignature/messageDigest/algorithm", Some(json!(1))))]
#[case::no_message_digest(with(v03(), "/messageSignature/messageDigest", None))]
#[case::public_key(with(with(v03(), "/verificationMaterial/certificate", None),
    "/verificationMaterial/publicKey", Some(json!({"hint": "release"}))))]
fn good_bundles(#[case] v: Value) {
    parse_value(&v).unwrap();
}

#[test]
fn what_the_good_variants_read_as() {
    let b = parse_value(&with(
        v03(),
        "/messageSignature/messageDigest/algorithm",
        Some(json!(1)),
    ))
    .unwrap();
    assert!(matches!(b.content, Content::Message { ref algorithm, .. } if algorithm == "SHA2_256"));
    let b = parse_value(&with(
        v03(),
        "/verificationMaterial/tlogEntries/0/integratedTime",
        None,
    ))
    .unwrap();
    assert_eq!(b.tlog[0].integrated_time, 0);
    let b = parse_value(&with(
        with(v03(), "/verificationMaterial/certificate", None),
        "/verificationMaterial/publicKey",
        Some(json!({"hint": ""})),
    ))
    .unwrap();
    assert_eq!(b.material, Material::PublicKey { hint: None });
}

const E: &str = "/verificationMaterial/tlogEntries/0";

fn v02() -> Value {
    with(
        v03(),
        "/mediaType",
        Some(json!(
            "application/vnd.dev.sigstore.bundle+json;version=0.2"
        )),
    )
}

#[rstest]
#[case::not_json(json!("<html>"), "not valid JSON")]
#[case::no_media_type(with(v03(), "/mediaType", None), "no mediaType")]
#[case::unknown_version(with(v03(), "/mediaType", Some(json!("application/vnd.dev.sigstore.bundle.v0.4+json"))), "not a supported Sigstore bundle")]
#[case::major_version_1(with(v03(), "/mediaType", Some(json!("application/vnd.dev.sigstore.bundle.v1.0+json"))), "not a supported")]
#[case::no_material(with(v03(), "/verificationMaterial", None), "no verificationMaterial")]
#[case::material_of_no_kind(
    with(v03(), "/verificationMaterial/certificate", None),
    "no verificationMaterial.{publicKey"
)]
#[case::two_materials(with(v03(), "/verificationMaterial/publicKey", Some(json!({}))), "both verificationMaterial.publicKey and verificationMaterial.certificate")]
#[case::chain_in_v03(with(with(v03(), "/verificationMaterial/certificate", None), "/verificationMaterial/x509CertificateChain", Some(json!({"certificates": [{"rawBytes": "MIIB"}]}))), "carries an x509CertificateChain")]
#[case::empty_chain(with(v01(), "/verificationMaterial/x509CertificateChain/certificates", Some(json!([]))), "no verificationMaterial.x509CertificateChain.certificates")]
#[case::eleven_certificates(with(v01(), "/verificationMaterial/x509CertificateChain/certificates", Some(json!(vec![json!({"rawBytes": "MIIB"}); 11]))), "has 11 items; at most 10")]
#[case::certificate_not_base64(with(v01(), "/verificationMaterial/x509CertificateChain/certificates/1/rawBytes", Some(json!("*"))), "certificates[1].rawBytes is not base64")]
#[case::empty_certificate(with(v03(), "/verificationMaterial/certificate/rawBytes", Some(json!(""))), "certificate.rawBytes is not base64")]
#[case::no_content(
    with(v03(), "/messageSignature", None),
    "no messageSignature or dsseEnvelope"
)]
#[case::both_contents(with(v03(), "/dsseEnvelope", v01().pointer("/dsseEnvelope").cloned()), "both messageSignature and dsseEnvelope")]
#[case::broken_dsse(with(v01(), "/dsseEnvelope/signatures", Some(json!([]))), "dsseEnvelope")]
#[case::no_signature(
    with(v03(), "/messageSignature/signature", None),
    "no messageSignature.signature"
)]
#[case::signature_not_base64(with(v03(), "/messageSignature/signature", Some(json!("!"))), "messageSignature.signature is not base64")]
#[case::digest_not_base64(with(v03(), "/messageSignature/messageDigest/digest", Some(json!("!"))), "messageDigest.digest is not base64")]
#[case::nine_entries(with(v03(), "/verificationMaterial/tlogEntries", Some(json!(vec![v03().pointer(E).cloned().unwrap(); 9]))), "tlogEntries has 9 items; at most 8")]
#[case::log_index_not_a_number(with(v03(), &format!("{E}/logIndex"), Some(json!("12x"))), "tlogEntries[0].logIndex is \"12x\"")]
#[case::negative_log_index(with(v03(), &format!("{E}/logIndex"), Some(json!(-1))), "logIndex is \"-1\"")]
#[case::float_time(with(v03(), &format!("{E}/integratedTime"), Some(json!(1.5))), "integratedTime is \"1.5\"")]
#[case::log_index_of_the_wrong_type(with(v03(), &format!("{E}/logIndex"), Some(json!([1]))), "at verificationMaterial.tlogEntries[0].logIndex")]
#[case::no_log_id(with(v03(), &format!("{E}/logId"), None), "no verificationMaterial.tlogEntries[].logId.keyId")]
#[case::no_kind_version(with(v03(), &format!("{E}/kindVersion"), None), "kindVersion")]
#[case::no_body(with(v03(), &format!("{E}/canonicalizedBody"), None), "canonicalizedBody")]
#[case::body_not_base64(with(v03(), &format!("{E}/canonicalizedBody"), Some(json!("%%"))), "tlogEntries[0].canonicalizedBody is not base64")]
#[case::v01_without_promise(with(v01(), &format!("{E}/inclusionPromise"), None), "log entry 1 has no inclusionPromise")]
#[case::v02_without_proof(with(v02(), &format!("{E}/inclusionProof"), None), "log entry 1 has no inclusionProof")]
#[case::v03_without_proof(with(v03(), &format!("{E}/inclusionProof"), None), "log entry 1 has no inclusionProof")]
#[case::v02_without_checkpoint(with(v02(), &format!("{E}/inclusionProof/checkpoint"), None), "without a checkpoint")]
#[case::v03_empty_checkpoint(with(v03(), &format!("{E}/inclusionProof/checkpoint/envelope"), Some(json!(""))), "without a checkpoint")]
#[case::short_root_hash(with(v03(), &format!("{E}/inclusionProof/rootHash"), Some(json!("AQID"))), "rootHash is 3 bytes; a SHA-256 hash is 32")]
#[case::no_root_hash(with(v03(), &format!("{E}/inclusionProof/rootHash"), None), "rootHash is 0 bytes")]
#[case::short_path_hash(with(v03(), &format!("{E}/inclusionProof/hashes/1"), Some(json!("AQID"))), "hashes[1] is 3 bytes")]
#[case::sixty_five_hashes(with(v03(), &format!("{E}/inclusionProof/hashes"), Some(json!(vec![ONES; 65]))), "hashes has 65 items; at most 64")]
#[case::timestamp_not_base64(with(v03(), "/verificationMaterial/timestampVerificationData/rfc3161Timestamps/0/signedTimestamp", Some(json!("."))), "rfc3161Timestamps[0].signedTimestamp is not base64")]
#[case::empty_timestamp(with(v03(), "/verificationMaterial/timestampVerificationData/rfc3161Timestamps/0", Some(json!({}))), "rfc3161Timestamps[0].signedTimestamp is not base64")]
#[case::nine_timestamps(with(v03(), "/verificationMaterial/timestampVerificationData/rfc3161Timestamps", Some(json!(vec![json!({"signedTimestamp": "MIIE"}); 9]))), "rfc3161Timestamps has 9 items; at most 8")]
#[case::set_not_base64(with(v01(), &format!("{E}/inclusionPromise/signedEntryTimestamp"), Some(json!("?"))), "signedEntryTimestamp is not base64")]
fn broken_bundles(#[case] v: Value, #[case] why: &str) {
    let e = parse_value(&v).unwrap_err();
    assert!(e.to_string().contains(why), "{e}");
}

#[test]
fn a_broken_envelope_keeps_its_cause() {
    let e = parse_value(&with(v01(), "/dsseEnvelope/signatures", Some(json!([])))).unwrap_err();
    let BundleError::Dsse(cause) = e else {
        panic!("{e}")
    };
    assert!(matches!(cause, DsseError::NoSignatures));
}

#[test]
fn sixty_four_hashes_and_eight_entries_are_read() {
    let v = with(
        v03(),
        &format!("{E}/inclusionProof/hashes"),
        Some(json!(vec![ONES; 64])),
    );
    let entry = v.pointer(E).cloned().unwrap();
    let v = with(
        v,
        "/verificationMaterial/tlogEntries",
        Some(json!(vec![entry; 8])),
    );
    let b = parse_value(&v).unwrap();
    assert_eq!(b.tlog.len(), 8);
    assert_eq!(b.tlog[7].proof.as_ref().unwrap().hashes.len(), 64);
}

proptest::proptest! {
    /// A bundle is attacker input: any bytes give an answer, never a panic.
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let _ = parse(&bytes);
    }

    /// Nor does any value put in any of a good bundle's fields.
    #[test]
    fn parse_never_panics_on_a_field_replaced(
        field in proptest::sample::select(vec![
            "/mediaType", "/verificationMaterial/certificate/rawBytes",
            "/verificationMaterial/tlogEntries/0/logIndex",
            "/verificationMaterial/tlogEntries/0/integratedTime",
            "/verificationMaterial/tlogEntries/0/inclusionProof/treeSize",
            "/verificationMaterial/tlogEntries/0/inclusionProof/hashes/0",
            "/messageSignature/signature", "/messageSignature/messageDigest/algorithm",
        ]),
        value in proptest::prop_oneof![
            proptest::num::i64::ANY.prop_map(|n| json!(n)),
            "\\PC{0,20}".prop_map(|s| json!(s)),
            proptest::num::f64::ANY.prop_map(|f| json!(f)),
            proptest::strategy::Just(Value::Null),
        ],
    ) {
        let _ = parse_value(&with(v03(), field, Some(value)));
    }
}
