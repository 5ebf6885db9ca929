//! Target: while one namespace floods `tollgate serve` with reviews whose images sit on a slow
//! registry, another namespace's review of a healthy image on that same registry is still
//! answered with its digest resolved, within `--registry-deadline`, at a latency close to the
//! one it has without the flood. Results: docs/BENCHMARKS.md; the whole run:
//! `bash benches/flood.sh`.
//!
//! `flood --tollgate BIN [--baseline BIN] [--requests N] [--concurrency C] [--flooders F]`:
//!
//! 1. A real registry (Debian's docker-registry, loopback) holding a distinct small image per
//!    healthy request, so that every healthy review is a cold walk that needs registry slots
//!    (a warm one takes none, and would show nothing). In front of it, a proxy that holds every
//!    request for the repositories under `flood/` for 30 s before answering: the slow registry.
//!    Healthy and flood images are on the same registry host, so they share its slots.
//! 2. For each binary (tollgate, then the baseline if given), a `serve` with
//!    `--registry-deadline 3s` and the policy's default `registryUnavailable: allow`:
//!    - **alone**: N healthy reviews (namespace `web`, one image each), C at a time;
//!    - **flood**: F clients in namespace `flood` send reviews of 32 distinct flood images in a
//!      loop; once the proxy holds flood requests, N more healthy reviews, C at a time; then the
//!      flood stops.
//!
//!    Each healthy answer is counted as *resolved* (allowed, no "could not be checked"
//!    warning), *could not check* (the registry rules did not answer in time), or an error.
//!
//! Every run is bounded: N and F are capped, every request has a 30 s client timeout, each
//! server lives at most 10 minutes. Without arguments (`cargo test --all-targets` runs benches
//! that way) it is a smoke test with a few requests, untimed.

// Benchmarks set up their own files, servers and clocks.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[allow(dead_code)]
#[path = "../tests/common/registry.rs"]
mod registry;

// oci.rs imports `super::registry::sha256`: both modules sit at the crate root.
#[allow(dead_code)]
#[path = "../tests/common/oci.rs"]
mod oci;

#[allow(dead_code)]
#[path = "../tests/it/support/proxy.rs"]
mod proxy;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

const SERVICE: &str = "tollgate.tollgate.svc";
/// How long the slow registry holds a flood request: longer than any deadline, so that each
/// one keeps its slot until tollgate gives up on it.
const FLOOD_DELAY: Duration = Duration::from_secs(30);
/// Most healthy requests per phase, and flood clients.
const MAX_REQUESTS: usize = 1000;
const MAX_FLOODERS: usize = 64;

struct Options {
    tollgate: PathBuf,
    baseline: Option<PathBuf>,
    requests: usize,
    concurrency: usize,
    flooders: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("flood") {
        // `cargo test --all-targets`: a smoke test, untimed.
        let o = Options {
            tollgate: PathBuf::from(env!("CARGO_BIN_EXE_tollgate")),
            baseline: None,
            requests: 3,
            concurrency: 2,
            flooders: 2,
        };
        let lines = run(&o);
        for l in &lines {
            assert_eq!(l.errors, 0, "{}", l.line());
        }
        println!("flood smoke test (untimed):");
        for l in lines {
            println!("{}", l.line());
        }
        return;
    }
    let mut o = Options {
        tollgate: PathBuf::new(),
        baseline: None,
        requests: 60,
        concurrency: 4,
        flooders: 8,
    };
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--tollgate" => o.tollgate = PathBuf::from(v),
            "--baseline" => o.baseline = Some(PathBuf::from(v)),
            "--requests" => o.requests = v.parse::<usize>().unwrap().clamp(1, MAX_REQUESTS),
            "--concurrency" => o.concurrency = v.parse::<usize>().unwrap().clamp(1, 64),
            "--flooders" => o.flooders = v.parse::<usize>().unwrap().clamp(1, MAX_FLOODERS),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(o.tollgate.is_file(), "--tollgate BIN is required");
    println!(
        "healthy: {} reviews per phase, {} at a time, each a cold walk of a distinct image; \
         flood: {} clients in another namespace, 32 distinct images per review, on the same \
         registry, each request held {} s; --registry-deadline 3s",
        o.requests,
        o.concurrency,
        o.flooders,
        FLOOD_DELAY.as_secs()
    );
    for l in run(&o) {
        println!("{}", l.line());
    }
}

