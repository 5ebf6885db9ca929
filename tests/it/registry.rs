//! The resolver against a real registry (Debian's docker-registry on loopback), with images
//! built and pushed by the test code, faults injected through the registry's own API and
//! process. Each incident is replayed as a test named for what happened.

use std::sync::Arc;
use std::time::Duration;

use tollgate::policy::parse_policy;
use tollgate::reference::ImageRef;
use tollgate::registry::{
    ClientOptions, NodeKind, NodeStatus, RegistryClient, RegistryError, Resolution, ResolveOptions,
    Resolver, TagState,
};

use crate::support;
use crate::support::oci::{Pusher, layer, os_release};
use crate::support::registry::TestRegistry;

fn resolver(reg: &TestRegistry, opts: ResolveOptions) -> Resolver {
    let policy = parse_policy(&reg.policy(""), "test-policy.yaml").unwrap();
    let client = ClientOptions {
        retries: 1,
        backoff: Duration::from_millis(10),
        ..ClientOptions::default()
    };
    Resolver::new(
        Arc::new(RegistryClient::new(client).unwrap()),
        Arc::new(policy),
        opts,
    )
}

fn image(reg: &TestRegistry, rest: &str) -> ImageRef {
    format!("{}/{rest}", reg.host()).parse().unwrap()
}

async fn resolve(r: &Resolver, image: &ImageRef) -> Resolution {
    r.resolve(image)
        .await
        .unwrap_or_else(|e| panic!("resolve {image}: {e}"))
}

/// A 2-platform index with an attestation child, 3 layers per platform.
async fn push_multi_platform(
    p: &Pusher,
    repo: &str,
    tag: &str,
) -> (String, Vec<support::oci::Pushed>) {
    let base = layer(&[("etc/os-release", &os_release("debian"))]);
    let amd = p
        .image(
            repo,
            None,
            &[
                base.clone(),
                layer(&[("app/amd64", b"bin-amd64")]),
                layer(&[("app/conf", b"a")]),
            ],
            "linux/amd64",
        )
        .await;
    let arm = p
        .image(
            repo,
            None,
            &[
                base,
                layer(&[("app/arm64", b"bin-arm64")]),
                layer(&[("app/conf", b"b")]),
            ],
            "linux/arm64",
        )
        .await;
    let index = p
        .index(
            repo,
            tag,
            &[(&amd, "linux/amd64"), (&arm, "linux/arm64")],
            true,
        )
        .await;
    (index, vec![amd, arm])
}

#[tokio::test]
async fn a_complete_multi_platform_index_resolves_end_to_end() {
    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    let (index, _) = push_multi_platform(&p, "team/app", "1.0").await;
    let r = resolver(&reg, ResolveOptions::default());
    let res = resolve(&r, &image(&reg, "team/app:1.0")).await;
    assert!(res.is_pullable(), "{:#?}", res.problems);
    assert_eq!(res.digest.map(|d| d.to_string()), Some(index.clone()));
    let root = res.root.as_ref().unwrap();
    assert_eq!(root.kind, NodeKind::Index);
    let statuses: Vec<_> = root
        .children
        .iter()
        .map(|c| (c.platform.clone().unwrap(), c.status.clone()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("linux/amd64".to_owned(), NodeStatus::Ok),
            ("linux/arm64".to_owned(), NodeStatus::Ok),
            ("unknown/unknown".to_owned(), NodeStatus::Attestation),
        ]
    );
    // Each platform: its config and every layer were checked.
    for child in &root.children[..2] {
        let kinds: Vec<NodeKind> = child.children.iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds,
            vec![
                NodeKind::Config,
                NodeKind::Layer,
                NodeKind::Layer,
                NodeKind::Layer
            ]
        );
    }
    // Tag HEAD, index GET, 2 manifests, 2 configs, 5 distinct layer HEADs (the base layer is
    // shared but lives in one repository, so it is asked for once).
    assert_eq!(res.requests, 11, "no request repeated");
    assert_eq!(res.tag, TagState::NotPinned);
}

