//! `tollgate verify IMAGE...`: the end-to-end walk of each image in the registry, plus every
//! policy rule ([`tollgate::registry::verify`]).

use std::path::PathBuf;
use std::sync::Arc;

use clap::ValueEnum;
use tollgate::reference::WrittenImage;
use tollgate::registry::base::BaseChecker;
use tollgate::registry::verify;

use super::{Exit, RegistryArgs, load_policy, now, print};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Image references to walk in the registry.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Policy file (default: the embedded policy). Only its approved registries are contacted.
    #[arg(long, env = "TOLLGATE_POLICY")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
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

pub fn run(args: VerifyArgs) -> anyhow::Result<Exit> {
    let policy = Arc::new(load_policy(args.policy.as_deref())?);
    let resolver = Arc::new(args.registry.resolver(policy.clone())?);
    let bases = BaseChecker::new(resolver.clone(), policy.clone());
    let inputs: Vec<WrittenImage> = args.images.iter().map(WrittenImage::new).collect();
    let doc = super::runtime()?.block_on(verify::verify(
        &policy,
        &resolver,
        &bases,
        &inputs,
        &args.namespace,
        now(),
        args.registry.jobs,
    ));
    match args.format {
        Format::Json => print(&(serde_json::to_string_pretty(&doc)? + "\n"))?,
        Format::Text => print(&verify::text(&doc))?,
    }
    Ok(if doc.has_error() {
        Exit::Error
    } else if doc.has_failure() {
        Exit::Violations
    } else {
        Exit::Clean
    })
}
