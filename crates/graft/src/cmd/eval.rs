//! `graft eval ...` (placeholder until implemented).

#[derive(clap::Subcommand)]
pub enum EvalCommand {}

pub fn run(_c: EvalCommand) -> anyhow::Result<()> {
    anyhow::bail!("`graft eval` is not implemented yet")
}
