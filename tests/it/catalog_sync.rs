//! `tollgate catalog sync` through the binary, against a real registry (Debian's
//! docker-registry, its access log read to count what was asked), into SQLite and into a real
//! PostgreSQL: a cold sync, an unchanged registry costing only tag lists and HEADs, a tag that
//! moved, broken tags reported with the rest synced, repository globs, and a policy that does
//! not approve the registry.

use std::collections::BTreeMap;

use rstest::rstest;
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::support::catalog::{Backend, Db, migrated as db};
use crate::support::oci::{OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, Pushed, Pusher, layer};
use crate::support::registry::{TestRegistry, policy_file};
use crate::support::run;

impl Db {
    /// Rows of a query, every column read as text (NULL as `-`), past the catalog's API.
    fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let url = self.url.clone();
        let sql = sql.to_owned();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            sqlx::any::install_default_drivers();
            let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
            use sqlx::Row as _;
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| {
                            r.try_get::<Option<String>, _>(i)
                                .map(|v| v.unwrap_or_else(|| "-".into()))
                                .or_else(|_| {
                                    r.try_get::<Option<i64>, _>(i)
                                        .map(|v| v.map_or_else(|| "-".into(), |v| v.to_string()))
                                })
                                .unwrap()
                        })
                        .collect()
                })
                .collect()
        })
    }

    fn count(&self, table: &str) -> usize {
        self.rows(&format!("SELECT COUNT(*) FROM {table}"))[0][0]
            .parse()
            .unwrap()
    }
}

/// An image whose config has a created time and labels (one hostile), on `base` plus a layer
/// of its own.
async fn image_with_config(p: &Pusher, repo: &str, tag: &str, base: &[u8], own: &[u8]) -> Pushed {
    let layers = [layer(&[("base", base)]), layer(&[("own", own)])];
    let config = json!({
        "created": "2024-05-06T07:08:09Z",
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"org.opencontainers.image.source": "https://git.example.org/app", "evil": "<script>alert(1)</script>"}},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = p.blob(repo, &config_bytes).await;
    let mut descs = Vec::new();
    for l in &layers {
        p.blob(repo, &l.gz).await;
        descs.push(json!({"mediaType": OCI_LAYER_GZIP, "digest": l.digest, "size": l.gz.len()}));
    }
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_bytes.len()},
        "layers": descs,
    });
    let body = serde_json::to_vec(&manifest).unwrap();
    let digest = p.manifest(repo, tag, OCI_MANIFEST, &body).await;
    Pushed {
        digest,
        size: body.len() as u64,
        config: config_digest,
        layers: layers.iter().map(|l| l.digest.clone()).collect(),
    }
}

/// What the tests push: `team/app` 1 and 2 on one base, `team/multi:latest` an index of two
/// platforms, `other/tool:1`.
struct Filled {
    app1: Pushed,
    app2: Pushed,
    amd: Pushed,
    arm: Pushed,
    index: String,
    tool: Pushed,
}

async fn fill(reg: &TestRegistry) -> Filled {
    let p = Pusher::new(reg.base_url());
    let app1 = image_with_config(&p, "team/app", "1", b"debian", b"app 1").await;
    let app2 = image_with_config(&p, "team/app", "2", b"debian", b"app 2").await;
    let amd = p
        .image(
            "team/multi",
            None,
            &[layer(&[("m", b"amd")])],
            "linux/amd64",
        )
        .await;
    let arm = p
        .image(
            "team/multi",
            None,
            &[layer(&[("m", b"arm")])],
            "linux/arm64",
        )
        .await;
    let index = p
        .index(
            "team/multi",
            "latest",
            &[(&amd, "linux/amd64"), (&arm, "linux/arm64")],
            false,
        )
        .await;
    let tool = p
        .image(
            "other/tool",
            Some("1"),
            &[layer(&[("t", b"tool")])],
            "linux/amd64",
        )
        .await;
    Filled {
        app1,
        app2,
        amd,
        arm,
        index,
        tool,
    }
}

