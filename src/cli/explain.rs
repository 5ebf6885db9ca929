//! `tollgate explain`: how a reference is read and which rules it passes
//! ([`tollgate::check::explain`]).

use std::path::PathBuf;

use clap::ValueEnum;
use tollgate::check::explain;
use tollgate::reference::WrittenImage;

use super::{Exit, load_policy, now, print};

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Image references, as written in a pod spec.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Policy file (default: the embedded policy).
    #[arg(long, env = "TOLLGATE_POLICY")]
    pub policy: Option<PathBuf>,
    /// The namespace the image would run in (exemptions depend on it).
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn run(args: ExplainArgs) -> anyhow::Result<Exit> {
    let policy = load_policy(args.policy.as_deref())?;
    let images: Vec<WrittenImage> = args.images.iter().map(WrittenImage::new).collect();
    let doc = explain::explain(&policy, &images, &args.namespace, now());
    match args.format {
        Format::Json => print(&(serde_json::to_string_pretty(&doc)? + "\n"))?,
        Format::Text => print(&explain::text(&doc))?,
    }
    Ok(if doc.denied() {
        Exit::Violations
    } else {
        Exit::Clean
    })
}
