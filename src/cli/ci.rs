//! `tollgate ci` (placeholder).

use super::Exit;

#[derive(Debug, clap::Args)]
pub struct CiArgs {}

pub fn run(_args: CiArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("`tollgate ci` is not implemented yet")
}
