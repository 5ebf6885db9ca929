//! Issue 16 through the binary: `catalog sync --packages` / `catalog inventory` reading the
//! dpkg database from images built here and pushed to the real registry (Debian's
//! docker-registry, its access log read to count blob downloads), into SQLite and a real
//! PostgreSQL; then `catalog packages` and `catalog where`, with runs in two clusters.
//!
//! The images:
//! - `base/debian:12`: one layer with this machine's own `/var/lib/dpkg/status` (a real one)
//!   plus a few test packages (one `deinstall ok installed`, one `deinstall ok config-files`),
//!   and os-release;
//! - `team/app:1`: the base plus a layer that rewrites the status file with one package upgraded;
//! - `distroless/static:1`: `status.d` entries over two layers, the upper one zstd, deleting one
//!   entry with a whiteout and adding another;
//! - `team/multi:1`: an index of two platforms whose packages differ;
//! - `team/broken:1`: a layer that is not a tar.

use std::collections::BTreeMap;
use std::process::Command;

use rstest::rstest;
use serde_json::Value;
use tollgate::catalog::{Catalog, CatalogUrl, Create, RunSighting};

use crate::support::catalog::{Backend, Db, migrated as db};
use crate::support::oci::{Layer, Pushed, Pusher, layer, layer_zstd, raw_layer};
use crate::support::registry::{TestRegistry, policy_file};
use crate::support::run;

const OS_RELEASE: &[u8] = b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n";

fn stanza(name: &str, version: &str, status: &str, source: Option<&str>) -> String {
    let mut s =
        format!("Package: {name}\nStatus: {status}\nPriority: optional\nArchitecture: amd64\n");
    if let Some(src) = source {
        s.push_str(&format!("Source: {src}\n"));
    }
    s.push_str(&format!(
        "Version: {version}\nDescription: test package\n a second line\n\n"
    ));
    s
}

/// This machine's dpkg status file (a real one), with a blank line at its end.
fn real_status() -> String {
    let text = std::fs::read_to_string("/var/lib/dpkg/status").expect(
        "this test reads the machine's /var/lib/dpkg/status as a real dpkg database: run it on \
         Debian (tests/run.sh installs the rest)",
    );
    let mut text = text.trim_end().to_owned();
    text.push_str("\n\n");
    text
}

/// What `dpkg-query` says this machine has installed of `package`.
fn dpkg_query_version(package: &str) -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .expect("dpkg-query runs (apt-get install dpkg)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn base_status(libssl: &str) -> String {
    let mut s = real_status();
    s.push_str(&stanza(
        "tgtest-libssl",
        libssl,
        "install ok installed",
        Some("tgtest-openssl"),
    ));
    s.push_str(&stanza(
        "tgtest-openssl",
        libssl,
        "install ok installed",
        None,
    ));
    s.push_str(&stanza(
        "tgtest-removal-asked",
        "1.0-1",
        "deinstall ok installed",
        None,
    ));
    s.push_str(&stanza(
        "tgtest-removed",
        "1.0-1",
        "deinstall ok config-files",
        None,
    ));
    s.push_str(&stanza(
        "tgtest-binnmu",
        "2.1-3+b1",
        "install ok installed",
        Some("tgtest-src (2.1-3)"),
    ));
    s
}

struct Built {
    base: Pushed,
    app: Pushed,
    svc: Pushed,
    distroless: Pushed,
    amd: Pushed,
    broken: Pushed,
    /// Every distinct layer blob pushed, by digest, with its size.
    layers: BTreeMap<String, usize>,
}

