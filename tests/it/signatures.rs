//! Signature rules (issue 14) through the real binary, against a real registry, with cosign
//! signatures the test code makes in cosign's exact tag-scheme format: the simple-signing
//! payload as a blob, and a `sha256-<hex>.sig` manifest whose layer carries the signature.

use std::time::Duration;

use rcgen::{KeyPair, SigningKey as _};
use serde_json::{Value, json};

use crate::support;
use crate::support::oci::{OCI_CONFIG, OCI_MANIFEST, Pusher, layer};
use crate::support::registry::TestRegistry;
use crate::support::run;
use crate::support::sigstore::{EPOCH, Keyless, TestSigstore};

/// A cosign key pair made here; only its public half is ever written to disk.
fn key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

/// The simple-signing payload cosign signs for `digest` in `repository`.
fn payload(repository: &str, digest: &str) -> Vec<u8> {
    json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    })
    .to_string()
    .into_bytes()
}

/// Push a signature of `signed_digest`'s payload by `key` under the `.sig` tag of `tag_digest`
/// (the same digest, unless the test forges one).
async fn sign(
    p: &Pusher,
    repo: &str,
    name: &str,
    tag_digest: &str,
    signed_digest: &str,
    keys: &[&KeyPair],
) {
    let config = p.blob(repo, b"{}").await;
    let mut layers = Vec::new();
    for k in keys {
        let body = payload(name, signed_digest);
        let digest = p.blob(repo, &body).await;
        let signature = base64_encode(&k.sign(&body).unwrap());
        layers.push(json!({
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "size": body.len(),
            "digest": digest,
            "annotations": {"dev.cosignproject.cosign/signature": signature}
        }));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": 2, "digest": config},
        "layers": layers,
    });
    let tag = format!("{}.sig", tag_digest.replace(':', "-"));
    p.manifest(repo, &tag, OCI_MANIFEST, manifest.to_string().as_bytes())
        .await;
}

/// Push a one-layer image tagged `tag` in `signed/app`; its digest.
async fn push(p: &Pusher, tag: &str, bytes: &[u8]) -> String {
    push_image(p, tag, bytes).await.digest
}

