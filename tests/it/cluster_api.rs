//! Live state from the API server through kube, against a stand-in API server that answers in
//! the API server's own response shapes: paging with continue tokens, an expired continue
//! token (410 Gone), and the kubeconfig and context selection.

use tollgate::cluster::LiveState;
use tollgate::cluster::kube::Cluster;

use crate::support::kube_api::{Behaviour, FakeApiServer};

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_is_listed_page_by_page_into_live_state() {
    let api = FakeApiServer::start(Behaviour::default()).await;
    let cluster = Cluster::connect(Some(&api.kubeconfig), Some("fake"))
        .await
        .unwrap();
    let objects = cluster
        .list(&[], 2, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let (state, skipped) = LiveState::from_objects(&objects);
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(state.pods.len(), 3, "both pages of pods");
    assert_eq!(state.controllers.len(), 3);
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("/api/v1/pods?") && r.contains("limit=2")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.contains("continue=eyJ2")),
        "{requests:?}"
    );
    // The digest each container runs, from imageID; a bare image ID gives none.
    let exporter = state
        .pods
        .iter()
        .find(|p| p.name.starts_with("node-exporter"))
        .unwrap();
    assert_eq!(exporter.containers.len(), 2);
    assert!(
        exporter
            .containers
            .iter()
            .any(|c| c.container.name == "setup" && c.running.is_some())
    );
    assert!(
        exporter
            .containers
            .iter()
            .any(|c| c.container.name == "exporter" && c.running.is_none())
    );
    let targets = state.rollback_targets("builds-api", "builds-api");
    assert_eq!(targets.len(), 1);
    assert_eq!(
        targets[0].images[0].1,
        "docker-registry.wikimedia.org/toolforge/builds-api:0.0.129"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_continue_token_starts_the_listing_over_without_duplicates() {
    let api = FakeApiServer::start(Behaviour {
        expire_continue: 1,
        ..Behaviour::default()
    })
    .await;
    let cluster = Cluster::connect(Some(&api.kubeconfig), None).await.unwrap();
    let objects = cluster
        .list(&[], 2, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let (state, _) = LiveState::from_objects(&objects);
    let mut names: Vec<&str> = state.pods.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(state.pods.len(), 3);
    assert_eq!(names.len(), 3);
    let first_pages = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("/api/v1/pods?") && !r.contains("continue="))
        .count();
    assert_eq!(first_pages, 2, "the pod listing started over once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_that_keeps_expiring_is_an_error_that_says_what_to_do() {
    let api = FakeApiServer::start(Behaviour {
        expire_continue: 100,
        ..Behaviour::default()
    })
    .await;
    let cluster = Cluster::connect(Some(&api.kubeconfig), None).await.unwrap();
    let err = cluster
        .list(&[], 2, std::time::Duration::from_secs(30))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot list pods: the continue token kept expiring"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_kubeconfig_or_context_is_a_clear_error() {
    let err = Cluster::connect(Some(std::path::Path::new("/nonexistent/kubeconfig")), None)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("cannot read kubeconfig /nonexistent/kubeconfig"),
        "{err}"
    );
    let api = FakeApiServer::start(Behaviour::default()).await;
    let err = Cluster::connect(Some(&api.kubeconfig), Some("prod"))
        .await
        .err()
        .unwrap();
    // The context is named by the cause, printed after the error as `{:#}` prints it.
    let err = tollgate::report::error_text(&err);
    assert!(err.contains("prod"), "{err}");
}

/// `tollgate audit --no-resolve` against `api`, with `extra` arguments.
async fn audit_against(api: &FakeApiServer, extra: &[&str]) -> crate::support::Run {
    let mut args: Vec<String> = ["audit", "--no-resolve", "--kubeconfig"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.push(api.kubeconfig.to_str().unwrap().to_owned());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    tokio::task::spawn_blocking(move || {
        crate::support::run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap()
}

/// An API server that answers 503 is not retried for minutes: the listing fails at once,
/// naming the resource and the server's words.
#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_api_server_fails_the_listing_without_retrying_for_minutes() {
    let api = FakeApiServer::start(Behaviour {
        unavailable: true,
        ..Behaviour::default()
    })
    .await;
    let r = audit_against(&api, &[]).await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("cannot list pods"), "{}", r.stderr);
    assert!(
        r.stderr.contains("unable to handle the request"),
        "{}",
        r.stderr
    );
    // One request for the first resource, not kube's fifteen retries.
    assert_eq!(api.requests().len(), 1, "{:?}", api.requests());
}

/// An API server that never answers is bounded by the listing's deadline.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_api_server_is_bounded_by_the_listing_deadline() {
    let api = FakeApiServer::start(Behaviour {
        stall: true,
        ..Behaviour::default()
    })
    .await;
    let r = audit_against(&api, &["--list-deadline", "2s"]).await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "cannot list pods: the API server did not answer within the 2s listing deadline"
        ),
        "{}",
        r.stderr
    );
}
