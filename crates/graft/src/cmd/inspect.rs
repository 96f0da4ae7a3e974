//! `graft inspect` (placeholder until implemented).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`graft inspect` is not implemented yet")
}
