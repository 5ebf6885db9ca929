//! `tollgate serve`, the admission webhook, through real HTTPS: the real binary with certificates
//! made at test time, a rustls client that verifies the CA and the service name, AdmissionReviews
//! shaped like the API server's (tests/fixtures/admission), and a real registry where the
//! registry-backed rules need one.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use rstest::rstest;
use serde_json::{Value, json};

use crate::support;
use crate::support::oci::{Pusher, layer};
use crate::support::proxy::{Fault, FaultProxy, Times};
use crate::support::registry::TestRegistry;
use crate::support::tools;
use crate::support::webhook::{Webhook, client_for, eventually, fixture, fixture_text};

/// The compliant image the fixtures' first container runs (default policy: approved registry,
/// tag and digest).
const GOOD: &str = "docker-registry.wikimedia.org/wikimedia/mediawiki-services-mathoid:2024-05-21-120000-production@sha256:4761a40351e0598c591e755816a298e6c204a15f6838c28442196636571f3df0";
/// The unchanged legacy image of deployment-update.json.
const LEGACY: &str = "docker-registry.wikimedia.org/legacy/citoid:latest";
const WAIT: Duration = Duration::from_secs(20);

/// The sidecar and init images of the Pod fixtures.
const SIDECAR: &str = "docker-registry.wikimedia.org/envoy:1.23.10-3@sha256:84532b306f259587c364bd7301e0813963d5b84fd27c9338f0862dab8f0499d7";
const INIT: &str = "docker-registry.wikimedia.org/httpd-fcgi:2.4.62-2@sha256:655f5c6e972034a839b54712cb61c52ae099fca7ac10d402bf5fc096e0ef9e9e";

/// pod-create.json with every container running `image`.
pub(crate) fn pod_running(image: &str) -> Value {
    let text = fixture_text("pod-create.json")
        .replace(GOOD, image)
        .replace(SIDECAR, image)
        .replace(INIT, image);
    serde_json::from_str(&text).unwrap()
}

/// A fixture with its first container's image (and every other use of it) replaced.
pub(crate) fn with_image(name: &str, image: &str) -> Value {
    let text = fixture_text(name);
    assert!(text.contains(GOOD), "{name} runs {GOOD}");
    serde_json::from_str(&text.replace(GOOD, image)).unwrap()
}