#[tokio::test]
async fn a_warm_cache_answers_without_any_request() {
    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    push_multi_platform(&p, "team/app", "1.0").await;
    let r = resolver(&reg, ResolveOptions::default());
    let img = image(&reg, "team/app:1.0");
    let cold = resolve(&r, &img).await;
    let warm = resolve(&r, &img).await;
    assert!(cold.requests > 0);
    assert_eq!(warm.requests, 0);
    assert_eq!(warm.root, cold.root);
}

#[tokio::test]
async fn concurrent_resolutions_of_one_image_share_requests() {
    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    push_multi_platform(&p, "team/app", "1.0").await;
    let r = resolver(&reg, ResolveOptions::default());
    let img = image(&reg, "team/app:1.0");
    let all = futures_util::future::join_all((0..8).map(|_| r.resolve(&img))).await;
    assert!(all.iter().all(|res| res.as_ref().unwrap().is_pullable()));
    assert_eq!(
        r.client().request_count(),
        11,
        "8 concurrent walks cost what one does"
    );
}

#[tokio::test]
async fn an_orphan_index_whose_children_were_garbage_collected_is_not_pullable() {
    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    let (_, children) = push_multi_platform(&p, "infra/ci", "latest").await;
    for c in &children {
        p.delete_manifest("infra/ci", &c.digest).await;
    }
    let r = resolver(&reg, ResolveOptions::default());
    let res = resolve(&r, &image(&reg, "infra/ci:latest")).await;
    assert!(!res.is_pullable());
    assert!(
        res.orphan_index,
        "the index answers but its children are gone"
    );
    assert_eq!(res.problems.len(), 2);
    assert!(
        res.problems[0].path.starts_with("index sha256:"),
        "{}",
        res.problems[0].path
    );
    assert!(
        res.problems[0].path.contains("→ manifest sha256:"),
        "{}",
        res.problems[0].path
    );
    assert!(
        res.problems[0].path.contains("(linux/amd64): 404"),
        "{}",
        res.problems[0].path
    );
}

#[tokio::test]
async fn a_deleted_layer_blob_is_reported_with_its_path() {
    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    let (_, children) = push_multi_platform(&p, "team/app", "2.0").await;
    let gone = children[1].layers[1].clone();
    p.delete_blob("team/app", &gone).await;
    let r = resolver(&reg, ResolveOptions::default());
    let res = resolve(&r, &image(&reg, "team/app:2.0")).await;
    assert!(!res.orphan_index);
    assert_eq!(res.problems.len(), 1, "{:#?}", res.problems);
    let problem = &res.problems[0];
    assert_eq!(problem.kind, NodeKind::Layer);
    assert_eq!(problem.digest, gone);
    let short = &gone[..19];
    assert!(
        problem.path.contains("(linux/arm64) → layer "),
        "{}",
        problem.path
    );
    assert!(
        problem
            .path
            .ends_with(&format!("{short}…: 404 blob unknown")),
        "{}",
        problem.path
    );
}

#[tokio::test]
async fn platform_selection_walks_only_the_chosen_platforms() {
    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    let (_, children) = push_multi_platform(&p, "team/app", "3.0").await;
    p.delete_blob("team/app", &children[1].layers[1]).await;
    let r = resolver(
        &reg,
        ResolveOptions {
            platforms: vec!["linux/amd64".into()],
            ..ResolveOptions::default()
        },
    );
    let res = resolve(&r, &image(&reg, "team/app:3.0")).await;
    assert!(
        res.is_pullable(),
        "the broken arm64 image is not selected: {:#?}",
        res.problems
    );
    assert_eq!(res.root.unwrap().children[1].status, NodeStatus::Skipped);
}

