//! The `tollgate` binary: parse arguments, set up logging, run a subcommand of the library, map
//! the result to the documented exit code.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    cli::init_tracing(&args.global);
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
            eprintln!("tollgate: error: {e:#}");
            cli::Exit::Error.into()
        }
    }
}
