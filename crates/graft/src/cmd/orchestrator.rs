//! `graft orchestrator [--port P]`: burn-collective's global orchestrator, which the nodes of a
//! multi-node `graft train --nodes N` run register with (docs/distributed.md). Runs until stopped.

#[derive(clap::Args)]
pub struct Args {
    /// Port to listen on (all interfaces); the nodes pass `--orchestrator ws://HOST:PORT`.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    eprintln!(
        "burn-collective global orchestrator listening on ws://0.0.0.0:{}",
        args.port
    );
    graft_train::parallel::run_orchestrator(args.port)?;
    Ok(())
}
