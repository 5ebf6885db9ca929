//! The base-image rule (Debian-based or approved distroless) through `tollgate verify`,
//! against a real registry holding real base and service images.

use serde_json::Value;

use crate::support::oci::{Layer, Pusher, layer, os_release};
use crate::support::registry::{TestRegistry, policy_file};
use crate::support::run;

struct World {
    reg: TestRegistry,
    _dir: tempfile::TempDir,
    policy: String,
    p: Pusher,
    debian: Vec<Layer>,
    distroless: Vec<Layer>,
}

/// A registry with an approved Debian base (`base/debian:12.5`) and an approved distroless base
/// (`base/distroless-static:nonroot`, no os-release, as real distroless images are built).
async fn world() -> World {
    let reg = TestRegistry::start();
    let host = reg.host();
    let (dir, policy) = policy_file(
        &reg,
        &format!(
            "  rules:\n    digest-missing: 'off'\n  bases:\n    debian:\n      - repository: {host}/base/debian\n        tags: ['12*']\n    distroless:\n      - repository: {host}/base/distroless-static\n"
        ),
    );
    let p = Pusher::new(reg.base_url());
    let debian = vec![layer(&[
        ("etc/os-release", &os_release("debian")),
        ("bin/sh", b"sh"),
    ])];
    let distroless = vec![layer(&[
        ("etc/passwd", b"nonroot:x:65532"),
        ("tmp/.keep", b""),
    ])];
    p.image("base/debian", Some("12.5"), &debian, "linux/amd64")
        .await;
    p.image(
        "base/distroless-static",
        Some("nonroot"),
        &distroless,
        "linux/amd64",
    )
    .await;
    World {
        reg,
        _dir: dir,
        policy,
        p,
        debian,
        distroless,
    }
}

fn verify_json(w: &World, image: &str) -> (i32, Value) {
    let r = run(&["verify", "--policy", &w.policy, "--format", "json", image]);
    assert!(r.code != 2, "{}{}", r.stdout, r.stderr);
    (r.code, serde_json::from_str(&r.stdout).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_built_from_the_debian_base_is_approved_by_lineage() {
    let w = world().await;
    let mut layers = w.debian.clone();
    layers.push(layer(&[("srv/app", b"service")]));
    w.p.image("svc/app", Some("1.0"), &layers, "linux/amd64")
        .await;
    let (code, v) = verify_json(&w, &format!("{}/svc/app:1.0", w.reg.host()));
    assert_eq!(code, 0, "{v:#}");
    let b = &v["images"][0]["bases"][0];
    assert_eq!(b["approved"], true);
    assert_eq!(b["method"], "lineage");
    assert_eq!(b["family"], "debian");
    assert_eq!(b["base"], format!("{}/base/debian:12.5", w.reg.host()));
    assert_eq!(
        b["labelHint"], "claimed-by-label",
        "the label is reported, as a hint"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_distroless_image_is_recognised_by_its_lineage() {
    let w = world().await;
    let mut layers = w.distroless.clone();
    layers.push(layer(&[("app", b"static binary")]));
    w.p.image("svc/static", Some("2"), &layers, "linux/amd64")
        .await;
    let (code, v) = verify_json(&w, &format!("{}/svc/static:2", w.reg.host()));
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["images"][0]["bases"][0]["family"], "distroless");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_debian_image_not_from_an_approved_base_is_approved_by_its_os_release() {
    let w = world().await;
    let own = vec![
        layer(&[("etc/os-release", &os_release("debian"))]),
        layer(&[("srv/app", b"x")]),
    ];
    w.p.image("svc/own", Some("1"), &own, "linux/amd64").await;
    let (code, v) = verify_json(&w, &format!("{}/svc/own:1", w.reg.host()));
    assert_eq!(code, 0, "{v:#}");
    let b = &v["images"][0]["bases"][0];
    assert_eq!(b["method"], "os-release");
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .starts_with("etc/os-release in layer sha256:"),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alpine_image_is_refused_even_when_its_label_claims_debian() {
    let w = world().await;
    let alpine = vec![
        layer(&[("etc/os-release", &os_release("alpine"))]),
        layer(&[("srv/app", b"x")]),
    ];
    w.p.image("svc/alpine", Some("1"), &alpine, "linux/amd64")
        .await;
    let (code, v) = verify_json(&w, &format!("{}/svc/alpine:1", w.reg.host()));
    assert_eq!(code, 1, "{v:#}");
    let f = v["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ruleId"] == "base-not-approved")
        .unwrap()
        .clone();
    assert_eq!(f["level"], "deny");
    let msg = f["message"].as_str().unwrap();
    assert!(msg.contains("ID=alpine"), "{msg}");
    assert!(
        msg.contains("label claims base claimed-by-label, which is not evidence"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whiteout_of_os_release_leaves_the_base_undecided() {
    let w = world().await;
    let layers = vec![
        layer(&[("etc/os-release", &os_release("debian"))]),
        layer(&[("etc/.wh.os-release", b"")]),
    ];
    w.p.image("svc/hidden", Some("1"), &layers, "linux/amd64")
        .await;
    let (code, v) = verify_json(&w, &format!("{}/svc/hidden:1", w.reg.host()));
    assert_eq!(code, 1);
    let b = &v["images"][0]["bases"][0];
    assert_eq!(b["method"], "undecided");
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains("deletes etc/os-release"),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_platform_is_judged_and_the_failing_one_is_named() {
    let w = world().await;
    let mut good = w.debian.clone();
    good.push(layer(&[("bin/app", b"amd64")]));
    let amd = w.p.image("svc/multi", None, &good, "linux/amd64").await;
    let arm =
        w.p.image(
            "svc/multi",
            None,
            &[layer(&[("etc/os-release", &os_release("alpine"))])],
            "linux/arm64",
        )
        .await;
    w.p.index(
        "svc/multi",
        "3",
        &[(&amd, "linux/amd64"), (&arm, "linux/arm64")],
        true,
    )
    .await;
    let (code, v) = verify_json(&w, &format!("{}/svc/multi:3", w.reg.host()));
    assert_eq!(code, 1);
    let bases = v["images"][0]["bases"].as_array().unwrap();
    assert_eq!(bases.len(), 2, "the attestation is not judged");
    let f = v["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ruleId"] == "base-not-approved")
        .unwrap()
        .clone();
    assert!(
        f["message"].as_str().unwrap().contains("linux/arm64: "),
        "{f}"
    );
    assert!(
        !f["message"].as_str().unwrap().contains("linux/amd64: "),
        "{f}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_base_tag_outside_the_approved_patterns_does_not_count() {
    let w = world().await;
    let eleven = vec![layer(&[
        ("etc/os-release", &os_release("alpine")),
        ("v", b"11"),
    ])];
    w.p.image("base/debian", Some("11.9"), &eleven, "linux/amd64")
        .await;
    let mut layers = eleven.clone();
    layers.push(layer(&[("srv/app", b"x")]));
    w.p.image("svc/old", Some("1"), &layers, "linux/amd64")
        .await;
    let (code, v) = verify_json(&w, &format!("{}/svc/old:1", w.reg.host()));
    assert_eq!(
        code, 1,
        "base/debian:11.9 is not approved (tags: 12*): {v:#}"
    );
    assert_eq!(v["images"][0]["bases"][0]["method"], "os-release");
}
