//! `tollgate serve --pull-secrets`: the workload's own imagePullSecrets (and its service
//! account's), read from the stand-in API server by name, open a real registry that asks for
//! credentials: one with htpasswd over HTTPS, one with bearer tokens (the proxy's token endpoint
//! in front of a real registry). The webhook is the real binary over real HTTPS.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::support::kube_api::{Behaviour, FakeApiServer};
use crate::support::oci::{Pusher, layer};
use crate::support::proxy::FaultProxy;
use crate::support::registry::{Security, TestRegistry};
use crate::support::webhook::{Webhook, fixture_text};
use crate::tls_auth::{PASSWORD, USER, pki};
use crate::webhook::{pod_running, warnings};

/// The images of the admission fixtures.
const GOOD: &str = "docker-registry.wikimedia.org/wikimedia/mediawiki-services-mathoid:2024-05-21-120000-production@sha256:4761a40351e0598c591e755816a298e6c204a15f6838c28442196636571f3df0";
const SIDECAR: &str = "docker-registry.wikimedia.org/envoy:1.23.10-3@sha256:84532b306f259587c364bd7301e0813963d5b84fd27c9338f0862dab8f0499d7";
const INIT: &str = "docker-registry.wikimedia.org/httpd-fcgi:2.4.62-2@sha256:655f5c6e972034a839b54712cb61c52ae099fca7ac10d402bf5fc096e0ef9e9e";
const DOCKERCONFIGJSON: &str = "kubernetes.io/dockerconfigjson";
const WRONG_PASSWORD: &str = "n0t-the-passw0rd-at-all";

