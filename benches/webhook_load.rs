//! Target: `tollgate serve` answering a 10 KB Pod AdmissionReview over 64 concurrent
//! keep-alive TLS connections: p99 at most 2 ms and throughput at least 60% of a no-op
//! axum+rustls server returning a canned response, run side by side; resident memory under
//! load at most 64 MiB; with registry rules and a warm cache, p99 at most 3 ms; and (issue 14)
//! with a signature rule on top and a warm cache, p99 within 10% of the same run without it.
//! Results: docs/BENCHMARKS.md; the whole run: `bash benches/webhook.sh`.
//!
//! One binary, several roles (the first argument):
//! - `load --addr ADDR --ca FILE --body FILE [--connections 64] [--rate R] [--duration S]
//!   [--warmup S] [--max-requests N] [--label TEXT]`: the load client. Each connection is a
//!   TLS 1.3 connection (verifying the CA and the name `tollgate.tollgate.svc`) that sends
//!   HTTP/1.1 POSTs one after the other, keep-alive. Without `--rate` it is a closed loop (each
//!   connection sends the next request when the answer arrives: maximum throughput); with
//!   `--rate R` an open loop of R requests per second in all, spread over the connections, the
//!   latency measured from when a request was due, so that a slow answer is not hidden by the
//!   requests it delayed. Every answer must be a 200 whose body says `"allowed":true`.
//! - `noop CERT KEY`: the baseline server, the same stack as `tollgate serve` (axum router,
//!   hyper-util HTTP/1.1+HTTP/2, tokio-rustls with ring, TLS 1.3+1.2, ALPN) whose handler reads
//!   the body and returns a canned AdmissionReview.
//! - `certs DIR`: a CA (`ca.pem`) and a serving certificate (`tls.crt`, `tls.key`) for
//!   `tollgate.tollgate.svc`, made with rcgen.
//! - `registry DIR`: a real registry (Debian's docker-registry, on loopback) holding a base image
//!   and three images built on it, each signed once with cosign's tag scheme (a simple-signing
//!   payload blob and a `sha256-<hex>.sig` manifest whose layer carries the signature, by an
//!   ECDSA P-256 key made here); writes `DIR/policy.yaml` (approving the registry, the base
//!   listed), `DIR/policy-signed.yaml` (the same plus a `spec.signatures` rule trusting that key
//!   for the three images) and `DIR/review.json` (the Pod review with its three containers
//!   running those images), prints `READY`, and serves until stdin closes.
//!
//! Without a role (`cargo test --all-targets` runs benches that way) it is a smoke test: both
//! servers started, 256 requests each, untimed.

// Benchmarks set up their own files, servers and clocks.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[allow(dead_code)]
#[path = "../tests/common/registry.rs"]
mod registry;

// oci.rs imports `super::registry::sha256`: both modules sit at the crate root.
#[allow(dead_code)]
#[path = "../tests/common/oci.rs"]
mod oci;

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::{TlsAcceptor, TlsConnector};

const SERVICE: &str = "tollgate.tollgate.svc";
/// What the no-op server answers (an AdmissionReview admitting the request).
const CANNED: &[u8] = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"bench","allowed":true,"status":{}}}"#;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("load") => load_main(&args[1..]),
        Some("noop") => noop_main(&args[1], &args[2]),
        Some("certs") => {
            let dir = PathBuf::from(&args[1]);
            std::fs::create_dir_all(&dir).unwrap();
            certs(&dir);
        }
        Some("registry") => registry_main(Path::new(&args[1])),
        _ => smoke(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ---- certificates ---------------------------------------------------------------------------

fn certs(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // OpenSSL clients (curl) want the CA named.
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "tollgate bench CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![SERVICE.to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
}

// ---- the no-op server -----------------------------------------------------------------------

fn noop_main(cert: &str, key: &str) {
    let rt = runtime();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!(
            "noop: listening on https://{}",
            listener.local_addr().unwrap()
        );
        std::io::stdout().flush().unwrap();
        noop_serve(
            listener,
            &std::fs::read(cert).unwrap(),
            &std::fs::read(key).unwrap(),
        )
        .await;
    });
}