pub(crate) fn warnings(response: &Value) -> Vec<String> {
    response["warnings"]
        .as_array()
        .map(|w| w.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn message(response: &Value) -> String {
    response["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[rstest]
#[case::pod("pod-create.json", "Pod mathoid/mathoid-main-7d9c6b8f5d-*")]
#[case::deployment("deployment-create.json", "Deployment mathoid/mathoid-main")]
#[case::replicaset("replicaset-create.json", "ReplicaSet mathoid/mathoid-main")]
#[case::statefulset("statefulset-create.json", "StatefulSet mathoid/mathoid-main")]
#[case::daemonset("daemonset-create.json", "DaemonSet mathoid/mathoid-main")]
#[case::job("job-create.json", "Job mathoid/mathoid-main")]
#[case::cronjob("cronjob-create.json", "CronJob mathoid/mathoid-main")]
#[case::replicationcontroller(
    "replicationcontroller-create.json",
    "ReplicationController mathoid/mathoid-main"
)]
#[case::podtemplate("podtemplate-create.json", "PodTemplate mathoid/mathoid-main")]
#[tokio::test(flavor = "multi_thread")]
async fn every_pod_bearing_kind_is_evaluated_on_create(#[case] file: &str, #[case] object: &str) {
    let hook = Webhook::start(&["--no-resolve"]);

    let ok = hook.review("/validate", &fixture(file)).await;
    assert_eq!(ok["allowed"], true, "{ok}");
    assert!(warnings(&ok).is_empty(), "{ok}");

    let bad = with_image(file, "nginx:latest");
    let denied = hook.review("/validate", &bad).await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(denied["status"]["code"], 403);
    let m = message(&denied);
    assert!(
        m.starts_with(&format!(
            "tollgate denied {object}: 2 policy violations (policy wikimedia-production)\n"
        )),
        "{m}"
    );
    assert!(
        m.contains("\n- [registry-not-approved] container \"mathoid\" (nginx:latest): registry docker.io is not approved\n  fix: push the image to an approved registry"),
        "{m}"
    );
    assert!(
        m.contains("\n- [tag-latest] container \"mathoid\" (nginx:latest): nginx:latest uses the tag `latest`"),
        "{m}"
    );
    // digest-missing is a warning, not a violation.
    assert!(
        warnings(&denied)
            .iter()
            .any(|w| w
                .starts_with("tollgate: [digest-missing] container \"mathoid\" (nginx:latest)")),
        "{denied}"
    );

    let d = hook.decisions_at_least(2);
    assert_eq!(d.len(), 2, "{}", hook.logs());
    assert_eq!(d[1]["decision"], "deny");
    assert_eq!(
        d[1]["rules"],
        "registry-not-approved,tag-latest,digest-missing"
    );
    assert_eq!(d[1]["uid"], bad["request"]["uid"]);
    assert_eq!(d[1]["namespace"], "mathoid");
    assert_eq!(d[1]["operation"], "CREATE");
    assert!(d[1]["duration_ms"].as_f64().is_some());
    // No whole objects in the log.
    assert!(!hook.logs().contains("SERVICE_VAR_0"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_warns_about_unchanged_images_and_enforces_changed_ones() {
    let hook = Webhook::start(&["--no-resolve"]);
    // Scaling a legacy Deployment whose image breaks today's policy: admitted, with warnings.
    let scale = fixture("deployment-update.json");
    let r = hook.review("/validate", &scale).await;
    assert_eq!(r["allowed"], true, "{r}");
    let w = warnings(&r);
    assert!(
        w.iter().any(|w| w.contains("[tag-latest]")
            && w.contains("the image is unchanged by this UPDATE, so it is not enforced")),
        "{w:#?}"
    );

    // The same UPDATE that also changes the image is enforced.
    let mut changed = scale.clone();
    changed["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("docker.io/library/citoid:2");
    let r = hook.review("/validate", &changed).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        message(&r)
            .contains("[registry-not-approved] container \"mathoid\" (docker.io/library/citoid:2)")
    );

    // --unchanged-images enforce: the scale-up is denied too.
    let strict = Webhook::start(&["--no-resolve", "--unchanged-images", "enforce"]);
    let r = strict.review("/validate", &scale).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(message(&r).contains(&format!("[tag-latest] container \"mathoid\" ({LEGACY})")));
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_ephemeral_containers_delete_and_connect() {
    let hook = Webhook::start(&["--no-resolve"]);

    // dryRun is evaluated like any other request.
    let dry = with_image("deployment-create-dryrun.json", "nginx:latest");
    assert_eq!(dry["request"]["dryRun"], true);
    let r = hook.review("/validate", &dry).await;
    assert_eq!(r["allowed"], false, "{r}");

    // kubectl debug: the ephemeral container is checked; the running ones are fine.
    let r = hook
        .review("/validate", &fixture("pod-ephemeralcontainers.json"))
        .await;
    assert_eq!(r["allowed"], false, "{r}");
    let m = message(&r);
    assert!(
        m.contains(
            "- [registry-not-approved] ephemeral container \"debugger-8kq2z\" (busybox:latest)"
        ),
        "{m}"
    );
    assert!(!m.contains("container \"mathoid\""), "{m}");

    // DELETE and CONNECT cannot start a container: admitted without evaluation.
    for file in ["pod-delete.json", "pod-connect-exec.json"] {
        let r = hook.review("/validate", &fixture(file)).await;
        assert_eq!(r["allowed"], true, "{file}: {r}");
        assert!(
            r["auditAnnotations"]["not-evaluated"]
                .as_str()
                .unwrap()
                .contains("is not evaluated")
        );
    }

    let d = hook.decisions_at_least(4);
    let summary: Vec<(String, String, bool)> = d
        .iter()
        .map(|l| {
            (
                l["operation"].as_str().unwrap().to_owned(),
                l["decision"].as_str().unwrap().to_owned(),
                l["dry_run"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("CREATE".into(), "deny".into(), true),
            ("UPDATE".into(), "deny".into(), false),
            ("DELETE".into(), "skip".into(), false),
            ("CONNECT".into(), "skip".into(), false),
        ]
    );
    assert_eq!(d[1]["subresource"], "ephemeralcontainers");
    let m = hook.metrics().await;
    assert!(m.contains("tollgate_admission_requests_total{webhook=\"validate\",operation=\"DELETE\",kind=\"Pod\",decision=\"skip\"} 1"), "{m}");
    assert!(m.contains("tollgate_admission_requests_total{webhook=\"validate\",operation=\"CONNECT\",kind=\"other\",decision=\"skip\"} 1"), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn exempt_namespaces_and_policy_exemptions_are_used_logged_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "{}\n    - namespaces: [mathoid]\n      images: [docker.io/library/*]\n      rules: [registry-not-approved]\n      reason: upstream nginx during the migration (T1234)\n",
            tollgate::policy::DEFAULT_POLICY.replace("  exemptions: []", "  exemptions:")
        ),
    )
    .unwrap();
    let hook = Webhook::start_env(
        &["--no-resolve", "--policy", policy.to_str().unwrap()],
        &[("POD_NAMESPACE", "tollgate")],
    );
    let bad = with_image("pod-create.json", "nginx:latest");
    for ns in ["kube-system", "tollgate"] {
        let mut r = bad.clone();
        r["request"]["namespace"] = json!(ns);
        let resp = hook.review("/validate", &r).await;
        assert_eq!(resp["allowed"], true, "{ns}: {resp}");
        assert_eq!(
            resp["auditAnnotations"]["not-evaluated"],
            format!("namespace {ns} is exempt")
        );
    }
    // In mathoid, the exemption covers the registry, not the tag.
    let resp = hook.review("/validate", &bad).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    let m = message(&resp);
    assert!(
        m.contains("[tag-latest]") && !m.contains("[registry-not-approved]"),
        "{m}"
    );
    assert!(
        resp["auditAnnotations"]["exempted-registry-not-approved"]
            .as_str()
            .unwrap()
            .contains("upstream nginx during the migration (T1234)"),
        "{resp}"
    );

    let d = hook.decisions_at_least(3);
    assert_eq!(d[0]["decision"], "exempt");
    assert_eq!(d[1]["namespace"], "tollgate");
    assert!(
        d[2]["exemptions"]
            .as_str()
            .unwrap()
            .starts_with("registry-not-approved@"),
        "{}",
        d[2]
    );
    let m = hook.metrics().await;
    assert!(
        m.contains("tollgate_exemptions_used_total{source=\"namespace\",rule=\"all\"} 2"),
        "{m}"
    );
    assert!(
        m.contains(
            "tollgate_exemptions_used_total{source=\"policy\",rule=\"registry-not-approved\"} 1"
        ),
        "{m}"
    );
    assert!(
        m.contains("tollgate_findings_total{rule=\"tag-latest\",level=\"deny\"} 1"),
        "{m}"
    );
}

#[rstest]
#[case::too_large(vec![b' '; 100_000], 413, "the request body is larger than 65536 bytes")]
#[case::empty(Vec::new(), 400, "the body is not JSON")]
#[case::not_json(b"<AdmissionReview/>".to_vec(), 400, "the body is not JSON")]
#[case::cut_short(fixture_text("pod-create.json").as_bytes()[..500].to_vec(), 400, "the body is not JSON")]
#[case::json_but_not_a_review(b"{\"hello\": [1, 2]}".to_vec(), 400, "expected apiVersion \"admission.k8s.io/v1\" and kind \"AdmissionReview\", got apiVersion (none)")]
#[case::v1beta1(fixture_text("pod-create.json").replacen("admission.k8s.io/v1", "admission.k8s.io/v1beta1", 1).into_bytes(), 400, "got apiVersion \"admission.k8s.io/v1beta1\"")]
#[case::wrong_kind(fixture_text("pod-create.json").replacen("\"AdmissionReview\"", "\"AdmissionRequest\"", 1).into_bytes(), 400, "and kind \"AdmissionRequest\"")]
#[case::missing_request(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), 400, "the AdmissionReview has no request")]
#[case::request_without_uid(fixture_text("pod-create.json").replacen("\"uid\"", "\"id\"", 1).into_bytes(), 400, "request: missing field `uid`")]
#[case::unknown_operation(fixture_text("pod-create.json").replacen("\"CREATE\"", "\"PATCH\"", 1).into_bytes(), 400, "request.operation: unknown variant `PATCH`")]
#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_an_http_error_that_says_why(
    #[case] body: Vec<u8>,
    #[case] status: u16,
    #[case] expected: &str,
) {
    let hook = Webhook::start(&["--no-resolve", "--max-body-bytes", "65536"]);
    let (got, text) = hook.post("/validate", body).await;
    assert_eq!(got, status, "{text}");
    assert!(text.contains(expected), "{text}");
    // Not an AdmissionReview: never an `allowed`, and counted.
    assert!(!text.contains("allowed"));
    let m = hook.metrics().await;
    assert!(
        m.contains("tollgate_admission_invalid_requests_total{reason="),
        "{m}"
    );
    assert!(
        m.contains("tollgate_admission_requests_total{webhook=\"validate\",operation=\"unknown\",kind=\"unknown\",decision=\"error\"} 1"),
        "{m}"
    );
    // The server is still there.
    let ok = hook.review("/validate", &fixture("pod-create.json")).await;
    assert_eq!(ok["allowed"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_tls_and_metrics() {
    let hook = Webhook::start(&["--no-resolve"]);
    assert_eq!(hook.get("/healthz").await, (200, "ok\n".to_owned()));
    let (status, ready) = hook.get("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(ready, "ready (policy wikimedia-production)\n");
    assert_eq!(hook.get("/validate").await.0, 405);
    assert_eq!(hook.get("/nothing").await.0, 404);
    // Without --mutate there is no mutating webhook.
    assert_eq!(
        hook.post(
            "/mutate",
            serde_json::to_vec(&fixture("pod-create.json")).unwrap()
        )
        .await
        .0,
        404
    );

    // HTTP/2 through ALPN, and HTTP/1.1 for a client that offers only that.
    let r = hook
        .client()
        .post(hook.url("/validate"))
        .body(serde_json::to_vec(&fixture("pod-create.json")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status().as_u16(), 200);
    let h1 = reqwest::Client::builder()
        .tls_backend_preconfigured({
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pki_types::pem::PemObject::pem_slice_iter(hook.pki.ca_pem.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
        })
        .resolve(support::webhook::SERVICE, hook.addr)
        .build()
        .unwrap();
    let r = h1.get(hook.url("/healthz")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11, "TLS 1.2, no ALPN");
    assert_eq!(r.status().as_u16(), 200);

    // The certificate names the service: a client expecting another name refuses it.
    let other = client_for(&hook.pki.ca_pem, "tollgate.other.svc", hook.addr);
    let e = other
        .get(format!(
            "https://tollgate.other.svc:{}/healthz",
            hook.addr.port()
        ))
        .send()
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("NotValidForName"), "{e:?}");

    let m = hook.metrics().await;
    for name in [
        "# TYPE tollgate_admission_requests_total counter",
        "tollgate_admission_requests_total{webhook=\"validate\",operation=\"CREATE\",kind=\"Pod\",decision=\"allow\"} 1",
        "# TYPE tollgate_admission_duration_seconds histogram",
        "tollgate_admission_duration_seconds_bucket{le=\"0.0005\",webhook=\"validate\"}",
        "tollgate_registry_cache_total{result=\"hit\"} 0",
        "tollgate_registry_unavailable_total{reason=\"timeout\"} 0",
        "tollgate_policy_reloads_total{result=\"failure\"} 0",
        "tollgate_certificate_reloads_total{result=\"success\"} 0",
        "# TYPE tollgate_certificate_expiry_seconds gauge",
    ] {
        assert!(m.contains(name), "{name} missing:\n{m}");
    }
    let expires = hook.metric("tollgate_certificate_expiry_seconds").await;
    assert!(expires > 86_400.0, "{expires}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_certificate_is_served_to_new_connections_and_old_ones_keep_working() {
    let hook = Webhook::start(&["--no-resolve"]);
    let peer_cert = |r: &reqwest::Response| {
        r.extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|t| t.peer_certificate())
            .map(<[u8]>::to_vec)
            .unwrap()
    };
    let old_client = hook.client();
    let first = old_client.get(hook.url("/healthz")).send().await.unwrap();
    let old_cert = peer_cert(&first);
    first.text().await.unwrap();

    let (cert, key) = hook.pki.serving();
    let (cert_path, key_path) = hook.cert_paths();
    // cert-manager's secret volume swaps both files at once; write them the same way.
    let (cert_new, key_new) = (
        cert_path.with_extension("crt.new"),
        key_path.with_extension("key.new"),
    );
    std::fs::write(&cert_new, &cert).unwrap();
    std::fs::write(&key_new, &key).unwrap();
    std::fs::rename(&key_new, &key_path).unwrap();
    std::fs::rename(&cert_new, &cert_path).unwrap();
    let new_der = rustls_pki_types::pem::PemObject::from_pem_slice(cert.as_bytes())
        .map(|c: rustls_pki_types::CertificateDer<'_>| c.to_vec())
        .unwrap();

    eventually(
        "a new connection gets the new certificate",
        WAIT,
        || async {
            let r = hook
                .client()
                .get(hook.url("/healthz"))
                .send()
                .await
                .unwrap();
            peer_cert(&r) == new_der
        },
    )
    .await;
    // The connection opened before the rotation is still the same one, and still works.
    let again = old_client
        .post(hook.url("/validate"))
        .body(serde_json::to_vec(&fixture("pod-create.json")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        peer_cert(&again),
        old_cert,
        "same connection, old certificate"
    );
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(
        hook.metric("tollgate_certificate_reloads_total{result=\"success\"}")
            .await,
        1.0
    );

    // A key that does not match is refused, and the new certificate stays.
    let (_, other_key) = hook.pki.serving();
    std::fs::write(&key_path, other_key).unwrap();
    eventually("the bad key is counted", WAIT, || async {
        hook.metric("tollgate_certificate_reloads_total{result=\"failure\"}")
            .await
            == 1.0
    })
    .await;
    let r = hook
        .client()
        .get(hook.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(peer_cert(&r), new_der);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_policy_is_applied_and_an_invalid_one_rejected() {
    // Mounted like a ConfigMap: policy.yaml -> ..data/policy.yaml, ..data -> a versioned
    // directory, and an update swaps the ..data link.
    let dir = tempfile::tempdir().unwrap();
    let mount = |version: &str, text: &str| {
        let v = dir.path().join(version);
        std::fs::create_dir(&v).unwrap();
        std::fs::write(v.join("policy.yaml"), text).unwrap();
        let tmp = dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(version, &tmp).unwrap();
        std::fs::rename(&tmp, dir.path().join("..data")).unwrap();
    };
    let strict = tollgate::policy::DEFAULT_POLICY.to_owned();
    mount("..v1", &strict);
    let policy = dir.path().join("policy.yaml");
    std::os::unix::fs::symlink("..data/policy.yaml", &policy).unwrap();
    let hook = Webhook::start(&["--no-resolve", "--policy", policy.to_str().unwrap()]);

    let latest = with_image(
        "pod-create.json",
        &GOOD.replace(":2024-05-21-120000-production@", ":latest@"),
    );
    assert_eq!(hook.review("/validate", &latest).await["allowed"], false);

    mount(
        "..v2",
        &strict.replace("    tag-latest: deny", "    tag-latest: warn"),
    );
    eventually("the relaxed policy is applied", WAIT, || async {
        hook.review("/validate", &latest).await["allowed"] == true
    })
    .await;
    assert_eq!(
        hook.metric("tollgate_policy_reloads_total{result=\"success\"}")
            .await,
        1.0
    );

    // A policy with a mistake is rejected; the one in force stays.
    mount(
        "..v3",
        &strict.replace("    tag-latest: deny", "    tag-latest: block"),
    );
    eventually("the invalid policy is counted", WAIT, || async {
        hook.metric("tollgate_policy_reloads_total{result=\"failure\"}")
            .await
            == 1.0
    })
    .await;
    let r = hook.review("/validate", &latest).await;
    assert_eq!(r["allowed"], true, "the previous policy stays in force");
    // The log line travels through the server's stderr, so it may arrive after the metric.
    let rejected = || {
        hook.log_lines().into_iter().find(|l| {
            l["fields"]["message"]
                == "the new policy is rejected; the previous policy stays in force"
        })
    };
    eventually("the rejection is logged", WAIT, || async {
        rejected().is_some()
    })
    .await;
    let logged = rejected().unwrap_or_else(|| panic!("{}", hook.logs()));
    let e = logged["fields"]["error"].as_str().unwrap();
    assert!(
        e.contains("policy.yaml:")
            && e.contains("level \"block\" is not one of deny, warn, audit, off"),
        "{e}"
    );
}

/// A registry behind a fault-injecting proxy, holding `svc/app:1.0`; returns the image's
/// digest.
async fn registry_with_image() -> (TestRegistry, FaultProxy, String) {
    let reg = TestRegistry::start();
    let pushed = Pusher::new(reg.base_url())
        .image(
            "svc/app",
            Some("1.0"),
            &[layer(&[("a", b"1")])],
            "linux/amd64",
        )
        .await;
    let proxy = FaultProxy::start(&reg.base_url());
    (reg, proxy, pushed.digest)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_stops_answering_gets_a_decision_before_the_deadline() {
    let (mut reg, proxy, digest) = registry_with_image().await;
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.yaml");
    std::fs::write(&allow, proxy.policy("")).unwrap();
    let deny = dir.path().join("deny.yaml");
    std::fs::write(
        &deny,
        proxy.policy("  registryUnavailable:\n    image-unavailable: deny\n"),
    )
    .unwrap();
    // The deadline is a few seconds, well above a walk on loopback and above the client's
    // retries against an unreachable registry (which must end as an error, not a timeout).
    let args = |policy: &std::path::Path| {
        vec![
            "--registry-deadline".to_owned(),
            "3s".to_owned(),
            "--policy".to_owned(),
            policy.to_str().unwrap().to_owned(),
        ]
    };
    let allow_args = args(&allow);
    let hook = Webhook::start(&allow_args.iter().map(String::as_str).collect::<Vec<_>>());
    let deny_args = args(&deny);
    let strict = Webhook::start(&deny_args.iter().map(String::as_str).collect::<Vec<_>>());
    let host = proxy.host();

    // While the registry answers: checked end to end, nothing to report.
    let pinned = pod_running(&format!("{host}/svc/app:1.0@{digest}"));
    let r = hook.review("/validate", &pinned).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(warnings(&r).is_empty(), "{:#?}", warnings(&r));

    // The registry stalls (never answers): the decision comes at the deadline. Both servers
    // wait it out at the same time.
    proxy.inject("HEAD", "/v2/svc/stalled/", Fault::Stall, Times::Always);
    proxy.inject("GET", "/v2/svc/stalled/", Fault::Stall, Times::Always);
    let stalled = pod_running(&format!("{host}/svc/stalled:1.0@{digest}"));
    let (r, strict_r) = tokio::join!(
        hook.review("/validate", &stalled),
        strict.review("/validate", &stalled)
    );
    assert_eq!(r["allowed"], true, "allow with a warning by default: {r}");
    let w = warnings(&r);
    assert!(
        w.iter().any(
            |w| w.starts_with("tollgate: [image-unavailable] container \"mathoid\"")
                && w.contains(
                    "the registry did not answer within 3 s (--registry-deadline); admitted anyway"
                )
        ),
        "{w:#?}"
    );
    let r = strict_r;
    assert_eq!(r["allowed"], false, "the policy says deny: {r}");
    assert!(
        message(&r).contains("- [image-unavailable] container \"mathoid\""),
        "{r}"
    );
    assert!(message(&r).contains("denied: the policy requires it (spec.registryUnavailable)"));
    // tag-moved keeps its warn level: it only ever warns.
    assert!(warnings(&r).iter().any(|w| w.contains("[tag-moved]")));

    // The registry goes away: the proxy answers 502, the client gives up after its retries.
    reg.stop();
    let gone = pod_running(&format!("{host}/svc/gone:1.0@{digest}"));
    let r = hook.review("/validate", &gone).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(
        warnings(&r)
            .iter()
            .any(|w| w.contains("[image-unavailable]") && w.contains("could not be checked")),
        "{r}"
    );
    let m = hook.metrics().await;
    assert!(
        m.contains("tollgate_registry_unavailable_total{reason=\"timeout\"} 1"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "tollgate_registry_errors_total{{registry=\"{host}\"}}"
        )),
        "{m}"
    );
    assert!(hook.decisions_at_least(2)[1]["registry_unavailable"] == 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn mutate_pins_pod_tags_to_the_digest_the_registry_serves() {
    let reg = TestRegistry::start();
    let pushed = Pusher::new(reg.base_url())
        .image(
            "team/app",
            Some("1.0"),
            &[layer(&[("a", b"1")])],
            "linux/amd64",
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, reg.policy("")).unwrap();
    let hook = Webhook::start(&["--mutate", "--policy", policy.to_str().unwrap()]);
    let host = reg.host();
    let tagged = format!("{host}/team/app:1.0");

    let pod = with_image("pod-create.json", &tagged);
    let r = hook.review("/mutate", &pod).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["patchType"], "JSONPatch", "{r}");
    let bytes: Vec<u8> = match &r["patch"] {
        Value::String(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
        other => serde_json::from_value(other.clone()).unwrap(),
    };
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(patch.0.len(), 1, "only the tag-only image: {patch}");
    let mut object = pod["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).unwrap();
    assert_eq!(
        object["spec"]["containers"][0]["image"],
        format!("{tagged}@{}", pushed.digest)
    );
    // Everything else is as it was.
    let mut expected = pod["request"]["object"].clone();
    expected["spec"]["containers"][0]["image"] = object["spec"]["containers"][0]["image"].clone();
    assert_eq!(object, expected);

    // Deployments are not mutated by default (GitOps controllers would fight it).
    let r = hook
        .review("/mutate", &with_image("deployment-create.json", &tagged))
        .await;
    assert_eq!(r["allowed"], true);
    assert!(r.get("patch").is_none(), "{r}");

    // /validate, with a warm cache: the hint names the digest, and the walk was a cache hit.
    let r = hook.review("/validate", &pod).await;
    assert!(
        warnings(&r)
            .iter()
            .any(|w| w.contains(&format!(
                "[digest-missing] container \"mathoid\" ({tagged})"
            )) && w.contains(&format!("pin it by digest: {tagged}@{}", pushed.digest))),
        "{r}"
    );
    let m = hook.metrics().await;
    assert!(
        m.contains("tollgate_registry_cache_total{result=\"hit\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("tollgate_registry_cache_total{result=\"miss\"} 1"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "tollgate_registry_requests_total{{registry=\"{host}\"}}"
        )),
        "{m}"
    );
    assert!(m.contains("tollgate_admission_requests_total{webhook=\"mutate\",operation=\"CREATE\",kind=\"Pod\",decision=\"patch\"} 1"), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_before_exiting() {
    let (_reg, proxy, digest) = registry_with_image().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, proxy.policy("")).unwrap();
    let mut hook = Webhook::start(&[
        "--registry-deadline",
        "10s",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    // The registry is slow (but within the deadline) for this image's tag.
    proxy.inject(
        "HEAD",
        "/v2/svc/app/manifests/1.0",
        Fault::Delay(Duration::from_secs(2)),
        Times::Always,
    );
    let review = pod_running(&format!("{}/svc/app:1.0@{digest}", proxy.host()));
    let client = hook.client();
    let url = hook.url("/validate");
    let body = serde_json::to_vec(&review).unwrap();
    let in_flight = tokio::spawn(async move {
        let r = client.post(url).body(body).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    eventually("the request is waiting on the registry", WAIT, || async {
        proxy.count("HEAD", "/v2/svc/app/manifests/1.0") > 0
    })
    .await;
    hook.terminate();

    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["response"]["allowed"], true, "{v}");
    assert!(
        !warnings(&v["response"])
            .iter()
            .any(|w| w.contains("could not be checked")),
        "the walk finished after SIGTERM: {v}"
    );
    let status = hook.wait(WAIT).expect("tollgate exits after draining");
    assert_eq!(status.code(), Some(0), "{}", hook.logs());
    let logs = hook.logs();
    assert!(
        logs.contains("shutting down: no new connections, draining in-flight requests"),
        "{logs}"
    );
    assert!(std::net::TcpStream::connect(hook.addr).is_err());
}

/// The periodic audit (`--audit-interval`) against the stand-in API server: gauges on /metrics.
/// The stand-in's pods run a base image directly, which the default policy denies.
#[tokio::test(flavor = "multi_thread")]
async fn the_periodic_audit_exports_gauges_on_the_metrics_port() {
    let api = support::kube_api::FakeApiServer::start(Default::default()).await;
    let hook = Webhook::start(&[
        "--no-resolve",
        "--audit-interval",
        "1s",
        "--audit-kubeconfig",
        api.kubeconfig.to_str().unwrap(),
    ]);
    eventually("a successful audit run", WAIT, || async {
        hook.metric("tollgate_audit_runs_total{result=\"success\"}")
            .await
            >= 1.0
    })
    .await;
    let m = hook.metrics().await;
    // Four distinct images, none pinned by digest; one of them a base image run directly.
    for sample in [
        "tollgate_audit_images 4",
        "tollgate_audit_findings{rule=\"repository-not-deployable\",level=\"deny\"} 1",
        "tollgate_audit_findings{rule=\"digest-missing\",level=\"warn\"} 4",
    ] {
        assert!(m.contains(sample), "{sample} missing:\n{m}");
    }
    for sample in [
        "tollgate_audit_runs_total{result=\"failure\"} 0",
        // --no-resolve: nothing is walked, so no registry-backed finding.
        "tollgate_audit_running_unservable_images 0",
        "tollgate_audit_rollback_targets_unservable_images 0",
        "tollgate_audit_declared_unservable_images 0",
        "tollgate_audit_retention_risk_images 0",
        "# TYPE tollgate_audit_last_success_timestamp_seconds gauge",
    ] {
        assert!(m.contains(sample), "{sample} missing:\n{m}");
    }
    let last = hook
        .metric("tollgate_audit_last_success_timestamp_seconds")
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last).abs() < 120.0, "{last} vs {now}");
    assert!(
        api.requests().iter().any(|r| r.contains("/pods")),
        "{:?}",
        api.requests()
    );
    // Admission is served as before.
    let response = hook.review("/validate", &fixture("pod-create.json")).await;
    assert_eq!(response["allowed"], true, "{response}");

    // The API server goes away: runs fail, and the gauges keep the last successful run's values.
    drop(api);
    let failures = || async {
        hook.metric("tollgate_audit_runs_total{result=\"failure\"}")
            .await
    };
    eventually("a failed audit run", WAIT, || async {
        failures().await >= 1.0
    })
    .await;
    let last = hook
        .metric("tollgate_audit_last_success_timestamp_seconds")
        .await;
    let failed = failures().await;
    eventually("another failed audit run", WAIT, || async {
        failures().await > failed
    })
    .await;
    assert_eq!(hook.metric("tollgate_audit_images").await, 4.0);
    assert_eq!(
        hook.metric("tollgate_audit_findings{rule=\"repository-not-deployable\",level=\"deny\"}")
            .await,
        1.0
    );
    assert_eq!(
        hook.metric("tollgate_audit_last_success_timestamp_seconds")
            .await,
        last
    );
}

/// Without the periodic audit there are no audit metrics at all.
#[tokio::test(flavor = "multi_thread")]
async fn without_audit_interval_there_are_no_audit_metrics() {
    let hook = Webhook::start(&["--no-resolve"]);
    let m = hook.metrics().await;
    assert!(!m.contains("tollgate_audit"), "{m}");
}

/// An API server that does not answer: failed runs are counted and logged, the gauges stay
/// absent of a success, and admission answers all the same.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_periodic_audit_is_counted_and_admission_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: viewer\n  user: {{}}\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: viewer\ncurrent-context: gone\n"
        ),
    )
    .unwrap();
    let hook = Webhook::start(&[
        "--no-resolve",
        "--audit-interval",
        "1s",
        "--audit-kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    eventually("two failed audit runs", WAIT, || async {
        hook.metric("tollgate_audit_runs_total{result=\"failure\"}")
            .await
            >= 2.0
    })
    .await;
    assert_eq!(
        hook.metric("tollgate_audit_runs_total{result=\"success\"}")
            .await,
        0.0
    );
    assert_eq!(
        hook.metric("tollgate_audit_last_success_timestamp_seconds")
            .await,
        0.0
    );
    let response = hook.review("/validate", &fixture("pod-create.json")).await;
    assert_eq!(response["allowed"], true, "{response}");
    let warnings: Vec<Value> = hook
        .log_lines()
        .into_iter()
        .filter(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("audit run failed"))
        })
        .collect();
    assert!(!warnings.is_empty(), "{}", hook.logs());
    assert!(
        warnings.iter().all(|w| w["fields"]["error"].is_string()),
        "{warnings:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_periodic_audit_with_a_deploy_repo_exports_commits_not_rolled_out() {
    use crate::support::git::{GitRepo, GitRun, git_command};
    // The stand-in cluster runs builds-api 0.0.130; the deploy repo says 0.0.131 since 3 h.
    let repo = GitRepo::init();
    let manifest = |tag: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: builds-api, namespace: builds-api}}\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: docker-registry.wikimedia.org/toolforge/builds-api:{tag}\n"
        )
    };
    for (tag, hours) in [("0.0.130", 48i64), ("0.0.131", 3)] {
        repo.write("builds-api.yaml", &manifest(tag));
        repo.git(&["add", "-A"]);
        let date = format!(
            "@{} +0000",
            jiff::Timestamp::now().as_second() - hours * 3600
        );
        let out = GitRun::from(
            git_command(&repo.path)
                .args(["commit", "-q", "-m", &format!("builds-api {tag}")])
                .env("GIT_AUTHOR_DATE", &date)
                .env("GIT_COMMITTER_DATE", &date)
                .output()
                .unwrap(),
        );
        assert!(out.ok, "{}", out.stderr);
    }
    let api = support::kube_api::FakeApiServer::start(Default::default()).await;
    let hook = Webhook::start(&[
        "--no-resolve",
        "--audit-interval",
        "1s",
        "--audit-kubeconfig",
        api.kubeconfig.to_str().unwrap(),
        "--audit-repo",
        repo.path.to_str().unwrap(),
        "--audit-branch",
        "main",
    ]);
    eventually("a successful audit run", WAIT, || async {
        hook.metric("tollgate_audit_runs_total{result=\"success\"}")
            .await
            >= 1.0
    })
    .await;
    assert_eq!(
        hook.metric("tollgate_audit_not_rolled_out_commits").await,
        1.0
    );
    let age = hook
        .metric("tollgate_audit_oldest_not_rolled_out_age_seconds")
        .await;
    assert!(
        (3.0 * 3600.0 - 120.0..3.0 * 3600.0 + 120.0).contains(&age),
        "{age}"
    );
}

/// What Prometheus sends by default: OpenMetrics first, the text format as a fallback.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `/metrics` after admissions (validating and mutating, a registry walk, a request that is
/// not an AdmissionReview), a successful periodic audit that writes OpenReports Reports, and a
/// catalog recording:
/// `promtool check metrics` (Debian's
/// prometheus) finds nothing to say about the text format, which every client but one asking
/// for OpenMetrics gets; that one gets OpenMetrics, the same samples.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool_after_admissions_walks_and_an_audit_and_honour_accept() {
    let promtool = tools::debian("/usr/bin/promtool", "prometheus");
    let reg = TestRegistry::start();
    Pusher::new(reg.base_url())
        .image(
            "team/app",
            Some("1.0"),
            &[layer(&[("a", b"1")])],
            "linux/amd64",
        )
        .await;
    let api = support::kube_api::FakeApiServer::start(Default::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, reg.policy("")).unwrap();
    // And a catalog the cluster is recorded into (tollgate_catalog_*).
    let catalog = format!("sqlite:{}", dir.path().join("catalog.db").display());
    let migrated = crate::support::run(&["catalog", "migrate", "--catalog", &catalog]);
    assert_eq!(migrated.code, 0, "{}", migrated.stderr);
    let hook = Webhook::start(&[
        "--mutate",
        "--policy",
        policy.to_str().unwrap(),
        "--audit-interval",
        "1s",
        "--audit-kubeconfig",
        api.kubeconfig.to_str().unwrap(),
        "--audit-reports",
        "--catalog",
        &catalog,
        "--cluster-name",
        "test",
        "--catalog-record-interval",
        "1s",
    ]);
    let pod = with_image("pod-create.json", &format!("{}/team/app:1.0", reg.host()));
    hook.review("/validate", &pod).await;
    hook.review("/mutate", &pod).await;
    hook.review("/validate", &fixture("pod-create.json")).await;
    assert_eq!(hook.post("/validate", "not json").await.0, 400);
    eventually("a successful audit run", WAIT, || async {
        hook.metric("tollgate_audit_runs_total{result=\"success\"}")
            .await
            >= 1.0
    })
    .await;
    eventually("a successful catalog recording", WAIT, || async {
        hook.metric("tollgate_catalog_records_total{result=\"success\"}")
            .await
            >= 1.0
    })
    .await;

    let (content_type, text) = hook.metrics_as("*/*").await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    // The set covers what it says: admissions, the registry, the audit.
    for sample in [
        "tollgate_admission_requests_total{webhook=\"mutate\"",
        "tollgate_admission_invalid_requests_total{",
        "tollgate_registry_requests_total{registry=",
        "tollgate_registry_request_duration_seconds_bucket{",
        "tollgate_audit_images ",
        "tollgate_audit_report_writes_total{operation=\"apply\",result=\"success\"} ",
        "tollgate_catalog_record_duration_seconds_bucket{",
        "tollgate_catalog_record_rows_total{change=\"opened\"} ",
        "tollgate_catalog_record_last_success_timestamp_seconds ",
        "# HELP tollgate_admission_requests_total ",
    ] {
        assert!(text.contains(sample), "{sample} missing:\n{text}");
    }
    let mut check = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    {
        use std::io::Write as _;
        let mut stdin = check.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let out = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}):\n{said}\n{text}",
        out.status
    );

    let (content_type, om) = hook.metrics_as(PROMETHEUS_ACCEPT).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE tollgate_admission_requests counter\n"));
    assert!(om.contains("# UNIT tollgate_admission_duration_seconds seconds\n"));
    let (content_type, _) = hook.metrics_as("text/plain;version=0.0.4").await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
}

/// docs/webhook.md's quickstart, as written there but on a port the OS picks: `certs
/// generate`, `serve` (its startup line on stderr, nothing on stdout), and curl with
/// `--resolve` sending examples/admission/pod-create.json.
#[test]
fn the_quickstart_in_the_docs_works_as_written() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    assert!(
        Command::new("curl").arg("--version").output().is_ok(),
        "curl is not installed; run tests/run.sh, or `apt-get install curl`"
    );
    let doc = include_str!("../../docs/webhook.md");
    assert!(doc.contains("--resolve tollgate.tollgate.svc:8443:127.0.0.1"));
    assert!(doc.contains("--data @examples/admission/pod-create.json"));
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path().to_str().unwrap();
    let r = crate::support::run(&[
        "certs",
        "generate",
        "--service",
        "tollgate",
        "--namespace",
        "tollgate",
        "--out",
        dir,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut serve = Command::new("timeout")
        .args(["-k", "5", "120"])
        .arg(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "serve",
            "--tls-cert",
            &format!("{dir}/tls.crt"),
            "--tls-key",
        ])
        .arg(format!("{dir}/tls.key"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--no-resolve",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("TOLLGATE_POLICY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(serve.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let port = line
        .strip_prefix("tollgate serve: listening on https://127.0.0.1:")
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("the startup line is on stderr: {line:?}"))
        .to_owned();
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--cacert",
            &format!("{dir}/ca.crt"),
        ])
        .args([
            "--resolve",
            &format!("tollgate.tollgate.svc:{port}:127.0.0.1"),
        ])
        .args(["-H", "Content-Type: application/json"])
        .args(["--data", "@examples/admission/pod-create.json"])
        .arg(format!("https://tollgate.tollgate.svc:{port}/validate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    // SIGTERM to `timeout`, which passes it on to the server (a SIGKILL would orphan it).
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let _ = serve.wait();
    let mut stdout = String::new();
    serve
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(stdout.is_empty(), "serve printed on stdout: {stdout}");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let response = &answer["response"];
    assert_eq!(response["uid"], "0b4c7f0e-7d9c-4f3a-9a57-1e2d3c4b5a69");
    assert_eq!(response["allowed"], false, "{answer}");
    let message = response["status"]["message"].as_str().unwrap();
    for expected in ["nginx:latest", "registry-not-approved", "tag-latest"] {
        assert!(message.contains(expected), "{message}");
    }
    assert!(
        !message.contains("mathoid"),
        "the approved image passes: {message}"
    );
}

/// A Report tollgate wrote for a workload that is gone, and one another tool wrote.
fn seeded_reports() -> Vec<Value> {
    let report = |name: &str, labels: Value| {
        json!({"apiVersion": "openreports.io/v1alpha1", "kind": "Report",
            "metadata": {"name": name, "namespace": "builds-api", "labels": labels,
                "uid": "0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d", "resourceVersion": "48213001"},
            "source": "other", "summary": {"pass": 1, "fail": 0, "warn": 0, "error": 0, "skip": 0},
            "results": []})
    };
    vec![
        report(
            "tollgate-deployment-removed",
            json!({"app.kubernetes.io/managed-by": "tollgate"}),
        ),
        report(
            "kyverno-builds-api",
            json!({"app.kubernetes.io/managed-by": "kyverno"}),
        ),
    ]
}

/// `serve --audit-reports` against the stand-in API server: one Report per workload applied by
/// server-side apply (PATCH application/apply-patch+yaml, fieldManager=tollgate, force=true),
/// the tollgate-managed Report of a workload that is gone deleted, another tool's left alone.
#[tokio::test(flavor = "multi_thread")]
async fn the_periodic_audit_applies_openreports_and_deletes_the_stale_ones() {
    let api = support::kube_api::FakeApiServer::start(support::kube_api::Behaviour {
        reports: seeded_reports(),
        ..Default::default()
    })
    .await;
    let hook = Webhook::start(&[
        "--no-resolve",
        "--audit-interval",
        "1s",
        "--audit-kubeconfig",
        api.kubeconfig.to_str().unwrap(),
        "--audit-reports",
        "--report-max-results",
        "4",
    ]);
    let applied = "tollgate_audit_report_writes_total{operation=\"apply\",result=\"success\"}";
    let deleted = "tollgate_audit_report_writes_total{operation=\"delete\",result=\"success\"}";
    eventually("a run that applied and deleted", WAIT, || async {
        hook.metric(applied).await >= 2.0 && hook.metric(deleted).await >= 1.0
    })
    .await;
    let m = hook.metrics().await;
    for sample in [
        "tollgate_audit_report_writes_total{operation=\"apply\",result=\"failure\"} 0",
        "tollgate_audit_report_writes_total{operation=\"delete\",result=\"failure\"} 0",
    ] {
        assert!(m.contains(sample), "{sample} missing:\n{m}");
    }
    let writes = api.writes();
    let patches: Vec<&support::kube_api::Write> =
        writes.iter().filter(|w| w.method == "PATCH").collect();
    let first_run: Vec<&str> = patches
        .iter()
        .take(2)
        .map(|w| w.uri.split('?').next().unwrap())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        first_run,
        vec![
            "/apis/openreports.io/v1alpha1/namespaces/builds-api/reports/tollgate-deployment-builds-api",
            "/apis/openreports.io/v1alpha1/namespaces/monitoring/reports/tollgate-daemonset-node-exporter",
        ]
    );
    for w in &patches {
        assert_eq!(
            w.content_type.as_deref(),
            Some("application/apply-patch+yaml"),
            "{w:?}"
        );
        assert_eq!(
            w.query.get("fieldManager").map(String::as_str),
            Some("tollgate"),
            "{w:?}"
        );
        assert_eq!(
            w.query.get("force").map(String::as_str),
            Some("true"),
            "{w:?}"
        );
        assert_eq!(w.body["apiVersion"], "openreports.io/v1alpha1");
        assert_eq!(w.body["kind"], "Report");
        assert_eq!(
            w.body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "tollgate"
        );
        let results = w.body["results"].as_array().unwrap();
        assert!(results.len() <= 4, "{}", w.body);
        assert!(results.iter().all(|r| r["resources"][0] == w.body["scope"]));
    }
    let builds = patches
        .iter()
        .find(|w| w.body["metadata"]["name"] == "tollgate-deployment-builds-api")
        .unwrap();
    assert_eq!(
        builds.body["scope"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "builds-api",
            "namespace": "builds-api", "uid": "3e6b1c2d-5a4f-4e3d-9c8b-7a6f5e4d3c21"})
    );
    let results = builds.body["results"].as_array().unwrap();
    // The node exporter's init container runs a base image directly, which the policy denies:
    // a failure the dashboard shows. Its DaemonSet was not listed, so its uid is not known.
    let exporter = patches
        .iter()
        .find(|w| w.body["metadata"]["name"] == "tollgate-daemonset-node-exporter")
        .unwrap();
    assert_eq!(
        exporter.body["scope"],
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "node-exporter",
            "namespace": "monitoring"})
    );
    let fail = &exporter.body["results"][0];
    assert_eq!(fail["result"], "fail", "{}", exporter.body);
    assert_eq!(fail["rule"], "repository-not-deployable");
    assert_eq!(fail["severity"], "high");
    assert_eq!(fail["properties"]["container"], "setup");
    // Without the registry, the walk is a skip, never a pass.
    assert!(
        results
            .iter()
            .all(|r| !(r["rule"] == "running-unservable" && r["result"] == "pass")),
        "{}",
        builds.body
    );

    let deletes: Vec<&str> = writes
        .iter()
        .filter(|w| w.method == "DELETE")
        .map(|w| w.uri.split('?').next().unwrap())
        .collect();
    assert_eq!(
        deletes.first().copied(),
        Some(
            "/apis/openreports.io/v1alpha1/namespaces/builds-api/reports/tollgate-deployment-removed"
        ),
        "{deletes:?}"
    );
    assert!(
        api.requests()
            .iter()
            .any(|r| r.starts_with("/apis/openreports.io/v1alpha1/reports?")
                && r.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dtollgate")),
        "{:?}",
        api.requests()
    );
    let names = api.report_names();
    let stored: Vec<(&str, &str)> = names
        .iter()
        .map(|(ns, n)| (ns.as_str(), n.as_str()))
        .collect();
    assert_eq!(
        stored,
        vec![
            ("builds-api", "kyverno-builds-api"),
            ("builds-api", "tollgate-deployment-builds-api"),
            ("monitoring", "tollgate-daemonset-node-exporter"),
        ]
    );
    // Admission is served as before.
    let response = hook.review("/validate", &fixture("pod-create.json")).await;
    assert_eq!(response["allowed"], true, "{response}");
}

/// Without the OpenReports CRD every write fails: counted, logged in one line per run without
/// the objects, and neither the audit's gauges nor admission suffer.
#[tokio::test(flavor = "multi_thread")]
async fn reports_that_cannot_be_written_are_counted_and_admission_still_answers() {
    let api = support::kube_api::FakeApiServer::start(support::kube_api::Behaviour {
        no_report_crd: true,
        ..Default::default()
    })
    .await;
    let hook = Webhook::start(&[
        "--no-resolve",
        "--audit-interval",
        "1s",
        "--audit-kubeconfig",
        api.kubeconfig.to_str().unwrap(),
        "--audit-reports",
    ]);
    let failed = "tollgate_audit_report_writes_total{operation=\"apply\",result=\"failure\"}";
    eventually("failed applies", WAIT, || async {
        hook.metric(failed).await >= 2.0
            && hook
                .metric("tollgate_audit_runs_total{result=\"success\"}")
                .await
                >= 1.0
    })
    .await;
    assert_eq!(hook.metric("tollgate_audit_images").await, 4.0);
    let response = hook.review("/validate", &fixture("pod-create.json")).await;
    assert_eq!(response["allowed"], true, "{response}");
    let warnings: Vec<Value> = hook
        .log_lines()
        .into_iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("audit: OpenReports reports not all written"))
        })
        .collect();
    assert!(!warnings.is_empty(), "{}", hook.logs());
    let line = warnings[0].to_string();
    assert_eq!(warnings[0]["fields"]["apply_failed"], 2, "{line}");
    assert!(
        line.contains("could not find the requested resource"),
        "{line}"
    );
    assert!(
        !line.contains("\"results\"") && !line.contains("summary"),
        "{line}"
    );
}

/// `--audit-reports` writes the periodic audit's results: without the periodic audit there is
/// nothing to write, and serve refuses to start rather than silently writing nothing.
#[test]
fn audit_reports_without_audit_interval_is_a_usage_error() {
    let r = crate::support::run(&[
        "serve",
        "--tls-cert",
        "missing.crt",
        "--tls-key",
        "missing.key",
        "--audit-reports",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("--audit-reports needs the periodic audit: give --audit-interval"),
        "{}",
        r.stderr
    );
}
