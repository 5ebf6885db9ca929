//! The resolver against a misbehaving registry: Debian's real docker-registry behind a
//! fault-injecting proxy (tests/it/support/proxy.rs) that answers slowly, fails with 500 or 429,
//! serves bytes that do not hash to their digest, or announces a wrong blob size. Each test
//! asserts what the walk reports and, through the proxy's request log, how many requests it
//! took: retries where the client retries, nothing repeated where it should not.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rstest::rstest;
use tollgate::policy::parse_policy;
use tollgate::reference::ImageRef;
use tollgate::registry::{
    ClientOptions, Node, NodeKind, NodeStatus, RegistryClient, RegistryError, Resolution,
    ResolveOptions, Resolver,
};

use crate::support;
use crate::support::oci::{OCI_MANIFEST, Pushed, Pusher, layer, os_release};
use crate::support::proxy::{Fault, FaultProxy, Times, corrupt};
use crate::support::registry::{TestRegistry, sha256};

/// A registry, the proxy in front of it, and a pusher that talks to the registry directly (so
/// pushes never show in the proxy's log).
struct Rig {
    reg: TestRegistry,
    proxy: FaultProxy,
    pusher: Pusher,
}

impl Rig {
    fn start() -> Rig {
        let reg = TestRegistry::start();
        let proxy = FaultProxy::start(&reg.base_url());
        let pusher = Pusher::new(reg.base_url());
        Rig { reg, proxy, pusher }
    }

    /// A resolver that reaches the registry only through the proxy.
    fn resolver(&self, client: ClientOptions, opts: ResolveOptions) -> Resolver {
        let policy = parse_policy(&self.proxy.policy(""), "fault-policy.yaml").unwrap();
        Resolver::new(
            Arc::new(RegistryClient::new(client).unwrap()),
            Arc::new(policy),
            opts,
        )
    }

    /// `127.0.0.1:<proxy port>/<rest>`.
    fn image(&self, rest: &str) -> ImageRef {
        format!("{}/{rest}", self.proxy.host()).parse().unwrap()
    }

    /// One image, `team/app:1`, with two layers: 5 requests to resolve (tag HEAD, manifest
    /// GET, config GET, 2 layer HEADs).
    async fn push_app(&self) -> (Pushed, Vec<support::oci::Layer>) {
        let layers = vec![
            layer(&[("etc/os-release", &os_release("debian"))]),
            layer(&[("app/bin", b"binary")]),
        ];
        let pushed = self
            .pusher
            .image("team/app", Some("1"), &layers, "linux/amd64")
            .await;
        (pushed, layers)
    }

    /// Bytes the registry itself serves for `path`, bypassing the proxy.
    async fn upstream_bytes(&self, path: &str) -> Vec<u8> {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.reg.base_url()))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "GET {path} from the registry");
        r.bytes().await.unwrap().to_vec()
    }
}

/// Retries that cost milliseconds, and timeouts a walk on loopback never comes near even on a
/// loaded machine, so that only an injected fault can trip them.
fn fast_client() -> ClientOptions {
    ClientOptions {
        retries: 1,
        backoff: Duration::from_millis(10),
        request_timeout: Duration::from_secs(10),
        max_retry_after: Duration::from_secs(2),
        ..ClientOptions::default()
    }
}

fn fast_resolve() -> ResolveOptions {
    ResolveOptions {
        deadline: Duration::from_secs(30),
        ..ResolveOptions::default()
    }
}

/// The deadline for the tests that run into it: a fault must outlast it by far, and a walk
/// without a fault must never come near it.
const DEADLINE: Duration = Duration::from_secs(2);

async fn resolve(r: &Resolver, image: &ImageRef) -> Resolution {
    r.resolve(image)
        .await
        .unwrap_or_else(|e| panic!("resolve {image}: {e}"))
}

fn manifest_path(digest: &str) -> String {
    format!("/v2/team/app/manifests/{digest}")
}

fn blob_path(digest: &str) -> String {
    format!("/v2/team/app/blobs/{digest}")
}

const TAG_PATH: &str = "/v2/team/app/manifests/1";

/// The request of `team/app:1`'s walk that a fault is aimed at.
#[derive(Debug, Clone, Copy)]
enum Target {
    TagHead,
    ManifestGet,
    ConfigGet,
    SecondLayerHead,
}