/// [`push`], with the whole pushed manifest (a referrer's subject needs its size).
async fn push_image(p: &Pusher, tag: &str, bytes: &[u8]) -> crate::support::oci::Pushed {
    p.image(
        "signed/app",
        Some(tag),
        &[layer(&[("bin", bytes)])],
        "linux/amd64",
    )
    .await
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `key`'s PEM indented as a block scalar under `publicKey: |` in a list entry.
fn block(key: &KeyPair) -> String {
    key.public_key_pem()
        .lines()
        .map(|l| format!("            {l}\n"))
        .collect()
}

struct Setup {
    reg: TestRegistry,
    _dir: tempfile::TempDir,
    policy: String,
    trusted: KeyPair,
    second: KeyPair,
}

fn setup(threshold: usize) -> Setup {
    setup_for(threshold, "image")
}

fn setup_for(threshold: usize, digests: &str) -> Setup {
    let reg = TestRegistry::start();
    let (trusted, second) = (key(), key());
    let spec = format!(
        "  rules: {{digest-missing: 'off'}}\n  signatures:\n    - images: [\"{host}/signed/**\"]\n      threshold: {threshold}\n      digests: {digests}\n      keys:\n        - name: release-pipeline\n          publicKey: |\n{}        - name: security-team\n          publicKey: |\n{}",
        block(&trusted),
        block(&second),
        host = reg.host(),
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, reg.policy(&spec)).unwrap();
    Setup {
        policy: policy.to_str().unwrap().to_owned(),
        reg,
        _dir: dir,
        trusted,
        second,
    }
}

fn verify(s: &Setup, image: &str) -> (support::Run, Value) {
    let r = run(&[
        "verify",
        "--policy",
        &s.policy,
        "--format",
        "json",
        "--deadline",
        "10s",
        image,
    ]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
    (r, v)
}

fn signature_findings(v: &Value) -> Vec<String> {
    v["images"][0]["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["ruleId"] == "signature-unverified")
        .map(|f| f["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_requires_a_trusted_signature_over_the_resolved_digest() {
    let s = setup(1);
    let p = Pusher::new(s.reg.base_url());
    let host = s.reg.host();
    let name = format!("{host}/signed/app");
    let image = |tag: &str| format!("{name}:{tag}");

    let good = push(&p, "good", b"good").await;
    sign(&p, "signed/app", &name, &good, &good, &[&s.trusted]).await;
    let (r, v) = verify(&s, &image("good"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(signature_findings(&v).is_empty(), "{v:#}");

    let unsigned = push(&p, "unsigned", b"unsigned").await;
    let (r, v) = verify(&s, &image("unsigned"));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        signature_findings(&v),
        [format!(
            "{unsigned} has no signature (no cosign signature manifest, no Sigstore bundle among its referrers)"
        )]
    );

    let stranger = push(&p, "stranger", b"stranger").await;
    sign(&p, "signed/app", &name, &stranger, &stranger, &[&key()]).await;
    let (r, v) = verify(&s, &image("stranger"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        signature_findings(&v)[0].contains("signature 1 is valid for none of the trusted keys"),
        "{v:#}"
    );

    // A real signature of the good digest, copied under another digest's tag.
    let copied = push(&p, "copied", b"copied").await;
    sign(&p, "signed/app", &name, &copied, &good, &[&s.trusted]).await;
    let (r, v) = verify(&s, &image("copied"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        signature_findings(&v)[0]
            .contains(&format!("the signature is over {good}, not over {copied}")),
        "{v:#}"
    );

    // Outside the rule's images, nothing is required.
    p.image(
        "other/app",
        Some("1"),
        &[layer(&[("bin", b"o")])],
        "linux/amd64",
    )
    .await;
    let (r, _) = verify(&s, &format!("{host}/other/app:1"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_threshold_needs_that_many_distinct_signers() {
    let s = setup(2);
    let p = Pusher::new(s.reg.base_url());
    let name = format!("{}/signed/app", s.reg.host());
    let one = push(&p, "one", b"one").await;
    sign(
        &p,
        "signed/app",
        &name,
        &one,
        &one,
        &[&s.trusted, &s.trusted],
    )
    .await;
    let (r, v) = verify(&s, &format!("{name}:one"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        signature_findings(&v)[0]
            .contains("is signed by release-pipeline (1 of 2 required, 2 signatures read)"),
        "{v:#}"
    );
    let both = push(&p, "both", b"both").await;
    sign(
        &p,
        "signed/app",
        &name,
        &both,
        &both,
        &[&s.trusted, &s.second],
    )
    .await;
    let (r, v) = verify(&s, &format!("{name}:both"));
    assert_eq!(r.code, 0, "{}{v:#}", r.stderr);
}

/// pod-create.json with every container running `image`, in namespace `signed`.
fn pod_review(image: &str) -> Value {
    let mut review = crate::support::webhook::fixture("pod-create.json");
    let object = &mut review["request"]["object"];
    for list in ["containers", "initContainers"] {
        if let Some(cs) = object["spec"][list].as_array_mut() {
            for c in cs {
                c["image"] = json!(image);
            }
        }
    }
    review
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_admits_a_signed_digest_and_denies_an_unsigned_one_within_its_deadline() {
    let s = setup(1);
    let p = Pusher::new(s.reg.base_url());
    let name = format!("{}/signed/app", s.reg.host());
    let signed = push(&p, "signed", b"signed").await;
    sign(&p, "signed/app", &name, &signed, &signed, &[&s.trusted]).await;
    push(&p, "unsigned", b"unsigned").await;
    let hook = crate::support::webhook::Webhook::start(&[
        "--policy",
        &s.policy,
        "--registry-deadline",
        "3s",
    ]);
    let allowed = hook
        .review("/validate", &pod_review(&format!("{name}:signed@{signed}")))
        .await;
    assert_eq!(allowed["allowed"], true, "{allowed}\n{}", hook.logs());
    // The same digest again: its manifest and payload come from the cache.
    let again = hook
        .review("/validate", &pod_review(&format!("{name}:signed@{signed}")))
        .await;
    assert_eq!(again["allowed"], true, "{again}");
    // The second walk, signatures included, made no registry request.
    let m = hook.metrics().await;
    assert!(
        m.contains("tollgate_registry_cache_total{result=\"hit\"} 1"),
        "{m}"
    );
    let denied = hook
        .review("/validate", &pod_review(&format!("{name}:unsigned")))
        .await;
    assert_eq!(denied["allowed"], false, "{denied}");
    let message = denied["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("[signature-unverified]") && message.contains("has no signature"),
        "{message}"
    );
}

/// A two-platform index with an attestation child, tagged `tag` in `signed/app`: the index
/// digest and the two platform digests.
async fn multi_arch(p: &Pusher, tag: &str) -> (String, String, String) {
    let amd = p
        .image(
            "signed/app",
            None,
            &[layer(&[("bin", format!("{tag}-amd").as_bytes())])],
            "linux/amd64",
        )
        .await;
    let arm = p
        .image(
            "signed/app",
            None,
            &[layer(&[("bin", format!("{tag}-arm").as_bytes())])],
            "linux/arm64",
        )
        .await;
    let index = p
        .index(
            "signed/app",
            tag,
            &[(&amd, "linux/amd64"), (&arm, "linux/arm64")],
            true,
        )
        .await;
    (index, amd.digest, arm.digest)
}

#[rstest::rstest]
#[case::index_signed_image_rule("image", "index", vec![])]
#[case::index_signed_platforms_rule("platforms", "index", vec!["linux/amd64: ", "linux/arm64: "])]
#[case::one_child_signed_platforms_rule("platforms", "amd64", vec!["linux/arm64: "])]
#[case::both_children_signed_platforms_rule("platforms", "both", vec![])]
#[case::both_children_signed_image_rule("image", "both", vec!["has no signature"])]
#[case::index_signed_either_rule("imageOrPlatforms", "index", vec![])]
#[case::both_children_signed_either_rule("imageOrPlatforms", "both", vec![])]
#[case::one_child_signed_either_rule("imageOrPlatforms", "amd64", vec!["neither the image nor every platform is signed"])]
#[tokio::test(flavor = "multi_thread")]
async fn an_index_rule_says_which_digests_must_be_signed(
    #[case] digests: &str,
    #[case] signed: &str,
    #[case] expected: Vec<&str>,
) {
    let s = setup_for(1, digests);
    let p = Pusher::new(s.reg.base_url());
    let name = format!("{}/signed/app", s.reg.host());
    let (index, amd, arm) = multi_arch(&p, "multi").await;
    let targets: Vec<&String> = match signed {
        "index" => vec![&index],
        "amd64" => vec![&amd],
        _ => vec![&amd, &arm],
    };
    for d in targets {
        sign(&p, "signed/app", &name, d, d, &[&s.trusted]).await;
    }
    let (r, v) = verify(&s, &format!("{name}:multi"));
    let found = signature_findings(&v);
    if expected.is_empty() {
        assert_eq!(r.code, 0, "{}{v:#}", r.stderr);
        assert!(found.is_empty(), "{found:?}");
    } else {
        assert_eq!(r.code, 1, "{}{v:#}", r.stderr);
        let message = found.join("\n");
        for e in &expected {
            assert!(message.contains(e), "{e:?} not in {message}");
        }
        // The attestation child is never required to be signed.
        assert!(!message.contains("unknown/unknown"), "{message}");
    }
}

/// A live state of one bare Pod in namespace `prod` running `image` (its imageID the digest).
fn live_pod(name: &str, image: &str, digest: &str) -> Value {
    // The tag is after the last ':' (the host has a port).
    let repo = image.rsplit_once(':').map_or(image, |(r, _)| r);
    json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": "prod"},
         "spec": {"containers": [{"name": "app", "image": image}]},
         "status": {"phase": "Running", "containerStatuses": [{"name": "app", "image": image,
            "imageID": format!("{repo}@{digest}"), "ready": true}]}}
    ]})
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_reports_running_digests_without_a_trusted_signature() {
    let s = setup(1);
    let p = Pusher::new(s.reg.base_url());
    let name = format!("{}/signed/app", s.reg.host());
    let signed = push(&p, "signed", b"signed").await;
    sign(&p, "signed/app", &name, &signed, &signed, &[&s.trusted]).await;
    let unsigned = push(&p, "unsigned", b"unsigned").await;
    let dir = tempfile::tempdir().unwrap();
    let audit = |state: Value| {
        let path = dir.path().join("live.json");
        std::fs::write(&path, state.to_string()).unwrap();
        let r = run(&[
            "audit",
            "--live-file",
            path.to_str().unwrap(),
            "--policy",
            &s.policy,
            "--format",
            "json",
        ]);
        let v: Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", r.stdout, r.stderr));
        let found: Vec<String> = v["images"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|i| i["findings"].as_array().unwrap().clone())
            .filter(|f| f["kind"] == "signature-unverified")
            .map(|f| f["message"].as_str().unwrap().to_owned())
            .collect();
        (r.code, found)
    };
    let (code, found) =
        tokio::task::block_in_place(|| audit(live_pod("ok", &format!("{name}:signed"), &signed)));
    assert_eq!((code, found.len()), (0, 0), "{found:?}");
    let (code, found) = tokio::task::block_in_place(|| {
        audit(live_pod("bad", &format!("{name}:unsigned"), &unsigned))
    });
    assert_eq!(code, 1, "{found:?}");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("has no signature"), "{found:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_takes_the_level_of_the_rules_that_failed() {
    // Rule A denies and trusts the release key; rule B only warns and trusts a second key
    // (a migration). An image signed by the release key fails B only: a warning.
    let reg = TestRegistry::start();
    let (release, migration) = (key(), key());
    let spec = format!(
        "  rules: {{digest-missing: 'off'}}\n  signatures:\n    - images: [\"{host}/signed/**\"]\n      level: deny\n      keys:\n        - name: release\n          publicKey: |\n{}    - images: [\"{host}/signed/**\"]\n      level: warn\n      keys:\n        - name: migration\n          publicKey: |\n{}",
        block(&release),
        block(&migration),
        host = reg.host(),
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, reg.policy(&spec)).unwrap();
    let p = Pusher::new(reg.base_url());
    let name = format!("{}/signed/app", reg.host());
    let d = push(&p, "one", b"one").await;
    sign(&p, "signed/app", &name, &d, &d, &[&release]).await;
    let r = run(&[
        "verify",
        "--policy",
        policy.to_str().unwrap(),
        "--format",
        "json",
        &format!("{name}:one"),
    ]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let f: Vec<&Value> = v["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ruleId"] == "signature-unverified")
        .collect();
    assert_eq!(f.len(), 1, "{v:#}");
    assert_eq!(f[0]["level"], "warn", "{v:#}");
    assert_eq!(r.code, 0, "a warning does not fail verify: {}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_scan_lists_the_tags_that_are_not_signed() {
    let s = setup(1);
    let p = Pusher::new(s.reg.base_url());
    let name = format!("{}/signed/app", s.reg.host());
    let signed = push(&p, "signed", b"signed").await;
    sign(&p, "signed/app", &name, &signed, &signed, &[&s.trusted]).await;
    let unsigned = push(&p, "unsigned", b"unsigned").await;
    let host = s.reg.host();
    let r = tokio::task::block_in_place(|| {
        run(&[
            "registry",
            "scan",
            &host,
            "--policy",
            &s.policy,
            "--repository",
            "signed/*",
            "--format",
            "json",
        ])
    });
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let listed: Vec<&str> = v["unsigned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["image"].as_str().unwrap())
        .collect();
    // The .sig tag is a tag of the repository too, and no image: it is not listed.
    assert_eq!(listed, [format!("{name}:unsigned")], "{v:#}");
    assert_eq!(v["unsigned"][0]["digest"], unsigned.as_str());
}

/// An RSA key made by openssl at test time (neither ring nor rcgen makes RSA keys), and a
/// signature by it: cosign's RSA keys sign PKCS#1 v1.5 over SHA-256.
#[tokio::test(flavor = "multi_thread")]
async fn an_rsa_key_verifies_a_cosign_signature() {
    let openssl = crate::support::tools::debian("/usr/bin/openssl", "openssl");
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("rsa.key");
    let public = dir.path().join("rsa.pub");
    let ok = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(&openssl)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    ok(&[
        "genpkey".as_ref(),
        "-algorithm".as_ref(),
        "RSA".as_ref(),
        "-pkeyopt".as_ref(),
        "rsa_keygen_bits:2048".as_ref(),
        "-out".as_ref(),
        private.as_os_str(),
    ]);
    ok(&[
        "pkey".as_ref(),
        "-in".as_ref(),
        private.as_os_str(),
        "-pubout".as_ref(),
        "-out".as_ref(),
        public.as_os_str(),
    ]);
    let reg = TestRegistry::start();
    let pem = std::fs::read_to_string(&public).unwrap();
    let block: String = pem.lines().map(|l| format!("            {l}\n")).collect();
    let spec = format!(
        "  rules: {{digest-missing: 'off'}}\n  signatures:\n    - images: [\"{}/signed/**\"]\n      keys:\n        - name: rsa-pipeline\n          publicKey: |\n{block}",
        reg.host()
    );
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, reg.policy(&spec)).unwrap();
    let p = Pusher::new(reg.base_url());
    let name = format!("{}/signed/app", reg.host());
    let digest = push(&p, "rsa", b"rsa").await;
    let body = payload(&name, &digest);
    let payload_file = dir.path().join("payload.json");
    std::fs::write(&payload_file, &body).unwrap();
    let signature = ok(&[
        "dgst".as_ref(),
        "-sha256".as_ref(),
        "-sign".as_ref(),
        private.as_os_str(),
        payload_file.as_os_str(),
    ]);
    let config = p.blob("signed/app", b"{}").await;
    let payload_digest = p.blob("signed/app", &body).await;
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": 2, "digest": config},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "size": body.len(),
            "digest": payload_digest, "annotations": {"dev.cosignproject.cosign/signature": base64_encode(&signature)}}],
    });
    p.manifest(
        "signed/app",
        &format!("{}.sig", digest.replace(':', "-")),
        OCI_MANIFEST,
        manifest.to_string().as_bytes(),
    )
    .await;
    let r = tokio::task::block_in_place(|| {
        run(&[
            "verify",
            "--policy",
            policy.to_str().unwrap(),
            "--format",
            "json",
            &format!("{name}:rsa"),
        ])
    });
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

/// Push a keyless signature of `digest` (cosign's tag scheme: the certificate, chain and Rekor
/// bundle in the layer's annotations) made by the test's own Sigstore.
async fn sign_keyless(
    p: &Pusher,
    name: &str,
    digest: &str,
    sigstore: &TestSigstore,
    how: &Keyless,
) {
    let repo = "signed/app";
    let config = p.blob(repo, b"{}").await;
    let body = payload(name, digest);
    let blob = p.blob(repo, &body).await;
    let signed = sigstore.sign(&body, how);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": 2, "digest": config},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "size": body.len(),
            "digest": blob,
            "annotations": signed.annotations(),
        }],
    });
    let tag = format!("{}.sig", digest.replace(':', "-"));
    p.manifest(repo, &tag, OCI_MANIFEST, manifest.to_string().as_bytes())
        .await;
}

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const WORKFLOW: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";

/// A registry, and a policy whose `spec` (made for the registry's host) names `sigstore`'s
/// trusted root, written at `root_at` beside the policy file.
fn setup_with_root(
    sigstore: &TestSigstore,
    root_at: &str,
    spec: impl FnOnce(&str) -> String,
) -> Setup {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(root_at);
    std::fs::create_dir_all(root.parent().unwrap()).unwrap();
    std::fs::write(&root, sigstore.trusted_root()).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, reg.policy(&spec(&reg.host()))).unwrap();
    Setup {
        policy: policy.to_str().unwrap().to_owned(),
        reg,
        _dir: dir,
        trusted: key(),
        second: key(),
    }
}

/// Keyless cosign signatures through `tollgate verify`: the policy names a trusted root
/// beside it, and every way a keyless signature can be wrong is told apart.
#[tokio::test(flavor = "multi_thread")]
async fn keyless_signatures_are_checked_against_the_trusted_root_beside_the_policy() {
    let sigstore = TestSigstore::new();
    let s = setup_with_root(&sigstore, "trust/trusted_root.json", |host| {
        format!(
            "  rules: {{digest-missing: 'off'}}\n  trustedRoot: trust/trusted_root.json\n  signatures:\n    - images: [\"{host}/signed/**\"]\n      keyless:\n        - name: release-workflow\n          issuer: {ISSUER}\n          subjectRegExp: 'https://github\\.com/acme/app/\\.github/workflows/release\\.yml@refs/(heads/main|tags/v.+)'\n",
        )
    });
    let p = Pusher::new(s.reg.base_url());
    let name = format!("{}/signed/app", s.reg.host());
    let good = Keyless {
        issuer: ISSUER.into(),
        subject: WORKFLOW.into(),
        integrated_time: EPOCH + 86_400,
        ..Keyless::default()
    };
    let cases: Vec<(&str, Keyless, Option<&str>)> = vec![
        ("valid", good.clone(), None),
        (
            "a-tag-workflow",
            Keyless {
                subject: WORKFLOW.replace("heads/main", "tags/v1.2.0"),
                ..good.clone()
            },
            None,
        ),
        (
            "another-repository",
            Keyless {
                subject: WORKFLOW.replace("acme/app", "acme/app-fork"),
                ..good.clone()
            },
            Some("which no keyless signer trusts"),
        ),
        (
            "another-issuer",
            Keyless {
                issuer: "https://gitlab.com".into(),
                ..good.clone()
            },
            Some("(issuer https://gitlab.com)"),
        ),
        (
            "expired-when-signed",
            Keyless {
                valid_from: Some(-1200),
                valid_until: Some(-600),
                ..good.clone()
            },
            Some("the certificate had expired"),
        ),
        (
            "no-rekor-bundle",
            Keyless {
                no_bundle: true,
                ..good.clone()
            },
            Some("has no Rekor bundle"),
        ),
        (
            "forged-set",
            Keyless {
                forge_set: true,
                ..good.clone()
            },
            Some("signed entry timestamp does not verify"),
        ),
        (
            "another-ca",
            Keyless {
                foreign_ca: true,
                ..good.clone()
            },
            Some("does not chain to a trusted root"),
        ),
        (
            "no-sct",
            Keyless {
                no_sct: true,
                ..good.clone()
            },
            Some("but its certificate carries no signed certificate timestamp (SCT)"),
        ),
        (
            "sct-by-an-unknown-log",
            Keyless {
                sct_foreign_log: true,
                ..good.clone()
            },
            Some("an SCT is by a log the trusted root does not name"),
        ),
    ];
    for (tag, how, problem) in &cases {
        let digest = push(&p, tag, tag.as_bytes()).await;
        sign_keyless(&p, &name, &digest, &sigstore, how).await;
        let (r, v) = verify(&s, &format!("{name}:{tag}"));
        match problem {
            None => {
                assert_eq!(r.code, 0, "{tag}: {}{}", r.stdout, r.stderr);
                assert!(signature_findings(&v).is_empty(), "{tag}: {v:#}");
            }
            Some(problem) => {
                assert_eq!(r.code, 1, "{tag}: {}{}", r.stdout, r.stderr);
                let found = signature_findings(&v);
                assert!(
                    found.len() == 1 && found[0].contains(problem),
                    "{tag}: {problem}\n{v:#}"
                );
            }
        }
    }

    // `insecureIgnoreSCT` (a private Fulcio without certificate transparency) counts the
    // certificate without an SCT, and nothing else changes.
    let policy = std::fs::read_to_string(&s.policy).unwrap();
    let ignoring = policy.replace(
        "        - name: release-workflow\n",
        "        - name: release-workflow\n          insecureIgnoreSCT: true\n",
    );
    assert_ne!(ignoring, policy);
    std::fs::write(&s.policy, ignoring).unwrap();
    let (r, _) = verify(&s, &format!("{name}:no-sct"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let (r, _) = verify(&s, &format!("{name}:another-ca"));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);

    // A trusted root that no longer parses stops the run with its file and line, never a pass.
    std::fs::write(s._dir.path().join("trust/trusted_root.json"), "{").unwrap();
    let (r, _) = verify(&s, &format!("{name}:valid"));
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("trustedRoot \"trust/trusted_root.json\": not a Sigstore trusted_root.json"),
        "{}",
        r.stderr
    );
}

/// Push `envelopes` as cosign's attestation manifest (`sha256-<hex>.att`) of `digest`, each
/// layer a DSSE envelope with the given annotations.
async fn attest(p: &Pusher, digest: &str, envelopes: &[(Vec<u8>, Value)]) {
    let repo = "signed/app";
    let config = p.blob(repo, b"{}").await;
    let mut layers = Vec::new();
    for (env, annotations) in envelopes {
        let blob = p.blob(repo, env).await;
        let mut a = annotations.clone();
        a["predicateType"] = json!("https://slsa.dev/provenance/v1");
        a["dev.cosignproject.cosign/signature"] = json!("");
        layers.push(json!({
            "mediaType": "application/vnd.dsse.envelope.v1+json",
            "size": env.len(),
            "digest": blob,
            "annotations": a,
        }));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": 2, "digest": config},
        "layers": layers,
    });
    let tag = format!("{}.att", digest.replace(':', "-"));
    p.manifest(repo, &tag, OCI_MANIFEST, manifest.to_string().as_bytes())
        .await;
}

const BUILDER: &str = "https://github.com/actions/runner/github-hosted";

/// SLSA provenance through `tollgate verify`: a rule requires a provenance attestation from
/// the release workflow, built from main or a release tag, signed by the pipeline's key or
/// keylessly by the workflow.
#[tokio::test(flavor = "multi_thread")]
async fn slsa_provenance_attestations_are_required_by_builder_source_and_ref() {
    let sigstore = TestSigstore::new();
    let pipeline = key();
    let s = setup_with_root(&sigstore, "trusted_root.json", |host| {
        format!(
            "  rules: {{digest-missing: 'off'}}\n  trustedRoot: trusted_root.json\n  signatures:\n    - images: [\"{host}/signed/**\"]\n      threshold: 0\n      keys:\n        - name: release-pipeline\n          publicKey: |\n{}      keyless:\n        - name: release-workflow\n          issuer: {ISSUER}\n          subject: {WORKFLOW}\n      attestations:\n        - name: provenance\n          predicateType: https://slsa.dev/provenance/v1\n          builderId: {BUILDER}\n          sourceRepository: https://github.com/acme/app\n          sourceRefs: [refs/heads/main, 'refs/tags/v*']\n",
            block(&pipeline),
        )
    });
    let p = Pusher::new(s.reg.base_url());
    let name = format!("{}/signed/app", s.reg.host());
    let by_key = |st: &[u8]| {
        let sig = pipeline.sign(&sigstore_pae(st)).unwrap();
        (crate::support::sigstore::envelope(st, &sig), json!({}))
    };
    let keyless = |st: &[u8]| {
        let (env, signed) = sigstore.attest(
            st,
            &Keyless {
                issuer: ISSUER.into(),
                subject: WORKFLOW.into(),
                integrated_time: EPOCH + 86_400,
                ..Keyless::default()
            },
        );
        (env, signed.annotations())
    };
    let prov = |digest: &str, git_ref: &str| {
        crate::support::sigstore::provenance(
            &name,
            digest,
            BUILDER,
            "https://github.com/acme/app",
            git_ref,
        )
    };

    // Attestations only (threshold 0): the image itself is not signed.
    let main = push(&p, "main", b"main").await;
    attest(&p, &main, &[by_key(&prov(&main, "refs/heads/main"))]).await;
    let tagged = push(&p, "tagged", b"tagged").await;
    attest(&p, &tagged, &[keyless(&prov(&tagged, "refs/tags/v2.0.1"))]).await;
    let feature = push(&p, "feature", b"feature").await;
    attest(
        &p,
        &feature,
        &[by_key(&prov(&feature, "refs/heads/feature/x"))],
    )
    .await;
    let copied = push(&p, "copied", b"copied").await;
    attest(&p, &copied, &[by_key(&prov(&main, "refs/heads/main"))]).await;
    let bare = push(&p, "bare", b"bare").await;

    let cases: [(&str, Option<String>); 5] = [
        ("main", None),
        ("tagged", None),
        (
            "feature",
            Some(
                "its source ref refs/heads/feature/x matches none of refs/heads/main, refs/tags/v*"
                    .into(),
            ),
        ),
        ("copied", Some(format!("its subject is not {copied}"))),
        (
            "bare",
            Some(format!(
                "{bare} has no attestation (no cosign .att manifest)"
            )),
        ),
    ];
    for (tag, problem) in &cases {
        let (r, v) = verify(&s, &format!("{name}:{tag}"));
        match problem {
            None => {
                assert_eq!(r.code, 0, "{tag}: {}{}", r.stdout, r.stderr);
                assert!(signature_findings(&v).is_empty(), "{tag}: {v:#}");
            }
            Some(problem) => {
                assert_eq!(r.code, 1, "{tag}: {}{}", r.stdout, r.stderr);
                let found = signature_findings(&v);
                assert!(
                    found.len() == 1 && found[0].contains(problem.as_str()),
                    "{tag}: {problem}\n{v:#}"
                );
            }
        }
    }
}

fn sigstore_pae(statement: &[u8]) -> Vec<u8> {
    crate::support::sigstore::pae(crate::support::sigstore::IN_TOTO, statement)
}

/// cosign 3's default storage: a Sigstore bundle (v0.3, DSSE envelope, keyless, Rekor SET and
/// inclusion proof) as an OCI referrer of the image. On Debian's registry, which lacks the
/// referrers API, tollgate finds it through the referrers tag schema; through a proxy that
/// serves the API in the distribution spec's shape, through the API.
#[tokio::test(flavor = "multi_thread")]
async fn cosign_3_bundles_are_found_among_the_referrers_by_the_api_or_the_tag_schema() {
    use crate::support::oci::{Artifact, Subject};
    use crate::support::proxy::FaultProxy;
    use crate::support::sigstore::cosign_sign_statement;

    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.base_url());
    let sigstore = TestSigstore::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("trusted_root.json"),
        sigstore.trusted_root(),
    )
    .unwrap();
    let rule = |host: &str| {
        format!(
            "  rules: {{digest-missing: 'off'}}\n  trustedRoot: trusted_root.json\n  signatures:\n    - images: [\"{host}/signed/**\"]\n      keyless:\n        - name: release-workflow\n          issuer: {ISSUER}\n          subject: {WORKFLOW}\n"
        )
    };
    let direct = dir.path().join("direct.yaml");
    std::fs::write(&direct, reg.policy(&rule(&reg.host()))).unwrap();
    let proxied = dir.path().join("proxied.yaml");
    std::fs::write(&proxied, proxy.policy(&rule(&proxy.host()))).unwrap();

    let p = Pusher::new(reg.base_url());
    let good = Keyless {
        issuer: ISSUER.into(),
        subject: WORKFLOW.into(),
        integrated_time: EPOCH + 86_400,
        ..Keyless::default()
    };
    let mut pushed = Vec::new();
    for (tag, how) in [
        ("bundled", good.clone()),
        (
            "forged-proof",
            Keyless {
                forge_proof: true,
                ..good.clone()
            },
        ),
    ] {
        let image = p
            .image(
                "signed/app",
                Some(tag),
                &[layer(&[("bin", tag.as_bytes())])],
                "linux/amd64",
            )
            .await;
        let statement = cosign_sign_statement("signed/app", &image.digest);
        let bundle = sigstore.bundle_v03(&statement, &how);
        p.artifact(
            "signed/app",
            &Subject::from(&image),
            &Artifact {
                artifact_type: "application/vnd.dev.sigstore.bundle.v0.3+json",
                layer_media_type: "application/vnd.dev.sigstore.bundle.v0.3+json",
                layer: &bundle,
                annotations: &[(
                    "dev.sigstore.bundle.predicateType",
                    "https://sigstore.dev/cosign/sign/v1",
                )],
            },
        )
        .await;
        pushed.push(image.digest);
    }

    let run_verify = |policy: &std::path::Path, host: &str, tag: &str| {
        let r = run(&[
            "verify",
            "--policy",
            policy.to_str().unwrap(),
            "--format",
            "json",
            "--deadline",
            "10s",
            &format!("{host}/signed/app:{tag}"),
        ]);
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
        (r, v)
    };
    for (policy, host) in [(&direct, reg.host()), (&proxied, proxy.host())] {
        let (r, v) = run_verify(policy, &host, "bundled");
        assert_eq!(r.code, 0, "{host}: {}{}", r.stdout, r.stderr);
        assert!(signature_findings(&v).is_empty(), "{v:#}");
        let (r, v) = run_verify(policy, &host, "forged-proof");
        assert_eq!(r.code, 1, "{host}: {}{}", r.stdout, r.stderr);
        let found = signature_findings(&v);
        assert!(
            found.len() == 1 && found[0].contains("its inclusion proof"),
            "{v:#}"
        );
    }
    // Through the proxy, the referrers API answered; the registry itself has no such API, so
    // the direct runs used the tag schema.
    assert!(proxy.count("GET", "/referrers/") >= 2, "{:?}", proxy.seen());
    assert_eq!(
        proxy.count(
            "GET",
            &format!("/manifests/{}", pushed[0].replace(':', "-"))
        ),
        0
    );
}