/// `.dockerconfigjson` with one `auth` entry for `key`.
fn dockerconfigjson(key: &str, user: &str, password: &str) -> Vec<u8> {
    let auth = STANDARD.encode(format!("{user}:{password}"));
    format!(r#"{{"auths":{{"{key}":{{"auth":"{auth}"}}}}}}"#).into_bytes()
}

/// A Pod review in `namespace` running `image` everywhere, naming `secrets`.
fn pod_review(namespace: &str, image: &str, secrets: &[&str]) -> Value {
    let mut r = pod_running(image);
    in_namespace(&mut r, namespace);
    if !secrets.is_empty() {
        r["request"]["object"]["spec"]["imagePullSecrets"] =
            secrets.iter().map(|n| json!({"name": n})).collect();
    }
    r
}

fn in_namespace(review: &mut Value, namespace: &str) {
    review["request"]["namespace"] = json!(namespace);
    review["request"]["object"]["metadata"]["namespace"] = json!(namespace);
}

fn could_not_check(w: &[String]) -> bool {
    w.iter()
        .any(|w| w.contains("[image-unavailable]") && w.contains("could not be checked"))
}

/// A registry over HTTPS asking for USER/PASSWORD (htpasswd), holding `team/app:1.0`; its CA
/// file, and the pinned reference of the image.
async fn htpasswd_registry(dir: &std::path::Path) -> (TestRegistry, String, String) {
    let pki = pki();
    let htpasswd = format!("{USER}:{}\n", bcrypt::hash(PASSWORD, 4).unwrap());
    let reg = TestRegistry::start_with(Security {
        tls: Some((pki.cert_pem.clone(), pki.key_pem.clone())),
        htpasswd: Some(htpasswd),
    });
    let pushed = Pusher::secured(reg.base_url(), &pki.ca_pem, USER, PASSWORD)
        .image(
            "team/app",
            Some("1.0"),
            &[layer(&[("a", b"1")])],
            "linux/amd64",
        )
        .await;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let image = format!("{}/team/app:1.0@{}", reg.host(), pushed.digest);
    (reg, ca.to_str().unwrap().to_owned(), image)
}

fn serve(policy: &str, api: &FakeApiServer, extra: &[&str]) -> Webhook {
    let mut args = vec![
        "--policy",
        policy,
        "--registry-deadline",
        "4s",
        "--pull-secrets",
        "--kubeconfig",
        api.kubeconfig.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    // Debug logs on: the credentials still appear nowhere.
    Webhook::start_env(&args, &[("RUST_LOG", "debug")])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pods_pull_secret_opens_its_approved_registry_for_that_namespace_only() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, ca, image) = htpasswd_registry(dir.path()).await;
    let host = reg.host();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, reg.policy("")).unwrap();

    let api = FakeApiServer::start(Behaviour::default()).await;
    // Keyed with a scheme and a path, as `docker login` writes it: the host is what counts.
    let good = dockerconfigjson(&format!("https://{host}/v2/"), USER, PASSWORD);
    api.add_secret(
        "team-a",
        "regcred",
        DOCKERCONFIGJSON,
        &[(".dockerconfigjson", &good)],
    );
    let wrong = dockerconfigjson(&host, USER, WRONG_PASSWORD);
    api.add_secret(
        "team-c",
        "regcred",
        DOCKERCONFIGJSON,
        &[(".dockerconfigjson", &wrong)],
    );
    api.add_secret(
        "team-d",
        "sa-cred",
        DOCKERCONFIGJSON,
        &[(".dockerconfigjson", &good)],
    );
    api.add_service_account("team-d", "default", &["sa-cred"]);
    api.add_secret(
        "team-e",
        "opaque",
        "Opaque",
        &[("password", PASSWORD.as_bytes())],
    );
    api.add_secret(
        "team-f",
        "broken",
        DOCKERCONFIGJSON,
        &[(".dockerconfigjson", b"{\"auths\": [")],
    );

    let hook = serve(policy.to_str().unwrap(), &api, &["--ca-file", &ca]);

    // The secret gives access: checked end to end, nothing to report.
    let r = hook
        .review("/validate", &pod_review("team-a", &image, &["regcred"]))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(warnings(&r).is_empty(), "{:#?}", warnings(&r));

    // A pod template's secret, for a Deployment in the request's namespace.
    let mut text = fixture_text("deployment-create.json");
    for other in [GOOD, SIDECAR, INIT] {
        text = text.replace(other, &image);
    }
    let mut deployment: Value = serde_json::from_str(&text).unwrap();
    in_namespace(&mut deployment, "team-a");
    deployment["request"]["object"]["spec"]["template"]["spec"]["imagePullSecrets"] =
        json!([{"name": "regcred"}]);
    let r = hook.review("/validate", &deployment).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(
        warnings(&r).is_empty(),
        "the template's secret is used: {:#?}",
        warnings(&r)
    );

    // Namespace B, same image, right after A's walk filled the caches: no secret, so the
    // registry's 401 is "could not check", never A's answer.
    let r = hook
        .review("/validate", &pod_review("team-b", &image, &[]))
        .await;
    assert_eq!(
        r["allowed"], true,
        "a registry that refused is not a verdict: {r}"
    );
    assert!(could_not_check(&warnings(&r)), "{:#?}", warnings(&r));

    // Namespace B naming A's secret: B has no such secret; a warning, and the fallback.
    let r = hook
        .review("/validate", &pod_review("team-b", &image, &["regcred"]))
        .await;
    let w = warnings(&r);
    assert_eq!(r["allowed"], true, "{r}");
    assert!(
        w.iter().any(|w| w
            == "pull secret team-b/regcred was not found; images are checked with the server's own registry credentials"),
        "{w:#?}"
    );
    assert!(could_not_check(&w), "{w:#?}");

    // A wrong password: the registry's 401 is "could not check", not a verdict.
    let r = hook
        .review("/validate", &pod_review("team-c", &image, &["regcred"]))
        .await;
    let w = warnings(&r);
    assert_eq!(r["allowed"], true, "{r}");
    assert!(
        w.iter()
            .any(|w| w.contains("could not be checked") && w.contains("401")),
        "{w:#?}"
    );

    // The service account's pull secrets serve its pods.
    let r = hook
        .review("/validate", &pod_review("team-d", &image, &[]))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(warnings(&r).is_empty(), "{:#?}", warnings(&r));

    // A secret of another type, and one whose JSON is broken: each says so, without its data.
    let r = hook
        .review("/validate", &pod_review("team-e", &image, &["opaque"]))
        .await;
    let w = warnings(&r);
    assert!(
        w.iter()
            .any(|w| w.contains("pull secret team-e/opaque is of type Opaque")),
        "{w:#?}"
    );
    assert!(could_not_check(&w), "{w:#?}");
    let r = hook
        .review("/validate", &pod_review("team-f", &image, &["broken"]))
        .await;
    let w = warnings(&r);
    assert!(
        w.iter()
            .any(|w| w
                .contains("pull secret team-f/broken: its .dockerconfigjson is not valid JSON")),
        "{w:#?}"
    );

    // Four pods of one rollout at once: one read of their secret, shared, then cached.
    api.add_secret(
        "team-g",
        "regcred",
        DOCKERCONFIGJSON,
        &[(".dockerconfigjson", &good)],
    );
    let pod = pod_review("team-g", &image, &["regcred"]);
    let answers =
        futures_util::future::join_all((0..4).map(|_| hook.review("/validate", &pod))).await;
    for r in &answers {
        assert_eq!(r["allowed"], true, "{r}");
        assert!(warnings(r).is_empty(), "{:#?}", warnings(r));
    }
    let reads = |path: &str| api.requests().iter().filter(|r| *r == path).count();
    assert_eq!(reads("/api/v1/namespaces/team-g/secrets/regcred"), 1);
    assert_eq!(
        reads("/api/v1/namespaces/team-a/secrets/regcred"),
        1,
        "the Pod's and the Deployment's"
    );

    // Only named reads, never a list: what the chart's `get`-only RBAC allows.
    let requests = api.requests();
    assert!(
        requests.iter().all(|r| r.starts_with("/api/v1/namespaces/")
            && (r.contains("/secrets/") || r.contains("/serviceaccounts/"))),
        "{requests:#?}"
    );
    assert!(requests.contains(&"/api/v1/namespaces/team-a/secrets/regcred".to_owned()));
    assert!(requests.contains(&"/api/v1/namespaces/team-d/serviceaccounts/default".to_owned()));

    let logs = hook.logs();
    let auth = STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for secret in [PASSWORD, WRONG_PASSWORD, auth.as_str()] {
        assert!(!logs.contains(secret), "a credential was logged");
    }
    assert!(
        logs.contains("pull secret team-b/regcred was not found"),
        "the warning is logged too"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_for_another_registry_is_never_sent_and_tokens_stay_with_their_namespace() {
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
    proxy.require_bearer("robot", "t0ken-pass");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    // Another registry is approved too; the pod's image is on the proxy.
    std::fs::write(
        &policy,
        proxy.policy("").replace(
            "  registries:\n",
            "  registries:\n    - prefix: other.example.org\n",
        ),
    )
    .unwrap();
    let image = format!("{}/team/app:1@{}", proxy.host(), pushed.digest);

    let api = FakeApiServer::start(Behaviour::default()).await;
    // The proxy's own password, but filed under another registry: never sent to the proxy.
    let elsewhere = dockerconfigjson("other.example.org", "robot", "t0ken-pass");
    api.add_secret(
        "team-a",
        "other",
        DOCKERCONFIGJSON,
        &[(".dockerconfigjson", &elsewhere)],
    );
    let good = dockerconfigjson(&proxy.host(), "robot", "t0ken-pass");
    api.add_secret(
        "team-b",
        "good",
        DOCKERCONFIGJSON,
        &[(".dockerconfigjson", &good)],
    );
    let hook = serve(policy.to_str().unwrap(), &api, &[]);

    let r = hook
        .review("/validate", &pod_review("team-a", &image, &["other"]))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    let w = warnings(&r);
    assert!(could_not_check(&w), "{w:#?}");
    assert!(
        w.contains(&format!(
            "pull secret team-a/other has no entry for {} (it names other.example.org); it is not used",
            proxy.host()
        )),
        "{w:#?}"
    );
    let basic = format!("Basic {}", STANDARD.encode("robot:t0ken-pass"));
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() != Some(basic.as_str())),
        "another registry's credentials reached this one: {:?}",
        seen.iter().map(|s| &s.path).collect::<Vec<_>>()
    );

    // The right secret: a token from the realm, the image checked end to end.
    proxy.reset_counts();
    let r = hook
        .review("/validate", &pod_review("team-b", &image, &["good"]))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(warnings(&r).is_empty(), "{:#?}", warnings(&r));
    assert_eq!(proxy.count("GET", "/token"), 1);

    // Namespace C, same image, once B's token is held: C's requests carry no token, and its
    // pod is not judged from B's cached answers.
    proxy.reset_counts();
    let r = hook
        .review("/validate", &pod_review("team-c", &image, &[]))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(could_not_check(&warnings(&r)), "{:#?}", warnings(&r));
    let seen = proxy.seen();
    assert!(!seen.is_empty(), "C's walk asked the registry itself");
    assert!(
        seen.iter().all(|s| s.authorization.is_none()),
        "B's token or password was sent for C: {:?}",
        seen.iter().map(|s| &s.path).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_server_that_fails_or_stalls_is_a_warning_and_the_review_is_still_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, ca, image) = htpasswd_registry(dir.path()).await;
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, reg.policy("")).unwrap();
    let api = FakeApiServer::start(Behaviour {
        unavailable: true,
        ..Behaviour::default()
    })
    .await;
    let hook = serve(policy.to_str().unwrap(), &api, &["--ca-file", &ca]);

    // 503: the lookup fails at once, a warning, and the registry's 401 is not a verdict.
    let r = hook
        .review("/validate", &pod_review("team-a", &image, &["regcred"]))
        .await;
    let w = warnings(&r);
    assert_eq!(r["allowed"], true, "{r}");
    assert!(
        w.iter()
            .any(|w| w
                .starts_with("cannot read service account team-a/default for its pull secrets")),
        "{w:#?}"
    );
    assert!(
        w.iter()
            .any(|w| w.starts_with("cannot read pull secret team-a/regcred")),
        "{w:#?}"
    );
    assert!(could_not_check(&w), "{w:#?}");

    // Stalled: the lookup gives up at half the registry deadline, and the walks get the rest.
    api.stall();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        hook.review("/validate", &pod_review("team-b", &image, &["regcred"])),
    )
    .await
    .expect("answered");
    let w = warnings(&r);
    assert_eq!(r["allowed"], true, "{r}");
    assert!(
        w.iter().any(|w| w
            == "the API server did not answer for the pull secrets of namespace team-b within 2000 ms; images are checked with the server's own registry credentials"),
        "{w:#?}"
    );
    assert!(could_not_check(&w), "{w:#?}");
    let decisions = hook.decisions_at_least(2);
    assert!(
        decisions.iter().all(|d| d["decision"] != "deny"),
        "{decisions:#?}"
    );
}

