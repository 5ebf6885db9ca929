//! The catalog on both engines, with one table of tests each runs: a SQLite file in a
//! temporary directory, and a real PostgreSQL server (tests/common/postgres.rs). `migrate` and
//! `status` through the binary; tag history, runs as intervals, the two run queries, the
//! refusal of a newer schema, and concurrent writers through the library.

use std::collections::BTreeMap;

use rstest::rstest;
use sqlx::Connection as _;
use tollgate::catalog::{
    Catalog, CatalogError, CatalogUrl, Create, RunSighting, SCHEMA_VERSION, TABLES, TagSighting,
};
use tollgate::reference::{Digest, ImageRef};

use crate::support::catalog::{Backend, Db, empty as db};
use crate::support::postgres;
use crate::support::run;

impl Db {
    fn catalog_url(&self) -> CatalogUrl {
        self.url.parse().unwrap()
    }

    /// Open the catalog in `rt`, the runtime every later use must run in: the pool's
    /// connections belong to the runtime that opened them.
    fn open(&self, rt: &tokio::runtime::Runtime) -> Catalog {
        rt.block_on(Catalog::open(&self.catalog_url(), Create::IfMissing))
            .unwrap()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

fn at(s: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn digest(n: u64) -> Digest {
    format!("sha256:{n:064x}").parse().unwrap()
}

fn image(repo: &str, n: u64) -> ImageRef {
    format!("docker-registry.example.org/{repo}@{}", digest(n))
        .parse()
        .unwrap()
}

fn sighting(namespace: &str, name: &str, container: &str, img: ImageRef, pods: u32) -> RunSighting {
    RunSighting {
        namespace: namespace.into(),
        controller_kind: "Deployment".into(),
        controller_name: name.into(),
        container: container.into(),
        image: img,
        pods,
    }
}

fn tag_ref(repo: &str, tag: &str) -> ImageRef {
    format!("docker-registry.example.org/{repo}:{tag}")
        .parse()
        .unwrap()
}

async fn sight(c: &Catalog, r: &ImageRef, d: u64, t: i64) -> TagSighting {
    c.record_tag_sighting(
        r.registry(),
        r.repository(),
        r.tag().unwrap(),
        &digest(d),
        at(t),
    )
    .await
    .unwrap()
}

/// (digest, first_seen, last_seen, moved_at) of a tag's history, oldest first, read past the
/// catalog's API (which has no tag query yet).
fn tag_history(db: &Db, tag: &str) -> Vec<(String, i64, i64, Option<i64>)> {
    let url = db.url.clone();
    let tag = tag.to_owned();
    runtime().block_on(async move {
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
        let rows: Vec<(String, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT h.digest, h.first_seen - 1700000000, h.last_seen - 1700000000, h.moved_at - 1700000000 \
             FROM tag_history h JOIN tags t ON t.id = h.tag_id WHERE t.name = $1 ORDER BY h.first_seen, h.id",
        )
        .bind(tag)
        .fetch_all(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
        rows
    })
}

// ---- through the binary ----

#[rstest]
fn migrate_then_status_through_the_binary(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    let before = run(&["catalog", "status", "--catalog", &db.url]);
    assert_eq!(before.code, 2, "{}", before.stderr);
    match backend {
        Backend::Sqlite => assert!(before.stderr.contains("no catalog at"), "{}", before.stderr),
        Backend::Postgres => assert!(
            before.stderr.contains("has no schema yet"),
            "{}",
            before.stderr
        ),
    }

    let first = run(&["catalog", "migrate", "--catalog", &db.url]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        first.stdout,
        format!(
            "applied migration 1 (catalog)\napplied migration 2 (packages)\napplied migration 3 (security)\n{}: schema version 3\n",
            db.url
        )
    );
    let again = run(&["catalog", "migrate", "--catalog", &db.url]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.stdout,
        format!("{}: schema version 3, up to date\n", db.url)
    );

    let status = run(&["catalog", "status", "--catalog", &db.url]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let mut lines = status.stdout.lines();
    let engine = match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    assert_eq!(
        lines.next().unwrap(),
        format!("{} ({engine}): schema version 3", db.url)
    );
    let tables: Vec<(String, String)> = lines
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap().to_owned(), w.next().unwrap().to_owned())
        })
        .collect();
    let want: Vec<(String, String)> = TABLES
        .iter()
        .map(|t| (t.to_string(), "0".to_string()))
        .collect();
    assert_eq!(tables, want);
}

#[rstest]
fn status_counts_what_was_recorded(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let db = db(backend);
    assert_eq!(run(&["catalog", "migrate", "--catalog", &db.url]).code, 0);
    let rt = runtime();
    let catalog = db.open(&rt);
    rt.block_on(async {
        let r = tag_ref("app", "1.0");
        sight(&catalog, &r, 1, 0).await;
        sight(&catalog, &r, 2, 10).await;
        catalog
            .record_runs(
                "prod",
                &[sighting("ns", "app", "app", image("app", 2), 3)],
                at(10),
            )
            .await
            .unwrap();
        catalog.close().await;
    });
    let status = run(&["catalog", "status", "--catalog", &db.url]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let counts: BTreeMap<&str, &str> = status
        .stdout
        .lines()
        .skip(1)
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap(), w.next().unwrap())
        })
        .collect();
    assert_eq!(counts["repositories"], "1");
    assert_eq!(counts["tags"], "1");
    assert_eq!(counts["tag_history"], "2");
    assert_eq!(counts["clusters"], "1");
    assert_eq!(counts["runs"], "1");
    assert_eq!(counts["manifests"], "0");
}

