//! Running the real `tollgate` binary from integration tests, and the real peers it talks to.

pub mod catalog;
pub mod git;
pub mod kube_api;
pub mod proxy;
pub mod redact;
pub mod tools;
pub mod webhook;

// The registry and the image builder are also compiled into benches/, which include them by
// these paths.
#[path = "../../common/notary.rs"]
pub mod notary;
#[path = "../../common/oci.rs"]
pub mod oci;
#[path = "../../common/postgres.rs"]
pub mod postgres;
#[path = "../../common/registry.rs"]
pub mod registry;
#[path = "../../common/sigstore.rs"]
pub mod sigstore;

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// What a run of the binary produced.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().expect("tollgate exited by signal"),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }
}

/// A command for the binary, run from the repository root so paths in output are relative.
pub fn tollgate(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("TOLLGATE_POLICY")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    cmd
}

/// PATH with the directory of the `tollgate` under test first, for programs that run
/// `tollgate` by name (pre-commit's `language: system` hook, the CI examples).
pub fn path_with_tollgate() -> std::ffi::OsString {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_tollgate"))
        .parent()
        .expect("the binary is in a directory")
        .to_path_buf();
    let mut dirs = vec![bin];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).expect("PATH entries have no separator")
}

/// Run with no stdin.
pub fn run(args: &[&str]) -> Run {
    Run::from(
        tollgate(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tollgate"),
    )
}

/// Run with `input` on stdin.
pub fn run_stdin(args: &[&str], input: &str) -> Run {
    let mut child = tollgate(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tollgate");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    Run::from(child.wait_with_output().unwrap())
}

/// Run with stdin read from `stdin`, and return the run with the binary's peak resident memory
/// in KiB. GNU time measures it from a process of its own: a child forked from this test binary
/// would start its account at the test binary's size (Linux carries `ru_maxrss` across fork and
/// exec), which is larger than what is measured.
pub fn run_measured(args: &[&str], stdin: &std::path::Path) -> (Run, u64) {
    const TIME: &str = "/usr/bin/time";
    assert!(
        std::path::Path::new(TIME).exists(),
        "GNU time is not installed; run tests/run.sh, or `apt-get install time`"
    );
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("maxrss");
    let mut cmd = Command::new(TIME);
    cmd.arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("TOLLGATE_POLICY")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(std::fs::File::open(stdin).expect("open the input"));
    let run = Run::from(cmd.output().expect("run tollgate under GNU time"));
    let text = std::fs::read_to_string(&report).expect("GNU time wrote its report");
    let kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("GNU time's report is not a number: {text:?}"));
    (run, kib)
}
