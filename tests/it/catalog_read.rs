//! The catalog's read side through the real binary, on SQLite and on a real PostgreSQL:
//! `register-build`, the four questions (`images`, `history`, `running`, `who-uses`) in text
//! (snapshots, the same file for both engines) and JSON, and `catalog serve`'s JSON API with
//! its bearer token on `POST /v1/builds`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rstest::rstest;
use serde_json::Value;
use tollgate::catalog::{Catalog, CatalogUrl, Create, RunSighting};
use tollgate::reference::{Digest, ImageRef};

pub use crate::support::catalog::{Backend, Db, migrated as db};
use crate::support::run;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub const T0: i64 = 1_700_000_000;

pub fn at(s: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(T0 + s).unwrap()
}

/// `sha256:` and 64 hex digits of `n`.
pub fn digest(n: u64) -> Digest {
    format!("sha256:{n:064x}").parse().unwrap()
}

pub const REGISTRY: &str = "docker-registry.example.org";

/// The label an attacker controls: if the page let it through, a script would set the title
/// and a flag.
pub const HOSTILE: &str =
    "<script>document.title='pwned';window.pwned=1</script><img src=x onerror=\"window.pwned=2\">";

// The story every test reads (times are seconds after T0):
// - base:bookworm pointed at B1 (layers L1 L2) from 0, then at B2 (layers L1 L3) from 500;
// - app:1.0 pointed at A1 (L1 L2 L4, built on B1 by its layers, a hostile label) from 100,
//   then at A2 (L1 L3 L5, built on B2, and its build declares B2) from 600;
// - tool:latest is T1 (L9), built on nothing the catalog knows;
// - prod/web ran A1 from 200 (seen at 200 and 300), then A2 from 700; staging/web ran A2
//   from 700;
// - the registry was noticed unable to serve A1 at 800.
pub const B1: u64 = 0xb1;
pub const B2: u64 = 0xb2;
pub const A1: u64 = 0xa1;
pub const A2: u64 = 0xa2;
pub const T1: u64 = 0x71;

fn layer(n: u64) -> String {
    format!("sha256:{:064x}", 0x1000 + n)
}

/// SQL straight to the database: what `catalog sync` and `catalog record` will write once
/// merged (manifests, layers, repository contents, registry events), until then inserted
/// here. Portable SQL, the same on both engines.
pub fn raw(db: &Db, sql: &str) {
    db.raw(sql);
}

fn manifest_sql(d: u64, repo: &str, created: i64, layers: &[u64], labels: &str) -> String {
    let digest = digest(d);
    let mut sql = format!(
        "INSERT INTO manifests (digest, media_type, kind, size, os, architecture, config_digest, created_at, labels, first_seen) \
         VALUES ('{digest}', 'application/vnd.oci.image.manifest.v1+json', 'image', 1000, 'linux', 'amd64', '{}', {}, '{}', {});\n",
        layer(d + 0x100),
        T0 + created,
        labels.replace('\'', "''"),
        T0 + created
    );
    for (i, l) in layers.iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO layers (digest, size) SELECT '{0}', 100 WHERE NOT EXISTS (SELECT 1 FROM layers WHERE digest = '{0}');\n\
             INSERT INTO manifest_layers (manifest_digest, position, layer_digest) VALUES ('{digest}', {i}, '{0}');\n",
            layer(*l)
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO repository_manifests (repository_id, digest, first_seen, last_seen) \
         SELECT id, '{digest}', {0}, {0} FROM repositories WHERE registry = '{REGISTRY}' AND name = '{repo}';\n",
        T0 + created
    ));
    sql
}

fn run_of(namespace: &str, repo: &str, d: u64) -> RunSighting {
    RunSighting {
        namespace: namespace.into(),
        controller_kind: "Deployment".into(),
        controller_name: "app".into(),
        container: "app".into(),
        image: format!("{REGISTRY}/{repo}@{}", digest(d)).parse().unwrap(),
        pods: 2,
    }
}

