//! The admission webhook under test: the real `tollgate serve`, with a CA and a serving
//! certificate for `tollgate.tollgate.svc` made at test time (rcgen), on loopback port 0, and a
//! real rustls client that verifies the CA and the service name while connecting to 127.0.0.1.
//!
//! The server runs under `timeout`, so that it stops by itself even if the test process dies;
//! the handle stops it when dropped. Its stderr (JSON logs) is collected for assertions.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::Value;

/// The name the API server would use: `<service>.<namespace>.svc`.
pub const SERVICE: &str = "tollgate.tollgate.svc";
/// Longest a test server may live.
const MAX_LIFETIME_SECS: u32 = 300;

/// A CA that signs serving certificates.
pub struct Pki {
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tollgate test CA");
        let ca = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A new serving certificate (and key) for the service, PEM.
    pub fn serving(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec![SERVICE.to_owned(), format!("{SERVICE}.cluster.local")])
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A running `tollgate serve`.
pub struct Webhook {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub pki: Pki,
    pub dir: tempfile::TempDir,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Webhook {
    /// Start with a fresh CA and certificate; `args` come after the certificate and address
    /// flags (`--no-resolve`, `--policy FILE`...).
    pub fn start(args: &[&str]) -> Webhook {
        Webhook::start_env(args, &[])
    }

    /// Start with extra environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Webhook {
        let pki = Pki::new();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pki.serving();
        std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
        std::fs::write(dir.path().join("tls.key"), key).unwrap();
        let mut cmd = Command::new("timeout");
        cmd.arg("-k")
            .arg("5")
            .arg(MAX_LIFETIME_SECS.to_string())
            .arg(env!("CARGO_BIN_EXE_tollgate"))
            .args(["--log-format", "json", "serve", "--tls-cert"])
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("TOLLGATE_POLICY")
            .env_remove("POD_NAMESPACE")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start tollgate serve");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("tollgate serve: listening on https://")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut hook = Webhook {
            child: Some(child),
            addr: "127.0.0.1:0".parse().unwrap(),
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            pki,
            dir,
            logs,
        };
        // "127.0.0.1:PORT, metrics on http://127.0.0.1:PORT"
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(rest) => {
                let (https, metrics) = rest
                    .split_once(", metrics on http://")
                    .expect("the startup line names both addresses");
                hook.addr = https.parse().unwrap();
                hook.metrics_addr = metrics.parse().unwrap();
                hook
            }
            Err(_) => {
                let status = hook.wait(Duration::from_secs(5));
                panic!(
                    "tollgate serve did not start ({status:?}):\n{}",
                    hook.logs()
                );
            }
        }
    }

    /// The certificate and key files (rewrite them to rotate the certificate).
    pub fn cert_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("tls.crt"),
            self.dir.path().join("tls.key"),
        )
    }

    /// A new client: new connections, verifying the test CA and the service name.
    pub fn client(&self) -> reqwest::Client {
        client_for(&self.pki.ca_pem, SERVICE, self.addr)
    }

    /// `https://tollgate.tollgate.svc:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{SERVICE}:{}{path}", self.addr.port())
    }

    /// POST `body` to `path` on a new client: status and body.
    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
        let r = self
            .client()
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e:?}\n{}", self.logs()));
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    /// POST an AdmissionReview; the response AdmissionReview's `response` (asserting a 200 and
    /// that it echoes the uid).
    pub async fn review(&self, path: &str, review: &Value) -> Value {
        let (status, body) = self.post(path, serde_json::to_vec(review).unwrap()).await;
        assert_eq!(status, 200, "{body}\n{}", self.logs());
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1", "{v}");
        assert_eq!(v["kind"], "AdmissionReview", "{v}");
        assert_eq!(
            v["response"]["uid"], review["request"]["uid"],
            "the response echoes the request uid"
        );
        v["response"].clone()
    }

    /// GET a path on the HTTPS port: status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.client().get(self.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// The `/metrics` text from the plain-HTTP port.
    pub async fn metrics(&self) -> String {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let r = reqwest::Client::new()
            .get(format!("http://{}/metrics", self.metrics_addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.text().await.unwrap()
    }

    /// GET `/metrics` with `accept` as the `Accept` header: the `Content-Type` and the body.
    pub async fn metrics_as(&self, accept: &str) -> (String, String) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let r = reqwest::Client::new()
            .get(format!("http://{}/metrics", self.metrics_addr))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
        (content_type, r.text().await.unwrap())
    }

    /// The value of one metric sample (`name{labels}`, labels in the order they are printed),
    /// 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The JSON log lines so far.
    pub fn log_lines(&self) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The decision log lines, once there are at least `n` of them. The server writes a
    /// decision's log line after it has sent the answer, so a test that has its answer may
    /// look before the line is there; this waits for it (at most 10 s, then returns what
    /// there is and the caller's assertion says what is missing).
    pub fn decisions_at_least(&self, n: usize) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let d = self.decisions();
            if d.len() >= n || start.elapsed() > Duration::from_secs(10) {
                return d;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The decision log lines so far.
    pub fn decisions(&self) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|l| l["fields"]["message"] == "admission decision")
            .map(|l| l["fields"].clone())
            .collect()
    }

    /// Send SIGTERM (`timeout` passes it on to tollgate).
    pub fn terminate(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
    }

    /// Wait for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
            if self.wait(Duration::from_secs(5)).is_none()
                && let Some(mut c) = self.child.take()
            {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// A client that trusts only `ca_pem`, expects the certificate to name `name`, and reaches
/// `name` at `addr`; HTTP/2 and HTTP/1.1 offered by ALPN; TLS details kept on responses.
pub fn client_for(ca_pem: &str, name: &str, addr: SocketAddr) -> reqwest::Client {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
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
        .tls_info(true)
        .resolve(name, addr)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// An AdmissionReview fixture from tests/fixtures/admission.
pub fn fixture_text(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/admission")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn fixture(name: &str) -> Value {
    serde_json::from_str(&fixture_text(name)).unwrap()
}

/// Wait until `check` holds, polling; panics with `what` after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