/// What one phase measured.
struct Phase {
    label: String,
    millis: Vec<f64>,
    resolved: usize,
    unchecked: usize,
    errors: usize,
    flood_answers: usize,
}

impl Phase {
    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.millis.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    }

    fn line(&self) -> String {
        let flood = if self.flood_answers > 0 {
            format!("; {} flood reviews answered meanwhile", self.flood_answers)
        } else {
            String::new()
        };
        format!(
            "{:<22} {:>4} healthy reviews: p50 {:>7.1} ms, p99 {:>7.1} ms, max {:>7.1} ms; \
             {} resolved, {} could not check, {} errors{flood}",
            self.label,
            self.millis.len(),
            self.percentile(0.50),
            self.percentile(0.99),
            self.percentile(1.0),
            self.resolved,
            self.unchecked,
            self.errors,
        )
    }
}

fn run(o: &Options) -> Vec<Phase> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let reg = registry::TestRegistry::start();
    let binaries: Vec<(&str, &Path)> = std::iter::once(("tollgate", o.tollgate.as_path()))
        .chain(o.baseline.as_deref().map(|b| ("baseline", b)))
        .collect();
    let healthy = binaries.len() * 2 * o.requests;
    let tags: Vec<String> = rt.block_on(async {
        let p = oci::Pusher::new(reg.base_url());
        let mut tags = Vec::new();
        for i in 0..healthy {
            let tag = format!("h{i}");
            let own = oci::layer(&[("srv/app", tag.as_bytes())]);
            p.image("svc/app", Some(&tag), &[own], "linux/amd64").await;
            tags.push(tag);
        }
        tags
    });
    let mut tags = tags.into_iter();
    let mut out = Vec::new();
    rt.block_on(async {
        let slow = proxy::FaultProxy::start(&reg.base_url());
        slow.inject(
            "HEAD",
            "/v2/flood/",
            proxy::Fault::Delay(FLOOD_DELAY),
            proxy::Times::Always,
        );
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, slow.policy("  rules: {digest-missing: 'off'}\n")).unwrap();
        let host = slow.host();
        for (name, bin) in &binaries {
            let certs = dir.path().join(format!("certs-{name}"));
            let server = Server::start(bin, &certs, &policy);
            let (client, flood_client) = (client(&server), client(&server));
            let mut images = |n: usize| -> Vec<String> {
                (&mut tags)
                    .take(n)
                    .map(|t| format!("{host}/svc/app:{t}"))
                    .collect()
            };
            let alone = healthy_phase(&client, &server, images(o.requests), o.concurrency).await;
            out.push(Phase {
                label: format!("{name} alone"),
                ..alone
            });

            let stop = Arc::new(AtomicBool::new(false));
            let answered = Arc::new(AtomicUsize::new(0));
            let mut flood = Vec::new();
            for f in 0..o.flooders {
                let (client, url, host) = (flood_client.clone(), server.url(), host.clone());
                let (stop, answered) = (stop.clone(), answered.clone());
                flood.push(tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let images = (0..32)
                            .map(|i| format!("{host}/flood/{f}-{n}-{i}:1"))
                            .collect();
                        n += 1;
                        let body = review("flood", images);
                        if post(&client, &url, &body).await.is_some() {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
            // The flood holds the slow registry's slots before the healthy reviews start.
            let start = Instant::now();
            while slow.count("HEAD", "/v2/flood/") < 4 && start.elapsed() < Duration::from_secs(30)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            slow.reset_counts();
            let mut flooded =
                healthy_phase(&client, &server, images(o.requests), o.concurrency).await;
            stop.store(true, Ordering::Relaxed);
            flooded.flood_answers = answered.load(Ordering::Relaxed);
            for f in flood {
                let _ = f.await;
            }
            out.push(Phase {
                label: format!("{name} under flood"),
                ..flooded
            });
            drop(server);
        }
    });
    out
}

/// `images` reviewed one per request, `concurrency` at a time, in namespace `web`.
async fn healthy_phase(
    client: &reqwest::Client,
    server: &Server,
    images: Vec<String>,
    concurrency: usize,
) -> Phase {
    let queue = Arc::new(std::sync::Mutex::new(images));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, queue) = (client.clone(), server.url(), queue.clone());
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let Some(image) = queue.lock().unwrap().pop() else {
                    return seen;
                };
                let body = review("web", vec![image]);
                let started = Instant::now();
                let answer = post(&client, &url, &body).await;
                seen.push((started.elapsed().as_secs_f64() * 1e3, answer));
            }
        }));
    }
    let mut phase = Phase {
        label: String::new(),
        millis: Vec::new(),
        resolved: 0,
        unchecked: 0,
        errors: 0,
        flood_answers: 0,
    };
    for w in workers {
        for (ms, answer) in w.await.unwrap() {
            phase.millis.push(ms);
            match answer.map(|a| a["response"].clone()) {
                Some(r) if r["allowed"] == true => {
                    if r["warnings"].to_string().contains("could not be checked") {
                        phase.unchecked += 1;
                    } else {
                        phase.resolved += 1;
                    }
                }
                Some(r) if r["allowed"] == false => phase.unchecked += 1,
                _ => phase.errors += 1,
            }
        }
    }
    phase
}

