//! OCI 1.1 referrers (issue 14) against a real registry. The binary does not discover
//! referrers yet, so these tests drive the library's `Resolver::referrers` and
//! `Resolver::referrer_artifact` against the real registry (Debian's distribution 2.8, which
//! lacks the referrers API: the tag schema fallback) and through the fault proxy serving the
//! API in the distribution spec's shape; and they check that shape, and the artifacts the
//! `Pusher` helper writes, directly over HTTP.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tollgate::policy::parse_policy;
use tollgate::reference::{Digest, ImageRef};
use tollgate::registry::referrers::ArtifactProblem;
use tollgate::registry::{ClientOptions, RegistryClient, RegistryError, ResolveOptions, Resolver};

use crate::support::oci::{Artifact, OCI_INDEX, OCI_MANIFEST, Pusher, Subject, layer};
use crate::support::proxy::{Fault, FaultProxy, Times};
use crate::support::registry::TestRegistry;

const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const NOTATION: &str = "application/vnd.cncf.notary.signature";
const REPO: &str = "signed/app";

/// A registry holding one image in `signed/app` with a Sigstore bundle and a notation
/// signature referring to it (in the tag schema's index), and another image with none.
struct Fixture {
    reg: TestRegistry,
    image: String,
    unreferenced: String,
    bundle: String,
    notation: String,
}

async fn fixture() -> Fixture {
    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    let image = p
        .image(
            REPO,
            Some("1.0"),
            &[layer(&[("bin", b"app")])],
            "linux/amd64",
        )
        .await;
    let unreferenced = p
        .image(
            REPO,
            Some("2.0"),
            &[layer(&[("bin", b"other")])],
            "linux/amd64",
        )
        .await
        .digest;
    let subject = Subject::from(&image);
    let bundle = p
        .artifact(
            REPO,
            &subject,
            &Artifact {
                artifact_type: BUNDLE,
                layer_media_type: BUNDLE,
                layer: br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#,
                annotations: &[("dev.sigstore.bundle.content", "message-signature")],
            },
        )
        .await;
    let notation = p
        .artifact(
            REPO,
            &subject,
            &Artifact {
                artifact_type: NOTATION,
                layer_media_type: "application/jose+json",
                layer: b"{}",
                annotations: &[],
            },
        )
        .await;
    Fixture {
        reg,
        image: image.digest,
        unreferenced,
        bundle,
        notation,
    }
}

fn resolver(policy_text: &str) -> Resolver {
    let policy = parse_policy(policy_text, "p.yaml").unwrap();
    let client = RegistryClient::new(ClientOptions {
        retries: 1,
        backoff: Duration::from_millis(10),
        ..ClientOptions::default()
    })
    .unwrap();
    Resolver::new(
        Arc::new(client),
        Arc::new(policy),
        ResolveOptions::default(),
    )
}

fn image_at(host: &str, digest: &str) -> (ImageRef, Digest) {
    (
        format!("{host}/{REPO}@{digest}").parse().unwrap(),
        digest.parse().unwrap(),
    )
}

fn digests(list: &[tollgate::registry::oci::Descriptor]) -> Vec<String> {
    list.iter().map(|d| d.digest.clone()).collect()
}

