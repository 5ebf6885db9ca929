//! Recording into the catalog, on both engines (a SQLite file and a real PostgreSQL server),
//! through the binary: `catalog record` from a stand-in API server across a rollout, the audit
//! recording a running digest the real registry deleted (the seed 000 story) as one
//! `unservable` event, `catalog prune` deleting only old closed history, and `serve --catalog`
//! recording on its interval (and serving on while the catalog is down).

use std::time::Duration;

use rstest::rstest;
use serde_json::{Value, json};
use tollgate::catalog::{Catalog, CatalogUrl, Create, EventKind, RunSighting};
use tollgate::reference::{Digest, ImageRef};

use crate::support::catalog::{Backend, Db, migrated as db};
use crate::support::kube_api::FakeApiServer;
use crate::support::oci::{Pusher, layer};
use crate::support::registry::{TestRegistry, policy_file};
use crate::support::run;
use crate::support::webhook::{Webhook, eventually};

impl Db {
    /// Run `f` on the open catalog, in a runtime of its own.
    fn with<T>(&self, f: impl AsyncFnOnce(&Catalog) -> T) -> T {
        let url: CatalogUrl = self.url.parse().unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let c = Catalog::open(&url, Create::No).await.unwrap();
                let out = f(&c).await;
                c.close().await;
                out
            })
    }
}

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const IMAGE: &str = "docker-registry.example.org/svc/api";