/// The webhook checks keyless signatures offline within its deadline, remembers the verdict
/// (the second Pod costs no registry request), and reloads the trusted root beside the policy
/// like the policy itself: a root that no longer trusts the signing CA denies the same digest.
#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_reloads_the_trusted_root_with_the_policy() {
    use crate::support::webhook::{Webhook, eventually};

    let reg = TestRegistry::start();
    let sigstore = TestSigstore::new();
    let dir = tempfile::tempdir().unwrap();
    let root_file = dir.path().join("trusted_root.json");
    std::fs::write(&root_file, sigstore.trusted_root()).unwrap();
    let spec = format!(
        "  rules: {{digest-missing: 'off'}}\n  trustedRoot: trusted_root.json\n  signatures:\n    - images: [\"{host}/signed/**\"]\n      keyless:\n        - name: release-workflow\n          issuer: {ISSUER}\n          subject: {WORKFLOW}\n",
        host = reg.host(),
    );
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, reg.policy(&spec)).unwrap();
    let p = Pusher::new(reg.base_url());
    let name = format!("{}/signed/app", reg.host());
    let digest = push(&p, "keyless", b"keyless").await;
    let how = Keyless {
        issuer: ISSUER.into(),
        subject: WORKFLOW.into(),
        integrated_time: EPOCH + 86_400,
        ..Keyless::default()
    };
    sign_keyless(&p, &name, &digest, &sigstore, &how).await;

    let hook = Webhook::start(&[
        "--policy",
        policy.to_str().unwrap(),
        "--registry-deadline",
        "3s",
    ]);
    let pod = pod_review(&format!("{name}:keyless@{digest}"));
    let first = hook.review("/validate", &pod).await;
    assert_eq!(first["allowed"], true, "{first}\n{}", hook.logs());
    let again = hook.review("/validate", &pod).await;
    assert_eq!(again["allowed"], true, "{again}");
    let m = hook.metrics().await;
    assert!(
        m.contains("tollgate_registry_cache_total{result=\"hit\"} 1"),
        "{m}"
    );

    // Another Sigstore's root: the signing CA and log are no longer trusted.
    std::fs::write(&root_file, TestSigstore::new().trusted_root()).unwrap();
    eventually(
        "the new trusted root is applied",
        Duration::from_secs(20),
        || async { hook.review("/validate", &pod).await["allowed"] == false },
    )
    .await;
    let denied = hook.review("/validate", &pod).await;
    let message = denied["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("[signature-unverified]")
            && message.contains("is not in the trusted root"),
        "{message}"
    );
    assert_eq!(
        hook.metric("tollgate_policy_reloads_total{result=\"success\"}")
            .await,
        1.0
    );
}

