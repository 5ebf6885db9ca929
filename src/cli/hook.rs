//! `tollgate hook` (placeholder).

use super::Exit;

#[derive(Debug, clap::Subcommand)]
pub enum HookCommand {}

pub fn run(_args: HookCommand) -> anyhow::Result<Exit> {
    anyhow::bail!("`tollgate hook` is not implemented yet")
}