/// A pod of ReplicaSet `rs` as the API server lists it (no kind or apiVersion in a list
/// item), its container `app` running `digest` (`None`: still pulling, no imageID yet).
fn pod(rs: &str, n: usize, digest: Option<&str>) -> Value {
    let mut status = json!({"name": "app", "image": format!("{IMAGE}:2"), "ready": false,
        "restartCount": 0, "imageID": "",
        "state": {"waiting": {"reason": "ContainerCreating"}}});
    if let Some(d) = digest {
        status = json!({"name": "app", "image": format!("{IMAGE}:2"), "ready": true,
            "restartCount": 0, "imageID": format!("{IMAGE}@{d}"),
            "state": {"running": {"startedAt": "2026-11-30T12:00:00Z"}}});
    }
    json!({"metadata": {"name": format!("{rs}-{n}"), "namespace": "prod",
            "uid": format!("0f4c2a1e-0000-4000-8000-{n:012}"),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                 "uid": "5e1d9c3b-1111-4000-8000-000000000001",
                                 "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "app", "image": format!("{IMAGE}:2")}]},
        "status": {"phase": if digest.is_some() { "Running" } else { "Pending" },
                   "containerStatuses": [status]}})
}

fn replica_set(name: &str, revision: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "prod",
            "annotations": {"deployment.kubernetes.io/revision": revision},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api",
                                 "uid": "5e1d9c3b-2222-4000-8000-000000000002",
                                 "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "app", "image": format!("{IMAGE}:2")}]}}}})
}

fn record(db: &Db, api: &FakeApiServer) -> Value {
    let r = run(&[
        "catalog",
        "record",
        "--catalog",
        &db.url,
        "--cluster",
        "prod-eqiad",
        "--kubeconfig",
        api.kubeconfig.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

fn digest(d: &str) -> Digest {
    d.parse().unwrap()
}

#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_closes_the_old_digests_run_and_opens_the_new_ones(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = tokio::task::spawn_blocking(move || db(backend))
        .await
        .unwrap();
    let api = FakeApiServer::start(Default::default()).await;
    api.set_controllers("replicasets", vec![replica_set("api-1", "1")]);
    // Two pods run A, a third still pulls.
    api.set_pods(vec![
        pod("api-1", 0, Some(A)),
        pod("api-1", 1, Some(A)),
        pod("api-1", 2, None),
    ]);
    let (db, api, first) = tokio::task::spawn_blocking(move || {
        let v = record(&db, &api);
        (db, api, v)
    })
    .await
    .unwrap();
    assert_eq!(
        (&first["opened"], &first["extended"], &first["closed"]),
        (&json!(1), &json!(0), &json!(0)),
        "{first}"
    );
    assert_eq!(first["cluster"], "prod-eqiad");
    assert_eq!(
        first["pending"],
        json!([{"namespace": "prod", "controllerKind": "Deployment", "controllerName": "api",
                "container": "app", "pods": 1}])
    );

    // The rollout: ReplicaSet api-2 runs B in two pods, api-1 is scaled to zero.
    api.set_controllers(
        "replicasets",
        vec![replica_set("api-1", "1"), replica_set("api-2", "2")],
    );
    api.set_pods(vec![pod("api-2", 0, Some(B)), pod("api-2", 1, Some(B))]);
    let (db, second) = tokio::task::spawn_blocking(move || {
        let v = record(&db, &api);
        (db, v)
    })
    .await
    .unwrap();
    assert_eq!(
        (&second["opened"], &second["extended"], &second["closed"]),
        (&json!(1), &json!(0), &json!(1)),
        "{second}"
    );
    assert_eq!(second["pending"], json!([]));
    let (t1, t2) = (ts(&first["recordedAt"]), ts(&second["recordedAt"]));

    let (old, new) = tokio::task::spawn_blocking(move || {
        db.with(async |c| {
            (
                c.runs_of_digest(&digest(A)).await.unwrap(),
                c.runs_of_digest(&digest(B)).await.unwrap(),
            )
        })
    })
    .await
    .unwrap();
    assert_eq!(old.len(), 1, "{old:?}");
    let o = &old[0];
    assert_eq!(
        (
            o.cluster.as_str(),
            o.namespace.as_str(),
            o.controller_kind.as_str(),
            o.controller_name.as_str(),
            o.container.as_str(),
            o.pods
        ),
        ("prod-eqiad", "prod", "Deployment", "api", "app", 2)
    );
    assert_eq!(o.image.to_string(), format!("{IMAGE}@{A}"));
    assert_eq!((o.first_seen, o.last_seen, o.closed_at), (t1, t1, Some(t2)));
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(
        (
            new[0].first_seen,
            new[0].last_seen,
            new[0].closed_at,
            new[0].pods
        ),
        (t2, t2, None, 2)
    );
}

#[test]
fn record_text_says_what_changed_and_what_runs_no_digest_yet() {
    let db = db(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.json");
    let mut items = vec![replica_set("api-1", "1")];
    items.extend([pod("api-1", 0, Some(A)), pod("api-1", 1, None)]);
    for item in &mut items {
        let kind = if item["spec"]["template"].is_null() {
            ("v1", "Pod")
        } else {
            ("apps/v1", "ReplicaSet")
        };
        item["apiVersion"] = kind.0.into();
        item["kind"] = kind.1.into();
    }
    std::fs::write(
        &live,
        json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string(),
    )
    .unwrap();
    let live = live.to_str().unwrap();
    let record = |extra: &[&str]| {
        let mut args = vec![
            "catalog",
            "record",
            "--catalog",
            &db.url,
            "--cluster",
            "prod",
            "--live-file",
            live,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let r = record(&[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut lines = r.stdout.lines();
    let first = lines.next().unwrap();
    let (head, counts) = first.split_once(": ").unwrap();
    let at = head.strip_prefix("cluster prod at ").unwrap();
    assert!(at.parse::<jiff::Timestamp>().is_ok(), "{first}");
    assert_eq!(counts, "1 run opened, 0 extended, 0 closed");
    assert_eq!(
        lines.collect::<Vec<_>>(),
        [
            "1 container without a digest yet (not recorded):",
            "  prod Deployment/api app: 1 pod"
        ]
    );

    // A snapshot is the whole cluster: one namespace of it would close the others' runs.
    let r = record(&["--namespace", "prod"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("a catalog snapshot is the whole cluster"),
        "{}",
        r.stderr
    );
    // A catalog that is not there is an error that says so, not a new empty file.
    let missing = format!("sqlite:{}", dir.path().join("none.db").display());
    let r = run(&[
        "catalog",
        "record",
        "--catalog",
        &missing,
        "--cluster",
        "prod",
        "--live-file",
        live,
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no catalog at"), "{}", r.stderr);
}

/// A kubectl List: Deployment prod/svc, its ReplicaSet, and `pods` pods running `running`.
fn live_list(running: &str, pods: usize) -> Value {
    let mut items = vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "svc", "namespace": "prod"},
            "spec": {"replicas": pods, "template": {"spec": {"containers": [{"name": "app", "image": running}]}}}}),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "svc-2", "namespace": "prod", "annotations": {"deployment.kubernetes.io/revision": "2"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "svc", "controller": true}]},
            "spec": {"replicas": pods, "template": {"spec": {"containers": [{"name": "app", "image": running}]}}}}),
    ];
    for i in 0..pods {
        items.push(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("svc-2-{i}"), "namespace": "prod",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "svc-2", "controller": true}]},
            "spec": {"containers": [{"name": "app", "image": running}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "app", "image": running, "imageID": running, "ready": true}]}}));
    }
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

