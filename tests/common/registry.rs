//! A real OCI registry for tests: Debian's `docker-registry` package (the CNCF distribution
//! registry) on a free loopback port, with temporary storage and deletes enabled. It is
//! killed when the handle drops, and runs under `timeout` so that it stops by itself even if
//! the test process dies.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// Numbers the marker requests of [`TestRegistry::requests`].
static MARKERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The longest a test registry may live.
const MAX_LIFETIME_SECS: u32 = 600;

fn binary() -> PathBuf {
    for candidate in ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "the registry tests need Debian's docker-registry package (the CNCF distribution registry), \
         which is not installed: run `apt-get install docker-registry`, or tests/run.sh, which installs it"
    );
}

/// TLS and authentication for a test registry.
#[derive(Clone, Default)]
pub struct Security {
    /// Serving certificate and key (PEM).
    pub tls: Option<(String, String)>,
    /// An htpasswd file's content (bcrypt): basic authentication.
    pub htpasswd: Option<String>,
}

/// A running registry.
pub struct TestRegistry {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    security: Security,
    /// Write the registry's access log (one line per request) to `access.log` in its
    /// directory.
    access_log: bool,
}

impl TestRegistry {
    /// Start a registry on a port the OS picks.
    pub fn start() -> TestRegistry {
        TestRegistry::start_with(Security::default())
    }

    /// Start a registry serving HTTPS and/or asking for credentials.
    pub fn start_with(security: Security) -> TestRegistry {
        TestRegistry::start_inner(security, false)
    }

    /// Start a registry that logs every request it answers ([`TestRegistry::requests`]).
    pub fn start_logged() -> TestRegistry {
        TestRegistry::start_inner(Security::default(), true)
    }

