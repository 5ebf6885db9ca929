//! `tollgate serve` (placeholder, filled in by issue 4).

use super::Exit;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

pub fn run(_args: ServeArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("`tollgate serve` is not implemented yet")
}
