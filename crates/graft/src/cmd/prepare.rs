//! `graft prepare` (placeholder until implemented).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`graft prepare` is not implemented yet")
}