async fn get(url: &str) -> (u16, Option<String>, Option<String>, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    let (ct, filters) = (header("content-type"), header("oci-filters-applied"));
    let body = r.bytes().await.unwrap();
    (
        status,
        ct,
        filters,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pusher_writes_artifacts_and_the_tag_schema_index() {
    let f = fixture().await;
    let p = Pusher::new(f.reg.base_url());
    let tag = f.image.replacen(':', "-", 1);
    let index: Value =
        serde_json::from_slice(&p.get_manifest(REPO, &tag, OCI_INDEX).await.unwrap()).unwrap();
    let children = index["manifests"].as_array().unwrap();
    assert_eq!(children.len(), 2, "{index}");
    assert_eq!(children[0]["digest"], f.bundle.as_str());
    assert_eq!(children[0]["artifactType"], BUNDLE);
    assert_eq!(
        children[0]["annotations"]["dev.sigstore.bundle.content"],
        "message-signature"
    );
    assert_eq!(children[1]["digest"], f.notation.as_str());
    assert!(children[1].get("annotations").is_none());
    let manifest: Value =
        serde_json::from_slice(&p.get_manifest(REPO, &f.bundle, OCI_MANIFEST).await.unwrap())
            .unwrap();
    assert_eq!(manifest["artifactType"], BUNDLE);
    assert_eq!(manifest["subject"]["digest"], f.image.as_str());
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_passes_the_registrys_404_unless_it_serves_the_api() {
    let f = fixture().await;
    let proxy = FaultProxy::start(&f.reg.base_url());
    let url = format!("{}/v2/{REPO}/referrers/{}", proxy.base_url(), f.image);
    assert_eq!(
        get(&url).await.0,
        404,
        "distribution 2.8 has no referrers API"
    );

    proxy.serve_referrers();
    let (status, ct, filters, index) = get(&url).await;
    assert_eq!(status, 200);
    assert_eq!(ct.as_deref(), Some(OCI_INDEX));
    assert_eq!(filters, None);
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

    let filtered = format!("{url}?artifactType={}", BUNDLE.replace('+', "%2B"));
    let (status, _, filters, index) = get(&filtered).await;
    assert_eq!(status, 200);
    assert_eq!(filters.as_deref(), Some("artifactType"));
    let children = index["manifests"].as_array().unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["digest"], f.bundle.as_str());

    let none = format!(
        "{}/v2/{REPO}/referrers/{}",
        proxy.base_url(),
        f.unreferenced
    );
    let (status, _, _, index) = get(&none).await;
    assert_eq!(status, 200);
    assert_eq!(index["manifests"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_api_the_resolver_reads_the_tag_schema_index() {
    let f = fixture().await;
    let proxy = FaultProxy::start(&f.reg.base_url());
    let r = resolver(&proxy.policy(""));
    let (image, digest) = image_at(&proxy.host(), &f.image);
    let all = r.referrers(&image, &digest, None).await.unwrap();
    assert_eq!(digests(&all), vec![f.bundle.clone(), f.notation.clone()]);
    assert_eq!(all[0].artifact_type.as_deref(), Some(BUNDLE));
    // The API's 404, then the tag and the index.
    assert_eq!(proxy.count("GET", "/referrers/"), 1);
    assert_eq!(proxy.count("HEAD", &f.image.replacen(':', "-", 1)), 1);
    let bundles = r.referrers(&image, &digest, Some(BUNDLE)).await.unwrap();
    assert_eq!(digests(&bundles), vec![f.bundle.clone()]);
    let (other, other_digest) = image_at(&proxy.host(), &f.unreferenced);
    assert!(
        r.referrers(&other, &other_digest, None)
            .await
            .unwrap()
            .is_empty()
    );
    // Asked again: cached, nothing sent.
    let before = proxy.total();
    r.referrers(&image, &digest, None).await.unwrap();
    assert_eq!(proxy.total(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn through_the_api_the_resolver_follows_pages_and_sends_the_filter() {
    let f = fixture().await;
    let proxy = FaultProxy::start(&f.reg.base_url());
    proxy.serve_referrers_paged(1);
    let r = resolver(&proxy.policy(""));
    let (image, digest) = image_at(&proxy.host(), &f.image);
    let all = r.referrers(&image, &digest, None).await.unwrap();
    assert_eq!(digests(&all), vec![f.bundle.clone(), f.notation.clone()]);
    assert_eq!(proxy.count("GET", "/referrers/"), 2, "{:?}", proxy.seen());
    assert_eq!(proxy.count("HEAD", "/manifests/sha256-"), 0, "no fallback");
    let notation = r.referrers(&image, &digest, Some(NOTATION)).await.unwrap();
    assert_eq!(digests(&notation), vec![f.notation.clone()]);
    assert!(
        proxy.seen().iter().any(|s| s
            .path
            .contains("artifactType=application%2Fvnd.cncf.notary.signature")),
        "{:?}",
        proxy.seen()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unannounced_filter_is_applied_by_the_client() {
    let f = fixture().await;
    let proxy = FaultProxy::start(&f.reg.base_url());
    proxy.serve_referrers();
    // A registry that ignores the query: the unfiltered list, without OCI-Filters-Applied.
    proxy.inject(
        "GET",
        "artifactType=",
        Fault::Redirect {
            status: 307,
            location: format!("/v2/{REPO}/referrers/{}", f.image),
        },
        Times::Always,
    );
    let r = resolver(&proxy.policy(""));
    let (image, digest) = image_at(&proxy.host(), &f.image);
    let bundles = r.referrers(&image, &digest, Some(BUNDLE)).await.unwrap();
    assert_eq!(digests(&bundles), vec![f.bundle.clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_registry_is_an_error_never_no_referrers() {
    let f = fixture().await;
    let proxy = FaultProxy::start(&f.reg.base_url());
    proxy.inject("GET", "/referrers/", Fault::Status(500), Times::Always);
    let r = resolver(&proxy.policy(""));
    let (image, digest) = image_at(&proxy.host(), &f.image);
    let e = r.referrers(&image, &digest, None).await.unwrap_err();
    assert!(
        matches!(e, RegistryError::Status { status: 500, .. }),
        "{e}"
    );
    // Nor is the fallback's: the API's 404, then a 500 for the tag.
    proxy.clear_faults();
    proxy.inject(
        "HEAD",
        "/manifests/sha256-",
        Fault::Status(503),
        Times::Always,
    );
    let e = r.referrers(&image, &digest, None).await.unwrap_err();
    assert!(
        matches!(e, RegistryError::Status { status: 503, .. }),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_next_page_on_another_host_is_not_followed() {
    let f = fixture().await;
    let proxy = FaultProxy::start(&f.reg.base_url());
    proxy.serve_referrers();
    proxy.inject(
        "GET",
        "/referrers/",
        Fault::AddHeader {
            name: "Link".into(),
            value: format!(
                "<http://127.0.0.2:{}/v2/{REPO}/referrers/{}?page=1>; rel=\"next\"",
                proxy.port(),
                f.image
            ),
        },
        Times::Always,
    );
    let r = resolver(&proxy.policy(""));
    let (image, digest) = image_at(&proxy.host(), &f.image);
    let e = r.referrers(&image, &digest, None).await.unwrap_err();
    assert!(matches!(e, RegistryError::ForeignLink { .. }), "{e}");
    assert_eq!(proxy.count("GET", "/referrers/"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn more_pages_than_the_bound_are_an_error() {
    let f = fixture().await;
    let p = Pusher::new(f.reg.base_url());
    let subject = Subject {
        media_type: OCI_MANIFEST.into(),
        digest: f.unreferenced.clone(),
        size: p
            .get_manifest(REPO, &f.unreferenced, OCI_MANIFEST)
            .await
            .unwrap()
            .len() as u64,
    };
    for i in 0..9 {
        p.artifact(
            REPO,
            &subject,
            &Artifact {
                artifact_type: NOTATION,
                layer_media_type: "application/jose+json",
                layer: format!("{{\"n\":{i}}}").as_bytes(),
                annotations: &[],
            },
        )
        .await;
    }
    let proxy = FaultProxy::start(&f.reg.base_url());
    proxy.serve_referrers_paged(1);
    let r = resolver(&proxy.policy(""));
    let (image, digest) = image_at(&proxy.host(), &f.unreferenced);
    let e = r.referrers(&image, &digest, None).await.unwrap_err();
    assert!(
        matches!(
            e,
            RegistryError::TooMany {
                limit: 8,
                unit: "pages",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(proxy.count("GET", "/referrers/"), 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_referrers_artifact_is_read_with_its_subject_and_size_checked() {
    let f = fixture().await;
    let r = resolver(&f.reg.policy(""));
    let (image, digest) = image_at(&f.reg.host(), &f.image);
    let list = r.referrers(&image, &digest, Some(BUNDLE)).await.unwrap();
    let a = r
        .referrer_artifact(&image, &digest, &list[0], 1 << 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.manifest.to_string(), f.bundle);
    assert_eq!(a.artifact_type, BUNDLE);
    assert_eq!(a.layer.media_type, BUNDLE);
    assert_eq!(
        a.blob,
        br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#
    );
    assert_eq!(
        a.annotations
            .get("dev.sigstore.bundle.content")
            .map(String::as_str),
        Some("message-signature")
    );
    let small = r
        .referrer_artifact(&image, &digest, &list[0], 10)
        .await
        .unwrap();
    assert!(
        matches!(small, Err(ArtifactProblem::TooLarge { max: 10, .. })),
        "{small:?}"
    );
    let (_, other) = image_at(&f.reg.host(), &f.unreferenced);
    let elsewhere = r
        .referrer_artifact(&image, &other, &list[0], 1 << 20)
        .await
        .unwrap();
    assert!(
        matches!(elsewhere, Err(ArtifactProblem::Subject { .. })),
        "{elsewhere:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn more_descriptors_than_the_bound_are_an_error_through_the_api_and_the_tag() {
    let f = fixture().await;
    let p = Pusher::new(f.reg.base_url());
    // The registry checks an index's children exist, not that they differ: one artifact, 257
    // times.
    let tag = f.image.replacen(':', "-", 1);
    let index: Value =
        serde_json::from_slice(&p.get_manifest(REPO, &tag, OCI_INDEX).await.unwrap()).unwrap();
    let child = index["manifests"][0].clone();
    let flood = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": vec![child; 257],
    });
    p.manifest(REPO, &tag, OCI_INDEX, flood.to_string().as_bytes())
        .await;
    let proxy = FaultProxy::start(&f.reg.base_url());
    let (image, digest) = image_at(&proxy.host(), &f.image);
    let e = resolver(&proxy.policy(""))
        .referrers(&image, &digest, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            RegistryError::TooMany {
                limit: 256,
                unit: "descriptors",
                ..
            }
        ),
        "{e}"
    );
    proxy.serve_referrers();
    let e = resolver(&proxy.policy(""))
        .referrers(&image, &digest, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            RegistryError::TooMany {
                limit: 256,
                unit: "descriptors",
                ..
            }
        ),
        "{e}"
    );
    // The registry's filter leaves none of them: nothing over the bound is read.
    let notation = resolver(&proxy.policy(""))
        .referrers(&image, &digest, Some(NOTATION))
        .await
        .unwrap();
    assert!(notation.is_empty());
}
