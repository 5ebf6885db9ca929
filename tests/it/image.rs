//! tollgate's own image: built by image/build.sh from Debian's packages and this test binary's
//! `tollgate`, pushed to a real registry, and verified by `tollgate verify` against a policy
//! that approves Debian bases, as the chart's image must pass the policy it enforces.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use flate2::read::GzDecoder;
use serde_json::Value;

use crate::support::registry::TestRegistry;
use crate::support::run;

/// Run image/build.sh; its stdout, trimmed.
fn build(args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("image/build.sh"))
        .args(args)
        .current_dir(root)
        // The documented defaults: mtimes and creation time 0, no credentials.
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("TOLLGATE_REGISTRY_AUTH")
        .stdin(Stdio::null())
        .output()
        .expect("run bash image/build.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "image/build.sh failed (tests/run.sh installs what it needs: dpkg-dev, binutils, curl; \
         apt-get must reach a Debian mirror once, the .debs are cached in $TOLLGATE_TOOLS_DIR):\n{stderr}"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn read_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

/// One entry of a layer.
struct Entry {
    mode: u32,
    owner: (u64, u64),
    mtime: u64,
    file: bool,
    /// A file's content, a link's target.
    content: Vec<u8>,
}

/// A layer's entries by path.
fn entries(gz: &[u8]) -> BTreeMap<String, Entry> {
    let mut tar = tar::Archive::new(GzDecoder::new(gz));
    let mut out = BTreeMap::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let h = e.header().clone();
        let mut content = Vec::new();
        if h.entry_type().is_symlink() {
            content = e.link_name_bytes().unwrap().into_owned();
        } else {
            e.read_to_end(&mut content).unwrap();
        }
        let entry = Entry {
            mode: h.mode().unwrap(),
            owner: (h.uid().unwrap(), h.gid().unwrap()),
            mtime: h.mtime().unwrap(),
            file: h.entry_type().is_file(),
            content,
        };
        out.insert(path, entry);
    }
    out
}