async fn build(reg: &TestRegistry) -> Built {
    let p = Pusher::new(reg.base_url());
    let mut layers = BTreeMap::new();
    let mut keep = |l: &Layer| {
        layers.insert(l.digest.clone(), l.gz.len());
        l.clone()
    };
    let old = "3.0.11-1~deb12u2";
    let new = "3.0.14-1~deb12u2";
    let base_layer = keep(&layer(&[
        ("etc/os-release", OS_RELEASE),
        ("var/lib/dpkg/status", base_status(old).as_bytes()),
    ]));
    let base = p
        .image(
            "base/debian",
            Some("12"),
            std::slice::from_ref(&base_layer),
            "linux/amd64",
        )
        .await;
    let upgrade = keep(&layer(&[(
        "var/lib/dpkg/status",
        base_status(new).as_bytes(),
    )]));
    let app = p
        .image(
            "team/app",
            Some("1"),
            &[base_layer.clone(), upgrade],
            "linux/amd64",
        )
        .await;

    let svc_layer = keep(&layer(&[(
        "srv/svc",
        b"a service with no packages of its own",
    )]));
    let svc = p
        .image(
            "team/svc",
            Some("1"),
            &[base_layer.clone(), svc_layer],
            "linux/amd64",
        )
        .await;

    let d0 = keep(&layer(&[
        ("etc/os-release", OS_RELEASE),
        (
            "var/lib/dpkg/status.d/base-files",
            stanza("base-files", "12.4+deb12u5", "install ok installed", None).as_bytes(),
        ),
        (
            "var/lib/dpkg/status.d/tzdata",
            stanza("tzdata", "2024a-0+deb12u1", "install ok installed", None).as_bytes(),
        ),
        (
            "var/lib/dpkg/status.d/tzdata.md5sums",
            b"0123  usr/share/zoneinfo/UTC\n",
        ),
    ]));
    let d1 = keep(&layer_zstd(&[
        ("var/lib/dpkg/status.d/.wh.tzdata", b""),
        (
            "var/lib/dpkg/status.d/libssl3",
            stanza(
                "libssl3",
                "3.0.11-1~deb12u2",
                "install ok installed",
                Some("openssl"),
            )
            .as_bytes(),
        ),
    ]));
    let distroless = p
        .image("distroless/static", Some("1"), &[d0, d1], "linux/amd64")
        .await;

    let amd_layer = keep(&layer(&[
        ("etc/os-release", OS_RELEASE),
        (
            "var/lib/dpkg/status",
            stanza("tgtest-openssl", old, "install ok installed", None).as_bytes(),
        ),
    ]));
    let arm_layer = keep(&layer(&[
        ("etc/os-release", OS_RELEASE),
        (
            "var/lib/dpkg/status",
            stanza("tgtest-openssl", new, "install ok installed", None).as_bytes(),
        ),
    ]));
    let amd = p
        .image("team/multi", None, &[amd_layer], "linux/amd64")
        .await;
    let arm = p
        .image("team/multi", None, &[arm_layer], "linux/arm64")
        .await;
    p.index(
        "team/multi",
        "1",
        &[(&amd, "linux/amd64"), (&arm, "linux/arm64")],
        false,
    )
    .await;

    let not_tar = keep(&raw_layer(
        b"this is not a tar archive, only forty-odd bytes",
        "application/vnd.oci.image.layer.v1.tar",
    ));
    let broken = p
        .image("team/broken", Some("1"), &[not_tar], "linux/amd64")
        .await;
    Built {
        base,
        app,
        svc,
        distroless,
        amd,
        broken,
        layers,
    }
}

fn json_of(r: &crate::support::Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr))
}

/// Blob GETs per digest, from the registry's access log.
fn blob_gets(reg: &TestRegistry) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (method, path) in reg.requests() {
        if method == "GET"
            && let Some((_, digest)) = path.split_once("/blobs/")
        {
            *out.entry(digest.to_owned()).or_insert(0) += 1;
        }
    }
    out
}