#[rstest]
fn a_schema_newer_than_the_binary_is_refused(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    assert_eq!(run(&["catalog", "migrate", "--catalog", &db.url]).code, 0);
    let future = SCHEMA_VERSION + 1;
    db.raw(&format!(
        "INSERT INTO schema_version (version, name, applied_at) VALUES ({future}, 'from-a-newer-tollgate', 0)"
    ));
    let want = format!(
        "the catalog's schema is version {future}, newer than this binary knows (version {SCHEMA_VERSION}): upgrade tollgate"
    );
    for command in ["migrate", "status"] {
        let r = run(&["catalog", command, "--catalog", &db.url]);
        assert_eq!(r.code, 2, "{command}: {}", r.stderr);
        assert!(r.stderr.contains(&want), "{command}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{command}");
    }
    // And through the library, as a typed error, with the database untouched.
    let rt = runtime();
    let catalog = db.open(&rt);
    rt.block_on(async {
        let e = catalog.migrate(at(0)).await.unwrap_err();
        assert!(
            matches!(e, CatalogError::SchemaNewer { database, binary } if database == future && binary == SCHEMA_VERSION),
            "{e:?}"
        );
        assert_eq!(catalog.schema_version().await.unwrap(), future);
        catalog.close().await;
    });
}

#[test]
fn a_password_in_the_url_is_never_printed() {
    let server = postgres::server();
    // The role does not exist: an answer from the server, printed with the URL.
    let url = format!(
        "postgres://tollgate:hunter2@127.0.0.1:{}/no_such_database",
        server.port
    );
    let r = run(&["catalog", "status", "--catalog", &url]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "postgres://tollgate:***@127.0.0.1:{}/no_such_database",
            server.port
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
}

#[rstest]
#[case::unknown_scheme("mysql://u:hunter2@h/db", "the scheme is not supported")]
#[case::bare_path(
    "catalog.db",
    "a catalog is `sqlite:PATH` or `postgres://USER@HOST/DB`"
)]
#[case::sqlite_without_path("sqlite:", "`sqlite:` needs a file path")]
fn a_bad_catalog_url_is_a_usage_error(#[case] url: &str, #[case] says: &str) {
    let r = run(&["catalog", "migrate", "--catalog", url]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(says), "{}", r.stderr);
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
}

