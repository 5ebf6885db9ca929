//! `tollgate policy validate` and `tollgate policy default`.

use std::path::PathBuf;

use tollgate::report::plural;

use clap::Subcommand;

use super::{Exit, load_policy, print};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check policy files; every problem is reported with file:line. Exit 0 valid, 2 invalid.
    Validate {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print the embedded default policy.
    Default,
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<Exit> {
    match cmd {
        PolicyCommand::Default => {
            print(tollgate::policy::DEFAULT_POLICY)?;
            Ok(Exit::Clean)
        }
        PolicyCommand::Validate { files } => {
            let mut exit = Exit::Clean;
            for file in &files {
                match load_policy(Some(file)) {
                    Ok(p) => {
                        print(&format!(
                            "{}: valid policy {:?} ({} approved, {}, {})\n",
                            file.display(),
                            p.name(),
                            plural(p.registries().len(), "registry", "registries"),
                            plural(p.bases().len(), "base", "bases"),
                            plural(p.exemptions().len(), "exemption", "exemptions")
                        ))?;
                    }
                    Err(e) => {
                        eprintln!("tollgate: error: {e:#}");
                        exit = Exit::Error;
                    }
                }
            }
            Ok(exit)
        }
    }
}