#[test]
fn tollgates_own_image_is_built_from_debian_packages_and_passes_verify() {
    let reg = TestRegistry::start();
    let layout = tempfile::tempdir().unwrap();
    let image = format!(
        "{}/repos/sre/tollgate:{}",
        reg.host(),
        env!("CARGO_PKG_VERSION")
    );
    let pushed = build(&[
        "--plain-http",
        "--out",
        layout.path().to_str().unwrap(),
        env!("CARGO_BIN_EXE_tollgate"),
        &image,
    ]);
    let digest = pushed
        .strip_prefix(&format!("{image}@"))
        .unwrap_or_else(|| panic!("expected {image}@sha256:..., got {pushed:?}"))
        .to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{pushed}"
    );

    // Reproducible: the same binary and packages give the same digest.
    assert_eq!(
        build(&["--plain-http", env!("CARGO_BIN_EXE_tollgate"), &image]),
        pushed
    );

    // The policy approves the loopback registry and Debian bases, and denies what the default
    // policy only warns about: the reference the script prints is name:tag@digest.
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        reg.policy(&format!(
            "  rules:\n    digest-missing: deny\n    digest-untagged: deny\n  bases:\n    debian:\n      - repository: {host}/bookworm\n"
        )),
    )
    .unwrap();
    let r = run(&[
        "verify",
        "--policy",
        policy.to_str().unwrap(),
        "--format",
        "json",
        "--deadline",
        "60s",
        &pushed,
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let img = &v["images"][0];
    assert_eq!(img["verdict"], "pullable", "{v:#}");
    assert_eq!(img["findings"], serde_json::json!([]), "{v:#}");
    let base = &img["bases"][0];
    assert_eq!(base["approved"], true, "{v:#}");
    // No approved base image is in this registry: base-files' os-release decides.
    assert_eq!(base["method"], "os-release", "{v:#}");
    assert_eq!(base["family"], "debian", "{v:#}");
    assert!(
        base["detail"]
            .as_str()
            .unwrap()
            .starts_with("usr/lib/os-release in layer"),
        "{v:#}"
    );

    // What is inside, from the OCI layout the script wrote next to the push.
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    let manifest: Value = serde_json::from_slice(&read_blob(layout.path(), &digest)).unwrap();
    let config: Value = serde_json::from_slice(&read_blob(
        layout.path(),
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/bin/tollgate"])
    );
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{manifest:#}");
    let base_layer = entries(&read_blob(
        layout.path(),
        layers[0]["digest"].as_str().unwrap(),
    ));
    let app_layer = entries(&read_blob(
        layout.path(),
        layers[1]["digest"].as_str().unwrap(),
    ));

    for (path, e) in base_layer.iter().chain(&app_layer) {
        assert_eq!((e.owner, e.mtime), ((0, 0), 0), "{path}");
    }
    let text = |path: &str| String::from_utf8(base_layer[path].content.clone()).unwrap();
    assert!(text("etc/passwd").contains("\nnonroot:x:65532:65532:"));
    assert!(text("etc/group").contains("\nnonroot:x:65532:\n"));
    assert!(text("usr/lib/os-release").contains("\nID=debian\n"));
    assert!(text("etc/ssl/certs/ca-certificates.crt").contains("-----BEGIN CERTIFICATE-----"));
    assert!(base_layer.contains_key("usr/share/zoneinfo/Etc/UTC"));
    // Distroless: no program in the Debian layer (no shell, no apt, no dpkg).
    let programs: Vec<&String> = base_layer
        .iter()
        .filter(|(p, e)| {
            e.file
                && e.mode & 0o111 != 0
                && ["bin/", "sbin/", "usr/bin/", "usr/sbin/"]
                    .iter()
                    .any(|d| p.starts_with(d))
        })
        .map(|(p, _)| p)
        .collect();
    assert!(programs.is_empty(), "{programs:?}");
    let app_paths: Vec<&String> = app_layer.keys().collect();
    assert_eq!(app_paths, ["usr/", "usr/bin/", "usr/bin/tollgate"]);
    assert_eq!(app_layer["usr/bin/tollgate"].mode & 0o7777, 0o755);

    // The image's binary runs with the image's loader and finds every library inside it.
    let rootfs = tempfile::tempdir().unwrap();
    for l in layers {
        let gz = read_blob(layout.path(), l["digest"].as_str().unwrap());
        tar::Archive::new(GzDecoder::new(&gz[..]))
            .unpack(rootfs.path())
            .unwrap();
    }
    let (triplet, loader) = match std::env::consts::ARCH {
        "x86_64" => ("x86_64-linux-gnu", "ld-linux-x86-64.so.2"),
        "aarch64" => ("aarch64-linux-gnu", "ld-linux-aarch64.so.1"),
        other => panic!("no loader name known for {other}; add it here"),
    };
    let root = rootfs.path();
    let lib = root.join("lib").join(triplet);
    let libs = format!(
        "{}:{}",
        lib.display(),
        root.join("usr/lib").join(triplet).display()
    );
    // The loader's options, the program, the program's arguments.
    let ld = |options: &[&str], args: &[&str]| {
        let out = Command::new(lib.join(loader))
            .args(["--inhibit-cache", "--library-path", &libs])
            .args(options)
            .arg(root.join("usr/bin/tollgate"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let list = ld(&["--list"], &[]);
    let prefix = format!("=> {}/", root.display());
    for line in list.lines().filter(|l| l.contains("=>")) {
        assert!(
            line.contains(&prefix),
            "a library from outside the image: {line}"
        );
    }
    assert!(list.contains("libc.so.6"), "{list}");
    assert_eq!(
        ld(&[], &["--version"]),
        format!("tollgate {}\n", env!("CARGO_PKG_VERSION"))
    );
}