#[test]
fn the_catalog_url_can_come_from_the_environment() {
    let db = db(Backend::Sqlite);
    let out = crate::support::tollgate(&["catalog", "migrate"])
        .env("TOLLGATE_CATALOG", &db.url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied migration 1"));
}

/// docs/catalog.md shows real output: each `$ tollgate ...` line of its console block, run in
/// an empty directory one after the other, prints exactly the lines under it.
#[test]
fn the_doc_shows_the_binary_s_real_output() {
    let doc = include_str!("../../docs/catalog.md");
    let dir = tempfile::tempdir().unwrap();
    let mut commands = 0;
    for block in doc.split("```console\n").skip(1) {
        let block = &block[..block.find("```").unwrap()];
        for step in block.split("$ tollgate ").skip(1) {
            let (command, expected) = step.split_once('\n').unwrap();
            let args: Vec<&str> = command.split_whitespace().collect();
            let out = crate::support::tollgate(&args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{command}: {out:?}");
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                expected,
                "{command}"
            );
            commands += 1;
        }
    }
    assert!(commands >= 2, "docs/catalog.md has no console example");
}

// ---- the library on both engines ----

fn migrated(backend: Backend) -> (Db, tokio::runtime::Runtime, Catalog) {
    let db = db(backend);
    let rt = runtime();
    let catalog = db.open(&rt);
    let applied = rt.block_on(catalog.migrate(at(0))).unwrap();
    assert_eq!(applied.len() as i64, SCHEMA_VERSION);
    (db, rt, catalog)
}

/// Two replicas starting at once both run `migrate`: one applies the schema, the other waits
/// and finds it applied (PostgreSQL's advisory lock; SQLite's write lock).
#[rstest]
fn two_migrations_at_once_apply_the_schema_once(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    let rt = runtime();
    let (a, b) = (db.open(&rt), db.open(&rt));
    let (ra, rb) = rt.block_on(async {
        let (ra, rb) = tokio::join!(a.migrate(at(0)), b.migrate(at(0)));
        a.close().await;
        b.close().await;
        (ra.unwrap(), rb.unwrap())
    });
    let mut applied = [ra.len(), rb.len()];
    applied.sort();
    assert_eq!(applied, [0, SCHEMA_VERSION as usize], "{ra:?} {rb:?}");
    let status = run(&["catalog", "status", "--catalog", &db.url]);
    assert_eq!(status.code, 0, "{}", status.stderr);
}

#[rstest]
fn a_tag_history_opens_extends_and_moves(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let (db, rt, catalog) = migrated(backend);
    let r = tag_ref("toolforge/builds-api", "0.0.130");
    rt.block_on(async {
        assert_eq!(sight(&catalog, &r, 1, 0).await, TagSighting::Opened);
        assert_eq!(sight(&catalog, &r, 1, 10).await, TagSighting::Extended);
        // Seen late by another writer: extends nothing backwards.
        assert_eq!(sight(&catalog, &r, 1, 5).await, TagSighting::Extended);
        assert_eq!(
            sight(&catalog, &r, 2, 20).await,
            TagSighting::Moved { from: digest(1) }
        );
        // An older sighting of the old digest would invent a move back.
        assert_eq!(sight(&catalog, &r, 1, 15).await, TagSighting::Stale);
        // Moving back later is a move, and a new interval.
        assert_eq!(
            sight(&catalog, &r, 1, 30).await,
            TagSighting::Moved { from: digest(2) }
        );
        // The same tag name in another repository is another tag.
        let other = tag_ref("toolforge/jobs-api", "0.0.130");
        assert_eq!(sight(&catalog, &other, 9, 30).await, TagSighting::Opened);
        catalog.close().await;
    });
    let d = |n| digest(n).to_string();
    assert_eq!(
        tag_history(&db, "0.0.130")
            .into_iter()
            .filter(|(digest, ..)| *digest != d(9))
            .collect::<Vec<_>>(),
        vec![
            (d(1), 0, 10, Some(20)),
            (d(2), 20, 20, Some(30)),
            (d(1), 30, 30, None),
        ]
    );
}

#[rstest]
fn runs_are_intervals_that_close_when_a_snapshot_no_longer_sees_them(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let (_db, rt, catalog) = migrated(backend);
    let api = |n, pods| sighting("builds", "builds-api", "api", image("builds-api", n), pods);
    let web = sighting("web", "site", "nginx", image("site", 7), 1);
    rt.block_on(async {
        let r = catalog
            .record_runs("eqiad", &[api(130, 2), web.clone()], at(0))
            .await
            .unwrap();
        assert_eq!((r.opened, r.extended, r.closed, r.stale), (2, 0, 0, false));
        // Two pods of one container are one run with their count.
        let r = catalog
            .record_runs("eqiad", &[api(130, 1), api(130, 2), web.clone()], at(60))
            .await
            .unwrap();
        assert_eq!((r.opened, r.extended, r.closed), (0, 2, 0));
        // The rollout to 131: 130 stops, 131 starts; the site is gone for one snapshot.
        let r = catalog
            .record_runs("eqiad", &[api(131, 3)], at(120))
            .await
            .unwrap();
        assert_eq!((r.opened, r.extended, r.closed), (1, 0, 2));
        // The site is back: a new interval, not an extension over the gap.
        let r = catalog
            .record_runs("eqiad", &[api(131, 3), web.clone()], at(180))
            .await
            .unwrap();
        assert_eq!((r.opened, r.extended, r.closed), (1, 1, 0));
        // A snapshot older than the latest changes nothing.
        let r = catalog.record_runs("eqiad", &[], at(150)).await.unwrap();
        assert!(r.stale);
        // Another cluster is recorded on its own.
        catalog
            .record_runs("codfw", &[api(130, 1)], at(170))
            .await
            .unwrap();

        let of_130 = catalog.runs_of_digest(&digest(130)).await.unwrap();
        let summary: Vec<_> = of_130
            .iter()
            .map(|r| {
                (
                    r.cluster.as_str(),
                    r.pods,
                    r.first_seen,
                    r.last_seen,
                    r.closed_at,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("eqiad", 3, at(0), at(60), Some(at(120))),
                ("codfw", 1, at(170), at(170), None),
            ]
        );
        assert_eq!(of_130[0].namespace, "builds");
        assert_eq!(of_130[0].controller_kind, "Deployment");
        assert_eq!(of_130[0].controller_name, "builds-api");
        assert_eq!(of_130[0].container, "api");
        assert_eq!(of_130[0].image, image("builds-api", 130));

        let site: Vec<_> = catalog
            .runs_of_digest(&digest(7))
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.first_seen, r.last_seen, r.closed_at))
            .collect();
        assert_eq!(
            site,
            vec![(at(0), at(60), Some(at(120))), (at(180), at(180), None)]
        );
        catalog.close().await;
    });
}