/// Fill `db` with the story above. Tags and runs go through the library (what sync and
/// record call); the rest by SQL.
pub fn story(db: &Db) {
    let rt = runtime();
    let url: CatalogUrl = db.url.parse().unwrap();
    rt.block_on(async {
        let c = Catalog::open(&url, Create::No).await.unwrap();
        let tag = |repo: &str, tag: &str| -> ImageRef {
            format!("{REGISTRY}/{repo}:{tag}").parse().unwrap()
        };
        for (r, d, t) in [
            (tag("base", "bookworm"), B1, 0),
            (tag("app", "1.0"), A1, 100),
            (tag("tool", "latest"), T1, 150),
            (tag("base", "bookworm"), B2, 500),
            (tag("app", "1.0"), A2, 600),
            (tag("app", "1.0"), A2, 900),
        ] {
            c.record_tag_sighting(
                r.registry(),
                r.repository(),
                r.tag().unwrap(),
                &digest(d),
                at(t),
            )
            .await
            .unwrap();
        }
        c.record_runs("prod", &[run_of("web", "app", A1)], at(200))
            .await
            .unwrap();
        c.record_runs("prod", &[run_of("web", "app", A1)], at(300))
            .await
            .unwrap();
        c.record_runs("prod", &[run_of("web", "app", A2)], at(700))
            .await
            .unwrap();
        c.record_runs("staging", &[run_of("web", "app", A2)], at(700))
            .await
            .unwrap();
        c.close().await;
    });
    let hostile = serde_json::json!({ "org.opencontainers.image.title": HOSTILE }).to_string();
    let mut sql = String::new();
    sql.push_str(&manifest_sql(B1, "base", 0, &[1, 2], "{}"));
    sql.push_str(&manifest_sql(B2, "base", 480, &[1, 3], "{}"));
    sql.push_str(&manifest_sql(A1, "app", 90, &[1, 2, 4], &hostile));
    sql.push_str(&manifest_sql(
        A2,
        "app",
        590,
        &[1, 3, 5],
        "{\"version\":\"2\"}",
    ));
    sql.push_str(&manifest_sql(T1, "tool", 140, &[9], "{}"));
    sql.push_str(&format!(
        "INSERT INTO registry_events (digest, kind, noticed_at, repository_id, detail) \
         SELECT '{}', 'unservable', {}, id, 'manifest unknown' FROM repositories WHERE name = 'app';\n",
        digest(A1),
        T0 + 800
    ));
    raw(db, &sql);
    let b = run(&[
        "catalog",
        "register-build",
        "--catalog",
        &db.url,
        "--digest",
        &digest(A2).to_string(),
        "--source-repository",
        "https://gitlab.example.org/app",
        "--commit",
        "0123456789abcdef0123456789abcdef01234567",
        "--builder",
        "gitlab-ci",
        "--built-at",
        &at(550).to_string(),
        "--parent",
        &format!("{REGISTRY}/base:bookworm@{}", digest(B2)),
    ]);
    assert_eq!(b.code, 0, "{}", b.stderr);
    assert_eq!(b.stdout, format!("registered build 1 of {}\n", digest(A2)));
}

fn ok(args: &[&str]) -> String {
    let r = run(args);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r.stdout
}

fn json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["--format", "json"]);
    serde_json::from_str(&ok(&a)).unwrap()
}

