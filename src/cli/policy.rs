//! `tollgate policy validate`, `tollgate policy default` and `tollgate policy show`.

use std::path::PathBuf;

use tollgate::policy::show;
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
    /// Print the policy as it applies in a namespace: every rule's level, the registries,
    /// forbidden tags and exemptions, and which spec.overrides changed what.
    Show {
        /// Policy file (default: the embedded policy).
        #[arg(long, env = "TOLLGATE_POLICY")]
        policy: Option<PathBuf>,
        /// Resolve for this namespace (default: the cluster-wide policy, no override).
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = super::explain::Format::Text)]
        format: super::explain::Format,
    },
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<Exit> {
    match cmd {
        PolicyCommand::Default => {
            print(tollgate::policy::DEFAULT_POLICY)?;
            Ok(Exit::Clean)
        }
        PolicyCommand::Show {
            policy,
            namespace,
            format,
        } => {
            let policy = load_policy(policy.as_deref())?;
            let view = show::view(&policy, namespace.as_deref());
            match format {
                super::explain::Format::Json => {
                    print(&(serde_json::to_string_pretty(&view)? + "\n"))?;
                }
                super::explain::Format::Text => print(&show::text(&view))?,
            }
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
