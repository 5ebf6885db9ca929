//! Reading manifests from the filesystem and stdin: the IO edge of `check`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::check::{self, Options};
use crate::policy::Policy;
use crate::report::{InputError, Report};

/// The name stdin is shown as.
pub const STDIN_NAME: &str = "<stdin>";

/// One input to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file, named on the command line or found in a directory given there.
    File(PathBuf),
    /// Standard input (`-` on the command line), shown as [`STDIN_NAME`].
    Stdin,
}

impl Input {
    /// The name shown in findings.
    pub fn display_name(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Stdin => STDIN_NAME.to_owned(),
        }
    }
}

/// Whether a file found while walking a directory is a manifest.
fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Expand the command line's paths: files as given (whatever their extension), directories
/// walked recursively for `*.yaml`, `*.yml` and `*.json` in name order, `-` as stdin. Paths
/// that cannot be read become errors; the rest are still returned.
pub fn collect_inputs(paths: &[PathBuf]) -> (Vec<Input>, Vec<InputError>) {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                for entry in walkdir::WalkDir::new(path)
                    .follow_links(true)
                    .sort_by_file_name()
                {
                    match entry {
                        Ok(e) if e.file_type().is_file() && is_manifest(e.path()) => {
                            inputs.push(Input::File(e.into_path()));
                        }
                        // A FIFO, socket or device named like a manifest: reading it could
                        // block or never end, and skipping it silently would pass it unchecked.
                        Ok(e) if !e.file_type().is_dir() && is_manifest(e.path()) => {
                            errors.push(InputError {
                                file: e.path().display().to_string(),
                                line: None,
                                column: None,
                                message: "not a regular file (a FIFO, socket or device), so it \
                                          was not read; check it by naming it, or move it out of \
                                          the directory"
                                    .into(),
                            });
                        }
                        Ok(_) => {}
                        Err(e) => errors.push(InputError {
                            file: e.path().unwrap_or(path).display().to_string(),
                            line: None,
                            column: None,
                            message: format!("cannot read directory entry: {e}"),
                        }),
                    }
                }
            }
            Ok(_) => inputs.push(Input::File(path.clone())),
            Err(e) => errors.push(InputError {
                file: path.display().to_string(),
                line: None,
                column: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    (inputs, errors)
}

fn read_input(input: &Input) -> Result<String, InputError> {
    let err = |message: String| InputError {
        file: input.display_name(),
        line: None,
        column: None,
        message,
    };
    let bytes = match input {
        Input::File(p) => std::fs::read(p).map_err(|e| err(format!("cannot read: {e}")))?,
        Input::Stdin => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| err(format!("cannot read stdin: {e}")))?;
            buf
        }
    };
    utf8_text(&input.display_name(), bytes)
}

/// The text of a manifest read as bytes; text that is not UTF-8 is an input error at the line
/// of the first bad byte.
pub fn utf8_text(name: &str, bytes: Vec<u8>) -> Result<String, InputError> {
    String::from_utf8(bytes).map_err(|e| {
        let before = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = before.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
        InputError {
            file: name.to_owned(),
            line: Some(line),
            column: None,
            message: "not UTF-8 text (Kubernetes manifests are UTF-8)".into(),
        }
    })
}

/// Read and check every input, spreading files over the machine's cores. The report is sorted,
/// so the output does not depend on which thread finished first.
pub fn check_inputs(policy: &Policy, inputs: &[Input], opts: &Options) -> Report {
    let mut report = in_parallel(policy, inputs, |input| match read_input(input) {
        Ok(text) => check::check_text(policy, &input.display_name(), &text, opts),
        Err(e) => {
            let mut r = Report::new(check::policy_info(policy));
            r.files = 1;
            r.errors.push(e);
            r
        }
    });
    report.findings.extend(check::policy_findings(policy, opts));
    report.sort();
    report
}

/// Run `check` on every item, spread over the machine's cores, and merge the reports (unsorted).
pub fn in_parallel<T: Sync>(
    policy: &Policy,
    items: &[T],
    f: impl Fn(&T) -> Report + Sync,
) -> Report {
    let mut report = Report::new(check::policy_info(policy));
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().max(1));
    let work = || {
        let mut local = Report::new(check::policy_info(policy));
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            local.merge(f(item));
        }
        results
            .lock()
            .expect("no worker panics while holding the lock")
            .push(local);
    };
    if workers <= 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(work);
            }
        });
    }
    for r in results.into_inner().expect("workers finished") {
        report.merge(r);
    }
    report
}