fn sync(db: &Db, reg: &TestRegistry, policy: &str, extra: &[&str]) -> crate::support::Run {
    let host = reg.host();
    let mut args = vec![
        "catalog",
        "sync",
        host.as_str(),
        "--catalog",
        &db.url,
        "--policy",
        policy,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn json_of(r: &crate::support::Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

/// (method, kind) → count, where kind is what the path asks for.
fn by_kind(requests: &[(String, String)]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (method, path) in requests {
        let kind = if path.starts_with("/v2/_catalog") {
            "catalog"
        } else if path.contains("/tags/list") {
            "tags"
        } else if path.contains("/manifests/") {
            "manifest"
        } else if path.contains("/blobs/") {
            "blob"
        } else {
            path.as_str()
        };
        *out.entry(format!("{method} {kind}")).or_insert(0) += 1;
    }
    out
}

#[rstest]
fn a_cold_sync_records_everything_once_and_a_second_sends_only_tag_lists_and_heads(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let reg = TestRegistry::start_logged();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(fill(&reg));
    let (_p, policy) = policy_file(&reg, "");
    let db = db(backend);
    let pushed = reg.requests().len();

    let cold = sync(&db, &reg, &policy, &["--format", "json"]);
    assert_eq!(cold.code, 0, "{}{}", cold.stdout, cold.stderr);
    let report = json_of(&cold);
    assert_eq!(report["repositories"], 3);
    assert_eq!(report["tags"], 4);
    assert_eq!(report["newTags"], 4);
    // app 1 and 2, the index and its two children, the tool.
    assert_eq!(report["newManifests"], 6);
    assert_eq!(report["errors"], json!([]));
    let cold_requests = reg.requests()[pushed..].to_vec();
    let kinds = by_kind(&cold_requests);
    // One catalog page, a tag list per repository, a HEAD per tag, each manifest GET once,
    // each config GET once (5 images), and no layer touched.
    let want: BTreeMap<String, usize> = [
        ("GET catalog", 1),
        ("GET tags", 3),
        ("HEAD manifest", 4),
        ("GET manifest", 6),
        ("GET blob", 5),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(kinds, want, "{cold_requests:#?}");
    assert_eq!(report["requests"], cold_requests.len());
    let mut manifest_gets: Vec<&String> = cold_requests
        .iter()
        .filter(|(m, p)| m == "GET" && p.contains("/manifests/"))
        .map(|(_, p)| p)
        .collect();
    manifest_gets.sort();
    manifest_gets.dedup();
    assert_eq!(manifest_gets.len(), 6, "a manifest fetched twice");

    // What was recorded.
    let manifests = db.rows(
        "SELECT digest, kind, os, architecture, created_at, labels, config_digest FROM manifests ORDER BY digest",
    );
    let by_digest: BTreeMap<&str, &Vec<String>> =
        manifests.iter().map(|r| (r[0].as_str(), r)).collect();
    assert_eq!(manifests.len(), 6);
    let app1 = by_digest[f.app1.digest.as_str()];
    assert_eq!(app1[1], "image");
    assert_eq!((app1[2].as_str(), app1[3].as_str()), ("linux", "amd64"));
    assert_eq!(app1[4], "1714979289");
    assert_eq!(
        app1[5],
        r#"{"evil":"<script>alert(1)</script>","org.opencontainers.image.source":"https://git.example.org/app"}"#
    );
    assert_eq!(app1[6], f.app1.config);
    assert_eq!(by_digest[f.index.as_str()][1], "index");
    assert_eq!(by_digest[f.arm.digest.as_str()][3], "arm64");
    assert_eq!(by_digest[f.tool.digest.as_str()][4], "-");

    let children = db.rows(&format!(
        "SELECT position, child_digest, os, architecture FROM index_children WHERE index_digest = '{}' ORDER BY position",
        f.index
    ));
    assert_eq!(
        children,
        vec![
            vec![
                "0".into(),
                f.amd.digest.clone(),
                "linux".into(),
                "amd64".into()
            ],
            vec![
                "1".into(),
                f.arm.digest.clone(),
                "linux".into(),
                "arm64".into()
            ],
        ]
    );
    // The layers in order, with the sizes their manifests declare; the shared base once.
    let layers = db.rows(&format!(
        "SELECT ml.layer_digest FROM manifest_layers ml WHERE ml.manifest_digest = '{}' ORDER BY ml.position",
        f.app2.digest
    ));
    assert_eq!(
        layers.iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
        f.app2.layers
    );
    assert_eq!(f.app1.layers[0], f.app2.layers[0]);
    // app 1: 2, app 2: 1 more, amd, arm, tool.
    assert_eq!(db.count("layers"), 6);
    assert_eq!(db.count("manifest_layers"), 7);
    let sizes = db.rows("SELECT COUNT(*) FROM layers WHERE size > 0");
    assert_eq!(sizes[0][0], "6");
    // Which repository holds which manifest: the index's children too.
    let held = db.rows(
        "SELECT r.name, COUNT(*) FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id GROUP BY r.name ORDER BY r.name",
    );
    assert_eq!(
        held,
        vec![
            vec!["other/tool".to_string(), "1".into()],
            vec!["team/app".into(), "2".into()],
            vec!["team/multi".into(), "3".into()],
        ]
    );
    assert_eq!(db.count("tag_history"), 4);

    // Unchanged: the tag lists and one HEAD per tag, nothing else.
    let before = reg.requests().len();
    let warm = sync(&db, &reg, &policy, &["--format", "json"]);
    assert_eq!(warm.code, 0, "{}{}", warm.stdout, warm.stderr);
    let report = json_of(&warm);
    assert_eq!(report["newManifests"], 0);
    assert_eq!(report["newTags"], 0);
    assert_eq!(report["movedTags"], json!([]));
    let warm_requests = reg.requests()[before..].to_vec();
    let want: BTreeMap<String, usize> = [("GET catalog", 1), ("GET tags", 3), ("HEAD manifest", 4)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(by_kind(&warm_requests), want, "{warm_requests:#?}");
    assert_eq!(db.count("manifests"), 6);
    assert_eq!(db.count("tag_history"), 4);
}

#[rstest]
fn a_tag_that_moved_is_a_move_in_its_history(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let reg = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(fill(&reg));
    let (_p, policy) = policy_file(&reg, "");
    let db = db(backend);
    assert_eq!(sync(&db, &reg, &policy, &[]).code, 0);
    let p = Pusher::new(reg.base_url());
    let moved = rt.block_on(image_with_config(
        &p,
        "team/app",
        "1",
        b"debian",
        b"app 1 fixed",
    ));

    let r = sync(&db, &reg, &policy, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let host = reg.host();
    assert_eq!(
        r.stdout,
        format!(
            "{host}/team/app:1: moved from {} to {}\n\
             {host}: 3 repositories, 4 tags (0 new), 1 new manifest, 1 moved tag, 0 errors ({} requests)\n",
            f.app1.digest,
            moved.digest,
            // catalog, 3 tag lists, 4 HEADs, the new manifest and its config
            1 + 3 + 4 + 2
        )
    );
    let history = db.rows(
        "SELECT h.digest, CASE WHEN h.moved_at IS NULL THEN 'current' ELSE 'moved' END \
         FROM tag_history h JOIN tags t ON t.id = h.tag_id JOIN repositories r ON r.id = t.repository_id \
         WHERE r.name = 'team/app' AND t.name = '1' ORDER BY h.first_seen, h.id",
    );
    assert_eq!(
        history,
        vec![
            vec![f.app1.digest.clone(), "moved".into()],
            vec![moved.digest.clone(), "current".into()],
        ]
    );
    // The old manifest stays in the catalog: it is history, whether or not the registry still
    // serves it.
    assert_eq!(db.count("manifests"), 7);
}

#[rstest]
fn broken_tags_are_reported_and_the_rest_is_synced(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let reg = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(fill(&reg));
    let p = Pusher::new(reg.base_url());
    // An index whose children garbage collection removed; an image whose config is gone.
    let (gone_amd, orphan) = rt.block_on(async {
        let amd = p
            .image(
                "team/orphan",
                None,
                &[layer(&[("o", b"amd")])],
                "linux/amd64",
            )
            .await;
        let orphan = p
            .index("team/orphan", "latest", &[(&amd, "linux/amd64")], false)
            .await;
        p.delete_manifest("team/orphan", &amd.digest).await;
        let noconfig = p
            .image(
                "team/noconfig",
                Some("1"),
                &[layer(&[("n", b"x")])],
                "linux/amd64",
            )
            .await;
        p.delete_blob("team/noconfig", &noconfig.config).await;
        (amd, orphan)
    });
    let (_p, policy) = policy_file(&reg, "");
    let db = db(backend);

    let r = sync(&db, &reg, &policy, &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let errors: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 2, "{}", r.stdout);
    assert!(
        errors[0].starts_with("error: team/noconfig:1: ")
            && errors[0].contains("config sha256:")
            && errors[0].contains("not found"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with(&format!(
            "error: team/orphan:latest: {orphan}: child {}",
            gone_amd.digest
        )) && errors[1].contains("not found"),
        "{}",
        errors[1]
    );
    assert!(
        r.stdout.contains(
            ": 5 repositories, 6 tags (6 new), 6 new manifests, 0 moved tags, 2 errors ("
        ),
        "{}",
        r.stdout
    );
    // Everything else is recorded; the broken ones are not (the next sync reads them again),
    // but their tags' history is: the tag did point there.
    let recorded: Vec<String> = db
        .rows("SELECT digest FROM manifests")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    for d in [&f.app1.digest, &f.app2.digest, &f.index, &f.tool.digest] {
        assert!(recorded.contains(d), "{d} not recorded");
    }
    assert!(!recorded.contains(&orphan));
    assert_eq!(recorded.len(), 6);
    assert_eq!(db.count("tag_history"), 6);
    // Read again by the next sync, and reported again; the same on both engines.
    let again = sync(&db, &reg, &policy, &["--format", "json"]);
    assert_eq!(again.code, 2);
    assert_eq!(json_of(&again)["errors"].as_array().unwrap().len(), 2);
    insta::assert_snapshot!(
        "catalog_sync_broken_json",
        again.stdout.replace(&reg.host(), "REGISTRY")
    );
}

#[rstest]
fn repository_globs_choose_what_is_synced(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let reg = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(fill(&reg));
    let (_p, policy) = policy_file(&reg, "");
    let db = db(backend);
    let r = sync(
        &db,
        &reg,
        &policy,
        &["--repository", "team/*", "--format", "json"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(json_of(&r)["repositories"], 2);
    let names = db.rows("SELECT name FROM repositories ORDER BY name");
    assert_eq!(
        names,
        vec![vec!["team/app".to_string()], vec!["team/multi".into()]]
    );
    // `*` stays within one path component.
    let r = sync(
        &db,
        &reg,
        &policy,
        &["--repository", "*", "--format", "json"],
    );
    assert_eq!(json_of(&r)["repositories"], 0);
    let r = sync(
        &db,
        &reg,
        &policy,
        &["--repository", "**/tool", "--format", "json"],
    );
    assert_eq!(json_of(&r)["repositories"], 1);
    assert_eq!(db.count("repositories"), 3);
}

#[rstest]
fn images_built_on_a_base_are_found_by_their_layers(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let reg = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (f, base) = rt.block_on(async {
        let f = fill(&reg).await;
        let p = Pusher::new(reg.base_url());
        // The same layer as the apps' first: what `FROM base/debian:12` gives.
        let base = p
            .image(
                "base/debian",
                Some("12"),
                &[layer(&[("base", b"debian")])],
                "linux/amd64",
            )
            .await;
        (f, base)
    });
    let (_p, policy) = policy_file(&reg, "");
    let db = db(backend);
    let r = sync(&db, &reg, &policy, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let catalog_url: tollgate::catalog::CatalogUrl = db.url.parse().unwrap();
    let (on_base, on_app1, on_tool) = rt.block_on(async {
        let c = tollgate::catalog::Catalog::open(&catalog_url, tollgate::catalog::Create::No)
            .await
            .unwrap();
        let d = |s: &str| s.parse::<tollgate::reference::Digest>().unwrap();
        let out = (
            c.built_on(&d(&base.digest)).await.unwrap(),
            c.built_on(&d(&f.app1.digest)).await.unwrap(),
            c.built_on(&d(&f.tool.digest)).await.unwrap(),
        );
        c.close().await;
        out
    });
    let mut want = vec![f.app1.digest.clone(), f.app2.digest.clone()];
    want.sort();
    assert_eq!(
        on_base.iter().map(ToString::to_string).collect::<Vec<_>>(),
        want
    );
    // app 2 shares app 1's first layer, not its second: not built on it.
    assert_eq!(on_app1, vec![]);
    assert_eq!(on_tool, vec![]);
}

/// Two syncs of one registry at once (two replicas on a schedule) record each manifest, layer
/// and tag once, and both succeed.
#[rstest]
fn two_syncs_at_once_record_everything_once(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let reg = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(fill(&reg));
    let (_p, policy) = policy_file(&reg, "");
    let db = db(backend);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| sync(&db, &reg, &policy, &["--format", "json"]));
        let b = s.spawn(|| sync(&db, &reg, &policy, &["--format", "json"]));
        (a.join().unwrap(), b.join().unwrap())
    });
    for r in [&a, &b] {
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    }
    // Between them, every manifest was recorded once, whoever got there first.
    let recorded = json_of(&a)["newManifests"].as_u64().unwrap()
        + json_of(&b)["newManifests"].as_u64().unwrap();
    assert_eq!(recorded, 6);
    assert_eq!(db.count("manifests"), 6);
    assert_eq!(db.count("layers"), 6);
    assert_eq!(db.count("manifest_layers"), 7);
    assert_eq!(db.count("index_children"), 2);
    assert_eq!(db.count("tag_history"), 4);
    assert_eq!(db.count("repository_manifests"), 6);
}

#[rstest]
fn a_registry_the_policy_does_not_approve_is_never_contacted(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let mut reg = TestRegistry::start_logged();
    let (_p, policy) = policy_file(&reg, "");
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.yaml");
    std::fs::write(
        &other,
        "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: other\nspec:\n  registries:\n    - prefix: docker-registry.example.org\n",
    )
    .unwrap();
    let db = db(backend);
    // The readiness probe of the test's own start.
    let started = reg.requests().len();
    let r = sync(&db, &reg, other.to_str().unwrap(), &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not approved"), "{}", r.stderr);
    assert_eq!(reg.requests()[started..], []);
    assert_eq!(db.count("repositories"), 0);

    // Approved but not answering: exit 2, never a verdict, nothing recorded.
    reg.stop();
    let r = sync(&db, &reg, &policy, &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("cannot list the repositories of"),
        "{}",
        r.stderr
    );
    assert_eq!(db.count("repositories"), 0);
}

#[test]
fn a_catalog_without_a_schema_is_refused_before_the_registry_is_asked() {
    let reg = TestRegistry::start_logged();
    let (_p, policy) = policy_file(&reg, "");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("none.db").display());
    let host = reg.host();
    let started = reg.requests().len();
    let r = run(&[
        "catalog",
        "sync",
        &host,
        "--catalog",
        &url,
        "--policy",
        &policy,
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no catalog at"), "{}", r.stderr);
    assert_eq!(reg.requests()[started..], []);
}

#[test]
fn platform_is_refused_since_a_sync_records_every_platform() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("c.db").display());
    let r = run(&[
        "catalog",
        "sync",
        "127.0.0.1:1",
        "--catalog",
        &url,
        "--platform",
        "linux/amd64",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--platform does not apply"),
        "{}",
        r.stderr
    );
}
