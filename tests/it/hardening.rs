//! The gate holds: each test is named for the bypass, the leak or the wrong answer it prevents,
//! and goes through the real binary (and the real registry or HTTPS where there is one).

use rstest::rstest;
use serde_json::{Value, json};

use crate::support::webhook::{Webhook, fixture_text};
use crate::support::{run, run_stdin};

/// A Pod running `image`, as a manifest.
fn pod_manifest(image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: web}}\nspec:\n  containers:\n    - name: app\n      image: {image}\n"
    )
}

/// A CREATE review of `object` as the API server sends it for `kind` (`{group, version, kind}`).
fn review(kind: Value, object: Value) -> Value {
    let mut r: Value = serde_json::from_str(&fixture_text("pod-create.json")).unwrap();
    r["request"]["kind"] = kind;
    r["request"]["object"] = object;
    r
}

fn pod_kind() -> Value {
    json!({"group": "", "version": "v1", "kind": "Pod"})
}

fn pod_object(image: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "mathoid"},
           "spec": {"containers": [{"name": "app", "image": image}]}})
}

const NOT_DEPLOYABLE_POLICY: &str = "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec:\n  registries: [{prefix: registry.example.org}]\n  notDeployable: ['registry.example.org/team/base/**']\n";

/// Host names are case-insensitive, so a registry written in capitals is the same registry and
/// its images meet the same rules: a base image is still a base image.
#[rstest]
#[case::a_base_in_capitals(
    None,
    "Docker-Registry.Wikimedia.Org/bookworm:20240101",
    "repository-not-deployable"
)]
#[case::a_not_deployable_pattern_in_capitals(
    Some(NOT_DEPLOYABLE_POLICY),
    "REGISTRY.EXAMPLE.ORG/team/base/debian:12",
    "repository-not-deployable"
)]
fn a_registry_host_in_capitals_does_not_skip_a_rule(
    #[case] policy: Option<&str>,
    #[case] image: &str,
    #[case] rule: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["check", "-", "--format", "json"];
    let path = dir.path().join("policy.yaml");
    if let Some(p) = policy {
        std::fs::write(&path, p).unwrap();
        args.extend(["--policy", path.to_str().unwrap()]);
    }
    let r = run_stdin(&args, &pod_manifest(image));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["ruleId"] == rule && f["level"] == "deny"),
        "{v:#}"
    );
}

/// The denial message for a Pod `object` (of `kind`), from a webhook with static rules; fails
/// the test when the object is admitted.
async fn denial(kind: Value, object: Value) -> String {
    let hook = Webhook::start(&["--no-resolve"]);
    let r = hook.review("/validate", &review(kind, object)).await;
    assert_eq!(r["allowed"], false, "{r}");
    r["status"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_host_in_capitals_is_denied_at_admission() {
    let m = denial(
        pod_kind(),
        pod_object("Docker-Registry.Wikimedia.Org/bookworm:20240101"),
    )
    .await;
    assert!(m.contains("[repository-not-deployable]"), "{m}");
}

/// The approved image written first, then a merge that kubectl applies over it.
const APPROVED: &str = "docker-registry.wikimedia.org/app:1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// kubectl (go-yaml v2) applies a `<<` merge in document order, so a merge after an explicit
/// `image` replaces it: tollgate must not read the approved image where kubectl sends nginx.
#[rstest]
#[case::a_merge_after_the_image("      <<: {image: docker.io/library/nginx:1.25}\n", "")]
#[case::a_merge_list("      <<: [{image: docker.io/library/nginx:1.25}]\n", "")]
#[case::a_tagged_merge("      !!merge <<: {image: docker.io/library/nginx:1.25}\n", "")]
#[case::an_anchored_merge(
    "      <<: *evil\n",
    "x-evil: &evil {image: docker.io/library/nginx:1.25}\n"
)]
fn a_merge_key_cannot_replace_the_image_unseen(#[case] merge: &str, #[case] prefix: &str) {
    let text = format!(
        "{prefix}apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n    - name: app\n      image: {APPROVED}\n{merge}"
    );
    let r = run_stdin(&["check", "-"], &text);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("is set again by a later '<<' merge")
            || r.stderr.contains("is set again by a later '<<' merge"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
}

/// The usual idiom, a merge then an override, reads the same in every YAML reader: accepted.
#[test]
fn an_override_after_a_merge_is_read_as_written() {
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n    - <<: {{name: app, image: docker.io/library/nginx:1.25}}\n      image: {APPROVED}\n"
    );
    let r = run_stdin(&["check", "-", "--format", "json"], &text);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("nginx"), "{}", r.stdout);
}

/// kubectl strips a byte order mark; a Pod behind one is checked like any other.
#[test]
fn a_byte_order_mark_does_not_hide_the_object() {
    let text = format!("\u{feff}{}", pod_manifest("docker.io/library/nginx:1.25"));
    let r = run_stdin(&["check", "-", "--format", "json"], &text);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["summary"]["objects"], 1, "{v:#}");
}

/// yaml-rust2 reads a NUL as the end of the input: without a check, the approved image before
/// it passed and the unapproved sidecar after it was never seen. kubectl refuses control
/// characters; so does tollgate, as an input error at the NUL's line, with the next file's
/// document still checked.
#[test]
fn a_nul_byte_does_not_hide_the_rest_of_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let hidden = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n    - name: app\n      image: {APPROVED}\n\0\n    - name: sidecar\n      image: docker.io/library/nginx:1.25\n"
    );
    std::fs::write(dir.path().join("a-nul.yaml"), hidden).unwrap();
    std::fs::write(
        dir.path().join("b-next.yaml"),
        pod_manifest("docker.io/library/nginx:1.25"),
    )
    .unwrap();
    let r = run(&["check", dir.path().to_str().unwrap(), "--format", "json"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let errors = v["errors"].as_array().unwrap_or_else(|| panic!("{v:#}"));
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("control character U+0000")
                && e.to_string().contains("a-nul.yaml")
                && e["line"] == 8),
        "{v:#}"
    );
    // The next file is still checked, and its nginx is still denied.
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["location"]["file"]
                .as_str()
                .is_some_and(|file| file.ends_with("b-next.yaml"))),
        "{v:#}"
    );
}

