//! `registry scan` against a real registry: catalog and tag pagination, broken tags and orphan
//! indexes found through the API, repository filters.

use std::sync::Arc;

use serde_json::Value;
use tollgate::policy::parse_policy;
use tollgate::registry::scan::{Silent, scan};
use tollgate::registry::{ClientOptions, RegistryClient, ResolveOptions, Resolver};

use crate::support::oci::{Pusher, layer};
use crate::support::registry::{TestRegistry, policy_file};
use crate::support::run;

/// Five repositories; `team/b:2` has a deleted layer, `team/idx:latest` is an orphan index.
async fn fill(reg: &TestRegistry) {
    let p = Pusher::new(reg.base_url());
    for repo in ["team/a", "team/b", "team/c", "other/x"] {
        for tag in ["1", "2", "3"] {
            p.image(
                repo,
                Some(tag),
                &[layer(&[("f", format!("{repo}:{tag}").as_bytes())])],
                "linux/amd64",
            )
            .await;
        }
    }
    let broken = p
        .image(
            "team/b",
            Some("2"),
            &[layer(&[("g", b"b2")]), layer(&[("h", b"b2h")])],
            "linux/amd64",
        )
        .await;
    p.delete_blob("team/b", &broken.layers[1]).await;
    let amd = p
        .image("team/idx", None, &[layer(&[("i", b"amd")])], "linux/amd64")
        .await;
    let arm = p
        .image("team/idx", None, &[layer(&[("i", b"arm")])], "linux/arm64")
        .await;
    p.index(
        "team/idx",
        "latest",
        &[(&amd, "linux/amd64"), (&arm, "linux/arm64")],
        false,
    )
    .await;
    p.delete_manifest("team/idx", &amd.digest).await;
    p.delete_manifest("team/idx", &arm.digest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scan_follows_pagination_and_finds_broken_tags_and_orphan_indexes() {
    let reg = TestRegistry::start();
    fill(&reg).await;
    let policy = parse_policy(&reg.policy(""), "p.yaml").unwrap();
    // Two entries per page, so the catalog and every tag list take several pages.
    let client = RegistryClient::new(ClientOptions {
        page_size: 2,
        ..ClientOptions::default()
    })
    .unwrap();
    let resolver = Resolver::new(
        Arc::new(client),
        Arc::new(policy),
        ResolveOptions::default(),
    );
    let host = reg.host().parse().unwrap();
    let report = scan(&resolver, &host, &[], 4, &Silent).await.unwrap();
    assert_eq!(report.repositories, 5);
    assert_eq!(report.tags, 13);
    assert_eq!(report.pullable, 11);
    let broken: Vec<(String, bool)> = report
        .broken
        .iter()
        .map(|b| {
            let image = b.image.to_string();
            (image.rsplit('/').next().unwrap().to_owned(), b.orphan_index)
        })
        .collect();
    assert_eq!(
        broken,
        vec![("b:2".to_owned(), false), ("idx:latest".to_owned(), true)]
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread")]
async fn scan_cli_filters_repositories_and_sets_the_exit_code() {
    let reg = TestRegistry::start();
    fill(&reg).await;
    let (_dir, policy) = policy_file(&reg, "");
    let host = reg.host();
    let r = run(&[
        "registry",
        "scan",
        &host,
        "--policy",
        &policy,
        "--repository",
        "team/*",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["schemaVersion"], 1);
    assert_eq!(v["repositories"], 4, "other/x is filtered out");
    assert_eq!(v["broken"].as_array().unwrap().len(), 2);
    let clean = run(&[
        "registry",
        "scan",
        &host,
        "--policy",
        &policy,
        "--repository",
        "other/*",
    ]);
    assert_eq!(clean.code, 0, "{}", clean.stdout);
    assert!(
        clean
            .stdout
            .contains(": 1 repository, 3 tags, 3 pullable, 0 broken, 0 not checked ("),
        "{}",
        clean.stdout
    );
    let refused = run(&["registry", "scan", "docker.io", "--policy", &policy]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains(
            "registry docker.io is not approved by the policy, so tollgate did not contact it"
        ),
        "{}",
        refused.stderr
    );
}
