//! `tollgate certs` (placeholder, filled in by issue 4).

use super::Exit;

#[derive(Debug, clap::Subcommand)]
pub enum CertsCommand {}

pub fn run(_args: CertsCommand) -> anyhow::Result<Exit> {
    anyhow::bail!("`tollgate certs` is not implemented yet")
}