#[rstest]
fn running_at_answers_what_ran_then_by_cluster_and_namespace(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let (_db, rt, catalog) = migrated(backend);
    rt.block_on(async {
        let a = sighting("builds", "builds-api", "api", image("builds-api", 130), 2);
        let b = sighting("web", "site", "nginx", image("site", 7), 1);
        let c = sighting("builds", "builds-api", "api", image("builds-api", 131), 2);
        catalog
            .record_runs("eqiad", &[a.clone(), b.clone()], at(0))
            .await
            .unwrap();
        catalog
            .record_runs("eqiad", &[a.clone(), b.clone()], at(60))
            .await
            .unwrap();
        catalog
            .record_runs("eqiad", std::slice::from_ref(&c), at(120))
            .await
            .unwrap();
        catalog
            .record_runs("codfw", std::slice::from_ref(&a), at(30))
            .await
            .unwrap();
        catalog
            .record_runs("codfw", std::slice::from_ref(&a), at(90))
            .await
            .unwrap();

        let names = |runs: Vec<tollgate::catalog::Run>| -> Vec<(String, String, String)> {
            runs.into_iter()
                .map(|r| (r.cluster, r.namespace, r.digest.short()))
                .collect()
        };
        let s = |c: &str, n: &str, d: u64| (c.to_owned(), n.to_owned(), digest(d).short());
        assert_eq!(
            names(catalog.running_at(at(45), None, None).await.unwrap()),
            vec![
                s("codfw", "builds", 130),
                s("eqiad", "builds", 130),
                s("eqiad", "web", 7)
            ]
        );
        assert_eq!(
            names(
                catalog
                    .running_at(at(45), Some("eqiad"), None)
                    .await
                    .unwrap()
            ),
            vec![s("eqiad", "builds", 130), s("eqiad", "web", 7)]
        );
        assert_eq!(
            names(
                catalog
                    .running_at(at(45), None, Some("builds"))
                    .await
                    .unwrap()
            ),
            vec![s("codfw", "builds", 130), s("eqiad", "builds", 130)]
        );
        assert_eq!(
            names(
                catalog
                    .running_at(at(120), Some("eqiad"), Some("builds"))
                    .await
                    .unwrap()
            ),
            vec![s("eqiad", "builds", 131)]
        );
        // Interval ends are inclusive; between the last sighting and the snapshot that no
        // longer saw it, nothing is claimed.
        assert_eq!(
            names(catalog.running_at(at(60), None, Some("web")).await.unwrap()),
            vec![s("eqiad", "web", 7)]
        );
        assert!(
            catalog
                .running_at(at(61), None, Some("web"))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            catalog
                .running_at(at(-1), None, None)
                .await
                .unwrap()
                .is_empty()
        );
        catalog.close().await;
    });
}

