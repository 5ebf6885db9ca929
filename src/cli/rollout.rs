//! `tollgate rollout` (placeholder, issue 6).

use super::Exit;

#[derive(Debug, clap::Args)]
pub struct RolloutArgs {}

pub fn run(_args: RolloutArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("`tollgate rollout` is not implemented yet")
}
