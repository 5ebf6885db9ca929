//! Running the real `tollgate` binary from integration tests, and the real peers it talks to.

pub mod git;
pub mod kube_api;
pub mod proxy;
pub mod redact;
pub mod webhook;

// The registry and the image builder are also compiled into benches/, which include them by
// these paths.
#[path = "../../common/oci.rs"]
pub mod oci;
#[path = "../../common/registry.rs"]
pub mod registry;

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