// ---- registry requests of a cold verification (issue 14, "Speed"): counts, not timings ------

/// A registry behind the tests' counting proxy, and a policy file approving the proxy, with
/// `signatures` (a `spec.signatures` list, or nothing) and `digest-missing` off.
struct Counted {
    reg: TestRegistry,
    proxy: crate::support::proxy::FaultProxy,
    dir: tempfile::TempDir,
}

impl Counted {
    fn start() -> Counted {
        let reg = TestRegistry::start();
        let proxy = crate::support::proxy::FaultProxy::start(&reg.base_url());
        Counted {
            reg,
            proxy,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A policy file trusting `keys` (none: no signature rule) for `<proxy>/signed/**`.
    fn policy(&self, file: &str, keys: &[&KeyPair], threshold: usize) -> String {
        let mut spec = "  rules: {digest-missing: 'off'}\n".to_owned();
        if !keys.is_empty() {
            spec.push_str(&format!(
                "  signatures:\n    - images: [\"{}/signed/**\"]\n      threshold: {threshold}\n      keys:\n",
                self.proxy.host()
            ));
            for (i, k) in keys.iter().enumerate() {
                spec.push_str(&format!(
                    "        - name: key-{i}\n          publicKey: |\n{}",
                    block(k)
                ));
            }
        }
        let path = self.dir.path().join(file);
        std::fs::write(&path, self.proxy.policy(&spec)).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// `tollgate verify` of `image` (through the proxy), cold (a new process, so an empty
    /// cache): its exit code and the registry requests it sent.
    fn verify(&self, policy: &str, image: &str) -> (i32, Vec<crate::support::proxy::Seen>) {
        self.proxy.reset_counts();
        let r = tokio::task::block_in_place(|| {
            run(&[
                "verify",
                "--policy",
                policy,
                "--format",
                "json",
                "--deadline",
                "10s",
                image,
            ])
        });
        assert!(r.code == 0 || r.code == 1, "{}{}", r.stdout, r.stderr);
        (r.code, self.proxy.seen())
    }
}

/// Sign `digest` in `signed/app` once by each of `keys`, each signature a layer of its own
/// with a payload of its own (as `cosign sign -a n=<i>` writes: the annotation goes into the
/// payload's `optional`), so that no two signatures share a payload blob.
async fn sign_each(p: &Pusher, name: &str, digest: &str, keys: &[&KeyPair]) {
    let config = p.blob("signed/app", b"{}").await;
    let mut layers = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let body = json!({
            "critical": {
                "identity": {"docker-reference": name},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature"
            },
            "optional": {"n": i.to_string()}
        })
        .to_string()
        .into_bytes();
        let payload_digest = p.blob("signed/app", &body).await;
        layers.push(json!({
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "size": body.len(),
            "digest": payload_digest,
            "annotations": {"dev.cosignproject.cosign/signature": base64_encode(&k.sign(&body).unwrap())}
        }));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": 2, "digest": config},
        "layers": layers,
    });
    p.manifest(
        "signed/app",
        &format!("{}.sig", digest.replace(':', "-")),
        OCI_MANIFEST,
        manifest.to_string().as_bytes(),
    )
    .await;
}

/// The requests of `with` that `without` did not send (as a multiset of method and path).
fn extra(
    with: &[crate::support::proxy::Seen],
    without: &[crate::support::proxy::Seen],
) -> Vec<(String, String)> {
    let mut rest: Vec<(String, String)> = without
        .iter()
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect();
    let mut out = Vec::new();
    for s in with {
        let k = (s.method.clone(), s.path.clone());
        match rest.iter().position(|r| *r == k) {
            Some(i) => {
                rest.remove(i);
            }
            None => out.push(k),
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cold_verification_of_a_signed_digest_adds_three_registry_requests_to_the_walk() {
    let c = Counted::start();
    let p = Pusher::new(c.reg.base_url());
    let name = format!("{}/signed/app", c.proxy.host());
    let signed = push(&p, "signed", b"signed").await;
    let trusted = key();
    sign(&p, "signed/app", &name, &signed, &signed, &[&trusted]).await;
    let plain = c.policy("plain.yaml", &[], 1);
    let rule = c.policy("signed.yaml", &[&trusted], 1);
    let image = format!("{name}:signed");

    let (code, walk) = c.verify(&plain, &image);
    assert_eq!(code, 0, "{walk:#?}");
    let (code, verified) = c.verify(&rule, &image);
    assert_eq!(code, 0, "{verified:#?}");
    let tag = format!("/v2/signed/app/manifests/{}.sig", signed.replace(':', "-"));
    let added = extra(&verified, &walk);
    assert!(
        added.len() <= 3 && verified.len() - walk.len() <= 3,
        "issue 14: at most 3 more requests, got {added:#?}"
    );
    // Exactly: the `.sig` tag, its manifest, the one payload; nothing of the walk twice.
    assert_eq!(added.len(), 3, "{added:#?}");
    assert_eq!(
        added
            .iter()
            .filter(|(m, p)| m == "HEAD" && *p == tag)
            .count(),
        1,
        "{added:#?}"
    );
    assert_eq!(
        added
            .iter()
            .filter(|(m, p)| m == "GET" && p.contains("/manifests/sha256:"))
            .count(),
        1,
        "{added:#?}"
    );
    assert_eq!(
        added
            .iter()
            .filter(|(m, p)| m == "GET" && p.contains("/blobs/sha256:"))
            .count(),
        1,
        "{added:#?}"
    );
    assert_eq!(verified.len(), walk.len() + 3);

    // An unsigned digest under the rule: three requests more than the walk. The `.sig` tag's
    // 404, then cosign 3's place: the referrers API (a 404 on this registry, which lacks it)
    // and the referrers tag schema's `sha256-<hex>` tag (another 404).
    push(&p, "plain", b"plain").await;
    let unsigned = format!("{name}:plain");
    let (code, walk) = c.verify(&plain, &unsigned);
    assert_eq!(code, 0, "{walk:#?}");
    let (code, checked) = c.verify(&rule, &unsigned);
    assert_eq!(code, 1, "{checked:#?}");
    let added = extra(&checked, &walk);
    assert_eq!(added.len(), 3, "{added:#?}");
    assert!(
        added
            .iter()
            .any(|(m, p)| m == "HEAD" && p.ends_with(".sig"))
            && added
                .iter()
                .any(|(m, p)| m == "GET" && p.contains("/referrers/"))
            && added.iter().any(|(m, p)| m == "HEAD"
                && p.contains("/manifests/sha256-")
                && !p.ends_with(".sig")),
        "{added:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn four_keys_and_four_signatures_cost_two_requests_and_one_per_signature_never_sixteen() {
    let c = Counted::start();
    let p = Pusher::new(c.reg.base_url());
    let name = format!("{}/signed/app", c.proxy.host());
    let digest = push(&p, "many", b"many").await;
    let keys: Vec<KeyPair> = (0..4).map(|_| key()).collect();
    let keys: Vec<&KeyPair> = keys.iter().collect();
    // Signed in the reverse order of the policy's keys, so every signature meets every key.
    let reversed: Vec<&KeyPair> = keys.iter().rev().copied().collect();
    sign_each(&p, &name, &digest, &reversed).await;
    let plain = c.policy("plain.yaml", &[], 1);
    // All four must have signed: every signature is checked and counts.
    let rule = c.policy("four.yaml", &keys, 4);
    let image = format!("{name}:many");

    let (code, walk) = c.verify(&plain, &image);
    assert_eq!(code, 0, "{walk:#?}");
    let (code, verified) = c.verify(&rule, &image);
    assert_eq!(code, 0, "4 of 4 keys: {verified:#?}");
    let added = extra(&verified, &walk);
    let tag = format!("/v2/signed/app/manifests/{}.sig", digest.replace(':', "-"));
    let heads = added
        .iter()
        .filter(|(m, p)| m == "HEAD" && *p == tag)
        .count();
    let manifests = added
        .iter()
        .filter(|(m, p)| m == "GET" && p.contains("/manifests/sha256:"))
        .count();
    let payloads = added
        .iter()
        .filter(|(m, p)| m == "GET" && p.contains("/blobs/sha256:"))
        .count();
    assert_eq!((heads, manifests, payloads), (1, 1, 4), "{added:#?}");
    // signatures + a constant (6), not signatures × keys (16).
    assert_eq!(added.len(), 6, "{added:#?}");
    assert_eq!(verified.len(), walk.len() + 6);
}

// ---- notation (Notary Project) signatures ------------------------------------------------------

/// A policy whose rule trusts one notation signer (`identities`), with the test notary's root
/// as the trust store beside it (`trust/notation-root.pem`); the policy file's path.
fn notation_policy(
    dir: &std::path::Path,
    policy_of: impl Fn(&str) -> String,
    host: &str,
    root_pem: &str,
    identities: &str,
) -> String {
    std::fs::create_dir_all(dir.join("trust")).unwrap();
    std::fs::write(dir.join("trust/notation-root.pem"), root_pem).unwrap();
    let spec = format!(
        "  rules: {{digest-missing: 'off'}}\n  signatures:\n    - images: [\"{host}/signed/**\"]\n      notation:\n        - name: release-signing\n          trustStore: trust/notation-root.pem\n          identities: [{identities}]\n"
    );
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, policy_of(&spec)).unwrap();
    policy.to_str().unwrap().to_owned()
}

/// A registry, a test notary, and a policy (on the registry's host) trusting the notary's
/// `CN=release` identity.
struct NotarySetup {
    reg: TestRegistry,
    notary: crate::support::notary::TestNotary,
    _dir: tempfile::TempDir,
    policy: String,
}

impl NotarySetup {
    fn start() -> NotarySetup {
        let reg = TestRegistry::start();
        let notary = crate::support::notary::TestNotary::new();
        let dir = tempfile::tempdir().unwrap();
        let policy = notation_policy(
            dir.path(),
            |s| reg.policy(s),
            &reg.host(),
            &notary.root_pem(),
            "\"x509.subject: C=US, ST=WA, O=acme, CN=release\"",
        );
        NotarySetup {
            reg,
            notary,
            _dir: dir,
            policy,
        }
    }
}

/// Push `envelope` as a notation signature of `subject`: an artifact manifest referring to it,
/// listed in its referrers tag schema index (distribution without the referrers API).
async fn push_notation(
    p: &Pusher,
    subject: &crate::support::oci::Pushed,
    envelope: &[u8],
) -> String {
    push_notation_as(p, subject, envelope, "application/jose+json").await
}

/// [`push_notation`] with the envelope layer of `media_type`.
async fn push_notation_as(
    p: &Pusher,
    subject: &crate::support::oci::Pushed,
    envelope: &[u8],
    media_type: &str,
) -> String {
    p.artifact(
        "signed/app",
        &subject.into(),
        &crate::support::oci::Artifact {
            artifact_type: "application/vnd.cncf.notary.signature",
            layer_media_type: media_type,
            layer: envelope,
            annotations: &[("io.cncf.notary.x509chain.thumbprint#S256", "[]")],
        },
    )
    .await
}

fn run_verify(policy: &str, image: &str) -> (support::Run, Value) {
    let r = run(&[
        "verify",
        "--policy",
        policy,
        "--format",
        "json",
        "--deadline",
        "10s",
        image,
    ]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
    (r, v)
}

#[tokio::test(flavor = "multi_thread")]
async fn notation_signatures_found_through_the_referrers_tag_schema_verify_against_the_trust_store()
{
    use crate::support::notary::Notation;
    let NotarySetup {
        reg,
        notary,
        _dir,
        policy,
    } = NotarySetup::start();
    let host = reg.host();
    let p = Pusher::new(reg.base_url());
    let image = |tag: &str| format!("{host}/signed/app:{tag}");

    let good = push_image(&p, "good", b"good").await;
    push_notation(
        &p,
        &good,
        &notary.sign(&good.digest, good.size, &Notation::default()),
    )
    .await;
    let (r, v) = run_verify(&policy, &image("good"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(signature_findings(&v).is_empty(), "{v:#}");

    // Signed by the trust store's CA, but as someone the signer does not trust.
    let intern = push_image(&p, "intern", b"intern").await;
    let by_intern = Notation {
        subject: Some(["US", "WA", "Seattle", "acme", "intern"]),
        ..Notation::default()
    };
    push_notation(
        &p,
        &intern,
        &notary.sign(&intern.digest, intern.size, &by_intern),
    )
    .await;
    let (r, v) = run_verify(&policy, &image("intern"));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let found = signature_findings(&v);
    assert!(
        found[0].starts_with(&format!("{} is signed by none of the trusted signers", intern.digest))
            && found[0].contains("release-signing: its certificate's subject C=US, ST=WA, L=Seattle, O=acme, CN=intern is none of the signer's identities"),
        "{v:#}"
    );

    // A good signature of one digest, pushed as a referrer of another.
    let copied = push_image(&p, "copied", b"copied").await;
    push_notation(
        &p,
        &copied,
        &notary.sign(&good.digest, good.size, &Notation::default()),
    )
    .await;
    let (r, v) = run_verify(&policy, &image("copied"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        signature_findings(&v)[0]
            .contains(&format!("it signs {}, not {}", good.digest, copied.digest)),
        "{v:#}"
    );

    // A certificate that had expired when the signature says it was made.
    let late = push_image(&p, "late", b"late").await;
    let after_expiry = Notation {
        valid_from: Some(-7_200),
        valid_until: Some(-3_600),
        ..Notation::default()
    };
    push_notation(
        &p,
        &late,
        &notary.sign(&late.digest, late.size, &after_expiry),
    )
    .await;
    let (r, v) = run_verify(&policy, &image("late"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        signature_findings(&v)[0].contains("the certificate had expired"),
        "{v:#}"
    );

    let unsigned = push_image(&p, "unsigned", b"unsigned").await;
    let (r, v) = run_verify(&policy, &image("unsigned"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        signature_findings(&v),
        [format!(
            "{} has no signature (no notation signature among its referrers)",
            unsigned.digest
        )]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn notation_signatures_are_listed_through_the_referrers_api_when_the_registry_has_it() {
    use crate::support::notary::{Notation, TestNotary};
    use crate::support::proxy::FaultProxy;
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.base_url());
    proxy.serve_referrers();
    let notary = TestNotary::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = notation_policy(
        dir.path(),
        |s| proxy.policy(s),
        &proxy.host(),
        &notary.root_pem(),
        "\"*\"",
    );
    let p = Pusher::new(reg.base_url());
    let good = push_image(&p, "good", b"good").await;
    push_notation(
        &p,
        &good,
        &notary.sign(&good.digest, good.size, &Notation::default()),
    )
    .await;
    let (r, v) = run_verify(&policy, &format!("{}/signed/app:good", proxy.host()));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(signature_findings(&v).is_empty(), "{v:#}");
    assert_eq!(proxy.count("GET", "/referrers/"), 1, "{:?}", proxy.seen());
    // The API answered: the tag schema's index was never asked for, and a rule of notation
    // signers only never reads cosign's `.sig` tag.
    let fallback = format!("/manifests/{}", good.digest.replacen(':', "-", 1));
    assert!(
        !proxy
            .seen()
            .iter()
            .any(|s| s.path.ends_with(&fallback) || s.path.ends_with(".sig")),
        "{:?}",
        proxy.seen()
    );

    // A registry that fails the referrers request is an error, never "unsigned".
    let other = push_image(&p, "other", b"other").await;
    push_notation(
        &p,
        &other,
        &notary.sign(&other.digest, other.size, &Notation::default()),
    )
    .await;
    proxy.inject(
        "GET",
        "/referrers/",
        crate::support::proxy::Fault::Status(503),
        crate::support::proxy::Times::Always,
    );
    let (r, v) = run_verify(&policy, &format!("{}/signed/app:other", proxy.host()));
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(signature_findings(&v).is_empty(), "{v:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn notation_cose_signatures_pushed_as_referrers_verify() {
    use crate::support::notary::Notation;
    let NotarySetup {
        reg,
        notary,
        _dir,
        policy,
    } = NotarySetup::start();
    let host = reg.host();
    let p = Pusher::new(reg.base_url());
    let good = push_image(&p, "cose", b"cose").await;
    push_notation_as(
        &p,
        &good,
        &notary.sign_cose(&good.digest, good.size, &Notation::default()),
        "application/cose",
    )
    .await;
    let (r, v) = run_verify(&policy, &format!("{host}/signed/app:cose"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(signature_findings(&v).is_empty(), "{v:#}");
}