#[tokio::test]
async fn the_running_version_pruned_by_retention_resolves_neither_by_tag_nor_by_digest() {
    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    let v130 = p
        .image(
            "toolforge/builds-api",
            Some("0.0.130"),
            &[layer(&[("v", b"130")])],
            "linux/amd64",
        )
        .await;
    p.image(
        "toolforge/builds-api",
        Some("0.0.131"),
        &[layer(&[("v", b"131")])],
        "linux/amd64",
    )
    .await;
    // The retention policy deletes 0.0.130's manifest (and with it the tag).
    p.delete_manifest("toolforge/builds-api", &v130.digest)
        .await;
    let r = resolver(&reg, ResolveOptions::default());
    let by_tag = resolve(&r, &image(&reg, "toolforge/builds-api:0.0.130")).await;
    assert!(!by_tag.is_pullable());
    assert!(
        by_tag
            .unresolved
            .as_deref()
            .unwrap()
            .starts_with("tag 0.0.130 not found"),
        "{:?}",
        by_tag.unresolved
    );
    // Pinned, as the running pods were: the digest is gone and the tag with it.
    let pinned = resolve(
        &r,
        &image(
            &reg,
            &format!("toolforge/builds-api:0.0.130@{}", v130.digest),
        ),
    )
    .await;
    assert!(
        pinned
            .unresolved
            .as_deref()
            .unwrap()
            .starts_with("digest sha256:"),
        "{:?}",
        pinned.unresolved
    );
    assert_eq!(pinned.tag, TagState::Gone);
}

#[tokio::test]
async fn a_digest_only_image_is_removed_by_delete_untagged_garbage_collection() {
    let mut reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    let first = p
        .image(
            "toolforge/distroless-base",
            Some("debug"),
            &[layer(&[("a", b"1")])],
            "linux/amd64",
        )
        .await;
    // Upstream moves the tag; the pinned digest is now untagged.
    p.image(
        "toolforge/distroless-base",
        Some("debug"),
        &[layer(&[("a", b"2")])],
        "linux/amd64",
    )
    .await;
    let pinned = image(&reg, &format!("toolforge/distroless-base@{}", first.digest));
    let before = {
        let r = resolver(&reg, ResolveOptions::default());
        resolve(&r, &pinned).await
    };
    assert!(before.is_pullable(), "still served before maintenance");
    assert_eq!(before.tag, TagState::Untagged);
    reg.garbage_collect(true);
    let r = resolver(&reg, ResolveOptions::default());
    let after = resolve(&r, &pinned).await;
    assert!(
        !after.is_pullable(),
        "delete-untagged garbage collection removed it"
    );
    assert!(after.unresolved.is_some());
}

#[tokio::test]
async fn a_moved_tag_is_reported_for_a_pinned_reference() {
    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    let old = p
        .image(
            "team/app",
            Some("stable"),
            &[layer(&[("a", b"old")])],
            "linux/amd64",
        )
        .await;
    let new = p
        .image(
            "team/app",
            Some("stable"),
            &[layer(&[("a", b"new")])],
            "linux/amd64",
        )
        .await;
    let r = resolver(&reg, ResolveOptions::default());
    let res = resolve(&r, &image(&reg, &format!("team/app:stable@{}", old.digest))).await;
    assert_eq!(
        res.tag,
        TagState::Moved {
            current: new.digest.parse().unwrap()
        }
    );
    assert!(res.is_pullable(), "the old digest is still served, for now");
    let ok = resolve(&r, &image(&reg, &format!("team/app:stable@{}", new.digest))).await;
    assert_eq!(ok.tag, TagState::Ok);
}