    fn start_inner(security: Security, access_log: bool) -> TestRegistry {
        // The registry takes its address from its config, so ask the OS for a free port and
        // hand it over; another process could take it in between, hence the retries.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut reg = TestRegistry {
                port,
                dir: tempfile::tempdir().expect("temp dir"),
                child: None,
                security: security.clone(),
                access_log,
            };
            reg.write_config();
            if reg.spawn() {
                return reg;
            }
        }
        panic!("the test registry did not start on a free loopback port in 5 attempts");
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    fn write_config(&self) {
        let mut extra = String::new();
        if let Some((cert, key)) = &self.security.tls {
            let (c, k) = (
                self.dir.path().join("cert.pem"),
                self.dir.path().join("key.pem"),
            );
            std::fs::write(&c, cert).unwrap();
            std::fs::write(&k, key).unwrap();
            extra.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                c.display(),
                k.display()
            ));
        }
        if let Some(htpasswd) = &self.security.htpasswd {
            let h = self.dir.path().join("htpasswd");
            std::fs::write(&h, htpasswd).unwrap();
            extra.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: tollgate-tests\n    path: {}\n",
                h.display()
            ));
        }
        // `http.tls` must sit under `http:`, `auth:` at the top level: split the extra text.
        let (tls, auth) = match extra.find("auth:") {
            Some(i) => (extra[..i].to_owned(), extra[i..].to_owned()),
            None => (extra, String::new()),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: {}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{}\n  secret: tollgate-tests\n{tls}{auth}",
            !self.access_log,
            self.dir.path().join("data").display(),
            self.port
        );
        std::fs::write(self.config_path(), config).unwrap();
    }

    /// Start the process and wait until `/v2/` answers.
    fn spawn(&mut self) -> bool {
        // `--foreground`: timeout stays in its parent's process group, so a signal to that group
        // (a bench's outer `timeout` stopping its load role) reaches the registry too. Without
        // it, timeout makes a group of its own and the registry outlives the bench.
        let child = Command::new("timeout")
            .arg("--foreground")
            .arg(MAX_LIFETIME_SECS.to_string())
            .arg(binary())
            .arg("serve")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(self.access_log_output())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.child.as_mut().unwrap().try_wait().unwrap().is_some() {
                // Exited: most likely the port was taken.
                self.child = None;
                return false;
            }
            // Any HTTP answer means it listens (401 with auth, 400 to plain HTTP on a TLS port).
            if http_status(self.port, "GET", "/v2/").is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    /// Where the registry writes its access log: distribution's combined-format access log
    /// goes to its standard output. Appended to, so that a restart keeps the earlier lines.
    fn access_log_output(&self) -> Stdio {
        if !self.access_log {
            return Stdio::null();
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("access.log"))
            .expect("open the access log")
            .into()
    }

    /// Every request the registry answered so far, as (method, path with query), in order.
    /// Only for a registry started with [`TestRegistry::start_logged`].
    ///
    /// A request's line is written after its answer went out, so a marker request is sent
    /// and waited for first: every request answered before it is in the log by then.
    pub fn requests(&self) -> Vec<(String, String)> {
        assert!(self.access_log, "start the registry with start_logged()");
        let marker = format!(
            "/v2/access-log-marker-{}/tags/list",
            MARKERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        http_status(self.port, "GET", &marker);
        let start = Instant::now();
        loop {
            let text =
                std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
            let lines: Vec<(String, String)> = text
                .lines()
                .filter_map(|l| {
                    // 127.0.0.1 - - [date] "GET /v2/x HTTP/1.1" 200 ...
                    let request = l.split('"').nth(1)?;
                    let mut w = request.split(' ');
                    Some((w.next()?.to_owned(), w.next()?.to_owned()))
                })
                .collect();
            if let Some(i) = lines.iter().position(|(_, p)| *p == marker) {
                let mut before = lines;
                before.truncate(i);
                before.retain(|(_, p)| !p.starts_with("/v2/access-log-marker-"));
                return before;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the registry's access log never showed {marker}: {text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `host:port` as written in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stop the registry (a registry that went away mid-run).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM, not SIGKILL: `timeout` passes TERM on to the registry and exits, while a
            // killed `timeout` would leave the registry running.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
            let start = Instant::now();
            while http_status(self.port, "GET", "/v2/").is_some()
                && start.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Start it again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn(),
            "the test registry did not restart on port {}",
            self.port
        );
    }

    /// Run the registry's own garbage collector, as an operator would during maintenance
    /// (the registry must not serve writes meanwhile, so it is stopped and restarted).
    pub fn garbage_collect(&mut self, delete_untagged: bool) {
        self.stop();
        let mut cmd = Command::new(binary());
        cmd.arg("garbage-collect");
        if delete_untagged {
            cmd.arg("--delete-untagged");
        }
        let out = cmd
            .arg(self.config_path())
            .output()
            .expect("run garbage-collect");
        assert!(
            out.status.success(),
            "garbage-collect failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.restart();
    }

    /// A policy approving this registry (plain HTTP unless it serves TLS: it is on loopback).
    pub fn policy(&self, extra_spec: &str) -> String {
        format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: test-registry\nspec:\n  registries:\n    - prefix: {}\n      insecure: {}\n{extra_spec}",
            self.host(),
            self.security.tls.is_none()
        )
    }

    pub fn base_url(&self) -> String {
        let scheme = if self.security.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.host())
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A minimal HTTP/1.1 request over a socket, for readiness checks without an async runtime.
pub fn http_status(port: u16, method: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(200),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// `sha256:<hex>` of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    tollgate_hex(&Sha256::digest(bytes))
}

fn tollgate_hex(b: &[u8]) -> String {
    format!("sha256:{}", tollgate::registry::resolve::hex(b))
}

/// A policy file on disk (kept alive by the returned directory).
pub fn policy_file(reg: &TestRegistry, extra_spec: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, reg.policy(extra_spec)).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

impl TestRegistry {
    /// Remove a tag the way cleanup scripts do: delete its directory in the registry's storage
    /// (the API cannot delete a tag alone). The manifest stays.
    pub fn delete_tag_on_disk(&self, repo: &str, tag: &str) {
        let dir = self
            .dir
            .path()
            .join("data/docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/tags")
            .join(tag);
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("remove {}: {e}", dir.display()));
    }
}