async fn noop_serve(listener: TcpListener, cert_pem: &[u8], key_pem: &[u8]) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem).unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    // The body is read (as tollgate must), the answer is canned.
    let router = Router::new().route(
        "/validate",
        post(|body: Bytes| async move {
            std::hint::black_box(body.len());
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                CANNED,
            )
        }),
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, builder, router) = (acceptor.clone(), builder.clone(), router.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = builder
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
                .await;
        });
    }
}

// ---- the registry with warm-cache images -----------------------------------------------------

fn registry_main(dir: &Path) {
    let rt = runtime();
    let reg = registry::TestRegistry::start();
    let host = reg.host();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let images = rt.block_on(async {
        let p = oci::Pusher::new(reg.base_url());
        let base = oci::layer(&[("etc/os-release", &oci::os_release("debian"))]);
        p.image(
            "base/bookworm",
            Some("12"),
            std::slice::from_ref(&base),
            "linux/amd64",
        )
        .await;
        let mut out = Vec::new();
        for (i, name) in ["svc/mathoid", "svc/envoy", "svc/httpd"].iter().enumerate() {
            let own = oci::layer(&[("srv/app", format!("app {i}").as_bytes())]);
            let pushed = p
                .image(name, Some("1.0"), &[base.clone(), own], "linux/amd64")
                .await;
            sign(&p, name, &format!("{host}/{name}"), &pushed.digest, &key).await;
            out.push(format!("{host}/{name}:1.0@{}", pushed.digest));
        }
        out
    });
    std::fs::create_dir_all(dir).unwrap();
    let bases = format!("  bases:\n    debian:\n      - repository: {host}/base/bookworm\n");
    std::fs::write(dir.join("policy.yaml"), reg.policy(&bases)).unwrap();
    let pem: String = key
        .public_key_pem()
        .lines()
        .map(|l| format!("            {l}\n"))
        .collect();
    std::fs::write(
        dir.join("policy-signed.yaml"),
        reg.policy(&format!(
            "{bases}  signatures:\n    - images: [\"{host}/svc/**\"]\n      keys:\n        - name: bench-pipeline\n          publicKey: |\n{pem}"
        )),
    )
    .unwrap();
    let review = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission/pod-create.json"),
    )
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&review).unwrap();
    let spec = &mut v["request"]["object"]["spec"];
    spec["containers"][0]["image"] = images[0].clone().into();
    spec["containers"][1]["image"] = images[1].clone().into();
    spec["initContainers"][0]["image"] = images[2].clone().into();
    std::fs::write(dir.join("review.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    println!("READY {host}");
    std::io::stdout().flush().unwrap();
    // Serve until the caller closes our stdin.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(reg);
}

/// Sign `digest` in `repo` once by `key`, as `cosign sign --key` writes it (the format of
/// tests/it/signatures.rs): the simple-signing payload as a blob, and a `sha256-<hex>.sig`
/// manifest whose one layer is that payload, the signature in its annotation.
async fn sign(p: &oci::Pusher, repo: &str, name: &str, digest: &str, key: &KeyPair) {
    use base64::Engine as _;
    use rcgen::SigningKey as _;
    let config = p.blob(repo, b"{}").await;
    let body = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": name},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    })
    .to_string()
    .into_bytes();
    let payload = p.blob(repo, &body).await;
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&body).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "config": {"mediaType": oci::OCI_CONFIG, "size": 2, "digest": config},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "size": body.len(),
            "digest": payload,
            "annotations": {"dev.cosignproject.cosign/signature": signature}
        }],
    });
    let tag = format!("{}.sig", digest.replace(':', "-"));
    p.manifest(
        repo,
        &tag,
        oci::OCI_MANIFEST,
        manifest.to_string().as_bytes(),
    )
    .await;
}

// ---- the load client -------------------------------------------------------------------------