#[rstest]
fn a_run_without_a_digest_is_refused(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let (_db, rt, catalog) = migrated(backend);
    let mut s = sighting("ns", "app", "app", image("app", 1), 1);
    s.image = "docker-registry.example.org/app:1.0".parse().unwrap();
    rt.block_on(async {
        let e = catalog.record_runs("eqiad", &[s], at(0)).await.unwrap_err();
        assert!(matches!(e, CatalogError::RunWithoutDigest { .. }), "{e:?}");
        // Nothing was written, not even the cluster.
        assert!(
            catalog
                .running_at(at(0), None, None)
                .await
                .unwrap()
                .is_empty()
        );
        catalog.close().await;
    });
}

/// The snapshot a cluster shows at `t`: a steady run, and one that runs at even times only.
fn snapshot_at(t: i64, steady: u64, coming: u64) -> Vec<RunSighting> {
    let mut snapshot = vec![sighting(
        "builds",
        "builds-api",
        "api",
        image("builds-api", steady),
        2,
    )];
    if t % 2 == 0 {
        snapshot.push(sighting("jobs", "cron", "job", image("cron", coming), 1));
    }
    snapshot
}

/// (first_seen, last_seen, closed_at) of each interval of `digest` in `cluster`.
async fn intervals(c: &Catalog, cluster: &str, d: u64) -> Vec<(i64, i64, Option<i64>)> {
    let s = |t: jiff::Timestamp| t.as_second() - 1_700_000_000;
    c.runs_of_digest(&digest(d))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.cluster == cluster)
        .map(|r| (s(r.first_seen), s(r.last_seen), r.closed_at.map(s)))
        .collect()
}

