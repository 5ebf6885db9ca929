//! Reading manifests from the filesystem and stdin: the IO edge of `check`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::check::{self, Options};
use crate::policy::Policy;
use crate::report::{InputError, Report};
use crate::yaml::{self, Record};

/// The name stdin is shown as.
pub const STDIN_NAME: &str = "<stdin>";

/// One input to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file, named on the command line or found in a directory given there.
    File(PathBuf),
    /// Standard input (`-` on the command line), shown by this name: [`STDIN_NAME`], or the
    /// path `--stdin-name` gives (the file the stream was rendered from, so that findings map to
    /// it).
    Stdin(String),
}

impl Input {
    /// The name shown in findings.
    pub fn display_name(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Stdin(name) => name.clone(),
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
/// that cannot be read become errors; the rest are still returned. Stdin is shown as
/// `stdin_name`.
pub fn collect_inputs(paths: &[PathBuf], stdin_name: &str) -> (Vec<Input>, Vec<InputError>) {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            inputs.push(Input::Stdin(stdin_name.to_owned()));
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

/// Check one input, streamed: a document is parsed, checked and dropped before the next is
/// read, so memory is bounded by the largest document ([`yaml::MAX_DOCUMENT_BYTES`]), not by
/// the file. Bytes that are not UTF-8 are an input error at their line; the documents around
/// them are still checked.
fn check_input(policy: &Policy, input: &Input, opts: &Options) -> Report {
    let name = input.display_name();
    let mut check = check::FileCheck::new(policy, &name, opts);
    let err = |message: String| InputError {
        file: name.clone(),
        line: None,
        column: None,
        message,
    };
    let result = match input {
        Input::File(p) => match std::fs::File::open(p) {
            Ok(f) => stream(&mut BufReader::with_capacity(64 << 10, f), &mut check),
            Err(e) => Err(e),
        },
        Input::Stdin(_) => stream(&mut std::io::stdin().lock(), &mut check),
    };
    if let Err(e) = result {
        let what = match input {
            Input::File(_) => "cannot read",
            Input::Stdin(_) => "cannot read stdin",
        };
        check.error(err(format!("{what}: {e}")));
    }
    check.finish()
}

/// Feed `reader`'s lines to the check, one document at a time.
fn stream(reader: &mut impl BufRead, check: &mut check::FileCheck<'_>) -> std::io::Result<()> {
    let mut splitter = yaml::Splitter::new();
    let mut line = Vec::new();
    let mut line_no = 0u32;
    let mut reported_bytes = false;
    loop {
        line.clear();
        let read = read_line(reader, &mut line, yaml::MAX_DOCUMENT_BYTES)?;
        line_no += 1;
        let doc = match read {
            Line::End => break,
            Line::TooLong(len) => {
                splitter.skip_line(len, yaml::Skipped::TooBig);
                // Give back what the long line made the buffer grow to.
                line.shrink_to(64 << 10);
                continue;
            }
            Line::Read => match std::str::from_utf8(&line) {
                Ok(text) => splitter.push(text, Record::ImageFields),
                Err(_) => {
                    // Once per file: a binary file is one error, not one per line. The line
                    // still counts, so later findings keep their line numbers.
                    if !std::mem::replace(&mut reported_bytes, true) {
                        check.error(InputError {
                            file: check.file().to_owned(),
                            line: Some(line_no),
                            column: None,
                            message: "not UTF-8 text (Kubernetes manifests are UTF-8); the \
                                      document holding this line was not checked"
                                .into(),
                        });
                    }
                    splitter.skip_line(line.len(), yaml::Skipped::Reported);
                    None
                }
            },
        };
        if let Some(doc) = doc {
            check.document(doc);
        }
    }
    if let Some(doc) = splitter.finish(Record::ImageFields) {
        check.document(doc);
    }
    Ok(())
}

/// What [`read_line`] read.
enum Line {
    /// A line, with its newline unless it is the last.
    Read,
    /// A line longer than the limit, of this many bytes, consumed and dropped.
    TooLong(usize),
    /// The end of the input.
    End,
}

/// Read one line into `buf`, holding at most `max` bytes of it: a longer line (a file with no
/// newline at all, say) is read through and dropped rather than held.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> std::io::Result<Line> {
    let mut len = 0usize;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(match (len, len > max) {
                (0, _) => Line::End,
                (n, true) => Line::TooLong(n),
                _ => Line::Read,
            });
        }
        let (part, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let n = part.len();
        len += n;
        if len <= max {
            buf.extend_from_slice(part);
        } else {
            buf.clear();
        }
        reader.consume(n);
        if done {
            return Ok(if len > max {
                Line::TooLong(len)
            } else {
                Line::Read
            });
        }
    }
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
    let mut report = in_parallel(policy, inputs, |input| check_input(policy, input, opts));
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