struct LoadOptions {
    addr: SocketAddr,
    ca_pem: Vec<u8>,
    body: Vec<u8>,
    connections: usize,
    rate: Option<f64>,
    duration: Duration,
    warmup: Duration,
    max_requests: usize,
    label: String,
}

fn load_main(args: &[String]) {
    let mut o = LoadOptions {
        addr: "127.0.0.1:8443".parse().unwrap(),
        ca_pem: Vec::new(),
        body: Vec::new(),
        connections: 64,
        rate: None,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        max_requests: 1_000_000,
        label: "load".into(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => o.addr = v.parse().unwrap(),
            "--ca" => o.ca_pem = std::fs::read(v).unwrap(),
            "--body" => {
                // Sent compact, as the API server does.
                let parsed: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(v).unwrap()).unwrap();
                o.body = serde_json::to_vec(&parsed).unwrap();
            }
            "--connections" => o.connections = v.parse().unwrap(),
            "--rate" => o.rate = Some(v.parse().unwrap()),
            "--duration" => o.duration = Duration::from_secs_f64(v.parse().unwrap()),
            "--warmup" => o.warmup = Duration::from_secs_f64(v.parse().unwrap()),
            "--max-requests" => o.max_requests = v.parse().unwrap(),
            "--label" => o.label = v.clone(),
            other => panic!("unknown flag {other}"),
        }
    }
    let r = runtime().block_on(run_load(&o));
    println!("{}", r.line(&o));
}

/// What one load run measured.
struct LoadResult {
    requests: usize,
    elapsed: Duration,
    /// Latencies in microseconds, sorted.
    latencies: Vec<u32>,
    errors: usize,
    body_bytes: usize,
}

impl LoadResult {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        f64::from(self.latencies[i - 1]) / 1000.0
    }

    fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn line(&self, o: &LoadOptions) -> String {
        format!(
            "{label}: {mode}, {conns} connections, body {body} bytes: {n} requests in {secs:.2} s = {rps:.0} req/s; \
             latency ms p50 {p50:.3} p90 {p90:.3} p99 {p99:.3} p99.9 {p999:.3} max {max:.3}; errors {errors}",
            label = o.label,
            mode = o.rate.map_or("closed loop".to_owned(), |r| format!(
                "open loop at {r:.0} req/s"
            )),
            conns = o.connections,
            body = self.body_bytes,
            n = self.requests,
            secs = self.elapsed.as_secs_f64(),
            rps = self.throughput(),
            p50 = self.percentile(0.50),
            p90 = self.percentile(0.90),
            p99 = self.percentile(0.99),
            p999 = self.percentile(0.999),
            max = self.percentile(1.0),
            errors = self.errors,
        )
    }
}

/// One keep-alive HTTP/1.1 connection over TLS, speaking just enough HTTP for this.
struct Conn {
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr, connector: &TlsConnector) -> std::io::Result<Conn> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(SERVICE).unwrap();
        let tls = connector.connect(name, tcp).await?;
        Ok(Conn {
            tls,
            buf: Vec::with_capacity(16 << 10),
        })
    }

    /// Send `request` (a whole HTTP/1.1 request) and read the answer: whether it was a 200
    /// admitting the request.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<bool> {
        self.tls.write_all(request).await?;
        self.tls.flush().await?;
        let bad = |m: &str| std::io::Error::other(m.to_owned());
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| bad("head"))?;
        let ok = head.starts_with("HTTP/1.1 200");
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .ok_or_else(|| bad("no content-length"))?;
        let end = head_end + 4 + length;
        while self.buf.len() < end {
            self.fill().await?;
        }
        let body = &self.buf[head_end + 4..end];
        const ALLOWED: &[u8] = br#""allowed":true"#;
        let allowed = body.windows(ALLOWED.len()).any(|w| w == ALLOWED);
        self.buf.drain(..end);
        Ok(ok && allowed)
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16 << 10];
        let n = self.tls.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