#[tokio::test]
async fn an_unapproved_registry_is_never_contacted() {
    let reg = TestRegistry::start();
    let r = resolver(&reg, ResolveOptions::default());
    // Same host, other port; a look-alike host; Docker Hub.
    for other in [
        format!("127.0.0.1:{}/team/app:1", reg.port.wrapping_add(1)),
        "docker-registry.wikimedia.org.evil.com/x:1".to_owned(),
        "nginx:1.25".to_owned(),
    ] {
        let err = r.resolve(&other.parse().unwrap()).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::NotApproved { .. }),
            "{other}: {err}"
        );
    }
    assert_eq!(r.client().request_count(), 0);
}

#[tokio::test]
async fn a_stopped_registry_is_a_clear_runtime_error_and_errors_are_not_cached() {
    let mut reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    p.image(
        "team/app",
        Some("1"),
        &[layer(&[("a", b"1")])],
        "linux/amd64",
    )
    .await;
    let r = resolver(&reg, ResolveOptions::default());
    let img = image(&reg, "team/app:1");
    reg.stop();
    let err = r.resolve(&img).await.unwrap_err();
    assert!(matches!(err, RegistryError::Transport { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot reach http://{}/v2/team/app/manifests/1",
            reg.host()
        )),
        "{err}"
    );
    reg.restart();
    assert!(
        resolve(&r, &img).await.is_pullable(),
        "the failure was not cached"
    );
}

#[tokio::test]
async fn a_deadline_bounds_the_whole_resolution() {
    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    push_multi_platform(&p, "team/app", "1.0").await;
    let r = resolver(
        &reg,
        ResolveOptions {
            deadline: Duration::from_nanos(1),
            ..ResolveOptions::default()
        },
    );
    let err = r.resolve(&image(&reg, "team/app:1.0")).await.unwrap_err();
    assert!(matches!(err, RegistryError::Deadline { .. }), "{err}");
}

#[tokio::test]
async fn a_tag_deleted_from_storage_leaves_its_digest_pinned_but_unprotected() {
    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    let img = p
        .image(
            "infra/ci",
            Some("2026-04-19"),
            &[layer(&[("a", b"1")])],
            "linux/amd64",
        )
        .await;
    reg.delete_tag_on_disk("infra/ci", "2026-04-19");
    let r = resolver(&reg, ResolveOptions::default());
    let by_tag = resolve(&r, &image(&reg, "infra/ci:2026-04-19")).await;
    assert!(
        by_tag
            .unresolved
            .as_deref()
            .unwrap()
            .starts_with("tag 2026-04-19 not found"),
        "{:?}",
        by_tag.unresolved
    );
    let pinned = resolve(
        &r,
        &image(&reg, &format!("infra/ci:2026-04-19@{}", img.digest)),
    )
    .await;
    assert!(pinned.is_pullable(), "the manifest is still there");
    assert_eq!(
        pinned.tag,
        TagState::Gone,
        "but no tag keeps it alive any more"
    );
}

/// Regression: a walk's request count was a delta of the client's shared counter, so walks
/// running at the same time counted each other's requests.
#[tokio::test]
async fn concurrent_walks_of_different_images_each_count_only_their_own_requests() {
    let reg = TestRegistry::start();
    let p = Pusher::new(reg.base_url());
    for repo in ["team/a", "team/b", "team/c", "team/d"] {
        p.image(
            repo,
            Some("1"),
            &[layer(&[("x", repo.as_bytes())]), layer(&[("y", b"y")])],
            "linux/amd64",
        )
        .await;
    }
    let r = resolver(&reg, ResolveOptions::default());
    let images: Vec<ImageRef> = ["team/a:1", "team/b:1", "team/c:1", "team/d:1"]
        .iter()
        .map(|i| image(&reg, i))
        .collect();
    let all = futures_util::future::join_all(images.iter().map(|i| r.resolve(i))).await;
    // Each: tag HEAD, manifest GET, config GET, 2 layer HEADs.
    let counts: Vec<u64> = all.into_iter().map(|res| res.unwrap().requests).collect();
    assert_eq!(counts, vec![5, 5, 5, 5]);
    assert_eq!(r.client().request_count(), 20);
}
