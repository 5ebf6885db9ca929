//! `tollgate verify` through the real binary, against a real registry.

use serde_json::Value;

use crate::support;
use crate::support::oci::{Pusher, layer, os_release};
use crate::support::redact::Redact;
use crate::support::registry::TestRegistry;
use crate::support::run;

struct Setup {
    reg: TestRegistry,
    _dir: tempfile::TempDir,
    policy: String,
}

fn setup(extra_spec: &str) -> Setup {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, reg.policy(extra_spec)).unwrap();
    Setup {
        policy: policy.to_str().unwrap().to_owned(),
        reg,
        _dir: dir,
    }
}

fn verify(s: &Setup, images: &[&str], format: &str) -> support::Run {
    let mut args = vec![
        "verify",
        "--policy",
        &s.policy,
        "--format",
        format,
        "--deadline",
        "10s",
    ];
    args.extend_from_slice(images);
    run(&args)
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_pullable_broken_and_refused_images_with_exit_codes() {
    let s = setup("  rules:\n    digest-missing: 'off'\n");
    let p = Pusher::new(s.reg.base_url());
    let base = layer(&[("etc/os-release", &os_release("debian"))]);
    let amd = p
        .image(
            "team/app",
            None,
            &[base.clone(), layer(&[("bin", b"amd")])],
            "linux/amd64",
        )
        .await;
    let arm = p
        .image(
            "team/app",
            None,
            &[base, layer(&[("bin", b"arm")])],
            "linux/arm64",
        )
        .await;
    let index = p
        .index(
            "team/app",
            "1.0",
            &[(&amd, "linux/amd64"), (&arm, "linux/arm64")],
            true,
        )
        .await;
    let host = s.reg.host();
    let good = format!("{host}/team/app:1.0");

    let ok = verify(&s, &[&good], "text");
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout.starts_with(&format!("{good}: pullable\n")),
        "{}",
        ok.stdout
    );
    assert!(
        ok.stdout
            .contains("(linux/arm64) ok, config + 2 layers: ok"),
        "{}",
        ok.stdout
    );
    assert!(
        ok.stdout.contains("(unknown/unknown) attestation"),
        "{}",
        ok.stdout
    );
    let ok_json = verify(&s, &[&good], "json");
    assert_eq!(ok_json.code, 0, "{}", ok_json.stderr);
    let v: Value = serde_json::from_str(&ok_json.stdout).unwrap();
    let attestation = &v["images"][0]["resolution"]["root"]["children"][2];
    assert_eq!(attestation["platform"], "unknown/unknown", "{v:#}");
    let redact = Redact::new()
        .text(&host, "[registry]")
        .text(&s.policy, "[policy.yaml]")
        .digest(&index, "index")
        .digest(&amd.digest, "amd64 manifest")
        .digest(&arm.digest, "arm64 manifest")
        .digest(attestation["digest"].as_str().unwrap(), "attestation")
        .digest(&amd.config, "amd64 config")
        .digest(&arm.config, "arm64 config")
        .digest(&amd.layers[0], "base layer")
        .digest(&amd.layers[1], "amd64 layer")
        .digest(&arm.layers[1], "arm64 layer");
    insta::assert_snapshot!("pullable_text", redact.apply(&ok.stdout));
    insta::assert_snapshot!("pullable_json", redact.apply(&ok_json.stdout));

    // The children are garbage-collected from under the index.
    p.delete_manifest("team/app", &arm.digest).await;
    p.delete_manifest("team/app", &amd.digest).await;
    let broken = verify(&s, &[&good], "json");
    assert_eq!(broken.code, 1, "{}", broken.stderr);
    let v: Value = serde_json::from_str(&broken.stdout).unwrap();
    let img = &v["images"][0];
    assert_eq!(img["verdict"], "broken");
    assert_eq!(img["resolution"]["orphanIndex"], true);
    assert_eq!(img["findings"][0]["ruleId"], "image-unavailable");
    assert!(
        img["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("orphan index")
    );
    let broken_text = verify(&s, &[&good], "text");
    assert_eq!(broken_text.code, 1, "{}", broken_text.stderr);
    insta::assert_snapshot!("orphan_index_text", redact.apply(&broken_text.stdout));
    insta::assert_snapshot!("orphan_index_json", redact.apply(&broken.stdout));

    // Not approved: refused without contacting it.
    let refused = verify(&s, &["docker.io/library/nginx:1.25"], "json");
    assert_eq!(refused.code, 1);
    let v: Value = serde_json::from_str(&refused.stdout).unwrap();
    assert_eq!(v["images"][0]["verdict"], "refused");
    assert!(v["images"][0].get("resolution").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_a_moved_tag_at_the_policy_level() {
    let s = setup("");
    let p = Pusher::new(s.reg.base_url());
    let old = p
        .image(
            "team/app",
            Some("stable"),
            &[layer(&[("a", b"1")])],
            "linux/amd64",
        )
        .await;
    p.image(
        "team/app",
        Some("stable"),
        &[layer(&[("a", b"2")])],
        "linux/amd64",
    )
    .await;
    let pinned = format!("{}/team/app:stable@{}", s.reg.host(), old.digest);
    let r = verify(&s, &[&pinned], "text");
    assert_eq!(r.code, 0, "tag-moved is a warning by default: {}", r.stdout);
    assert!(
        r.stdout
            .contains("warn tag-moved: tag stable now points at sha256:"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_registry_that_does_not_answer_is_exit_2_and_the_other_images_are_still_verified() {
    let mut s = setup("");
    let host = s.reg.host();
    s.reg.stop();
    let r = verify(
        &s,
        &[&format!("{host}/team/app:1"), "docker.io/library/nginx:1"],
        "text",
    );
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "{host}/team/app:1: error\n  error: cannot reach http://{host}/v2/team/app/manifests/1"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("docker.io/library/nginx:1: refused"),
        "{}",
        r.stdout
    );
}

/// The text report of a broken image names the path to the missing layer and the exact pinned fix.
#[tokio::test(flavor = "multi_thread")]
async fn text_report_names_the_path_to_a_deleted_layer_and_the_pinned_fix() {
    let s = setup("");
    let p = Pusher::new(s.reg.base_url());
    let amd = p
        .image(
            "team/app",
            None,
            &[layer(&[("a", b"1")]), layer(&[("b", b"2")])],
            "linux/amd64",
        )
        .await;
    let arm = p
        .image(
            "team/app",
            None,
            &[layer(&[("a", b"3")]), layer(&[("b", b"4")])],
            "linux/arm64",
        )
        .await;
    p.index(
        "team/app",
        "1.0",
        &[(&amd, "linux/amd64"), (&arm, "linux/arm64")],
        false,
    )
    .await;
    p.delete_blob("team/app", &arm.layers[1]).await;
    let r = verify(&s, &[&format!("{}/team/app:1.0", s.reg.host())], "text");
    println!("{}", r.stdout);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("missing: index sha256:"), "{}", r.stdout);
    // The digest the registry gave is the one the fix names.
    let digest = r
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(
        r.stdout.contains(&format!(
            "fix: pin it by digest: {}/team/app:1.0@{digest}",
            s.reg.host()
        )),
        "{}",
        r.stdout
    );
}