async fn run_load(o: &LoadOptions) -> LoadResult {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&o.ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(tls));
    let mut request = format!(
        "POST /validate HTTP/1.1\r\nHost: {SERVICE}:{}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n",
        o.addr.port(),
        o.body.len()
    )
    .into_bytes();
    request.extend_from_slice(&o.body);
    let request = Arc::new(request);

    let mut conns = Vec::new();
    for _ in 0..o.connections {
        conns.push(Conn::open(o.addr, &connector).await.expect("connect"));
    }
    let start = Instant::now();
    let measure_from = start + o.warmup;
    let stop_at = measure_from + o.duration;
    let per_conn_max = o.max_requests.div_ceil(o.connections);
    // Open loop: each connection sends every `interval`, staggered.
    let interval = o
        .rate
        .map(|r| Duration::from_secs_f64(o.connections as f64 / r));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        let request = request.clone();
        let offset = interval.map(|iv| iv.mul_f64(i as f64 / o.connections as f64));
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(per_conn_max.min(1 << 20));
            let mut errors = 0usize;
            let mut due = start + offset.unwrap_or_default();
            let mut last_done = start;
            loop {
                if interval.is_some() {
                    tokio::time::sleep_until(due).await;
                }
                // From when the request was due if the previous answer made it late (the
                // server's doing); otherwise from now (the timer's lateness is ours).
                let sent = if interval.is_some() && last_done > due {
                    due
                } else {
                    Instant::now()
                };
                if sent >= stop_at || lat.len() >= per_conn_max {
                    break;
                }
                let ok = conn.exchange(&request).await.unwrap_or(false);
                let done = Instant::now();
                last_done = done;
                if sent >= measure_from {
                    lat.push(u32::try_from((done - sent).as_micros()).unwrap_or(u32::MAX));
                    if !ok {
                        errors += 1;
                    }
                }
                if let Some(iv) = interval {
                    due += iv;
                }
            }
            (lat, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        let (l, e) = r.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = Instant::now().min(stop_at) - measure_from;
    latencies.sort_unstable();
    LoadResult {
        requests: latencies.len(),
        elapsed,
        latencies,
        errors,
        body_bytes: o.body.len(),
    }
}

// ---- smoke test --------------------------------------------------------------------------------

/// Untimed: the no-op server in-process and `tollgate serve` as a process, 256 requests each
/// over 64 connections; every answer must admit the fixture Pod.
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path());
    let body_file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission/pod-create.json");
    let opts = |addr: SocketAddr, label: &str| LoadOptions {
        addr,
        ca_pem: std::fs::read(dir.path().join("ca.pem")).unwrap(),
        body: serde_json::to_vec(
            &serde_json::from_slice::<serde_json::Value>(&std::fs::read(&body_file).unwrap())
                .unwrap(),
        )
        .unwrap(),
        connections: 64,
        rate: None,
        duration: Duration::from_secs(30),
        warmup: Duration::ZERO,
        max_requests: 256,
        label: label.into(),
    };
    let rt = runtime();
    let noop = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cert = std::fs::read(dir.path().join("tls.crt")).unwrap();
        let key = std::fs::read(dir.path().join("tls.key")).unwrap();
        tokio::spawn(async move { noop_serve(listener, &cert, &key).await });
        addr
    });
    let o = opts(noop, "noop (smoke, untimed)");
    let r = rt.block_on(run_load(&o));
    assert_eq!((r.requests, r.errors), (256, 0), "{}", r.line(&o));

    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "serve",
            "--no-resolve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .env_remove("TOLLGATE_POLICY")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("tollgate serve: listening on https://")
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("unexpected startup line {line:?}"))
        .parse()
        .unwrap();
    let o = opts(addr, "tollgate serve (smoke, untimed)");
    let r = rt.block_on(run_load(&o));
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    assert_eq!((r.requests, r.errors), (256, 0), "{}", r.line(&o));
    println!("webhook_load smoke test: both servers admitted 256 requests over 64 connections");
}