/// A Pod's image volume pulls an OCI image as surely as a container does.
fn pod_with_image_volume(reference: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "mathoid"},
           "spec": {"containers": [{"name": "app", "image": APPROVED}],
                    "volumes": [{"name": "data", "image": {"reference": reference, "pullPolicy": "IfNotPresent"}}]}})
}

#[test]
fn an_image_volume_from_an_unapproved_registry_is_denied_by_check() {
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n    - name: app\n      image: {APPROVED}\n  volumes:\n    - name: data\n      image:\n        reference: evil.example.com/payload:1\n"
    );
    let r = run_stdin(&["check", "-", "--format", "json"], &text);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ruleId"] == "registry-not-approved")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(f["container"]["kind"], "imageVolume", "{f}");
    assert_eq!(f["location"]["pointer"], "/spec/volumes/0/image/reference");
    assert_eq!(f["location"]["line"], 11, "{f}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_volume_from_an_unapproved_registry_is_denied_at_admission() {
    let m = denial(
        pod_kind(),
        pod_with_image_volume("evil.example.com/payload:1"),
    )
    .await;
    assert!(
        m.contains("[registry-not-approved] image volume \"data\" (evil.example.com/payload:1)"),
        "{m}"
    );
}

/// Whatever the object is, it is evaluated or denied: never admitted as if it had no images.
#[rstest]
#[case::a_number(pod_kind(), json!(42), "request.object is a number")]
#[case::a_list(pod_kind(), json!([]), "request.object is a list")]
#[case::a_string(pod_kind(), json!("x"), "request.object is a string")]
#[case::an_empty_mapping(pod_kind(), json!({}), "the object is apiVersion (none) kind (none)")]
#[case::no_api_version(
    pod_kind(),
    json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "nginx"}]}}),
    "the object is apiVersion (none) kind \"Pod\""
)]
#[case::a_pod_of_another_group(
    pod_kind(),
    json!({"apiVersion": "apps/v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "nginx"}]}}),
    "request.kind says v1 Pod, but the object is apiVersion \"apps/v1\" kind \"Pod\""
)]
#[case::a_kind_without_pods(
    json!({"group": "", "version": "v1", "kind": "ConfigMap"}),
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
    "does not know where a ConfigMap keeps its images"
)]
#[tokio::test(flavor = "multi_thread")]
async fn an_object_that_is_not_what_the_request_says_is_denied(
    #[case] kind: Value,
    #[case] object: Value,
    #[case] why: &str,
) {
    let m = denial(kind, object).await;
    assert!(
        m.starts_with("tollgate cannot evaluate this CREATE: "),
        "{m}"
    );
    assert!(m.contains(why), "{m}");
}

mod network {
    //! tollgate contacts only the hosts the policy approves: a registry's redirect or Link
    //! header cannot send it, or its credentials, anywhere else.

    use crate::support::oci::{Pusher, layer};
    use crate::support::proxy::{Fault, FaultProxy, Times};
    use crate::support::registry::TestRegistry;
    use crate::support::run;

    struct Rig {
        _reg: TestRegistry,
        proxy: FaultProxy,
        /// Another origin in front of the same registry: whatever reaches it was misdirected.
        elsewhere: FaultProxy,
        dir: tempfile::TempDir,
    }