/// The seed 000 story: an image deployed by digest only, deleted from the registry while three
/// pods run it. The audit that records into the catalog notices it once (however often it
/// runs), with the time, and the runs still say which pods ran it; pushed again, it is
/// servable again.
#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn a_running_digest_the_registry_deleted_is_one_unservable_event(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = tokio::task::spawn_blocking(move || db(backend))
        .await
        .unwrap();
    let reg = TestRegistry::start();
    let (_d, policy) = policy_file(&reg, "  rules: {digest-untagged: audit}\n");
    let p = Pusher::new(reg.base_url());
    let layers = [layer(&[("a", b"1")])];
    let push = || p.image("svc/ores", None, &layers, "linux/amd64");
    let img = push().await;
    let reference = format!("{}/svc/ores@{}", reg.host(), img.digest);
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.json");
    std::fs::write(&live, live_list(&reference, 3).to_string()).unwrap();
    let live = live.to_str().unwrap().to_owned();
    let audit = {
        let (url, policy) = (db.url.clone(), policy.clone());
        move || {
            let r = run(&[
                "audit",
                "--live-file",
                &live,
                "--policy",
                &policy,
                "--format",
                "json",
                "--cluster",
                "prod",
                "--catalog",
                &url,
            ]);
            let v: Value = serde_json::from_str(&r.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr));
            (r.code, v, r.stderr)
        }
    };
    let events = |stderr: &str| -> String {
        stderr
            .lines()
            .find_map(|l| l.strip_prefix("tollgate: catalog: registry events: "))
            .unwrap_or_else(|| panic!("no events line: {stderr}"))
            .to_owned()
    };

    let (code, _, stderr) = tokio::task::spawn_blocking(audit.clone()).await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        events(&stderr),
        "0 newly unservable, 0 still unservable, 0 servable again"
    );
    let before = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap();

    // Registry maintenance deletes the untagged manifest; the nodes run it from their cache.
    p.delete_manifest("svc/ores", &img.digest).await;
    let (code, v, stderr) = tokio::task::spawn_blocking(audit.clone()).await.unwrap();
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        events(&stderr),
        "1 newly unservable, 0 still unservable, 0 servable again"
    );
    let after = jiff::Timestamp::now();
    // The next audit finds it still lost: no second event.
    let (_, _, stderr) = tokio::task::spawn_blocking(audit.clone()).await.unwrap();
    assert_eq!(
        events(&stderr),
        "0 newly unservable, 1 still unservable, 0 servable again"
    );

    let d = digest(&img.digest);
    let (recorded, runs) = tokio::task::spawn_blocking({
        let d = d.clone();
        let db_url = db.url.clone();
        move || {
            let db = Db {
                url: db_url,
                _dir: None,
            };
            db.with(async |c| {
                (
                    c.registry_events_of(&d).await.unwrap(),
                    c.runs_of_digest(&d).await.unwrap(),
                )
            })
        }
    })
    .await
    .unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let e = &recorded[0];
    assert_eq!(e.kind, EventKind::Unservable);
    assert!(
        before <= e.noticed_at && e.noticed_at <= after,
        "{before} <= {} <= {after}",
        e.noticed_at
    );
    assert_eq!(
        e.repository.as_deref(),
        Some(format!("{}/svc/ores", reg.host()).as_str())
    );
    assert!(
        e.detail
            .as_deref()
            .unwrap()
            .starts_with("the next restart of these 3 pods will fail to pull"),
        "{e:?}"
    );
    // Which pods ran it, after the fact: three pods of Deployment prod/svc, still open.
    assert_eq!(runs.len(), 1, "{runs:?}");
    let r = &runs[0];
    assert_eq!(
        (
            r.cluster.as_str(),
            r.namespace.as_str(),
            r.controller_kind.as_str(),
            r.controller_name.as_str(),
            r.pods,
            r.closed_at
        ),
        ("prod", "prod", "Deployment", "svc", 3, None)
    );

    // Pushed again (the same content, the same digest): servable again, one event.
    assert_eq!(push().await.digest, img.digest);
    let (code, _, stderr) = tokio::task::spawn_blocking(audit.clone()).await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        events(&stderr),
        "0 newly unservable, 0 still unservable, 1 servable again"
    );
    let kinds = tokio::task::spawn_blocking(move || {
        db.with(async |c| c.registry_events_of(&d).await.unwrap())
    })
    .await
    .unwrap()
    .iter()
    .map(|e| e.kind)
    .collect::<Vec<_>>();
    assert_eq!(kinds, [EventKind::Unservable, EventKind::Servable]);
}

