//! The `tollgate` binary: parse arguments, set up logging, run a subcommand of the library, map
//! the result to the documented exit code.

/// The binary is the outermost shell: arguments, files, the clock, the terminal.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod cli;

use std::process::ExitCode;

use clap::Parser;

// The webhook allocates per request on every worker thread; glibc's malloc took about 13% of its
// CPU, partly lock contention between threads, and mimalloc cut the CPU per request by about 12%
// (docs/BENCHMARKS.md, section 4).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    cli::init_tracing(&args.global, &args.command);
    match cli::run(args) {
        Ok(code) => code.into(),
        Err(e) => {
            // A closed pipe (`tollgate check . | head`) is the reader's choice, not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            // Each cause once, even where a library's error repeats its own source.
            eprintln!(
                "tollgate: error: {}",
                tollgate::report::error_text(e.as_ref())
            );
            cli::Exit::Error.into()
        }
    }
}