    async fn rig() -> Rig {
        let reg = TestRegistry::start();
        Pusher::new(reg.base_url())
            .image(
                "team/app",
                Some("1"),
                &[layer(&[("bin", b"x")])],
                "linux/amd64",
            )
            .await;
        let proxy = FaultProxy::start(&reg.base_url());
        let elsewhere = FaultProxy::start(&reg.base_url());
        Rig {
            _reg: reg,
            proxy,
            elsewhere,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    impl Rig {
        fn policy(&self, registry_extra: &str) -> String {
            let text = self
                .proxy
                .policy("  rules: {digest-missing: 'off', base-not-approved: 'off'}\n")
                .replace(
                    "      insecure: true\n",
                    &format!("      insecure: true\n{registry_extra}"),
                );
            let path = self.dir.path().join("policy.yaml");
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_owned()
        }

        fn redirect_manifests(&self) {
            self.proxy.inject(
                "GET",
                "/manifests/",
                Fault::Redirect {
                    status: 307,
                    location: format!("{}/v2/team/app/manifests/1", self.elsewhere.base_url()),
                },
                Times::Always,
            );
            self.proxy.inject(
                "HEAD",
                "/manifests/",
                Fault::Redirect {
                    status: 307,
                    location: format!("{}/v2/team/app/manifests/1", self.elsewhere.base_url()),
                },
                Times::Always,
            );
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_redirect_to_another_host_is_refused_and_never_followed() {
        let r = rig().await;
        r.redirect_manifests();
        let policy = r.policy("");
        let image = format!("{}/team/app:1", r.proxy.host());
        let out = run(&["verify", "--policy", &policy, "--deadline", "10s", &image]);
        assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("redirect to 127.0.0.1 refused"),
            "{}\n{}",
            out.stdout,
            out.stderr
        );
        assert_eq!(r.elsewhere.total(), 0, "{:#?}", r.elsewhere.seen());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_redirect_to_a_host_the_policy_names_is_followed() {
        let r = rig().await;
        r.redirect_manifests();
        let policy = r.policy(&format!(
            "      redirectHosts: ['{}']\n",
            r.elsewhere.host()
        ));
        let image = format!("{}/team/app:1", r.proxy.host());
        let out = run(&["verify", "--policy", &policy, "--deadline", "10s", &image]);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        assert!(r.elsewhere.total() > 0);
    }

    /// The registry's Basic credentials stay with the registry, whatever its Link header says.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_link_to_another_origin_is_not_followed_and_gets_no_credentials() {
        use base64::Engine as _;
        let r = rig().await;
        r.proxy.inject(
            "GET",
            "/v2/_catalog",
            Fault::AddHeader {
                name: "Link".into(),
                value: format!(
                    "<{}/v2/_catalog?last=team%2Fapp&n=1000>; rel=\"next\"",
                    r.elsewhere.base_url()
                ),
            },
            Times::Always,
        );
        let policy = r.policy("");
        let auth = base64::engine::general_purpose::STANDARD.encode("robot:s3cret");
        let config = r.dir.path().join("config.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
                r.proxy.host()
            ),
        )
        .unwrap();
        let out = run(&[
            "registry",
            "scan",
            &r.proxy.host(),
            "--policy",
            &policy,
            "--registry-config",
            config.to_str().unwrap(),
        ]);
        assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(all.contains("another origin"), "{all}");
        assert_eq!(r.elsewhere.total(), 0, "{:#?}", r.elsewhere.seen());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_malformed_link_header_is_not_a_crash() {
        let r = rig().await;
        r.proxy.inject(
            "GET",
            "/v2/_catalog",
            Fault::AddHeader {
                name: "Link".into(),
                value: ">x<; rel=\"next\"".into(),
            },
            Times::Always,
        );
        let policy = r.policy("");
        let out = run(&["registry", "scan", &r.proxy.host(), "--policy", &policy]);
        assert!(
            out.code == 0 || out.code == 1,
            "exit {}: {}\n{}",
            out.code,
            out.stdout,
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}

mod outage {
    //! A registry that did not answer is never a verdict on the image: for every reference
    //! form, in every command and in the webhook, it is "could not check".

    use rstest::rstest;
    use serde_json::{Value, json};

    use super::{pod_kind, review};
    use crate::support::oci::{Pusher, layer, os_release};
    use crate::support::proxy::{Fault, FaultProxy, Times};
    use crate::support::registry::TestRegistry;
    use crate::support::webhook::Webhook;
    use crate::support::{run, run_stdin};

    struct Down {
        _reg: TestRegistry,
        proxy: FaultProxy,
        digest: String,
        dir: tempfile::TempDir,
        policy: String,
    }

    /// An image in the registry, behind a proxy that now answers every request with a 503.
    async fn down() -> Down {
        let reg = TestRegistry::start();
        let pushed = Pusher::new(reg.base_url())
            .image(
                "team/app",
                Some("1"),
                &[layer(&[("a", b"1")])],
                "linux/amd64",
            )
            .await;
        let proxy = FaultProxy::start(&reg.base_url());
        for method in ["GET", "HEAD"] {
            proxy.inject(method, "/v2/", Fault::Status(503), Times::Always);
        }
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            proxy.policy("  rules: {digest-missing: 'off', digest-untagged: 'off'}\n"),
        )
        .unwrap();
        Down {
            _reg: reg,
            digest: pushed.digest,
            policy: policy.to_str().unwrap().to_owned(),
            proxy,
            dir,
        }
    }

    impl Down {
        fn image(&self, form: &str) -> String {
            let h = self.proxy.host();
            match form {
                "tag" => format!("{h}/team/app:1"),
                "digest" => format!("{h}/team/app@{}", self.digest),
                _ => format!("{h}/team/app:1@{}", self.digest),
            }
        }
    }

    #[rstest]
    #[case::a_tag("tag")]
    #[case::a_digest("digest")]
    #[case::a_tag_and_digest("tag@digest")]
    #[tokio::test(flavor = "multi_thread")]
    async fn an_outage_is_could_not_check_for_every_reference_form(#[case] form: &str) {
        let d = down().await;
        let image = d.image(form);

        let v = run(&[
            "verify",
            "--policy",
            &d.policy,
            "--format",
            "json",
            "--deadline",
            "10s",
            &image,
        ]);
        assert_eq!(v.code, 2, "verify {image}: {}\n{}", v.stdout, v.stderr);
        let doc: Value = serde_json::from_str(&v.stdout).unwrap();
        assert_eq!(doc["images"][0]["verdict"], "error", "{doc:#}");
        assert!(
            !v.stdout.contains("\"image-unavailable\""),
            "an outage is not a verdict: {doc:#}"
        );

        let manifest = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n    - name: a\n      image: {image}\n"
        );
        let c = run_stdin(
            &[
                "check",
                "-",
                "--resolve",
                "--policy",
                &d.policy,
                "--deadline",
                "10s",
            ],
            &manifest,
        );
        assert_eq!(
            c.code, 2,
            "check --resolve {image}: {}\n{}",
            c.stdout, c.stderr
        );
        assert!(!c.stdout.contains("image-unavailable"), "{}", c.stdout);

        let live = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "p", "namespace": "web"},
             "spec": {"containers": [{"name": "a", "image": image}]},
             "status": {"containerStatuses": [{"name": "a", "image": image,
                 "imageID": format!("{}/team/app@{}", d.proxy.host(), d.digest)}]}}]});
        let live_file = d.dir.path().join("live.json");
        std::fs::write(&live_file, serde_json::to_vec(&live).unwrap()).unwrap();
        let a = run(&[
            "audit",
            "--live-file",
            live_file.to_str().unwrap(),
            "--policy",
            &d.policy,
            "--format",
            "json",
            "--deadline",
            "10s",
        ]);
        assert_eq!(a.code, 2, "audit {image}: {}\n{}", a.stdout, a.stderr);
        let report: Value = serde_json::from_str(&a.stdout).unwrap();
        assert_eq!(report["summary"]["runningUnservable"], 0, "{report:#}");
        assert!(
            report["summary"]["errors"].as_u64().unwrap() >= 1,
            "{report:#}"
        );

        // The webhook admits it by default (registryUnavailable: allow), with a warning.
        let hook = Webhook::start(&["--policy", &d.policy, "--registry-deadline", "5s"]);
        let object = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "mathoid"},
            "spec": {"containers": [{"name": "a", "image": image}]}});
        let r = hook.review("/validate", &review(pod_kind(), object)).await;
        assert_eq!(r["allowed"], true, "{image}: {r}");
        assert!(
            r["warnings"].to_string().contains("could not be checked"),
            "{image}: {r}"
        );
    }

    /// A base list the registry failed to give once is asked for again, not remembered as
    /// empty: images built on the base are "could not check" in the outage, approved after it.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_base_list_is_not_remembered() {
        let reg = TestRegistry::start();
        let p = Pusher::new(reg.base_url());
        let debian = vec![layer(&[("etc/os-release", &os_release("debian"))])];
        p.image("base/debian", Some("12"), &debian, "linux/amd64")
            .await;
        let mut layers = debian.clone();
        layers.push(layer(&[("srv/app", b"app")]));
        p.image("team/app", Some("1"), &layers, "linux/amd64").await;
        let proxy = FaultProxy::start(&reg.base_url());
        let host = proxy.host();
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            proxy.policy(&format!(
                "  rules: {{digest-missing: 'off'}}\n  bases:\n    debian:\n      - repository: {host}/base/debian\n"
            )),
        )
        .unwrap();
        let policy = policy.to_str().unwrap();
        let image = format!("{host}/team/app:1");

        proxy.inject(
            "GET",
            "/base/debian/tags/list",
            Fault::Status(500),
            Times::Always,
        );
        let v = run(&["verify", "--policy", policy, "--deadline", "10s", &image]);
        assert_eq!(v.code, 2, "{}\n{}", v.stdout, v.stderr);
        assert!(!v.stdout.contains("NOT APPROVED"), "{}", v.stdout);

        proxy.clear_faults();
        proxy.inject(
            "GET",
            "/base/debian/tags/list",
            Fault::Status(500),
            Times::First(4),
        );
        let hook = Webhook::start(&["--policy", policy, "--registry-deadline", "5s"]);
        let object = |name: &str| {
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "mathoid"},
                "spec": {"containers": [{"name": "a", "image": image}]}})
        };
        let first = hook
            .review("/validate", &review(pod_kind(), object("a")))
            .await;
        assert_eq!(first["allowed"], true, "{first}");
        assert!(
            first["warnings"]
                .to_string()
                .contains("could not be checked"),
            "{first}"
        );
        let second = hook
            .review("/validate", &review(pod_kind(), object("b")))
            .await;
        assert_eq!(second["allowed"], true, "{second}");
        assert!(
            !second["warnings"].to_string().contains("base-not-approved"),
            "the base list is asked for again once the registry answers: {second}"
        );
    }
}