#[rstest]
fn register_build_then_history_shows_it(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    story(&db);
    let h = json(&[
        "catalog",
        "history",
        "--catalog",
        &db.url,
        &digest(A2).to_string(),
    ]);
    let builds = h["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 1, "{h:#}");
    assert_eq!(builds[0]["builder"], "gitlab-ci");
    assert_eq!(
        builds[0]["commit"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(builds[0]["built_at"], at(550).to_string());
    assert_eq!(
        builds[0]["parents"][0],
        format!("{REGISTRY}/base:bookworm@{}", digest(B2))
    );
    let built: Vec<&Value> = h["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["what"] == "built")
        .collect();
    assert_eq!(built.len(), 1);
    assert_eq!(built[0]["at"], "2023-11-14T22:22:30Z");
}

#[rstest]
#[case::bad_digest("sha256:abc", None, None, "is not a digest")]
#[case::parent_by_tag("", Some("debian:bookworm"), None, "has no digest")]
#[case::bad_time("", None, Some("yesterday"), "not an RFC 3339 time")]
fn register_build_refuses_bad_fields(
    #[case] bad_digest: &str,
    #[case] parent: Option<&str>,
    #[case] built_at: Option<&str>,
    #[case] want: &str,
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    let d = if bad_digest.is_empty() {
        digest(A2).to_string()
    } else {
        bad_digest.to_owned()
    };
    let mut args = vec![
        "catalog",
        "register-build",
        "--catalog",
        &db.url,
        "--digest",
        &d,
        "--source-repository",
        "https://gitlab.example.org/app",
        "--commit",
        "abc",
        "--builder",
        "ci",
    ];
    if let Some(p) = parent {
        args.extend(["--parent", p]);
    }
    if let Some(t) = built_at {
        args.extend(["--built-at", t]);
    }
    let r = run(&args);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains(want), "{}", r.stderr);
    let status = ok(&["catalog", "status", "--catalog", &db.url]);
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().eq(["builds", "0"])),
        "{status}"
    );
}

#[rstest]
fn images_lists_versions_tags_bases_and_where_they_run(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    story(&db);
    insta::assert_snapshot!(
        "catalog_images_text",
        ok(&["catalog", "images", "--catalog", &db.url])
    );
    let j = json(&[
        "catalog",
        "images",
        "--catalog",
        &db.url,
        "--repository",
        "app",
    ]);
    let repos = j.as_array().unwrap();
    assert_eq!(repos.len(), 1, "{j:#}");
    assert_eq!(repos[0]["name"], format!("{REGISTRY}/app"));
    let versions = repos[0]["versions"].as_array().unwrap();
    assert_eq!(
        versions[0]["digest"],
        digest(A2).to_string(),
        "newest first"
    );
    assert_eq!(versions[0]["tags"], serde_json::json!(["1.0"]));
    let clusters: Vec<&str> = versions[0]["running"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cluster"].as_str().unwrap())
        .collect();
    assert_eq!(clusters, ["prod", "staging"]);
    // A2's base, declared by its build and found by its layers: one entry, declared first.
    assert_eq!(versions[0]["base"][0]["by"], "declared");
    assert_eq!(versions[0]["base"].as_array().unwrap().len(), 1);
    // A1 runs nowhere now; its base is found by its layers only.
    assert_eq!(versions[1]["running"], serde_json::json!([]));
    assert_eq!(versions[1]["base"][0]["by"], "layers");
    assert_eq!(
        versions[1]["base"][0]["image"],
        format!("{REGISTRY}/base:bookworm@{}", digest(B1))
    );

    let staging = json(&[
        "catalog",
        "images",
        "--catalog",
        &db.url,
        "--cluster",
        "staging",
    ]);
    let names: Vec<&str> = staging
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [format!("{REGISTRY}/app")], "{staging:#}");
}

#[rstest]
fn history_puts_tag_moves_builds_runs_and_registry_events_on_one_timeline(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    story(&db);
    let tag = format!("{REGISTRY}/app:1.0");
    insta::assert_snapshot!(
        "catalog_history_text",
        ok(&["catalog", "history", "--catalog", &db.url, &tag])
    );
    let h = json(&["catalog", "history", "--catalog", &db.url, &tag]);
    let what: Vec<(&str, &str)> = h["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["what"].as_str().unwrap(), e["at"].as_str().unwrap()))
        .collect();
    assert_eq!(
        what,
        [
            ("tagged", "2023-11-14T22:15:00Z"),
            ("started", "2023-11-14T22:16:40Z"),
            ("built", "2023-11-14T22:22:30Z"),
            ("tag-moved", "2023-11-14T22:23:20Z"),
            ("tagged", "2023-11-14T22:23:20Z"),
            ("stopped", "2023-11-14T22:25:00Z"),
            ("started", "2023-11-14T22:25:00Z"),
            ("started", "2023-11-14T22:25:00Z"),
            ("registry", "2023-11-14T22:26:40Z"),
        ]
    );
    assert_eq!(h["events"][0]["kind"], "unservable");
    assert_eq!(h["events"][0]["repository"], format!("{REGISTRY}/app"));
    // The hostile label is data, kept as it was.
    let a1 = h["digests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["digest"] == digest(A1).to_string())
        .unwrap();
    assert_eq!(
        a1["manifest"]["labels"]["org.opencontainers.image.title"],
        HOSTILE
    );

    // A repository: every tag and version; an image by digest: that digest only.
    let repo = json(&[
        "catalog",
        "history",
        "--catalog",
        &db.url,
        &format!("{REGISTRY}/base"),
    ]);
    let digests: Vec<&str> = repo["digests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    let (b1, b2) = (digest(B1).to_string(), digest(B2).to_string());
    assert_eq!(digests, [b1.as_str(), b2.as_str()]);
    assert_eq!(repo["tags"].as_array().unwrap().len(), 2);
    let one = json(&[
        "catalog",
        "history",
        "--catalog",
        &db.url,
        &format!("{REGISTRY}/app@{}", digest(A2)),
    ]);
    assert_eq!(one["digests"].as_array().unwrap().len(), 1);
    assert_eq!(one["tags"].as_array().unwrap().len(), 1);
    assert_eq!(one["runs"].as_array().unwrap().len(), 2);

    // Filtered to one cluster, only its runs remain.
    let prod = json(&[
        "catalog",
        "history",
        "--catalog",
        &db.url,
        &tag,
        "--cluster",
        "prod",
    ]);
    let clusters: Vec<&str> = prod["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cluster"].as_str().unwrap())
        .collect();
    assert_eq!(clusters, ["prod", "prod"]);
}

#[rstest]
fn running_answers_what_ran_at_a_time(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    story(&db);
    let then = at(250).to_string();
    insta::assert_snapshot!(
        "catalog_running_text",
        ok(&["catalog", "running", "--catalog", &db.url, "--at", &then])
    );
    let later = json(&[
        "catalog",
        "running",
        "--catalog",
        &db.url,
        "--at",
        &at(700).to_string(),
    ]);
    let runs: Vec<(&str, &str)> = later["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["cluster"].as_str().unwrap(),
                r["digest"].as_str().unwrap(),
            )
        })
        .collect();
    let a2 = digest(A2).to_string();
    assert_eq!(runs, [("prod", a2.as_str()), ("staging", a2.as_str())]);
    let ns = json(&[
        "catalog",
        "running",
        "--catalog",
        &db.url,
        "--at",
        &at(700).to_string(),
        "--cluster",
        "staging",
        "--namespace",
        "web",
    ]);
    assert_eq!(ns["runs"].as_array().unwrap().len(), 1);
    let none = json(&[
        "catalog",
        "running",
        "--catalog",
        &db.url,
        "--at",
        &at(700).to_string(),
        "--namespace",
        "other",
    ]);
    assert_eq!(none["runs"], serde_json::json!([]));
    let bad = run(&[
        "catalog",
        "running",
        "--catalog",
        &db.url,
        "--at",
        "tuesday",
    ]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("not an RFC 3339 time"),
        "{}",
        bad.stderr
    );
}

#[rstest]
fn who_uses_finds_images_on_a_base_by_layers_and_by_declared_parents(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    story(&db);
    let base = format!("{REGISTRY}/base:bookworm");
    insta::assert_snapshot!(
        "catalog_who_uses_text",
        ok(&["catalog", "who-uses", "--catalog", &db.url, &base])
    );
    let j = json(&["catalog", "who-uses", "--catalog", &db.url, &base]);
    let users: Vec<(&str, &str, Vec<&str>)> = j["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["digest"].as_str().unwrap(),
                u["on"].as_str().unwrap(),
                u["by"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b.as_str().unwrap())
                    .collect(),
            )
        })
        .collect();
    let (a1, a2, b1, b2) = (
        digest(A1).to_string(),
        digest(A2).to_string(),
        digest(B1).to_string(),
        digest(B2).to_string(),
    );
    assert_eq!(
        users,
        [
            (a1.as_str(), b1.as_str(), vec!["layers"]),
            (a2.as_str(), b2.as_str(), vec!["declared", "layers"]),
        ]
    );
    // By digest: only what is built on that version.
    let old = json(&["catalog", "who-uses", "--catalog", &db.url, &b1]);
    assert_eq!(old["users"].as_array().unwrap().len(), 1);
    assert_eq!(old["users"][0]["digest"], a1);
    // Only what runs in staging.
    let staging = json(&[
        "catalog",
        "who-uses",
        "--catalog",
        &db.url,
        &base,
        "--cluster",
        "staging",
    ]);
    assert_eq!(staging["users"].as_array().unwrap().len(), 1);
    assert_eq!(staging["users"][0]["digest"], a2);
    // The repository: every version of it, and builds that named it.
    let repo = json(&[
        "catalog",
        "who-uses",
        "--catalog",
        &db.url,
        &format!("{REGISTRY}/base"),
    ]);
    assert_eq!(repo["users"], j["users"]);
    assert_eq!(repo["base_digests"], serde_json::json!([b1, b2]));
    // Nothing is built on the tool.
    let tool = json(&[
        "catalog",
        "who-uses",
        "--catalog",
        &db.url,
        &format!("{REGISTRY}/tool:latest"),
    ]);
    assert_eq!(tool["users"], serde_json::json!([]));
}