/// POST a review; the answer, when it is a 200 with a JSON body.
async fn post(client: &reqwest::Client, url: &str, review: &Value) -> Option<Value> {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(review).unwrap())
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    serde_json::from_slice(&r.bytes().await.ok()?).ok()
}

/// A Pod CREATE review in `namespace` running `images`.
fn review(namespace: &str, images: Vec<String>) -> Value {
    static UID: AtomicUsize = AtomicUsize::new(0);
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    let object = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": {"containers": containers}});
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("flood-{}", UID.fetch_add(1, Ordering::Relaxed)),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "p", "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "bench"},
            "object": object, "dryRun": false}})
}

/// A running `tollgate serve` (under `timeout`, so that it cannot outlive the run).
struct Server {
    child: Child,
    addr: SocketAddr,
    ca_pem: Vec<u8>,
}

impl Server {
    fn start(bin: &Path, certs: &Path, policy: &Path) -> Server {
        let made = Command::new(bin)
            .args(["certs", "generate", "--service", "tollgate", "--namespace"])
            .args(["tollgate", "--out"])
            .arg(certs)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        // `--foreground`: in the bench's process group, so that stopping the bench stops it
        // (see tests/common/registry.rs).
        let mut child = Command::new("timeout")
            .args(["--foreground", "-k", "5", "600"])
            .arg(bin)
            .arg("serve")
            .arg("--tls-cert")
            .arg(certs.join("tls.crt"))
            .arg("--tls-key")
            .arg(certs.join("tls.key"))
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .arg("--policy")
            .arg(policy)
            .args(["--registry-deadline", "3s"])
            .env_remove("TOLLGATE_POLICY")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("serve exited before it listened")
                .unwrap();
            if let Some(rest) = line.strip_prefix("tollgate serve: listening on https://") {
                break rest.split(',').next().unwrap().parse().unwrap();
            }
        };
        // Keep reading its stderr, so that the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            child,
            addr,
            ca_pem: std::fs::read(certs.join("ca.crt")).unwrap(),
        }
    }

    fn url(&self) -> String {
        format!("https://{SERVICE}:{}/validate", self.addr.port())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A keep-alive client trusting the server's CA, reaching the service name on loopback.
fn client(server: &Server) -> reqwest::Client {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&server.ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .resolve(SERVICE, server.addr)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}
