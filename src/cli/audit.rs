//! `tollgate audit` (placeholder, issue 6).

use super::Exit;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {}

pub fn run(_args: AuditArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("`tollgate audit` is not implemented yet")
}