impl Target {
    /// Method and path of the request.
    fn request(self, app: &Pushed) -> (&'static str, String) {
        match self {
            Target::TagHead => ("HEAD", TAG_PATH.to_owned()),
            Target::ManifestGet => ("GET", manifest_path(&app.digest)),
            Target::ConfigGet => ("GET", blob_path(&app.config)),
            Target::SecondLayerHead => ("HEAD", blob_path(&app.layers[1])),
        }
    }

    /// Where the answer to it sits in the walk's tree: the manifest is the root, its children
    /// the config and then the layers.
    fn node(self, root: &Node) -> &Node {
        match self {
            Target::TagHead | Target::ManifestGet => root,
            Target::ConfigGet => &root.children[0],
            Target::SecondLayerHead => &root.children[2],
        }
    }

    fn kind(self) -> NodeKind {
        match self {
            Target::TagHead | Target::ManifestGet => NodeKind::Manifest,
            Target::ConfigGet => NodeKind::Config,
            Target::SecondLayerHead => NodeKind::Layer,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_faults_the_proxy_is_transparent_and_nothing_is_asked_twice() {
    let rig = Rig::start();
    let (pushed, _) = rig.push_app().await;
    let r = rig.resolver(fast_client(), fast_resolve());
    let res = resolve(&r, &rig.image("team/app:1")).await;
    assert!(res.is_pullable(), "{:#?}", res.problems);
    assert_eq!(
        res.digest.map(|d| d.to_string()),
        Some(pushed.digest.clone())
    );
    assert_eq!(res.requests, 5);
    assert_eq!(rig.proxy.total(), 5, "{:#?}", rig.proxy.seen());
    assert_eq!(rig.proxy.count("HEAD", TAG_PATH), 1);
    assert_eq!(rig.proxy.count("GET", &manifest_path(&pushed.digest)), 1);
    assert_eq!(rig.proxy.count("GET", &blob_path(&pushed.config)), 1);
    for l in &pushed.layers {
        assert_eq!(rig.proxy.count("HEAD", &blob_path(l)), 1);
    }
    assert!(
        rig.proxy.repeated().is_empty(),
        "{:?}",
        rig.proxy.repeated()
    );
    assert_eq!(rig.proxy.faults_injected(), 0);
}

/// The tag HEAD never gets its answer in time, either because none comes or because the retry
/// after a 503 would wait longer than the deadline: the deadline ends the resolution, and
/// what it cut off is not cached.
#[rstest]
#[case::an_answer_that_never_comes(Fault::Stall, fast_client())]
#[case::a_retry_backoff_longer_than_the_deadline(
    Fault::Status(503),
    ClientOptions {
        retries: 3,
        backoff: Duration::from_secs(60),
        ..fast_client()
    }
)]
#[tokio::test(flavor = "multi_thread")]
async fn a_fault_outlasting_the_deadline_is_a_deadline_error_and_is_not_cached(
    #[case] fault: Fault,
    #[case] client: ClientOptions,
) {
    let rig = Rig::start();
    rig.push_app().await;
    rig.proxy.inject("HEAD", TAG_PATH, fault, Times::Always);
    let r = rig.resolver(
        client,
        ResolveOptions {
            deadline: DEADLINE,
            ..ResolveOptions::default()
        },
    );
    let img = rig.image("team/app:1");
    let err = r.resolve(&img).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Deadline { millis } if millis == DEADLINE.as_millis() as u64),
        "{err}"
    );
    assert_eq!(
        rig.proxy.total(),
        1,
        "the walk stopped at the tag HEAD, before any retry: {:#?}",
        rig.proxy.seen()
    );
    // The cancelled lookup left nothing behind: the next resolution asks again and succeeds.
    rig.proxy.clear_faults();
    let res = resolve(&r, &img).await;
    assert!(res.is_pullable(), "{:#?}", res.problems);
    assert_eq!(rig.proxy.count("HEAD", TAG_PATH), 2);
}