#[rstest]
#[case::not_a_reference(&["catalog", "history", "UPPER/Case"], "neither a digest")]
#[case::not_a_glob(&["catalog", "images", "--repository", "a[b"], "is not a glob")]
fn bad_arguments_exit_2(#[case] args: &[&str], #[case] want: &str) {
    let db = db(Backend::Sqlite);
    let mut a = args.to_vec();
    a.extend(["--catalog", &db.url]);
    let r = run(&a);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains(want), "{}", r.stderr);
}

#[test]
fn an_unmigrated_catalog_is_refused_by_the_queries() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("none.db").display());
    let r = run(&["catalog", "images", "--catalog", &url]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no catalog at"), "{}", r.stderr);
}

// ---- catalog serve ----

/// A running `tollgate catalog serve` on a free loopback port; stopped when dropped.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Start it on `db`, with `token` in a token file when given.
    pub fn start(db: &Db, token: Option<&str>) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "5", "300"])
            .arg(env!("CARGO_BIN_EXE_tollgate"))
            .args([
                "catalog",
                "serve",
                "--catalog",
                &db.url,
                "--listen",
                "127.0.0.1:0",
            ])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(t) = token {
            let path = dir.path().join("token");
            std::fs::write(&path, format!("{t}\n")).unwrap();
            cmd.arg("--builds-token-file").arg(path);
        }
        let mut child = cmd.spawn().expect("start tollgate catalog serve");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) =
                    line.strip_prefix("tollgate catalog serve: listening on http://")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.split(' ').next().unwrap().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                stop(&mut child);
                panic!(
                    "tollgate catalog serve did not start:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Served {
            child,
            addr,
            logs,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Where the token file is (rewrite it to rotate the token).
    pub fn token_file(&self) -> std::path::PathBuf {
        self._dir.path().join("token")
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

/// Stop a child run under `timeout`: SIGTERM, which `timeout` passes on to the program (a
/// SIGKILL would end `timeout` alone and leave the program running), then SIGKILL if it has
/// not ended within 5 s.
pub fn stop(child: &mut Child) {
    // Already reaped: its pid may be another process's by now.
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Served {
    /// SIGTERM, then the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        stop(&mut self.child);
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

async fn get(s: &Served, path: &str) -> (u16, Value) {
    let r = client().get(s.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}")),
    )
}

fn build_body() -> Value {
    serde_json::json!({
        "digest": digest(T1).to_string(),
        "source_repository": "https://gitlab.example.org/tool",
        "commit": "fedcba9876543210fedcba9876543210fedcba98",
        "builder": "jenkins",
        "built_at": at(140).to_string(),
        "parents": [],
    })
}

async fn post(s: &Served, auth: Option<&str>, body: &str) -> (u16, Value, Option<String>) {
    let mut req = client()
        .post(s.url("/v1/builds"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap(), www)
}

#[rstest]
fn post_builds_needs_the_right_bearer_token(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    const TOKEN: &str = "b8a1f0c2-the-builds-token";
    let db = db(backend);
    let body = build_body().to_string();
    let rt = runtime();

    let closed = Served::start(&db, None);
    rt.block_on(async {
        let (status, err, _) = post(&closed, Some(&format!("Bearer {TOKEN}")), &body).await;
        assert_eq!(status, 403, "{err}");
        assert!(
            err["error"]
                .as_str()
                .unwrap()
                .contains("--builds-token-file"),
            "{err}"
        );
    });
    drop(closed);

    let s = Served::start(&db, Some(TOKEN));
    rt.block_on(async {
        let (status, err, www) = post(&s, None, &body).await;
        assert_eq!(status, 401, "{err}");
        assert_eq!(www.as_deref(), Some("Bearer realm=\"tollgate-catalog\""));
        let (status, err, _) = post(&s, Some("Bearer not-the-token"), &body).await;
        assert_eq!(status, 401, "{err}");
        assert!(
            err["error"]
                .as_str()
                .unwrap()
                .contains("not the builds token"),
            "{err}"
        );
        let (status, _, _) = post(&s, Some(&format!("Basic {TOKEN}")), &body).await;
        assert_eq!(status, 401);
        // Nothing was written by the refused requests.
        let (_, h) = get(&s, &format!("/v1/history?subject={}", digest(T1))).await;
        assert_eq!(h["builds"], serde_json::json!([]), "{h:#}");

        let (status, created, _) = post(&s, Some(&format!("Bearer {TOKEN}")), &body).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["digest"], digest(T1).to_string());
        let (_, h) = get(&s, &format!("/v1/history?subject={}", digest(T1))).await;
        assert_eq!(h["builds"][0]["builder"], "jenkins", "{h:#}");

        // A body that is not a valid build is a 400 naming the field, and records nothing.
        let mut bad = build_body();
        bad["parents"] = serde_json::json!(["debian:bookworm"]);
        let (status, err, _) = post(&s, Some(&format!("Bearer {TOKEN}")), &bad.to_string()).await;
        assert_eq!(status, 400, "{err}");
        assert!(
            err["error"].as_str().unwrap().contains("has no digest"),
            "{err}"
        );
        let mut unknown = build_body();
        unknown["parent"] = serde_json::json!("x");
        let (status, err, _) =
            post(&s, Some(&format!("Bearer {TOKEN}")), &unknown.to_string()).await;
        assert_eq!(status, 400, "{err}");
        // Bodies are bounded.
        let huge = format!("{{\"digest\":\"{}\"}}", "x".repeat(100 << 10));
        let r = client()
            .post(s.url("/v1/builds"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 413);
        let (_, h) = get(&s, &format!("/v1/history?subject={}", digest(T1))).await;
        assert_eq!(h["builds"].as_array().unwrap().len(), 1, "{h:#}");
    });
    assert!(
        !s.logs().contains(TOKEN),
        "the token is never logged:\n{}",
        s.logs()
    );

    // A rotated Secret takes effect at the next write: the old token is refused.
    std::fs::write(s.token_file(), "the-rotated-token\n").unwrap();
    rt.block_on(async {
        let (status, _, _) = post(&s, Some(&format!("Bearer {TOKEN}")), &body).await;
        assert_eq!(status, 401);
        let (status, created, _) = post(&s, Some("Bearer the-rotated-token"), &body).await;
        assert_eq!(status, 201, "{created}");
    });
    assert_eq!(s.terminate(), Some(0), "SIGTERM stops the server cleanly");
}

#[rstest]
fn the_json_api_answers_the_same_questions(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    story(&db);
    let s = Served::start(&db, None);
    let cli_images = json(&["catalog", "images", "--catalog", &db.url]);
    let cli_history = json(&[
        "catalog",
        "history",
        "--catalog",
        &db.url,
        &format!("{REGISTRY}/app:1.0"),
    ]);
    let cli_who = json(&[
        "catalog",
        "who-uses",
        "--catalog",
        &db.url,
        &format!("{REGISTRY}/base:bookworm"),
    ]);
    runtime().block_on(async {
        let (status, images) = get(&s, "/v1/images").await;
        assert_eq!(status, 200);
        assert_eq!(images["repositories"], cli_images);
        assert_eq!(images["more"], false);
        let (_, page) = get(&s, "/v1/images?per_page=2&page=1").await;
        assert_eq!(page["repositories"].as_array().unwrap().len(), 2);
        assert_eq!(page["more"], true);
        let (_, page2) = get(&s, "/v1/images?per_page=2&page=2").await;
        assert_eq!(page2["repositories"].as_array().unwrap().len(), 1);
        assert_eq!(page2["more"], false);
        let (_, app) = get(&s, "/v1/images?repository=app").await;
        assert_eq!(app["repositories"].as_array().unwrap().len(), 1);

        let q = percent_encoding::utf8_percent_encode(
            &format!("{REGISTRY}/app:1.0"),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let (status, h) = get(&s, &format!("/v1/history?subject={q}")).await;
        assert_eq!(status, 200);
        assert_eq!(h, cli_history);
        let (status, h) = get(&s, &format!("/v1/history/{REGISTRY}/app:1.0")).await;
        assert_eq!(status, 200);
        assert_eq!(h, cli_history, "the subject in the path");

        // The pages carry a policy that lets only their own style and script run.
        for path in ["/", &format!("/image?ref={q}"), "/image?ref=UPPER/Case"] {
            let r = client().get(s.url(path)).send().await.unwrap();
            let csp = r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
            assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
            let page = r.text().await.unwrap();
            assert!(
                !page.contains("<script>document.title"),
                "{path}: the label is escaped"
            );
        }
        let base = percent_encoding::utf8_percent_encode(
            &format!("{REGISTRY}/base:bookworm"),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let (_, w) = get(&s, &format!("/v1/who-uses?base={base}")).await;
        assert_eq!(w, cli_who);
        let (_, r) = get(&s, &format!("/v1/running?at={}&cluster=prod", at(250))).await;
        assert_eq!(r["runs"].as_array().unwrap().len(), 1);
        assert_eq!(r["runs"][0]["digest"], digest(A1).to_string());

        let (status, err) = get(&s, "/v1/history?subject=UPPER/Case").await;
        assert_eq!(status, 400);
        assert!(
            err["error"].as_str().unwrap().contains("neither a digest"),
            "{err}"
        );
        let (status, _) = get(&s, "/v1/running?at=tuesday").await;
        assert_eq!(status, 400);
        let (status, _) = get(&s, "/v1/history").await;
        assert_eq!(status, 400);
    });
}

#[rstest]
fn the_pages_render_the_story_escaped(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    story(&db);
    let s = Served::start(&db, None);
    let q = percent_encoding::utf8_percent_encode(
        &format!("{REGISTRY}/app:1.0"),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    let s = &s;
    let (list, image) = runtime().block_on(async {
        let page = |path: String| async move {
            let r = client().get(s.url(&path)).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200, "{path}");
            assert_eq!(
                r.headers()["content-type"].to_str().unwrap(),
                "text/html; charset=utf-8"
            );
            r.text().await.unwrap()
        };
        (
            page("/".to_owned()).await,
            page(format!("/image?ref={q}")).await,
        )
    });
    assert!(
        image.contains("&lt;script&gt;document.title=&#39;pwned&#39;"),
        "the label is there, escaped"
    );
    insta::assert_snapshot!("catalog_page_list_html", list);
    insta::assert_snapshot!("catalog_page_image_html", image);
}

#[rstest]
#[case::no_catalog(false, None, "no catalog at")]
#[case::unmigrated(true, None, "has no schema yet")]
#[case::empty_token_file(true, Some(""), "holds no token")]
#[case::missing_token_file(true, Some("-"), "cannot read the builds token file")]
fn catalog_serve_refuses_to_start_without_what_it_needs(
    #[case] exists: bool,
    #[case] token: Option<&str>,
    #[case] want: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("c.db").display());
    if exists {
        raw(
            &Db {
                url: format!("{url}?mode=rwc"),
                _dir: None,
            },
            "CREATE TABLE unrelated (x INTEGER)",
        );
    }
    if want.contains("holds no token") {
        let m = run(&["catalog", "migrate", "--catalog", &url]);
        assert_eq!(m.code, 0, "{}", m.stderr);
    }
    let token_path = dir.path().join("token");
    let mut args = vec![
        "catalog",
        "serve",
        "--catalog",
        &url,
        "--listen",
        "127.0.0.1:0",
    ];
    let token_arg;
    if let Some(t) = token {
        if t != "-" {
            std::fs::write(&token_path, t).unwrap();
        }
        token_arg = token_path.display().to_string();
        args.extend(["--builds-token-file", &token_arg]);
    }
    let r = run(&args);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(want), "{}", r.stderr);
}