#[test]
fn an_audit_whose_catalog_is_down_still_reports_and_keeps_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.json");
    std::fs::write(&live, live_list(&format!("{IMAGE}@{A}"), 1).to_string()).unwrap();
    // A PostgreSQL URL with a password, on a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://tollgate:s3cr3t-pw@127.0.0.1:{port}/catalog");
    let r = run(&[
        "audit",
        "--live-file",
        live.to_str().unwrap(),
        "--no-resolve",
        "--format",
        "json",
        "--cluster",
        "prod",
        "--catalog",
        &url,
    ]);
    // The default policy's findings for this image, as without a catalog.
    let without = run(&[
        "audit",
        "--live-file",
        live.to_str().unwrap(),
        "--no-resolve",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, without.code, "{}", r.stderr);
    assert_eq!(r.stdout, without.stdout);
    assert!(
        r.stderr
            .contains("tollgate: warning: cannot record into the catalog postgres://tollgate:***@"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("s3cr3t-pw"), "{}", r.stderr);
    // --cluster without a catalog is a usage error.
    let r = run(&[
        "audit",
        "--live-file",
        live.to_str().unwrap(),
        "--no-resolve",
        "--cluster",
        "prod",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("give --catalog"), "{}", r.stderr);
}

fn run_sighting(name: &str, n: u64) -> RunSighting {
    RunSighting {
        namespace: "prod".into(),
        controller_kind: "Deployment".into(),
        controller_name: name.into(),
        container: "app".into(),
        image: format!("{IMAGE}@sha256:{n:064x}")
            .parse::<ImageRef>()
            .unwrap(),
        pods: 1,
    }
}

/// `catalog prune --keep 400d`: closed runs, moved tag rows and superseded events older than
/// the cutoff go, in batches (more than one here); an open run started long ago, a current
/// tag row, a recent closed run and each digest's latest event stay. `--dry-run` counts the
/// same and deletes nothing; a second prune finds nothing.
#[rstest]
fn prune_deletes_only_old_closed_history(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    let now = jiff::Timestamp::now();
    let days = |d: i64| now - jiff::SignedDuration::from_hours(24 * d);
    // 1,500 runs of old deployments, closed 450 days ago; one deployment running since 500
    // days ago (open); one closed 10 days ago.
    let old: Vec<RunSighting> = (0..1500)
        .map(|i| run_sighting(&format!("old-{i}"), i))
        .collect();
    let always = run_sighting("always", 9000);
    let recent = run_sighting("recent", 9001);
    let (registry, repository, tag) = {
        let r: ImageRef = format!("{IMAGE}:1").parse().unwrap();
        (
            r.registry().clone(),
            r.repository().clone(),
            r.tag().unwrap().clone(),
        )
    };
    let (lost, back): (ImageRef, ImageRef) = (
        format!("{IMAGE}@sha256:{:064x}", 7001).parse().unwrap(),
        format!("{IMAGE}@sha256:{:064x}", 7002).parse().unwrap(),
    );
    db.with(async |c| {
        let mut first = old.clone();
        first.push(always.clone());
        c.record_runs("prod", &first, days(500)).await.unwrap();
        c.record_runs("prod", &[always.clone(), recent.clone()], days(450))
            .await
            .unwrap();
        c.record_runs("prod", std::slice::from_ref(&always), days(10))
            .await
            .unwrap();
        for (d, t) in [(1u64, 500), (2, 450), (3, 5)] {
            let digest: Digest = format!("sha256:{d:064x}").parse().unwrap();
            c.record_tag_sighting(&registry, &repository, &tag, &digest, days(t))
                .await
                .unwrap();
        }
        let unservable = |r: &ImageRef| tollgate::catalog::Servability {
            unservable: vec![(r.clone(), "lost".into())],
            servable: vec![],
        };
        let servable = |r: &ImageRef| tollgate::catalog::Servability {
            unservable: vec![],
            servable: vec![r.clone()],
        };
        // Lost 470 days ago and never back: that event is its current state.
        c.record_servability(&unservable(&lost), days(470))
            .await
            .unwrap();
        // Lost and back long ago: the loss is history, the return its current state.
        c.record_servability(&unservable(&back), days(460))
            .await
            .unwrap();
        c.record_servability(&servable(&back), days(455))
            .await
            .unwrap();
    });

    let prune = |extra: &[&str]| {
        let mut args = vec![
            "catalog",
            "prune",
            "--catalog",
            &db.url,
            "--keep",
            "400d",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let r = run(&args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        v["deleted"].clone()
    };
    let want = json!({"runs": 1500, "tagHistory": 1, "registryEvents": 1});
    assert_eq!(prune(&["--dry-run"]), want);
    assert_eq!(prune(&["--dry-run"]), want, "a dry run deletes nothing");
    assert_eq!(prune(&[]), want);
    assert_eq!(
        prune(&[]),
        json!({"runs": 0, "tagHistory": 0, "registryEvents": 0})
    );

    let (always_runs, recent_runs, lost_events, back_events, old_runs) = db.with(async |c| {
        (
            c.runs_of_digest(always.image.digest().unwrap())
                .await
                .unwrap(),
            c.runs_of_digest(recent.image.digest().unwrap())
                .await
                .unwrap(),
            c.registry_events_of(lost.digest().unwrap()).await.unwrap(),
            c.registry_events_of(back.digest().unwrap()).await.unwrap(),
            c.runs_of_digest(old[0].image.digest().unwrap())
                .await
                .unwrap(),
        )
    });
    assert!(old_runs.is_empty(), "{old_runs:?}");
    assert_eq!(always_runs.len(), 1);
    assert_eq!(always_runs[0].closed_at, None);
    assert_eq!(always_runs[0].first_seen.as_second(), days(500).as_second());
    assert_eq!(recent_runs.len(), 1);
    assert_eq!(
        recent_runs[0].closed_at.map(|t| t.as_second()),
        Some(days(10).as_second())
    );
    assert_eq!(
        lost_events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::Unservable]
    );
    assert_eq!(
        back_events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::Servable]
    );

    let r = run(&["catalog", "prune", "--catalog", &db.url, "--keep", "400d"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .ends_with(": deleted 0 closed runs, 0 moved tag rows, 0 registry events\n"),
        "{}",
        r.stdout
    );
    let r = run(&[
        "catalog",
        "prune",
        "--catalog",
        &db.url,
        "--keep",
        "forever",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

const WAIT: Duration = Duration::from_secs(30);

/// `serve --catalog` records the cluster on its interval: the stand-in API server's pods are
/// in the catalog, and the recording metrics say so.
#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn serve_with_a_catalog_records_on_its_interval(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    // Security data imported an hour ago: the recording exports its gauges (issue 16).
    let imported = jiff::Timestamp::now().as_second() - 3600;
    let db = tokio::task::spawn_blocking(move || {
        let db = db(backend);
        db.raw(&format!(
            "INSERT INTO security_imports (origin, imported_at, location, releases, advisories, errors) \
             VALUES ('debian-tracker', {imported}, 'tracker.json', '[\"bookworm\"]', 0, 0)"
        ));
        db
    })
    .await
    .unwrap();
    let api = FakeApiServer::start(Default::default()).await;
    let hook = Webhook::start(&[
        "--no-resolve",
        "--catalog",
        &db.url,
        "--cluster-name",
        "prod",
        "--catalog-record-interval",
        "1s",
        "--audit-kubeconfig",
        api.kubeconfig.to_str().unwrap(),
    ]);
    eventually("two successful recordings", WAIT, || async {
        hook.metric("tollgate_catalog_records_total{result=\"success\"}")
            .await
            >= 2.0
    })
    .await;
    assert_eq!(
        hook.metric("tollgate_catalog_records_total{result=\"failure\"}")
            .await,
        0.0
    );
    assert!(
        hook.metric("tollgate_catalog_record_rows_total{change=\"opened\"}")
            .await
            >= 1.0
    );
    assert!(
        hook.metric("tollgate_catalog_record_last_success_timestamp_seconds")
            .await
            > 1.7e9
    );
    let age = hook
        .metric("tollgate_security_data_age_seconds{origin=\"debian-tracker\"}")
        .await;
    assert!((3600.0..4000.0).contains(&age), "{age}");
    assert_eq!(
        hook.metric("tollgate_security_update_needed_running_images{urgency=\"high\"}")
            .await,
        0.0,
        "no image of the fixtures is inventoried, so none is counted"
    );
    let running = tokio::task::spawn_blocking(move || {
        db.with(async |c| {
            c.running_at(
                jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1),
                Some("prod"),
                None,
            )
            .await
            .unwrap()
        })
    })
    .await
    .unwrap();
    // The fixtures' pods (tests/fixtures/kube): builds-api's Deployment among them.
    assert!(
        running
            .iter()
            .any(|r| r.controller_kind == "Deployment" && r.controller_name == "builds-api"),
        "{running:?}"
    );
}

/// A catalog that is down never stops admission: each failed recording is one warning (the
/// password redacted) and one failure counted, and /validate answers throughout.
#[tokio::test(flavor = "multi_thread")]
async fn serve_keeps_admitting_while_its_catalog_is_down() {
    let api = FakeApiServer::start(Default::default()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://tollgate:s3cr3t-pw@127.0.0.1:{port}/catalog");
    let hook = Webhook::start_env(
        &[
            "--no-resolve",
            "--cluster-name",
            "prod",
            "--catalog-record-interval",
            "1s",
            "--audit-kubeconfig",
            api.kubeconfig.to_str().unwrap(),
        ],
        &[("TOLLGATE_CATALOG", &url)],
    );
    eventually("two failed recordings", WAIT, || async {
        hook.metric("tollgate_catalog_records_total{result=\"failure\"}")
            .await
            >= 2.0
    })
    .await;
    // Answered as without a catalog (the default policy's verdict), within the request.
    let review = crate::support::webhook::fixture("pod-create.json");
    let answer = hook.review("/validate", &review).await;
    assert!(answer["allowed"].is_boolean(), "{answer}");
    let logs = hook.logs();
    assert!(logs.contains("catalog recording failed"), "{logs}");
    assert!(logs.contains("postgres://tollgate:***@127.0.0.1"), "{logs}");
    assert!(!logs.contains("s3cr3t-pw"), "{logs}");
}

/// `serve --audit-interval` with a catalog: the periodic audit records a running digest the
/// registry deleted as one `unservable` event, however many runs find it, beside the
/// recording of the runs that say which pods ran it.
#[rstest]
#[tokio::test(flavor = "multi_thread")]
async fn serve_s_periodic_audit_records_a_lost_digest_once(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = tokio::task::spawn_blocking(move || db(backend))
        .await
        .unwrap();
    let reg = TestRegistry::start();
    let (_d, policy) = policy_file(&reg, "");
    let p = Pusher::new(reg.base_url());
    let img = p
        .image("svc/ores", None, &[layer(&[("a", b"1")])], "linux/amd64")
        .await;
    p.delete_manifest("svc/ores", &img.digest).await;
    let running = format!("{}/svc/ores@{}", reg.host(), img.digest);
    let api = FakeApiServer::start(Default::default()).await;
    api.set_pods(vec![
        json!({"metadata": {"name": "ores-0", "namespace": "prod"},
        "spec": {"containers": [{"name": "app", "image": running}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "app", "image": running,
            "imageID": running, "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-11-30T12:00:00Z"}}}]}}),
    ]);
    let hook = Webhook::start(&[
        "--policy",
        &policy,
        "--audit-interval",
        "1s",
        "--audit-kubeconfig",
        api.kubeconfig.to_str().unwrap(),
        "--catalog",
        &db.url,
        "--cluster-name",
        "prod",
        "--catalog-record-interval",
        "1s",
    ]);
    eventually("three audit runs and a recording", WAIT, || async {
        hook.metric("tollgate_audit_runs_total{result=\"success\"}")
            .await
            >= 3.0
            && hook
                .metric("tollgate_catalog_records_total{result=\"success\"}")
                .await
                >= 1.0
    })
    .await;
    assert_eq!(
        hook.metric("tollgate_catalog_records_total{result=\"failure\"}")
            .await,
        0.0,
        "{}",
        hook.logs()
    );
    let d = digest(&img.digest);
    let (events, runs) = tokio::task::spawn_blocking(move || {
        db.with(async |c| {
            (
                c.registry_events_of(&d).await.unwrap(),
                c.runs_of_digest(&d).await.unwrap(),
            )
        })
    })
    .await
    .unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::Unservable],
        "{events:?}"
    );
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (
            runs[0].controller_kind.as_str(),
            runs[0].controller_name.as_str()
        ),
        ("Pod", "ores-0")
    );
}
