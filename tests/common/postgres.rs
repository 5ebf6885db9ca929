//! A real PostgreSQL server for tests: Debian's `postgresql` package, initialised in a
//! temporary directory and listening on a free loopback port, as an unprivileged user
//! (`postgres`, which the package creates: initdb and postgres refuse to run as root).
//!
//! One server per test process, started by the first test that asks; each test takes a
//! database of its own. It stops by itself: it runs under `timeout`, and `timeout` gets SIGINT
//! (PostgreSQL's fast shutdown, which it passes on) when the thread that started it ends,
//! which is when the test process ends, however it ends.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The longest a test server may live.
const MAX_LIFETIME_SECS: u32 = 1200;

/// The directory of initdb and postgres: the newest version installed.
fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").exists() && d.join("postgres").exists())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    dirs.pop().unwrap_or_else(|| {
        panic!(
            "the catalog tests need a real PostgreSQL server, and Debian's postgresql package is \
             not installed (no /usr/lib/postgresql/*/bin/initdb): run `apt-get install postgresql`, \
             or tests/run.sh, which installs it"
        )
    })
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Who runs the server: the `postgres` user when the tests run as root, else the tests' user.
struct RunAs {
    /// `setpriv` arguments that switch to that user (none when already unprivileged).
    setpriv: Vec<String>,
    ids: Option<(u32, u32)>,
}

fn run_as() -> RunAs {
    if output(Command::new("id").arg("-u")) != "0" {
        return RunAs {
            setpriv: Vec::new(),
            ids: None,
        };
    }
    let ids = Command::new("id").arg("-u").arg("postgres").output();
    if !ids.as_ref().is_ok_and(|o| o.status.success()) {
        panic!(
            "the catalog tests run PostgreSQL as the unprivileged user `postgres` (initdb refuses \
             root), which does not exist: run `apt-get install postgresql`, which creates it, or \
             tests/run.sh"
        );
    }
    let uid: u32 = output(Command::new("id").args(["-u", "postgres"]))
        .parse()
        .unwrap();
    let gid: u32 = output(Command::new("id").args(["-g", "postgres"]))
        .parse()
        .unwrap();
    RunAs {
        setpriv: vec![
            "setpriv".into(),
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--clear-groups".into(),
            "--".into(),
        ],
        ids: Some((uid, gid)),
    }
}

fn command(run_as: &RunAs, program: &Path) -> Command {
    match run_as.setpriv.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// The running server.
pub struct TestPostgres {
    pub port: u16,
    bin: PathBuf,
    next: AtomicUsize,
    /// `timeout`, which runs the server: it ends with the process, never waited for.
    _child: std::sync::Mutex<Child>,
}

/// The process's server, started on first use.
pub fn server() -> &'static TestPostgres {
    static SERVER: OnceLock<TestPostgres> = OnceLock::new();
    SERVER.get_or_init(start)
}

/// Data directories are named for the test process; those of processes that are gone are
/// removed when the next one starts (the process cannot remove its own: it is killed or
/// exits with the server still running).
fn data_root() -> PathBuf {
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("tollgate-test-postgres-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    tmp.join(format!("tollgate-test-postgres-{}", std::process::id()))
}

fn start() -> TestPostgres {
    let bin = bin_dir();
    let run_as = run_as();
    let root = data_root();
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    if let Some((uid, gid)) = run_as.ids {
        std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();
    }
    let data = root.join("data");
    output(
        command(&run_as, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .env("LC_ALL", "C"),
    );
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if let Some(child) = spawn(&run_as, &bin, &data, &root, port) {
            return TestPostgres {
                port,
                bin,
                next: AtomicUsize::new(0),
                _child: std::sync::Mutex::new(child),
            };
        }
    }
    panic!("the test PostgreSQL did not start on a free loopback port in 5 attempts");
}

/// Start the server from a thread that lives as long as the process, so that the parent-death
/// signal fires only when the process ends (it fires when the spawning thread exits).
fn spawn(run_as: &RunAs, bin: &Path, data: &Path, root: &Path, port: u16) -> Option<Child> {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "INT", "--", "timeout", "-s", "INT"])
        .arg(MAX_LIFETIME_SECS.to_string());
    cmd.args(&run_as.setpriv)
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(data)
        .arg("-p")
        .arg(port.to_string())
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            // Durability is not what these tests are about; speed is.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.join(format!("log-{port}"))).unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<std::io::Result<Child>>();
    std::thread::spawn(move || {
        tx.send(cmd.spawn()).unwrap();
        loop {
            std::thread::park();
        }
    });
    let mut child = rx.recv().unwrap().unwrap_or_else(|e| {
        panic!(
            "cannot run setpriv, which starts the test PostgreSQL ({e}): run `apt-get install \
             util-linux postgresql`, or tests/run.sh"
        )
    });
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if child.try_wait().unwrap().is_some() {
            // Exited: most likely the port was taken.
            return None;
        }
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(root.join(format!("log-{port}"))).unwrap_or_default();
    // SIGINT, not SIGKILL: `timeout` passes it on to the server, a killed one would not.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    panic!("the test PostgreSQL did not answer in 30 s; its log:\n{log}");
}

impl TestPostgres {
    /// Run SQL through psql as the superuser, in `database`.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        output(
            Command::new(self.bin.join("psql"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", "postgres", "-d", database])
                .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "-c", sql]),
        )
    }

    /// A new, empty database of its own for one test: its URL.
    pub fn database(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{n}");
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}
