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
    distroless: Pushed,
    amd: Pushed,
    arm: Pushed,
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

    let amd_layer = keep(&layer(&[(
        "var/lib/dpkg/status",
        stanza("tgtest-openssl", old, "install ok installed", None).as_bytes(),
    )]));
    let arm_layer = keep(&layer(&[(
        "var/lib/dpkg/status",
        stanza("tgtest-openssl", new, "install ok installed", None).as_bytes(),
    )]));
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
        distroless,
        amd,
        arm,
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

#[rstest]
fn packages_are_read_from_layers_once_and_answer_where_and_packages(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let reg = TestRegistry::start_logged();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let b = rt.block_on(build(&reg));
    drop(rt);
    let (_p, policy) = policy_file(&reg, "");
    let db = db(backend);
    let host = reg.host();
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
    assert_eq!(inv["inventoried"], 6, "{inv}");
    assert_eq!(inv["withDpkg"], 5, "{inv}");
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
    record_runs(
        &db,
        "east",
        "web",
        &[format!("{host}/base/debian@{}", b.base.digest)],
    );
    record_runs(
        &db,
        "west",
        "shop",
        &[
            format!("{host}/team/multi@{}", b.amd.digest),
            format!("{host}/team/app@{}", b.app.digest),
        ],
    );

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
    let mut want = vec![b.base.digest.as_str(), b.amd.digest.as_str()];
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
    let _ = &b.arm;
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
fn a_version_1_catalog_is_brought_to_version_2_with_its_rows_kept(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    // Back to the schema a binary of issue 15 left: migration 2 never applied.
    db.raw(
        "DROP TABLE image_packages; DROP TABLE image_inventories; DROP TABLE layer_scans; \
         DELETE FROM schema_version WHERE version = 2; \
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
        m.stdout.starts_with("applied migration 2 (packages)\n"),
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
        rows.contains(&"image_packages 0".to_owned()),
        "{}",
        status.stdout
    );
}
