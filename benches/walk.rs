//! Target: the full walk of a 2-platform index with 20 layers per platform, on the
//! loopback registry (Debian's docker-registry), cold and with a warm cache, side by side with
//! `skopeo inspect` of the same image. Cold full walk no slower than skopeo's partial look; warm
//! answer under 1 ms; requests per walk reported, none repeated. Results: docs/BENCHMARKS.md.
//!
//! `cargo bench --bench walk` runs 30 rounds (`-- --quick`: 5; `WALK_RUNS=N` sets it). Each
//! round measures, against the same image:
//! - cold: a new `RegistryClient` and `Resolver` (no cache, no open connection) resolving
//!   `HOST/bench/app:1.0`; the client is built before the clock starts (its cost is shown
//!   separately);
//! - warm: the same `resolve` again on that resolver (every answer from the cache);
//! - floor: the walk's 46 requests sent by a bare reqwest client (1, 8 and 46 in flight), no
//!   checking: what the registry itself costs;
//! - the `tollgate verify` process and `skopeo inspect` processes (if skopeo is installed).
//!
//! Every cold walk must be pullable and send exactly one request per distinct object (46), the
//! warm one none: these are asserted. Timings are never asserted.
//!
//! `WALK_SERVE=1` (used by benches/walk.sh for hyperfine): start the registry, push the image,
//! print `READY <host> <image>`, and keep serving until stdin closes.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) one untimed round runs, which checks
//! the fixture and the request counts.

// Benchmarks set up their own files, servers and clocks.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[allow(dead_code)]
#[path = "../tests/common/registry.rs"]
mod registry;

// oci.rs imports `super::registry::sha256`: with both modules at the crate root, `super` is the
// crate root, where `registry` lives.
#[allow(dead_code)]
#[path = "../tests/common/oci.rs"]
mod oci;

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use oci::{Layer, Pusher, layer};
use registry::TestRegistry;
use tollgate::policy::parse_policy;
use tollgate::reference::ImageRef;
use tollgate::registry::{
    ClientOptions, Node, NodeKind, RegistryClient, Resolution, ResolveOptions, Resolver,
};