/// The periodic audit with `--pull-secrets`: each namespace's pull secrets open the registry for
/// its images' walks; without them, the same registry's 401 fails the run (could not check).
#[tokio::test(flavor = "multi_thread")]
async fn the_periodic_audit_walks_a_namespaces_images_with_its_pull_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, ca, image) = htpasswd_registry(dir.path()).await;
    let policy = dir.path().join("policy.yaml");
    // A retention rule: its tag list needs the namespace's credentials too.
    let retention = format!(
        "  retention:\n    - repositories: ['{}/team/**']\n      keep: 1\n      orderBy: version\n",
        reg.host()
    );
    std::fs::write(&policy, reg.policy(&retention)).unwrap();
    let api = FakeApiServer::start(Behaviour::default()).await;
    let good = dockerconfigjson(&reg.host(), USER, PASSWORD);
    api.add_secret(
        "team-a",
        "regcred",
        DOCKERCONFIGJSON,
        &[(".dockerconfigjson", &good)],
    );
    let (repository, digest) = image.split_once(":1.0@").unwrap();
    api.set_pods(vec![json!({
        "metadata": {"name": "app-1", "namespace": "team-a", "uid": "9d1f7c2e-1b3a-4c5d-8e9f-0a1b2c3d4e5f", "resourceVersion": "4821"},
        "spec": {"imagePullSecrets": [{"name": "regcred"}], "serviceAccountName": "default",
                 "containers": [{"name": "app", "image": image}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "app", "image": image,
                   "imageID": format!("{repository}@{digest}"), "ready": true, "restartCount": 0,
                   "started": true, "state": {"running": {"startedAt": "2026-01-05T10:00:00Z"}}}]}
    })]);
    let kubeconfig = api.kubeconfig.to_str().unwrap();
    let audit = [
        "--audit-interval",
        "1s",
        "--audit-kubeconfig",
        kubeconfig,
        "--ca-file",
        &ca,
    ];

    let with = serve(policy.to_str().unwrap(), &api, &audit);
    let without =
        Webhook::start(&[&["--policy", policy.to_str().unwrap()][..], &audit[..]].concat());
    crate::support::webhook::eventually(
        "a successful audit run",
        Duration::from_secs(20),
        || async {
            with.metric("tollgate_audit_runs_total{result=\"success\"}")
                .await
                >= 1.0
        },
    )
    .await;
    assert_eq!(with.metric("tollgate_audit_images").await, 1.0);
    assert_eq!(
        with.metric("tollgate_audit_retention_risk_images").await,
        0.0
    );
    assert_eq!(
        with.metric("tollgate_audit_running_unservable_images")
            .await,
        0.0
    );

    crate::support::webhook::eventually("a failed audit run", Duration::from_secs(20), || async {
        without
            .metric("tollgate_audit_runs_total{result=\"failure\"}")
            .await
            >= 1.0
    })
    .await;
    assert_eq!(
        without
            .metric("tollgate_audit_runs_total{result=\"success\"}")
            .await,
        0.0,
        "the registry refused the server's own (anonymous) access"
    );
    let refused = without.logs();
    assert!(
        refused.contains("image(s) could not be checked") && refused.contains("401"),
        "{refused}"
    );
    let auth = STANDARD.encode(format!("{USER}:{PASSWORD}"));
    assert!(!with.logs().contains(PASSWORD) && !with.logs().contains(&auth));
}

#[rstest::rstest]
#[case::without_the_registry(&["--pull-secrets", "--no-resolve"], "--pull-secrets gives credentials for the registry; drop --no-resolve")]
#[case::a_kubeconfig_without_pull_secrets(&["--kubeconfig", "/nonexistent"], "--pull-secrets")]
#[case::an_unreadable_kubeconfig(&["--pull-secrets", "--kubeconfig", "/nonexistent/kubeconfig"], "--pull-secrets needs the API server: cannot read kubeconfig /nonexistent/kubeconfig")]
fn pull_secrets_that_cannot_work_stop_the_start(#[case] args: &[&str], #[case] message: &str) {
    let pki = crate::support::webhook::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pki.serving();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let base = [
        "serve",
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    let r = crate::support::run(&[&base[..], args].concat());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(message), "{}", r.stderr);
}