/// One answer fails in a way the client retries; the retry gets the registry's real answer.
#[rstest]
#[case::a_500_on_the_manifest_get(Target::ManifestGet, Fault::Status(500), Duration::from_secs(10))]
#[case::a_429_with_a_retry_after_it_waits_out(
    Target::TagHead,
    Fault::TooManyRequests { retry_after_secs: 1 },
    Duration::from_secs(10)
)]
// The request timeout is what ends the stalled request here, so it is the one limit kept short.
#[case::no_answer_within_the_request_timeout(
    Target::ManifestGet,
    Fault::Stall,
    Duration::from_secs(2)
)]
#[tokio::test(flavor = "multi_thread")]
async fn a_transient_fault_is_retried_exactly_once_and_the_walk_succeeds(
    #[case] target: Target,
    #[case] fault: Fault,
    #[case] request_timeout: Duration,
) {
    let rig = Rig::start();
    let (pushed, _) = rig.push_app().await;
    let (method, path) = target.request(&pushed);
    rig.proxy.inject(method, &path, fault, Times::First(1));
    let r = rig.resolver(
        ClientOptions {
            retries: 3,
            request_timeout,
            ..fast_client()
        },
        fast_resolve(),
    );
    let res = resolve(&r, &rig.image("team/app:1")).await;
    assert!(res.is_pullable(), "{:#?}", res.problems);
    assert_eq!(rig.proxy.faults_injected(), 1);
    assert_eq!(
        rig.proxy.repeated(),
        vec![(method.to_owned(), path, 2)],
        "one retry of the failed request, nothing else repeated"
    );
    assert_eq!(rig.proxy.total(), 6, "{:#?}", rig.proxy.seen());
    assert_eq!(r.client().stats.retries.load(Ordering::Relaxed), 1);
    assert_eq!(res.requests, 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persistent_500_on_the_tag_fails_the_resolution_after_every_retry() {
    let rig = Rig::start();
    rig.push_app().await;
    rig.proxy
        .inject("HEAD", TAG_PATH, Fault::Status(500), Times::Always);
    let r = rig.resolver(
        ClientOptions {
            retries: 2,
            ..fast_client()
        },
        fast_resolve(),
    );
    let err = r.resolve(&rig.image("team/app:1")).await.unwrap_err();
    match &err {
        RegistryError::Status { url, status, .. } => {
            assert_eq!(*status, 500);
            assert!(url.ends_with(TAG_PATH), "{url}");
        }
        other => panic!("expected a 500 status error, got {other:?}"),
    }
    assert_eq!(
        rig.proxy.count("HEAD", TAG_PATH),
        3,
        "1 attempt + 2 retries"
    );
    assert_eq!(rig.proxy.total(), 3, "nothing else was asked");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persistent_500_on_the_config_blob_is_could_not_check_after_every_retry() {
    let rig = Rig::start();
    let (pushed, _) = rig.push_app().await;
    let config = blob_path(&pushed.config);
    rig.proxy
        .inject("GET", &config, Fault::Status(500), Times::Always);
    let r = rig.resolver(
        ClientOptions {
            retries: 2,
            ..fast_client()
        },
        fast_resolve(),
    );
    // The registry did not answer for the config, and nothing is definitely broken: that is
    // "could not check", never a verdict on the image.
    let err = r.resolve(&rig.image("team/app:1")).await.unwrap_err();
    match &err {
        RegistryError::Status {
            status, message, ..
        } => {
            assert_eq!(*status, 500);
            assert!(
                message.contains("fault injected by the test proxy"),
                "{message}"
            );
        }
        other => panic!("expected the registry's 500, got {other:?}"),
    }
    // The layers were still asked for: one walk, every piece once.
    assert_eq!(rig.proxy.count("GET", &config), 3, "1 attempt + 2 retries");
    assert_eq!(rig.proxy.total(), 4 + 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_asking_for_longer_than_max_retry_after_is_an_error_at_once() {
    let rig = Rig::start();
    rig.push_app().await;
    rig.proxy.inject(
        "HEAD",
        TAG_PATH,
        Fault::TooManyRequests {
            retry_after_secs: 30,
        },
        Times::Always,
    );
    let r = rig.resolver(
        ClientOptions {
            retries: 3,
            max_retry_after: Duration::from_secs(1),
            ..fast_client()
        },
        fast_resolve(),
    );
    let err = r.resolve(&rig.image("team/app:1")).await.unwrap_err();
    match &err {
        RegistryError::Status {
            status, message, ..
        } => {
            assert_eq!(*status, 429);
            assert!(
                message.contains("retry after 30s, longer than tollgate waits"),
                "{message}"
            );
        }
        other => panic!("expected a 429 status error, got {other:?}"),
    }
    assert_eq!(
        rig.proxy.count("HEAD", TAG_PATH),
        1,
        "no retry: the wait asked for is refused"
    );
    assert_eq!(r.client().stats.retries.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_manifest_that_does_not_hash_to_its_digest_is_a_digest_mismatch() {
    let rig = Rig::start();
    let p = &rig.pusher;
    let amd = p
        .image(
            "team/app",
            None,
            &[layer(&[("app/amd64", b"bin-amd64")])],
            "linux/amd64",
        )
        .await;
    let arm = p
        .image(
            "team/app",
            None,
            &[layer(&[("app/arm64", b"bin-arm64")])],
            "linux/arm64",
        )
        .await;
    let index = p
        .index(
            "team/app",
            "1",
            &[(&amd, "linux/amd64"), (&arm, "linux/arm64")],
            false,
        )
        .await;
    let served = corrupt(&rig.upstream_bytes(&manifest_path(&arm.digest)).await);
    rig.proxy.inject(
        "GET",
        &manifest_path(&arm.digest),
        Fault::CorruptBody,
        Times::Always,
    );
    let r = rig.resolver(fast_client(), fast_resolve());
    let res = resolve(&r, &rig.image("team/app:1")).await;
    assert!(!res.is_pullable());
    assert_eq!(res.digest.map(|d| d.to_string()), Some(index.clone()));
    let root = res.root.as_ref().unwrap();
    assert_eq!(root.kind, NodeKind::Index);
    assert_eq!(root.status, NodeStatus::Ok);
    assert_eq!(root.children[0].status, NodeStatus::Ok);
    let bad = &root.children[1];
    assert_eq!(bad.digest, arm.digest);
    assert_eq!(bad.platform.as_deref(), Some("linux/arm64"));
    assert_eq!(
        bad.status,
        NodeStatus::DigestMismatch {
            actual: sha256(&served)
        }
    );
    assert!(
        bad.children.is_empty(),
        "content that fails its digest is not walked"
    );
    assert_eq!(res.problems.len(), 1, "{:#?}", res.problems);
    assert_eq!(res.problems[0].kind, NodeKind::Manifest);
    assert!(
        res.problems[0].message.contains("not to its digest"),
        "{}",
        res.problems[0].message
    );
    assert!(
        rig.proxy.repeated().is_empty(),
        "a bad hash is not retried: {:?}",
        rig.proxy.repeated()
    );
}

/// A blob answer that does not match what the manifest says about it marks that blob's node,
/// and only it: the rest of the walk is checked and fine, and nothing is retried.
#[rstest]
#[case::config_bytes_that_do_not_hash_to_its_digest(Target::ConfigGet, Fault::CorruptBody)]
#[case::a_layer_head_announcing_a_size_one_byte_too_large(
    Target::SecondLayerHead,
    Fault::WrongContentLength { add: 1 }
)]
#[tokio::test(flavor = "multi_thread")]
async fn a_blob_served_wrong_is_a_mismatch_on_its_node_alone(
    #[case] target: Target,
    #[case] fault: Fault,
) {
    let rig = Rig::start();
    let (pushed, _) = rig.push_app().await;
    let (method, path) = target.request(&pushed);
    let upstream = rig.upstream_bytes(&path).await;
    let expected = match fault {
        Fault::CorruptBody => NodeStatus::DigestMismatch {
            actual: sha256(&corrupt(&upstream)),
        },
        Fault::WrongContentLength { add } => NodeStatus::SizeMismatch {
            declared: upstream.len() as u64,
            actual: upstream.len() as u64 + add,
        },
        other => panic!("no expectation for {other:?}"),
    };
    rig.proxy.inject(method, &path, fault, Times::Always);
    let r = rig.resolver(fast_client(), fast_resolve());
    let res = resolve(&r, &rig.image("team/app:1")).await;
    assert!(!res.is_pullable());
    let root = res.root.as_ref().unwrap();
    assert_eq!(root.status, NodeStatus::Ok);
    let node = target.node(root);
    assert_eq!(node.kind, target.kind());
    assert_eq!(node.status, expected);
    for other in root.children.iter().filter(|c| c.digest != node.digest) {
        assert_eq!(other.status, NodeStatus::Ok, "{other:#?}");
    }
    assert_eq!(res.problems.len(), 1, "{:#?}", res.problems);
    assert_eq!(res.problems[0].kind, target.kind());
    assert_eq!(res.problems[0].digest, node.digest);
    let message = &res.problems[0].message;
    match &expected {
        NodeStatus::DigestMismatch { .. } => {
            assert!(message.contains("not to its digest"), "{message}");
        }
        NodeStatus::SizeMismatch { declared, actual } => assert!(
            message.starts_with(&format!("{actual} bytes, the manifest declares {declared}")),
            "{message}"
        ),
        other => panic!("no expectation for {other:?}"),
    }
    assert_eq!(rig.proxy.count(method, &path), 1);
    assert_eq!(rig.proxy.total(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_answers_are_not_cached_and_a_fresh_resolve_succeeds_once_they_clear() {
    let rig = Rig::start();
    let (pushed, _) = rig.push_app().await;
    let config = blob_path(&pushed.config);
    let layer = blob_path(&pushed.layers[0]);
    let r = rig.resolver(fast_client(), fast_resolve());
    let img = rig.image("team/app:1");

    // The tag itself fails: the whole resolution is an error.
    rig.proxy
        .inject("HEAD", TAG_PATH, Fault::Status(502), Times::Always);
    let err = r.resolve(&img).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 502, .. }),
        "{err}"
    );
    rig.proxy.clear_faults();

    // The tag answers now, but the config and a layer fail: still could not check.
    rig.proxy
        .inject("GET", &config, Fault::Status(500), Times::Always);
    rig.proxy
        .inject("HEAD", &layer, Fault::Status(503), Times::Always);
    let err = r.resolve(&img).await.unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Status {
                status: 500 | 503,
                ..
            }
        ),
        "{err}"
    );
    rig.proxy.clear_faults();
    rig.proxy.reset_counts();

    // Everything answers: the same resolver asks again for what failed, and only that.
    let healed = resolve(&r, &img).await;
    assert!(healed.is_pullable(), "{:#?}", healed.problems);
    let mut asked: Vec<(String, String)> = rig
        .proxy
        .seen()
        .into_iter()
        .map(|s| (s.method, s.path))
        .collect();
    asked.sort();
    assert_eq!(
        asked,
        vec![("GET".to_owned(), config), ("HEAD".to_owned(), layer)],
        "the tag, the manifest and the healthy layer come from the cache"
    );
}

/// Content that failed its digest must not be cached as the content of that digest: once the
/// registry serves the right bytes again (the fault is for the first GET only), the same
/// resolver asks again and the image is pullable.
#[rstest]
#[case::the_image_manifest(Target::ManifestGet)]
#[case::the_config_blob(Target::ConfigGet)]
#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_answer_is_not_cached_and_the_next_resolve_succeeds(#[case] target: Target) {
    let rig = Rig::start();
    let (pushed, _) = rig.push_app().await;
    let (method, path) = target.request(&pushed);
    rig.proxy
        .inject(method, &path, Fault::CorruptBody, Times::First(1));
    let r = rig.resolver(fast_client(), fast_resolve());
    let img = rig.image("team/app:1");
    let first = resolve(&r, &img).await;
    let root = first.root.as_ref().unwrap();
    assert!(
        matches!(target.node(root).status, NodeStatus::DigestMismatch { .. }),
        "{root:#?}"
    );
    let second = resolve(&r, &img).await;
    assert!(second.is_pullable(), "{:#?}", second.problems);
    assert_eq!(rig.proxy.count(method, &path), 2, "asked again");
}

/// A resolver holding the credentials the proxy's token endpoint accepts.
fn resolver_with_credentials(
    proxy: &FaultProxy,
    policy: Arc<tollgate::policy::Policy>,
) -> Resolver {
    use tollgate::registry::auth::{CredentialStore, Credentials};
    let mut creds = CredentialStore::anonymous();
    creds.insert(
        &proxy.host(),
        Credentials {
            username: "robot".into(),
            password: "t0ken-pass".into(),
        },
    );
    let client = RegistryClient::new(ClientOptions {
        credentials: creds,
        ..ClientOptions::default()
    })
    .unwrap();
    Resolver::new(Arc::new(client), policy, ResolveOptions::default())
}

/// Token authentication (Docker Hub, Harbor): the registry answers 401 with a Bearer challenge,
/// tollgate fetches a token from the realm with the config's basic credentials, once per scope.
#[tokio::test(flavor = "multi_thread")]
async fn bearer_token_auth_is_answered_with_the_configured_credentials_once() {
    let reg = TestRegistry::start();
    let push = Pusher::new(reg.base_url());
    push.image(
        "team/app",
        Some("1"),
        &[layer(&[("a", b"1")])],
        "linux/amd64",
    )
    .await;
    let proxy = FaultProxy::start(&reg.base_url());
    proxy.require_bearer("robot", "t0ken-pass");
    let policy = Arc::new(parse_policy(&proxy.policy(""), "p.yaml").unwrap());
    let image: ImageRef = format!("{}/team/app:1", proxy.host()).parse().unwrap();

    let anonymous = Resolver::new(
        Arc::new(RegistryClient::new(ClientOptions::default()).unwrap()),
        policy.clone(),
        ResolveOptions::default(),
    );
    let err = anonymous.resolve(&image).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Unauthorized { status: 401, .. }),
        "{err}"
    );
    proxy.reset_counts();

    let r = resolver_with_credentials(&proxy, policy);
    let res = r.resolve(&image).await.unwrap();
    assert!(res.is_pullable(), "{:?}", res.problems);
    assert_eq!(
        proxy.count("GET", "/token"),
        1,
        "one token for the repository's pull scope, reused"
    );
    assert_eq!(
        r.client()
            .stats
            .token_requests
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// Regression: a registry's bearer challenge named any realm, and tollgate sent the registry's
/// credentials there. A realm on another host is now refused unless the policy names it for
/// the registry (redirectHosts, HTTPS), and the other host is never contacted.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_realm_on_a_host_the_policy_does_not_approve_is_never_contacted() {
    let reg = TestRegistry::start();
    Pusher::new(reg.base_url())
        .image(
            "team/app",
            Some("1"),
            &[layer(&[("a", b"1")])],
            "linux/amd64",
        )
        .await;
    let collector = FaultProxy::start(&reg.base_url());
    let proxy = FaultProxy::start(&reg.base_url());
    proxy.require_bearer_from(
        &format!("{}/token", collector.base_url()),
        "robot",
        "t0ken-pass",
    );
    let policy = Arc::new(parse_policy(&proxy.policy(""), "p.yaml").unwrap());
    let image: ImageRef = format!("{}/team/app:1", proxy.host()).parse().unwrap();
    collector.reset_counts();
    let r = resolver_with_credentials(&proxy, policy);
    let err = r.resolve(&image).await.unwrap_err();
    assert!(matches!(err, RegistryError::ForeignRealm { .. }), "{err}");
    assert!(
        err.to_string().contains("tollgate does not contact it"),
        "{err}"
    );
    assert_eq!(
        collector.count("GET", "/token"),
        0,
        "the foreign realm was contacted"
    );
}

/// Regression: requests that got the 401 at the same time each fetched a token; now they wait
/// for the first one's.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_first_requests_share_one_bearer_token() {
    let reg = TestRegistry::start();
    let push = Pusher::new(reg.base_url());
    for tag in ["1", "2", "3", "4"] {
        push.image(
            "team/app",
            Some(tag),
            &[layer(&[("a", tag.as_bytes())])],
            "linux/amd64",
        )
        .await;
    }
    let proxy = FaultProxy::start(&reg.base_url());
    proxy.require_bearer("robot", "t0ken-pass");
    let policy = Arc::new(parse_policy(&proxy.policy(""), "p.yaml").unwrap());
    let r = resolver_with_credentials(&proxy, policy);
    let images: Vec<ImageRef> = ["1", "2", "3", "4"]
        .iter()
        .map(|t| format!("{}/team/app:{t}", proxy.host()).parse().unwrap())
        .collect();
    let all = futures_util::future::join_all(images.iter().map(|i| r.resolve(i))).await;
    assert!(all.iter().all(|res| res.as_ref().unwrap().is_pullable()));
    assert_eq!(proxy.count("GET", "/token"), 1);
}