/// A blob HEAD without a `Content-Length` proves the blob is there, not that it has the size its
/// manifest declares: said, not passed silently.
#[tokio::test(flavor = "multi_thread")]
async fn a_blob_without_content_length_is_size_unverified() {
    use crate::support::oci::{Pusher, layer};
    use crate::support::proxy::{Fault, FaultProxy, Times};
    use crate::support::registry::TestRegistry;
    let reg = TestRegistry::start();
    let pushed = Pusher::new(reg.base_url())
        .image(
            "team/app",
            Some("1"),
            &[layer(&[("a", b"1")])],
            "linux/amd64",
        )
        .await;
    let proxy = FaultProxy::start(&reg.base_url());
    proxy.inject(
        "HEAD",
        &format!("/blobs/{}", pushed.layers[0]),
        Fault::NoContentLength,
        Times::Always,
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, proxy.policy("  rules: {digest-missing: 'off'}\n")).unwrap();
    let image = format!("{}/team/app:1", proxy.host());
    let args = |format: &'static str| {
        vec![
            "verify".to_owned(),
            "--policy".to_owned(),
            policy.to_str().unwrap().to_owned(),
            "--format".to_owned(),
            format.to_owned(),
            image.clone(),
        ]
    };
    let text_args = args("text");
    let text = crate::support::run(&text_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(text.code, 0, "{}\n{}", text.stdout, text.stderr);
    assert!(
        text.stdout
            .contains("1 of unverified size (no Content-Length)"),
        "{}",
        text.stdout
    );
    let json_args = args("json");
    let json = crate::support::run(&json_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        json.stdout.contains("\"state\": \"size-unverified\""),
        "{}",
        json.stdout
    );
}

