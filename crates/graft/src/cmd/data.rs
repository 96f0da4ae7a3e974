//! `graft data ...` (placeholder until implemented).

#[derive(clap::Subcommand)]
pub enum DataCommand {}

pub fn run(_c: DataCommand) -> anyhow::Result<()> {
    anyhow::bail!("`graft data` is not implemented yet")
}