const REPO: &str = "bench/app";
const TAG: &str = "1.0";
const PLATFORMS: [&str; 2] = ["linux/amd64", "linux/arm64"];
const LAYERS_PER_PLATFORM: usize = 20;
/// Tag HEAD + index GET + 2 manifest GETs + 2 config GETs + 40 layer HEADs.
const EXPECTED_REQUESTS: u64 = 1 + 1 + 2 + 2 + 2 * LAYERS_PER_PLATFORM as u64;
/// Requests in flight for the floor: one by one (latency), tollgate's limit, all at once.
const FLOOR_IN_FLIGHT: [usize; 3] = [1, 8, 46];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let quick = args.iter().any(|a| a == "--quick");
    let serve = std::env::var("WALK_SERVE").is_ok_and(|v| v == "1");
    let runs: usize = match std::env::var("WALK_RUNS") {
        Ok(v) => v.parse().expect("WALK_RUNS must be a number"),
        Err(_) if quick => 5,
        Err(_) if bench => 30,
        Err(_) => 1,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let reg = TestRegistry::start();
    let image = format!("{}/{REPO}:{TAG}", reg.host());
    let fixture = rt.block_on(push_fixture(&reg));

    if serve {
        println!("READY {} {image}", reg.host());
        std::io::stdout().flush().unwrap();
        // Serve until the caller closes our stdin (or dies, which closes it too).
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        drop(reg);
        return;
    }

    println!(
        "image {image}: OCI index of {} platforms, {LAYERS_PER_PLATFORM} layers each, \
         {} layer bytes (gzip) in all, {} to {} bytes per layer",
        PLATFORMS.len(),
        fixture.layer_bytes,
        fixture.min_layer,
        fixture.max_layer
    );
    println!(
        "{runs} round(s){}",
        if bench { "" } else { " (test mode: untimed)" }
    );

    let policy = Arc::new(parse_policy(&reg.policy(""), "bench-policy.yaml").unwrap());
    let img: ImageRef = image.parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(&policy_file, reg.policy("")).unwrap();
    let skopeo = Command::new("skopeo")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());

    let mut s = Samples::default();
    // One untimed round first: page cache, the registry's own first-request costs.
    let rounds = if bench { runs + 1 } else { runs };
    for round in 0..rounds {
        let keep = !bench || round > 0;

        let t = Instant::now();
        let client = Arc::new(RegistryClient::new(ClientOptions::default()).unwrap());
        let client_new = t.elapsed();
        let resolver = Resolver::new(client, policy.clone(), ResolveOptions::default());

        let t = Instant::now();
        let cold = rt.block_on(resolver.resolve(&img)).expect("cold walk");
        let cold_time = t.elapsed();
        check_cold(&cold, &fixture);

        let t = Instant::now();
        let warm = rt.block_on(resolver.resolve(&img)).expect("warm walk");
        let warm_time = t.elapsed();
        assert!(warm.is_pullable(), "warm walk: {:#?}", warm.problems);
        assert_eq!(warm.requests, 0, "the warm walk sent requests");
        assert_eq!(warm.root, cold.root, "the warm walk saw another tree");

        let floor_times = FLOOR_IN_FLIGHT.map(|n| rt.block_on(floor(&reg.base_url(), &fixture, n)));

        let cli_time = time_process(
            Command::new(env!("CARGO_BIN_EXE_tollgate"))
                .arg("verify")
                .arg("--policy")
                .arg(&policy_file)
                .args(["--format", "json", &image])
                .env_remove("TOLLGATE_POLICY")
                .env("DOCKER_CONFIG", dir.path()),
            Some(&cold),
        );
        let skopeo_times = skopeo.then(|| {
            let docker = format!("docker://{image}");
            let run = |extra: &[&str]| {
                time_process(
                    Command::new("skopeo")
                        .args(["inspect", "--tls-verify=false"])
                        .args(extra)
                        .arg(&docker),
                    None,
                )
            };
            (run(&[]), run(&["--no-tags"]), run(&["--raw"]))
        });

        if keep {
            s.client_new.push(client_new);
            s.cold.push(cold_time);
            s.cold_requests.push(cold.requests);
            s.warm.push(warm_time);
            s.warm_requests.push(warm.requests);
            for (v, t) in s.floor.iter_mut().zip(floor_times) {
                v.push(t);
            }
            s.cli.push(cli_time);
            if let Some((full, no_tags, raw)) = skopeo_times {
                s.skopeo.push(full);
                s.skopeo_no_tags.push(no_tags);
                s.skopeo_raw.push(raw);
            }
        }
    }

    println!();
    println!(
        "{:<52} {:>10} {:>10} {:>10}",
        "what (wall time)", "min", "median", "mean"
    );
    row("cold walk in-process (new client + resolver)", &s.cold);
    row("warm walk in-process (same resolver)", &s.warm);
    row(
        "  RegistryClient::new (TLS roots; not in cold)",
        &s.client_new,
    );
    for (n, v) in FLOOR_IN_FLIGHT.iter().zip(&s.floor) {
        row(
            &format!("floor: the 46 requests, bare reqwest, {n} in flight"),
            v,
        );
    }
    row("`tollgate verify --format json` process", &s.cli);
    if skopeo {
        row("`skopeo inspect` process (+ tag list)", &s.skopeo);
        row("`skopeo inspect --no-tags` process", &s.skopeo_no_tags);
        row(
            "`skopeo inspect --raw` process (manifest only)",
            &s.skopeo_raw,
        );
    } else {
        println!("(skopeo not installed: apt-get install -y skopeo)");
    }
    println!();
    println!(
        "requests per cold walk: {} (every round; {EXPECTED_REQUESTS} distinct objects, so none repeated)",
        summarize_counts(&s.cold_requests)
    );
    println!(
        "requests per warm walk: {}",
        summarize_counts(&s.warm_requests)
    );
    if bench {
        let cold = median(&s.cold);
        let warm = median(&s.warm);
        if skopeo {
            let sk = median(&s.skopeo);
            let sk_nt = median(&s.skopeo_no_tags);
            println!(
                "target cold walk <= skopeo inspect: in-process {} vs {} ({:.2}x), CLI {} ({:.2}x); vs --no-tags {} ({:.2}x / {:.2}x)",
                ms(cold),
                ms(sk),
                ratio(cold, sk),
                ms(median(&s.cli)),
                ratio(median(&s.cli), sk),
                ms(sk_nt),
                ratio(cold, sk_nt),
                ratio(median(&s.cli), sk_nt),
            );
        }
        println!(
            "target warm < 1 ms: median {} ({})",
            ms(warm),
            if warm < Duration::from_millis(1) {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}

/// What was pushed, for the checks and the floor.
struct Fixture {
    index: String,
    manifests: Vec<String>,
    configs: Vec<String>,
    layers: Vec<String>,
    layer_bytes: usize,
    min_layer: usize,
    max_layer: usize,
}

/// Push the 2-platform index: 20 distinct layers per platform, 4-64 KiB of deterministic
/// pseudo-random (incompressible) bytes each, like real layers of small files.
async fn push_fixture(reg: &TestRegistry) -> Fixture {
    let p = Pusher::new(reg.base_url());
    let mut pushed = Vec::new();
    let mut layer_sizes = Vec::new();
    for (pi, platform) in PLATFORMS.iter().enumerate() {
        let layers: Vec<Layer> = (0..LAYERS_PER_PLATFORM)
            .map(|li| {
                let mut rng = SplitMix(0x7011_6a7e ^ ((pi as u64) << 32) ^ li as u64);
                let size = 4096 + (rng.next() % (60 * 1024)) as usize;
                let bytes: Vec<u8> = (0..size.div_ceil(8))
                    .flat_map(|_| rng.next().to_le_bytes())
                    .take(size)
                    .collect();
                let path = format!("app/{}/part-{li:02}.bin", platform.replace('/', "-"));
                layer(&[(&path, &bytes)])
            })
            .collect();
        layer_sizes.extend(layers.iter().map(|l| l.gz.len()));
        pushed.push(p.image(REPO, None, &layers, platform).await);
    }
    let children: Vec<_> = pushed.iter().zip(PLATFORMS).collect();
    let index = p.index(REPO, TAG, &children, false).await;
    let layers: Vec<String> = pushed.iter().flat_map(|m| m.layers.clone()).collect();
    let mut distinct = layers.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), layers.len(), "the layers must be distinct");
    Fixture {
        index,
        manifests: pushed.iter().map(|m| m.digest.clone()).collect(),
        configs: pushed.iter().map(|m| m.config.clone()).collect(),
        layers,
        layer_bytes: layer_sizes.iter().sum(),
        min_layer: *layer_sizes.iter().min().unwrap(),
        max_layer: *layer_sizes.iter().max().unwrap(),
    }
}