/// A retention rule by push time cannot be simulated from the registry API: every format says
/// so, so that "0 images at risk" is never read as a clean bill.
#[rstest]
#[case::text("text", "not simulated for docker-registry.wikimedia.org/svc")]
#[case::markdown("markdown", "not simulated for docker-registry.wikimedia.org/svc")]
#[case::html("html", "not simulated for docker-registry.wikimedia.org/svc")]
#[case::json(
    "json",
    "\"retentionNotSimulated\": [\n      \"docker-registry.wikimedia.org/svc\""
)]
fn a_retention_rule_by_push_time_is_said_to_be_not_simulated(
    #[case] format: &str,
    #[case] expected: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        tollgate::policy::DEFAULT_POLICY.replace(
            "  exemptions: []",
            "  exemptions: []\n  retention:\n    - repositories: ['docker-registry.wikimedia.org/**']\n      keep: 5\n      orderBy: pushTime",
        ),
    )
    .unwrap();
    let image = "docker-registry.wikimedia.org/svc:1.0";
    let live = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "web"},
         "spec": {"containers": [{"name": "a", "image": image}]}}]});
    let live_file = dir.path().join("live.json");
    std::fs::write(&live_file, serde_json::to_vec(&live).unwrap()).unwrap();
    let r = crate::support::run(&[
        "audit",
        "--live-file",
        live_file.to_str().unwrap(),
        "--no-resolve",
        "--policy",
        policy.to_str().unwrap(),
        "--format",
        format,
    ]);
    assert_ne!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(expected), "{}", r.stdout);
}

/// A FIFO named like a manifest inside a checked directory is said, not skipped silently.
#[test]
fn a_fifo_in_a_checked_directory_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), pod_manifest(APPROVED)).unwrap();
    let fifo = dir.path().join("b.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo (coreutils) runs");
    assert!(made.success());
    let r = run_stdin(&["check", dir.path().to_str().unwrap()], "");
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("not a regular file"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
}

/// A billion laughs by bytes: few nodes, gigabytes once expanded. Refused with a clear error
/// before the expansion is built.
#[test]
fn an_alias_bomb_by_bytes_is_refused() {
    let big = "x".repeat(1 << 20);
    let hundred = vec!["*a"; 100].join(", ");
    let thirty = vec!["*b"; 30].join(", ");
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata:\n  a: &a \"{big}\"\n  b: &b [{hundred}]\n  c: [{thirty}]\n"
    );
    let r = run_stdin(&["check", "-"], &text);
    assert_eq!(
        r.code,
        2,
        "{}\n{}",
        &r.stdout[..r.stdout.len().min(2000)],
        r.stderr
    );
    assert!(
        r.stdout.contains("refused as an alias bomb"),
        "{}",
        &r.stdout[..r.stdout.len().min(2000)]
    );
}

mod connections {
    //! A connection that finishes the TLS handshake and never speaks cannot hold the server.

    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::AsyncReadExt as _;
    use tokio::net::TcpStream;

    use super::{APPROVED, pod_kind, pod_object, review};
    use crate::support::webhook::Webhook;

    /// A TLS connection to the webhook that completes the handshake and sends nothing.
    async fn silent(hook: &Webhook, alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(hook.pki.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![alpn.to_vec()];
        let tcp = TcpStream::connect(hook.addr).await.unwrap();
        let name = ServerName::try_from(crate::support::webhook::SERVICE).unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .unwrap()
    }

    /// Whether the server closes `conn` (a read ends) within `limit`.
    async fn closed_within(
        conn: &mut tokio_rustls::client::TlsStream<TcpStream>,
        limit: Duration,
    ) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match tokio::time::timeout(limit, conn.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                // HTTP/2's server preface and settings: read on.
                Ok(Ok(_)) => continue,
            }
        }
    }

    #[rstest::rstest]
    #[case::http1(b"http/1.1".as_slice())]
    #[case::http2(b"h2".as_slice())]
    #[tokio::test(flavor = "multi_thread")]
    async fn a_connection_that_never_sends_a_request_is_closed(#[case] alpn: &[u8]) {
        let hook = Webhook::start(&["--no-resolve", "--first-request-timeout", "1s"]);
        let mut conn = silent(&hook, alpn).await;
        // The bound is far above the 1 s timeout: it only tells "closed" from "held open".
        assert!(closed_within(&mut conn, Duration::from_secs(30)).await);
    }

    /// `curl --http1.0` offers only `http/1.0` by ALPN: it gets an answer, not a TLS alert.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_client_offering_only_http_1_0_is_answered() {
        use tokio::io::AsyncWriteExt as _;
        let hook = Webhook::start(&["--no-resolve"]);
        let mut conn = silent(&hook, b"http/1.0").await;
        conn.write_all(b"GET /healthz HTTP/1.0\r\nHost: tollgate\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer).await;
        assert!(answer.starts_with("HTTP/1."), "{answer}");
        assert!(answer.contains(" 200 "), "{answer}");
        assert!(answer.ends_with("ok\n"), "{answer}");
    }

    /// Slow bodies cannot hold the server's memory: past the budget of bytes in flight, a new
    /// request is answered 503 at once, and answered again once the slow one is gone.
    #[tokio::test(flavor = "multi_thread")]
    async fn request_bodies_in_flight_are_bounded_by_a_budget() {
        use tokio::io::AsyncWriteExt as _;
        let hook = Webhook::start(&[
            "--no-resolve",
            "--max-body-bytes",
            "1048576",
            "--max-inflight-body-bytes",
            "1048576",
        ]);
        let mut slow = silent(&hook, b"http/1.1").await;
        slow.write_all(
            b"POST /validate HTTP/1.1\r\nHost: tollgate\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{\"apiVersion\":",
        )
        .await
        .unwrap();
        slow.flush().await.unwrap();
        let body = serde_json::to_vec(&review(pod_kind(), pod_object(APPROVED))).unwrap();
        let mut status = 0;
        for _ in 0..50 {
            status = hook.post("/validate", body.clone()).await.0;
            if status == 503 {
                break;
            }
            // The slow request may not have reached the server yet.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, 503, "{}", hook.logs());
        drop(slow);
        let mut answered = false;
        for _ in 0..50 {
            if hook.post("/validate", body.clone()).await.0 == 200 {
                answered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(answered, "{}", hook.logs());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn at_the_connection_cap_the_idle_connection_makes_room() {
        let hook = Webhook::start(&["--no-resolve", "--max-connections", "2"]);
        let mut first = silent(&hook, b"http/1.1").await;
        let _second = silent(&hook, b"http/1.1").await;
        // A third client still gets its answer; the connection idle the longest is shed.
        let r = hook
            .review("/validate", &review(pod_kind(), pod_object(APPROVED)))
            .await;
        assert_eq!(r["allowed"], true, "{r}");
        assert!(closed_within(&mut first, Duration::from_secs(30)).await);
    }
}

/// One review cannot take every registry slot: past the per-review cap, images are answered as
/// the policy says for a registry that cannot answer, without a walk.
#[tokio::test(flavor = "multi_thread")]
async fn a_review_naming_too_many_images_is_answered_without_walking_them_all() {
    use crate::support::oci::{Pusher, layer};
    use crate::support::registry::TestRegistry;
    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    let host = reg.host();
    let mut containers = Vec::new();
    for i in 0..40 {
        p.image(
            "team/app",
            Some(&format!("t{i}")),
            &[layer(&[("a", b"1")])],
            "linux/amd64",
        )
        .await;
        containers.push(json!({"name": format!("c{i}"), "image": format!("{host}/team/app:t{i}")}));
    }
    let object = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "mathoid"}, "spec": {"containers": containers}});
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.yaml");
    let policy = reg.policy("  rules: {digest-missing: 'off'}\n");
    std::fs::write(&allow, &policy).unwrap();
    let deny = dir.path().join("deny.yaml");
    std::fs::write(
        &deny,
        format!("{policy}  registryUnavailable: {{image-unavailable: deny}}\n"),
    )
    .unwrap();

    let hook = Webhook::start(&[
        "--policy",
        allow.to_str().unwrap(),
        "--registry-deadline",
        "10s",
    ]);
    let r = hook
        .review("/validate", &review(pod_kind(), object.clone()))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("names 40 distinct images, more than the 32 tollgate walks"),
        "{r}"
    );

    let strict = Webhook::start(&[
        "--policy",
        deny.to_str().unwrap(),
        "--registry-deadline",
        "10s",
    ]);
    let r = strict
        .review("/validate", &review(pod_kind(), object))
        .await;
    assert_eq!(r["allowed"], false, "{r}");
}