/// Writers that race for the same rows: without the row lock each recording takes first, two
/// of them read the same open runs (or the same current tag) and both open, close or move,
/// which the partial unique indexes then refuse (an error here) or which leaves the history
/// wrong (a wrong count below).
#[rstest]
fn concurrent_recorders_lose_no_update(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    const N: i64 = 40;
    let (db, rt, catalog) = migrated(backend);
    rt.block_on(async {
        let mut tasks = Vec::new();
        let mut spawn = |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
            tasks.push(tokio::spawn(f));
        };
        // Two clusters at once, one writer each.
        for (cluster, steady, coming) in [("eqiad", 1, 2), ("codfw", 3, 4)] {
            let c = catalog.clone();
            spawn(Box::pin(async move {
                for t in 1..=N {
                    let snapshot = snapshot_at(t, steady, coming);
                    let r = c.record_runs(cluster, &snapshot, at(t)).await.unwrap();
                    assert!(!r.stale);
                }
            }));
        }
        // One cluster, two writers (two replicas) recording the same snapshots at once.
        for _ in 0..2 {
            let c = catalog.clone();
            spawn(Box::pin(async move {
                for t in 1..=N {
                    c.record_runs("ulsfo", &snapshot_at(t, 5, 6), at(t))
                        .await
                        .unwrap();
                }
            }));
        }
        // One cluster, two writers taking turns with their own clocks: late ones are stale.
        for parity in [0, 1] {
            let c = catalog.clone();
            spawn(Box::pin(async move {
                for t in (1..=2 * N).filter(|t| t % 2 == parity) {
                    let snapshot = [sighting("web", "site", "nginx", image("site", 7), 1)];
                    c.record_runs("esams", &snapshot, at(t)).await.unwrap();
                }
            }));
        }
        // Tags: two tags of one repository moving at once; one tag moved by two writers
        // seeing the same moves; one tag sighted by two writers taking turns.
        for (tag, base) in [
            ("east", 100),
            ("west", 200),
            ("shared", 300),
            ("shared", 300),
        ] {
            let c = catalog.clone();
            spawn(Box::pin(async move {
                let r = tag_ref("app", tag);
                for t in 1..=N {
                    sight(&c, &r, base + t as u64, t).await;
                }
            }));
        }
        for parity in [0, 1] {
            let c = catalog.clone();
            spawn(Box::pin(async move {
                let r = tag_ref("app", "sighted");
                for t in (1..=2 * N).filter(|t| t % 2 == parity) {
                    let s = sight(&c, &r, 9, t).await;
                    assert!(
                        matches!(s, TagSighting::Opened | TagSighting::Extended),
                        "{s:?}"
                    );
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }

        // The steady run is one interval over every snapshot; the other opened at each even
        // snapshot and closed at the odd one after it.
        let coming: Vec<_> = (1..=N)
            .filter(|t| t % 2 == 0)
            .map(|t| (t, t, (t < N).then_some(t + 1)))
            .collect();
        for (cluster, steady, come) in [("eqiad", 1, 2), ("codfw", 3, 4), ("ulsfo", 5, 6)] {
            assert_eq!(
                intervals(&catalog, cluster, steady).await,
                vec![(1, N, None)],
                "{cluster}"
            );
            assert_eq!(
                intervals(&catalog, cluster, come).await,
                coming,
                "{cluster}"
            );
        }
        // Taking turns: one interval, whoever won each race, ending at the latest.
        let esams = intervals(&catalog, "esams", 7).await;
        assert_eq!(esams.len(), 1, "{esams:?}");
        assert_eq!((esams[0].1, esams[0].2), (2 * N, None));
        catalog.close().await;
    });

    for (tag, base) in [("east", 100), ("west", 200), ("shared", 300)] {
        let want: Vec<_> = (1..=N)
            .map(|t| {
                (
                    digest(base + t as u64).to_string(),
                    t,
                    t,
                    (t < N).then_some(t + 1),
                )
            })
            .collect();
        assert_eq!(tag_history(&db, tag), want, "{tag}");
    }
    let sighted = tag_history(&db, "sighted");
    assert_eq!(sighted.len(), 1, "{sighted:?}");
    assert_eq!(sighted[0].0, digest(9).to_string());
    assert_eq!((sighted[0].2, sighted[0].3), (2 * N, None));
}

/// A snapshot bigger than one statement's batch (500 rows per insert, 1,000 ids per update):
/// every run lands, extends with its own pod count, and closes.
#[rstest]
fn a_big_snapshot_is_recorded_in_batches(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    const RUNS: u64 = 2_345;
    let (_db, rt, catalog) = migrated(backend);
    let snapshot = |pods: &dyn Fn(u64) -> u32, keep: &dyn Fn(u64) -> bool| -> Vec<RunSighting> {
        (0..RUNS)
            .filter(|i| keep(*i))
            .map(|i| {
                let name = format!("app{i}");
                sighting(
                    &format!("ns{}", i % 7),
                    &name,
                    "c",
                    image("app", i),
                    pods(i),
                )
            })
            .collect()
    };
    rt.block_on(async {
        let r = catalog
            .record_runs("eqiad", &snapshot(&|_| 1, &|_| true), at(0))
            .await
            .unwrap();
        assert_eq!((r.opened, r.extended, r.closed), (RUNS as usize, 0, 0));
        let r = catalog
            .record_runs(
                "eqiad",
                &snapshot(&|i| (i % 3) as u32 + 1, &|_| true),
                at(60),
            )
            .await
            .unwrap();
        assert_eq!((r.opened, r.extended, r.closed), (0, RUNS as usize, 0));
        // Each run extended with its own pod count (the latest sighting's).
        let at_60 = catalog.running_at(at(60), None, None).await.unwrap();
        assert_eq!(at_60.len(), RUNS as usize);
        for run in &at_60 {
            let i = u64::from_str_radix(run.digest.hex(), 16).unwrap();
            assert_eq!(run.pods, (i % 3) as u32 + 1, "{run:?}");
        }
        let r = catalog
            .record_runs("eqiad", &snapshot(&|_| 1, &|i| i % 2 == 0), at(120))
            .await
            .unwrap();
        let kept = RUNS.div_ceil(2) as usize;
        assert_eq!(
            (r.opened, r.extended, r.closed),
            (0, kept, RUNS as usize - kept)
        );

        let at_120 = catalog
            .running_at(at(120), None, Some("ns3"))
            .await
            .unwrap();
        assert_eq!(
            at_120.len(),
            (0..RUNS).filter(|i| i % 2 == 0 && i % 7 == 3).count()
        );
        catalog.close().await;
    });
}