fn packages_of(db: &Db, image: &str) -> Value {
    let r = run(&[
        "catalog",
        "packages",
        image,
        "--catalog",
        &db.url,
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    json_of(&r)
}

/// name -> (version, layer position) of one image's inventory.
fn names(image: &Value) -> BTreeMap<String, (String, u64)> {
    image["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                (
                    p["version"].as_str().unwrap().to_owned(),
                    p["layerPosition"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// One snapshot of `cluster`: each image running in `namespace`.
fn record_runs(db: &Db, cluster: &str, namespace: &str, images: &[String]) {
    let url: CatalogUrl = db.url.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Catalog::open(&url, Create::No).await.unwrap();
        let sightings: Vec<RunSighting> = images
            .iter()
            .enumerate()
            .map(|(i, image)| RunSighting {
                namespace: namespace.into(),
                controller_kind: "Deployment".into(),
                controller_name: format!("web-{i}"),
                container: "web".into(),
                image: image.parse().unwrap(),
                pods: 3,
            })
            .collect();
        c.record_runs(cluster, &sightings, jiff::Timestamp::now())
            .await
            .unwrap();
        c.close().await;
    });
}

/// east runs base/debian; west runs team/multi's amd64 image and team/app, 3 pods each.
fn two_clusters(db: &Db, host: &str, b: &Built) {
    record_runs(
        db,
        "east",
        "web",
        &[format!("{host}/base/debian@{}", b.base.digest)],
    );
    record_runs(
        db,
        "west",
        "shop",
        &[
            format!("{host}/team/multi@{}", b.amd.digest),
            format!("{host}/team/app@{}", b.app.digest),
        ],
    );
}

/// A logged registry holding the images of [`build`], a policy approving it, and an empty
/// catalog.
struct Setup {
    reg: TestRegistry,
    b: Built,
    _policy_dir: tempfile::TempDir,
    policy: String,
    db: Db,
    host: String,
}

fn setup(backend: Backend) -> Setup {
    let reg = TestRegistry::start_logged();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let b = rt.block_on(build(&reg));
    drop(rt);
    let (_policy_dir, policy) = policy_file(&reg, "");
    let host = reg.host();
    Setup {
        reg,
        b,
        _policy_dir,
        policy,
        db: db(backend),
        host,
    }
}

#[rstest]
fn packages_are_read_from_layers_once_and_answer_where_and_packages(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Setup {
        reg,
        b,
        _policy_dir,
        policy,
        db,
        host,
    } = setup(backend);
    reg.requests(); // the pushes are not the sync's

    let before = blob_gets(&reg);
    let cold = run(&[
        "catalog",
        "sync",
        &host,
        "--catalog",
        &db.url,
        "--policy",
        &policy,
        "--packages",
        "--format",
        "json",
    ]);
    let report = json_of(&cold);
    // The broken layer is recorded as unreadable (a fact about its digest), not an error.
    assert_eq!(cold.code, 0, "{}\n{}", cold.stdout, cold.stderr);
    let inv = &report["packages"];
    assert_eq!(inv["inventoried"], 7, "{inv}");
    assert_eq!(inv["withDpkg"], 6, "{inv}");
    assert_eq!(inv["layersUnreadable"], 1, "{inv}");
    assert_eq!(inv["errors"], Value::Array(vec![]), "{inv}");

    // Every distinct layer was downloaded exactly once: the base layer, shared by base/debian
    // and team/app, too.
    let after = blob_gets(&reg);
    for (digest, size) in &b.layers {
        let n = after.get(digest).unwrap_or(&0) - before.get(digest).unwrap_or(&0);
        assert_eq!(n, 1, "layer {digest} ({size} bytes) read {n} times");
    }
    let total: usize = b.layers.values().sum();
    assert_eq!(inv["bytesRead"], total, "{inv}");

    // A second run has nothing to do and downloads nothing.
    let again = run(&[
        "catalog",
        "inventory",
        "--catalog",
        &db.url,
        "--policy",
        &policy,
        "--format",
        "json",
    ]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(json_of(&again)["pending"], 0);
    assert_eq!(
        blob_gets(&reg),
        after,
        "an inventoried catalog reads no layer again"
    );

    // The base: the real status file read as dpkg does.
    let base = packages_of(&db, &format!("{host}/base/debian:12"));
    let base_image = &base["images"][0];
    assert_eq!(base_image["digest"], b.base.digest.as_str());
    assert_eq!(base_image["os"]["versionCodename"], "bookworm");
    assert_eq!(base_image["complete"], true);
    let base_names = names(base_image);
    assert_eq!(
        base_names["dpkg"].0,
        dpkg_query_version("dpkg"),
        "the machine's own dpkg, as dpkg-query reports it"
    );
    assert!(
        base_names.contains_key("tgtest-removal-asked"),
        "ri still counts"
    );
    assert!(!base_names.contains_key("tgtest-removed"), "rc does not");
    let binnmu = base_image["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tgtest-binnmu")
        .unwrap();
    assert_eq!(binnmu["source"], "tgtest-src");
    assert_eq!(binnmu["sourceVersion"], "2.1-3");

    // The service image: the upgraded package comes from its own layer, the rest from the base.
    let app = packages_of(&db, &format!("{host}/team/app:1"));
    let app_names = names(&app["images"][0]);
    assert_eq!(
        app_names["tgtest-libssl"],
        ("3.0.14-1~deb12u2".to_owned(), 1)
    );
    assert_eq!(
        app_names["dpkg"].1, 0,
        "unchanged packages keep the base's layer"
    );
    assert_eq!(app_names.len(), base_names.len());

    // distroless: status.d across layers, a zstd layer, a whiteout, md5sums skipped.
    let dl = packages_of(&db, &format!("{host}/distroless/static:1"));
    let dl_names = names(&dl["images"][0]);
    assert_eq!(
        dl_names.keys().cloned().collect::<Vec<_>>(),
        ["base-files", "libssl3"],
        "{dl}"
    );
    assert_eq!(dl_names["libssl3"].1, 1);

    // An index stands for each platform.
    let multi = packages_of(&db, &format!("{host}/team/multi:1"));
    let platforms: Vec<(String, String)> = multi["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["platform"].as_str().unwrap().to_owned(),
                i["packages"][0]["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        platforms,
        [
            ("linux/amd64".to_owned(), "3.0.11-1~deb12u2".to_owned()),
            ("linux/arm64".to_owned(), "3.0.14-1~deb12u2".to_owned())
        ]
    );

    // The layer that is not a tar: kept as unreadable, the inventory says it is incomplete.
    let broken = packages_of(&db, &b.broken.digest);
    assert_eq!(broken["images"][0]["complete"], false, "{broken}");
    assert!(
        broken["images"][0]["problems"][0]
            .as_str()
            .unwrap()
            .contains("not a readable tar archive"),
        "{broken}"
    );

    // Runs in two clusters.
    two_clusters(&db, &host, &b);

    // The Heartbleed question, by source package: which images have it older than the fix.
    let w = run(&[
        "catalog",
        "where",
        "tgtest-openssl",
        "<< 3.0.14-1~deb12u2",
        "--catalog",
        &db.url,
        "--format",
        "json",
    ]);
    assert_eq!(w.code, 1, "found: exit 1\n{}", w.stderr);
    let w = json_of(&w);
    let found: Vec<&str> = w["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["digest"].as_str().unwrap())
        .collect();
    let mut want = vec![
        b.base.digest.as_str(),
        b.amd.digest.as_str(),
        b.svc.digest.as_str(),
    ];
    want.sort();
    let mut got = found.clone();
    got.sort();
    assert_eq!(got, want, "{w}");
    let base_holder = w["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["digest"] == b.base.digest.as_str())
        .unwrap();
    assert_eq!(base_holder["tags"][0], format!("{host}/base/debian:12"));
    // Both the source's own binary and the one built from it.
    assert_eq!(
        base_holder["packages"].as_array().unwrap().len(),
        2,
        "{base_holder}"
    );
    assert_eq!(base_holder["running"][0]["cluster"], "east");

    // Pods are attributed to their cluster.
    let west = run(&[
        "catalog",
        "where",
        "tgtest-openssl",
        "<< 3.0.14-1~deb12u2",
        "--cluster",
        "west",
        "--catalog",
        &db.url,
        "--format",
        "json",
    ]);
    let west = json_of(&west);
    assert_eq!(west["images"].as_array().unwrap().len(), 1, "{west}");
    assert_eq!(west["images"][0]["digest"], b.amd.digest.as_str());
    assert_eq!(west["images"][0]["running"][0]["namespace"], "shop");
    assert_eq!(west["images"][0]["running"][0]["pods"], 3);

    // The fixed version is not older than the fix; an unknown package is nowhere.
    let fixed = run(&[
        "catalog",
        "where",
        "tgtest-libssl",
        "<< 3.0.14-1~deb12u2",
        "--running",
        "--cluster",
        "west",
        "--catalog",
        &db.url,
    ]);
    assert_eq!(fixed.code, 0, "{}", fixed.stdout);
    assert!(
        fixed
            .stdout
            .starts_with("images with tgtest-libssl << 3.0.14-1~deb12u2: 0"),
        "{}",
        fixed.stdout
    );
    let none = run(&["catalog", "where", "no-such-package", "--catalog", &db.url]);
    assert_eq!(none.code, 0, "{}", none.stdout);

    // A constraint dpkg would not read is an error, not a filter that matches everything.
    let bad = run(&["catalog", "where", "openssl", "< 3.0", "--catalog", &db.url]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("constraint \"< 3.0\""),
        "{}",
        bad.stderr
    );

    // Text for people: the distroless image names its layers.
    let text = run(&[
        "catalog",
        "packages",
        &b.distroless.digest,
        "--catalog",
        &db.url,
    ]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains("Debian GNU/Linux 12 (bookworm)"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains(
            "  libssl3  3.0.11-1~deb12u2  amd64  source openssl 3.0.11-1~deb12u2  layer 1 "
        ),
        "{}",
        text.stdout
    );
}

#[rstest]
fn a_layer_the_registry_does_not_serve_leaves_its_image_unknown_and_is_read_again() {
    let reg = TestRegistry::start_logged();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let p = Pusher::new(reg.base_url());
    let shared = layer(&[(
        "var/lib/dpkg/status",
        stanza("tgtest-openssl", "3.0.11-1", "install ok installed", None).as_bytes(),
    )]);
    let own = layer(&[("app", b"app")]);
    let app = rt.block_on(p.image(
        "team/app",
        Some("1"),
        &[shared.clone(), own.clone()],
        "linux/amd64",
    ));
    let (_p, policy) = policy_file(&reg, "");
    let db = db(Backend::Sqlite);
    let host = reg.host();
    let s = run(&[
        "catalog",
        "sync",
        &host,
        "--catalog",
        &db.url,
        "--policy",
        &policy,
    ]);
    assert_eq!(s.code, 0, "{}", s.stderr);

    // A policy that does not approve the registry: nothing is downloaded, and the image is
    // left for a run that may read it.
    let before = blob_gets(&reg);
    let refused = run(&[
        "catalog",
        "inventory",
        "--catalog",
        &db.url,
        "--format",
        "json",
    ]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    let r = json_of(&refused);
    assert_eq!(r["inventoried"], 0, "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not approved by the policy"),
        "{r}"
    );
    assert_eq!(
        blob_gets(&reg),
        before,
        "no request to an unapproved registry"
    );

    // The registry loses one layer: the image gets no inventory, exit 2, and the layer that
    // could be read is kept.
    rt.block_on(p.delete_blob("team/app", &own.digest));
    let first = run(&[
        "catalog",
        "inventory",
        "--catalog",
        &db.url,
        "--policy",
        &policy,
        "--format",
        "json",
    ]);
    assert_eq!(first.code, 2, "{}", first.stdout);
    let r = json_of(&first);
    assert_eq!(r["inventoried"], 0, "{r}");
    assert_eq!(r["errors"][0]["subject"], app.digest.as_str());
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&own.digest),
        "{r}"
    );
    let packages = packages_of(&db, &app.digest);
    assert_eq!(
        packages["notInventoried"][0],
        app.digest.as_str(),
        "not a verdict: {packages}"
    );
    let w = run(&["catalog", "where", "tgtest-openssl", "--catalog", &db.url]);
    assert_eq!(w.code, 0);
    assert!(
        w.stdout
            .contains("1 image without an inventory not covered"),
        "{}",
        w.stdout
    );

    // Pushed again, the next run reads only that layer.
    rt.block_on(p.blob("team/app", &own.gz));
    let before = blob_gets(&reg);
    let second = run(&[
        "catalog",
        "inventory",
        "--catalog",
        &db.url,
        "--policy",
        &policy,
        "--format",
        "json",
    ]);
    assert_eq!(second.code, 0, "{}", second.stdout);
    assert_eq!(json_of(&second)["layersRead"], 1);
    assert_eq!(json_of(&second)["layersKnown"], 1);
    let after = blob_gets(&reg);
    assert_eq!(after.get(&shared.digest), before.get(&shared.digest));
    assert_eq!(
        after[&own.digest] - before.get(&own.digest).unwrap_or(&0),
        1
    );
}

#[rstest]
fn a_version_1_catalog_is_brought_to_the_current_schema_with_its_rows_kept(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    // Back to the schema a binary of issue 15 left: migration 2 never applied.
    db.raw(
        "DROP TABLE advisories; DROP TABLE security_imports; \
         DROP TABLE image_inventories; DROP TABLE package_set_entries; DROP TABLE package_sets; \
         DROP TABLE layer_scans; \
         DELETE FROM schema_version WHERE version > 1; \
         INSERT INTO repositories (registry, name, first_seen) VALUES ('r.example.org', 'app', 1);",
    );
    let old = run(&["catalog", "status", "--catalog", &db.url]);
    assert_eq!(old.code, 2);
    assert!(
        old.stderr.contains("run `tollgate catalog migrate`"),
        "{}",
        old.stderr
    );
    let m = run(&["catalog", "migrate", "--catalog", &db.url]);
    assert_eq!(m.code, 0, "{}", m.stderr);
    assert!(
        m.stdout
            .starts_with("applied migration 2 (packages)\napplied migration 3 (security)\n"),
        "{}",
        m.stdout
    );
    let status = run(&["catalog", "status", "--catalog", &db.url]);
    let rows: Vec<String> = status
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        rows.contains(&"repositories 1".to_owned()),
        "{}",
        status.stdout
    );
    assert!(
        rows.contains(&"package_set_entries 0".to_owned()),
        "{}",
        status.stdout
    );
}

/// The tracker's JSON export, in its real shape, with each edge case: a fix (high), a fix with
/// an epoch for dpkg (low), an open issue with nodsa, a never-affected release ("0"), and a
/// release no image runs.
const TRACKER: &str = r#"{
  "tgtest-openssl": {
    "CVE-2024-0001": {"description": "a fix", "scope": "remote", "releases": {
      "bookworm": {"status": "resolved", "repositories": {"bookworm": "3.0.14-1~deb12u1"}, "fixed_version": "3.0.14-1~deb12u1", "urgency": "high"},
      "bullseye": {"status": "resolved", "repositories": {}, "fixed_version": "1.1.1w-0+deb11u2", "urgency": "high"}
    }},
    "CVE-2024-0002": {"description": "no fix yet", "releases": {
      "bookworm": {"status": "open", "repositories": {"bookworm": "3.0.11-1~deb12u2"}, "urgency": "low", "nodsa": "Minor issue", "nodsa_reason": "postponed"}
    }}
  },
  "tgtest-src": {
    "CVE-2024-0003": {"releases": {"bookworm": {"status": "resolved", "repositories": {}, "fixed_version": "0", "urgency": "unimportant"}}}
  },
  "dpkg": {
    "CVE-2099-9999": {"releases": {"bookworm": {"status": "resolved", "repositories": {}, "fixed_version": "1:0.1-1", "urgency": "low"}}}
  }
}"#;

const OSV: &str = r#"{"schema_version": "1.6.0", "id": "DEBIAN-CVE-2024-0004", "modified": "2024-07-01T00:00:00Z",
  "affected": [{"package": {"ecosystem": "Debian:12", "name": "tgtest-src"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.1-4"}]}],
    "ecosystem_specific": {"urgency": "medium"}}]}"#;

#[rstest]
fn the_security_report_names_the_base_to_rebuild_first_and_where_its_images_run(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Setup {
        reg: _reg,
        b,
        _policy_dir,
        policy,
        db,
        host,
    } = setup(backend);
    let s = run(&[
        "catalog",
        "sync",
        &host,
        "--catalog",
        &db.url,
        "--policy",
        &policy,
        "--packages",
    ]);
    assert_eq!(s.code, 0, "{}\n{}", s.stdout, s.stderr);
    two_clusters(&db, &host, &b);

    // Before any import: nothing is judged fine.
    let before = run(&[
        "catalog",
        "security",
        "--catalog",
        &db.url,
        "--format",
        "json",
    ]);
    assert_eq!(before.code, 0, "{}", before.stderr);
    let before = json_of(&before);
    assert_eq!(before["imagesNeedingUpdate"], 0);
    assert!(
        before["notChecked"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["digest"] == b.base.digest.as_str()
                && n["why"] == "no security data imported for bookworm"),
        "{before}"
    );

    let dir = tempfile::tempdir().unwrap();
    let tracker = dir.path().join("tracker.json");
    std::fs::write(&tracker, TRACKER).unwrap();
    let osv_dir = dir.path().join("osv");
    std::fs::create_dir(&osv_dir).unwrap();
    std::fs::write(osv_dir.join("DEBIAN-CVE-2024-0004.json"), OSV).unwrap();
    std::fs::write(osv_dir.join("broken.json"), "{not json").unwrap();
    let imported = run(&[
        "catalog",
        "import-advisories",
        "--tracker",
        tracker.to_str().unwrap(),
        "--catalog",
        &db.url,
        "--format",
        "json",
    ]);
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    let imported = json_of(&imported);
    assert_eq!(
        imported["releases"],
        serde_json::json!(["bookworm"]),
        "only what images run"
    );
    assert_eq!(imported["advisories"], 4, "{imported}");
    let osv = run(&[
        "catalog",
        "import-advisories",
        "--osv",
        osv_dir.to_str().unwrap(),
        "--catalog",
        &db.url,
    ]);
    assert_eq!(osv.code, 2, "a broken record is reported: {}", osv.stdout);
    assert!(osv.stdout.contains("broken.json"), "{}", osv.stdout);
    assert!(
        osv.stdout.contains("osv: 1 advisory for bookworm"),
        "{}",
        osv.stdout
    );

    let r = run(&[
        "catalog",
        "security",
        "--catalog",
        &db.url,
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "images need an update: exit 1\n{}", r.stderr);
    let r = json_of(&r);
    // base, svc and app (dpkg, from the base's layer), and multi's amd64 child.
    assert_eq!(r["imagesNeedingUpdate"], 4, "{r:#}");
    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{r:#}");
    let base = &groups[0];
    assert_eq!(base["kind"], "base");
    assert_eq!(base["image"], b.base.digest.as_str());
    assert_eq!(
        base["names"],
        serde_json::json!([format!("{host}/base/debian:12")])
    );
    assert_eq!(base["layer"], b.base.layers[0].as_str());
    assert_eq!(
        base["pods"], 6,
        "east's 3 pods of the base, west's 3 of team/app"
    );
    let mut images: Vec<&str> = base["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["digest"].as_str().unwrap())
        .collect();
    images.sort();
    let mut want = vec![
        b.base.digest.as_str(),
        b.svc.digest.as_str(),
        b.app.digest.as_str(),
    ];
    want.sort();
    assert_eq!(images, want);
    let fixes: BTreeMap<&str, (&str, &str)> = base["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["source"].as_str().unwrap(),
                (
                    f["fixed"].as_str().unwrap(),
                    f["urgency"].as_str().unwrap_or(""),
                ),
            )
        })
        .collect();
    assert_eq!(fixes["tgtest-openssl"], ("3.0.14-1~deb12u1", "high"));
    assert_eq!(fixes["dpkg"], ("1:0.1-1", "low"));
    assert_eq!(fixes["tgtest-src"], ("2.1-4", "medium"), "from OSV");
    let image = &groups[1];
    assert_eq!(image["kind"], "image");
    assert_eq!(image["image"], b.amd.digest.as_str());
    assert_eq!(
        image["names"],
        serde_json::json!([format!("{host}/team/multi:1")])
    );
    assert_eq!(image["pods"], 3);
    // The open issue is reported apart, with its nodsa, never as an update.
    let no_fix = &r["noFixYet"][0];
    assert_eq!(no_fix["source"], "tgtest-openssl");
    assert_eq!(no_fix["advisories"][0]["nodsa"], "Minor issue");
    assert_eq!(no_fix["advisories"][0]["nodsaReason"], "postponed");
    // The layer that is not a tar: not judged, and said so.
    assert!(
        r["notChecked"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["digest"] == b.broken.digest.as_str()),
        "{r:#}"
    );

    // Pods attributed to their cluster; --urgency drops the low dpkg fix.
    let west = run(&[
        "catalog",
        "security",
        "--cluster",
        "west",
        "--urgency",
        "high",
        "--catalog",
        &db.url,
        "--format",
        "json",
    ]);
    let west = json_of(&west);
    let groups = west["groups"].as_array().unwrap();
    assert_eq!(
        groups
            .iter()
            .map(|g| (
                g["kind"].as_str().unwrap(),
                g["images"].as_array().unwrap().len(),
                g["pods"].as_u64().unwrap()
            ))
            .collect::<Vec<_>>(),
        [("image", 1, 3)],
        "team/app's only fix in west is dpkg's, which is low: {west:#}"
    );
    assert_eq!(groups[0]["images"][0]["digest"], b.amd.digest.as_str());
    assert_eq!(groups[0]["images"][0]["running"][0]["cluster"], "west");
    let west_all = run(&[
        "catalog",
        "security",
        "--cluster",
        "west",
        "--catalog",
        &db.url,
        "--format",
        "json",
    ]);
    let west_all = json_of(&west_all);
    assert_eq!(west_all["groups"][0]["kind"], "base", "{west_all:#}");
    assert_eq!(
        west_all["groups"][0]["images"][0]["digest"],
        b.app.digest.as_str()
    );
    assert_eq!(west_all["groups"][0]["pods"], 3);

    // The one-command answer, for people.
    let text = run(&["catalog", "security", "--running", "--catalog", &db.url]);
    assert_eq!(text.code, 1);
    let first_group = text
        .stdout
        .lines()
        .find(|l| l.starts_with("rebuild"))
        .unwrap();
    assert_eq!(
        first_group,
        format!("rebuild base {host}/base/debian:12: fixes 2 images running in 6 pods")
    );
    assert!(text.stdout.contains("tgtest-openssl 3.0.11-1~deb12u2 -> 3.0.14-1~deb12u1  (tgtest-libssl, tgtest-openssl)  CVE-2024-0001 [high]"), "{}", text.stdout);
    assert!(
        text.stdout
            .contains("CVE-2024-0002 [low; no DSA: Minor issue (postponed)]"),
        "{}",
        text.stdout
    );

    // Markdown and HTML carry the same, escaped.
    let md = run(&[
        "catalog",
        "security",
        "--format",
        "markdown",
        "--catalog",
        &db.url,
    ]);
    assert_eq!(md.code, 1);
    assert!(
        md.stdout
            .starts_with("# Images needing a security update\n"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout
            .contains("| tgtest-openssl | 3.0.11-1~deb12u2 | 3.0.14-1~deb12u1 |"),
        "{}",
        md.stdout
    );
    let html = run(&[
        "catalog",
        "security",
        "--format",
        "html",
        "--catalog",
        &db.url,
    ]);
    assert_eq!(html.code, 1);
    assert!(html.stdout.contains("<h2>rebuild base"), "{}", html.stdout);
    assert!(!html.stdout.contains("<script"), "{}", html.stdout);
}