mod nothing_passes_silently {
    //! An input that holds no Kubernetes object (a failed `helm template` upstream), or a
    //! document that is not one, is reported in every format, and `--require-objects` (or
    //! `manifests.requireObjects`) makes it an input error.

    use rstest::rstest;
    use serde_json::Value;

    use crate::support::git::{GOOD, GitRepo, deployment};
    use crate::support::{run, run_stdin};

    /// What each format shows of a finding, to find the rule in it.
    #[rstest]
    #[case::text("text", "no-objects")]
    #[case::json("json", "\"no-objects\"")]
    #[case::sarif("sarif", "\"ruleId\": \"no-objects\"")]
    #[case::junit("junit", "no-objects")]
    #[case::github("github", "no-objects")]
    fn an_empty_stream_is_reported_in_every_format(#[case] format: &str, #[case] shown: &str) {
        let r = run_stdin(
            &["check", "-", "--format", format],
            "# helm template failed\n",
        );
        assert_eq!(
            r.code, 0,
            "a warning by default\n{}\n{}",
            r.stdout, r.stderr
        );
        assert!(r.stdout.contains(shown), "{format}:\n{}", r.stdout);
        let r = run_stdin(
            &["check", "-", "--format", format, "--require-objects"],
            "# helm template failed\n",
        );
        assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains("no Kubernetes object"),
            "{format}:\n{}",
            r.stdout
        );
    }

    #[test]
    fn a_mapping_without_api_version_or_kind_is_reported_at_its_line() {
        let text = format!(
            "{}---\nspec:\n  containers: [{{name: a, image: nginx}}]\n---\n- just a list\n",
            super::pod_manifest(GOOD)
        );
        let r = run_stdin(&["check", "-", "--format", "json"], &text);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        let found: Vec<(&str, u64)> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["ruleId"].as_str().unwrap(),
                    f["location"]["line"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(found, vec![("not-an-object", 9), ("not-an-object", 12)]);
        let r = run_stdin(&["check", "-", "--require-objects"], &text);
        assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stdout
                .contains("<stdin>:9: this document is not a Kubernetes object: it has no apiVersion and no kind"),
            "{}",
            r.stdout
        );
    }

    #[test]
    fn a_policy_can_make_an_empty_input_a_denial_or_silence_it() {
        let dir = tempfile::tempdir().unwrap();
        let policy = |level: &str| {
            let p = dir.path().join(format!("{level}.yaml"));
            std::fs::write(
                &p,
                format!("apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {{name: t}}\nspec:\n  rules: {{no-objects: {level}}}\n  registries: [{{prefix: registry.example.org}}]\n"),
            )
            .unwrap();
            p
        };
        let deny = policy("deny");
        let r = run_stdin(&["check", "-", "--policy", deny.to_str().unwrap()], "");
        assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
        let off = policy("off");
        let r = run_stdin(&["check", "-", "--policy", off.to_str().unwrap()], "");
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        assert!(!r.stdout.contains("no-objects"), "{}", r.stdout);
    }

    /// The pipeline switch lives in the repository, so a change cannot drop it unseen: an
    /// emptied manifest fails `ci` as an input error.
    #[test]
    fn require_objects_in_the_repository_config_fails_ci_on_an_emptied_manifest() {
        let work = GitRepo::init();
        work.write(
            ".tollgate.yaml",
            "apiVersion: tollgate.dev/v1alpha1\nkind: RepoConfig\nmanifests:\n  requireObjects: true\n",
        );
        work.write("apps/api.yaml", &deployment("api", GOOD));
        work.commit("api");
        work.git(&["checkout", "-q", "-b", "change"]);
        work.write("apps/api.yaml", "# rendered by a step that failed\n");
        work.commit("empty the manifest");
        let repo = work.path.to_str().unwrap();
        let r = run(&["ci", "--base", "main", "--repo", repo]);
        assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stdout
                .contains("apps/api.yaml: no Kubernetes object here"),
            "{}",
            r.stdout
        );
        // Without the switch, the same change is a warning.
        work.git(&["checkout", "-q", "main"]);
        work.write(
            ".tollgate.yaml",
            "apiVersion: tollgate.dev/v1alpha1\nkind: RepoConfig\n",
        );
        work.commit("no switch");
        work.git(&["checkout", "-q", "change"]);
        work.git(&["rebase", "-q", "main"]);
        let r = run(&["ci", "--base", "main", "--repo", repo]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("no-objects"), "{}", r.stdout);
        let r = run(&["ci", "--base", "main", "--repo", repo, "--require-objects"]);
        assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    }
}