/// A cold walk saw the whole image, intact, with exactly one request per distinct object.
fn check_cold(res: &Resolution, f: &Fixture) {
    assert!(res.is_pullable(), "cold walk: {:#?}", res.problems);
    assert_eq!(
        res.digest.as_ref().map(ToString::to_string),
        Some(f.index.clone())
    );
    let root = res.root.as_ref().unwrap();
    assert_eq!(root.kind, NodeKind::Index);
    let mut digests = Vec::new();
    collect(root, &mut digests);
    let walked = digests.len();
    digests.sort();
    digests.dedup();
    assert_eq!(walked, digests.len(), "an object appears twice in the tree");
    // The tag HEAD plus one request per object of the tree.
    let distinct = 1 + digests.len() as u64;
    assert_eq!(distinct, EXPECTED_REQUESTS, "objects walked");
    assert_eq!(
        res.requests, distinct,
        "requests of a cold walk != distinct objects: a request was repeated or extra"
    );
}

fn collect(n: &Node, out: &mut Vec<String>) {
    out.push(n.digest.clone());
    for c in &n.children {
        collect(c, out);
    }
}

/// The requests of a walk, sent as fast as the registry answers them: a new bare reqwest
/// client (new connections, like the cold walk), `in_flight` at a time (8 is tollgate's
/// per-registry limit), no dependency order, no hashing or parsing.
async fn floor(base: &str, f: &Fixture, in_flight: usize) -> Duration {
    let http = reqwest::Client::new();
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                  application/vnd.docker.distribution.manifest.list.v2+json, \
                  application/vnd.docker.distribution.manifest.v2+json";
    let mut reqs = vec![http.head(format!("{base}/v2/{REPO}/manifests/{TAG}"))];
    for m in std::iter::once(&f.index).chain(&f.manifests) {
        reqs.push(http.get(format!("{base}/v2/{REPO}/manifests/{m}")));
    }
    for c in &f.configs {
        reqs.push(http.get(format!("{base}/v2/{REPO}/blobs/{c}")));
    }
    for l in &f.layers {
        reqs.push(http.head(format!("{base}/v2/{REPO}/blobs/{l}")));
    }
    assert_eq!(reqs.len() as u64, EXPECTED_REQUESTS);
    let t = Instant::now();
    let statuses: Vec<u16> = futures_util::stream::iter(reqs)
        .map(|r| async move {
            let res = r.header("accept", accept).send().await.unwrap();
            let status = res.status().as_u16();
            res.bytes().await.unwrap();
            status
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let elapsed = t.elapsed();
    assert!(statuses.iter().all(|s| *s == 200), "floor: {statuses:?}");
    elapsed
}

/// Wall time of a process from spawn to exit; it must succeed (and for `tollgate verify`,
/// report the image pullable after the same number of requests as the in-process walk).
fn time_process(cmd: &mut Command, expect: Option<&Resolution>) -> Duration {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let out = cmd.output().expect("spawn");
    let elapsed = t.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(cold) = expect {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify JSON");
        let img = &v["images"][0];
        assert_eq!(img["verdict"], "pullable", "{img}");
        assert_eq!(img["resolution"]["requests"], cold.requests, "{img}");
    }
    elapsed
}

#[derive(Default)]
struct Samples {
    client_new: Vec<Duration>,
    cold: Vec<Duration>,
    cold_requests: Vec<u64>,
    warm: Vec<Duration>,
    warm_requests: Vec<u64>,
    floor: [Vec<Duration>; FLOOR_IN_FLIGHT.len()],
    cli: Vec<Duration>,
    skopeo: Vec<Duration>,
    skopeo_no_tags: Vec<Duration>,
    skopeo_raw: Vec<Duration>,
}

fn row(what: &str, d: &[Duration]) {
    if d.is_empty() {
        return;
    }
    let min = *d.iter().min().unwrap();
    let mean = d.iter().sum::<Duration>() / d.len() as u32;
    println!(
        "{what:<52} {:>10} {:>10} {:>10}",
        ms(min),
        ms(median(d)),
        ms(mean)
    );
}

fn median(d: &[Duration]) -> Duration {
    let mut v = d.to_vec();
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

fn ms(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn summarize_counts(c: &[u64]) -> String {
    let min = c.iter().min().unwrap();
    let max = c.iter().max().unwrap();
    if min == max {
        format!("{min}")
    } else {
        format!("{min}..{max}")
    }
}

/// splitmix64: deterministic bytes without a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