mod streaming {
    //! Documents are parsed, checked and dropped one at a time: memory follows the largest
    //! document, not the file.

    use std::io::Write as _;

    use serde_json::Value;

    use crate::support::run_measured;

    /// Before streaming, 1,000,000 such documents (9 MB) peaked at 958 MiB; 300,000 took
    /// about 290 MiB. Streamed, the process stays near its idle size (about 30 MiB).
    #[test]
    fn many_tiny_documents_are_checked_in_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.yaml");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..300_000 {
            if i == 150_000 {
                write!(f, "---\n{}", super::pod_manifest("nginx:latest")).unwrap();
            }
            f.write_all(b"---\na: 1\n").unwrap();
        }
        f.flush().unwrap();
        drop(f);
        let (r, max_rss_kib) = run_measured(&["check", "-", "--format", "json"], &path);
        assert_eq!(r.code, 1, "{}", r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        let rules: Vec<&str> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["ruleId"].as_str().unwrap())
            .collect();
        assert!(rules.contains(&"tag-latest"), "{rules:?}");
        // Capped: the first 20 and one that counts the rest.
        assert_eq!(rules.iter().filter(|r| **r == "not-an-object").count(), 21);
        let pod_line = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["ruleId"] == "tag-latest")
            .unwrap()["location"]["line"]
            .as_u64()
            .unwrap();
        assert_eq!(pod_line, 300_000 + 8, "line numbers survive streaming");
        assert!(
            max_rss_kib < 128 * 1024,
            "peak memory {max_rss_kib} KiB for a 2.7 MB stream of tiny documents"
        );
    }

    /// A line longer than any document may be is read through, not held: the document is
    /// refused as too big, and the next document still counts. Before streaming, this 80 MiB
    /// input peaked at 321 MiB; now the bound is the 64 MiB document limit (the line buffer
    /// grows to it, by doubling) and the process, about 170 MiB, whatever the line's length.
    #[test]
    fn a_document_over_the_limit_is_refused_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.yaml");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        f.write_all(b"k: \"").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..80 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\"\n---\n").unwrap();
        f.write_all(super::pod_manifest("nginx:latest").as_bytes())
            .unwrap();
        f.flush().unwrap();
        drop(f);
        let (r, max_rss_kib) = run_measured(&["check", "-"], &path);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(
            r.stdout
                .contains("<stdin>:1:1: not valid YAML: this document is over 64 MiB"),
            "{}",
            &r.stdout[..r.stdout.len().min(3000)]
        );
        assert!(r.stdout.contains("tag-latest"), "{}", r.stdout);
        assert!(
            max_rss_kib < 240 * 1024,
            "peak memory {max_rss_kib} KiB for an 80 MiB line"
        );
    }
}

/// One image's walk sends at most `--max-walk-requests` registry requests: an index whose
/// children need more is stopped there and is "could not check" in every command that walks,
/// never a verdict on the image (a hostile manifest can list thousands of layers).
#[tokio::test(flavor = "multi_thread")]
async fn a_walk_past_its_request_budget_is_could_not_check_in_every_command() {
    use crate::support::oci::{Pusher, layer};
    use crate::support::registry::TestRegistry;
    use crate::support::run;
    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    let mut children = Vec::new();
    for arch in ["amd64", "arm64", "s390x"] {
        let layers = [
            layer(&[("a", arch.as_bytes())]),
            layer(&[("b", arch.as_bytes())]),
        ];
        let platform = format!("linux/{arch}");
        children.push((
            p.image("team/app", None, &layers, &platform).await,
            platform,
        ));
    }
    let children: Vec<_> = children.iter().map(|(c, p)| (c, p.as_str())).collect();
    p.index("team/app", "1", &children, false).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, reg.policy("  rules: {digest-missing: 'off'}\n")).unwrap();
    let policy = policy.to_str().unwrap();
    let image = format!("{}/team/app:1", reg.host());

    // The tag, the index, then a manifest, a config and two layers per child: 14 requests.
    let whole = run(&["verify", "--policy", policy, "--format", "json", &image]);
    assert_eq!(whole.code, 0, "{}\n{}", whole.stdout, whole.stderr);
    let doc: Value = serde_json::from_str(&whole.stdout).unwrap();
    assert_eq!(doc["images"][0]["resolution"]["requests"], 14, "{doc:#}");

    let limit = "10";
    let named = |out: &str| out.contains("needed more than 10 registry requests");
    let v = run(&[
        "verify",
        "--policy",
        policy,
        "--format",
        "json",
        "--max-walk-requests",
        limit,
        &image,
    ]);
    assert_eq!(v.code, 2, "verify: {}\n{}", v.stdout, v.stderr);
    let doc: Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!(doc["images"][0]["verdict"], "error", "{doc:#}");
    assert!(named(&v.stdout), "{doc:#}");
    assert!(!v.stdout.contains("\"image-unavailable\""), "{doc:#}");

    let c = run_stdin(
        &[
            "check",
            "-",
            "--resolve",
            "--policy",
            policy,
            "--max-walk-requests",
            limit,
        ],
        &pod_manifest(&image),
    );
    assert_eq!(c.code, 2, "check --resolve: {}\n{}", c.stdout, c.stderr);
    assert!(
        named(&format!("{}{}", c.stdout, c.stderr)),
        "{}{}",
        c.stdout,
        c.stderr
    );
    assert!(!c.stdout.contains("image-unavailable"), "{}", c.stdout);

    let live = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "web"},
         "spec": {"containers": [{"name": "a", "image": image}]}}]});
    let live_file = dir.path().join("live.json");
    std::fs::write(&live_file, serde_json::to_vec(&live).unwrap()).unwrap();
    let a = run(&[
        "audit",
        "--live-file",
        live_file.to_str().unwrap(),
        "--policy",
        policy,
        "--format",
        "json",
        "--max-walk-requests",
        limit,
    ]);
    assert_eq!(a.code, 2, "audit: {}\n{}", a.stdout, a.stderr);
    let report: Value = serde_json::from_str(&a.stdout).unwrap();
    assert_eq!(report["summary"]["runningUnservable"], 0, "{report:#}");
    assert!(named(&a.stdout), "{report:#}");

    let s = run(&[
        "registry",
        "scan",
        &reg.host(),
        "--policy",
        policy,
        "--format",
        "json",
        "--max-walk-requests",
        limit,
    ]);
    assert_eq!(s.code, 2, "scan: {}\n{}", s.stdout, s.stderr);
    let scanned: Value = serde_json::from_str(&s.stdout).unwrap();
    assert_eq!(
        scanned["broken"].as_array().unwrap().len(),
        0,
        "{scanned:#}"
    );
    assert!(named(&s.stdout), "{scanned:#}");

    let hook = Webhook::start(&[
        "--policy",
        policy,
        "--registry-deadline",
        "10s",
        "--max-walk-requests",
        limit,
    ]);
    let r = hook
        .review("/validate", &review(pod_kind(), pod_object(&image)))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("could not be checked") && named(&warnings),
        "{r}"
    );
}

/// One namespace flooding the webhook with images on a slow registry holds at most half of that
/// registry's request slots: another namespace's healthy image on the same registry is still
/// walked and answered (its digest resolved), even where `registryUnavailable` denies.
#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_flooding_a_slow_registry_cannot_take_another_namespaces_answer() {
    use std::sync::Arc;
    use std::time::Duration;

    use base64::Engine as _;

    use crate::support::oci::{Pusher, layer};
    use crate::support::proxy::{Fault, FaultProxy, Times};
    use crate::support::registry::TestRegistry;
    use crate::support::webhook::eventually;

    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    let mut digests = Vec::new();
    for tag in ["1", "2"] {
        let layers = [layer(&[("a", tag.as_bytes())])];
        digests.push(
            p.image("team/app", Some(tag), &layers, "linux/amd64")
                .await
                .digest,
        );
    }
    // The flood's repositories answer after longer than anyone waits: every request for them
    // holds its slot until the client gives up.
    let proxy = FaultProxy::start(&reg.base_url());
    proxy.inject(
        "HEAD",
        "/v2/flood/",
        Fault::Delay(Duration::from_secs(50)),
        Times::Always,
    );
    let host = proxy.host();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        proxy.policy(
            "  rules: {digest-missing: 'off'}\n  registryUnavailable: {image-unavailable: deny}\n",
        ),
    )
    .unwrap();
    let hook = Arc::new(Webhook::start(&[
        "--policy",
        policy.to_str().unwrap(),
        "--registry-deadline",
        "5s",
        "--mutate",
    ]));
    let in_namespace = |namespace: &str, images: Vec<String>| {
        let containers: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect();
        let mut r = review(
            pod_kind(),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "p", "namespace": namespace},
                   "spec": {"containers": containers}}),
        );
        r["request"]["namespace"] = json!(namespace);
        r
    };

    let mut flood = Vec::new();
    for n in 0..4 {
        let images = (0..32)
            .map(|i| format!("{host}/flood/app{n}-{i}:1"))
            .collect();
        let (hook, r) = (hook.clone(), in_namespace("flood", images));
        flood.push(tokio::spawn(
            async move { hook.review("/validate", &r).await },
        ));
    }
    eventually(
        "the flood holds registry slots",
        Duration::from_secs(30),
        || std::future::ready(proxy.count("HEAD", "/v2/flood/") >= 4),
    )
    .await;
    // Whatever more of the flood would start has started.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let validated = hook
        .review(
            "/validate",
            &in_namespace("web", vec![format!("{host}/team/app:1")]),
        )
        .await;
    assert_eq!(validated["allowed"], true, "{validated}");
    assert!(
        !validated["warnings"]
            .to_string()
            .contains("could not be checked"),
        "{validated}"
    );
    let image = format!("{host}/team/app:2");
    let mutated = hook
        .review("/mutate", &in_namespace("web", vec![image.clone()]))
        .await;
    let patch: Vec<u8> = match &mutated["patch"] {
        Value::String(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
        other => serde_json::from_value(other.clone()).unwrap_or_default(),
    };
    let patch = String::from_utf8(patch).unwrap();
    assert!(
        patch.contains(&format!("{image}@{}", digests[1])),
        "the digest is resolved during the flood: {mutated} {patch}"
    );

    for f in flood {
        let r = f.await.unwrap();
        assert_eq!(
            r["allowed"], false,
            "the flood's own images are unavailable: {r}"
        );
    }
}
