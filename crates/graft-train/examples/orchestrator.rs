//! The global orchestrator of burn-collective, for data-parallel training over several nodes
//! (the same as `graft orchestrator --port PORT`). Every node's peers register with it, and it
//! tells the nodes how to all-reduce between them (see docs/distributed.md). Runs until stopped.
//!
//! ```text
//! cargo run --release -p graft-train --example orchestrator -- 3000
//! ```

fn main() -> Result<(), String> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "3000".into());
    let port: u16 = arg.parse().map_err(|_| {
        format!("port {arg:?} is not a number in 1..65535; usage: orchestrator [PORT]")
    })?;
    eprintln!("burn-collective global orchestrator listening on ws://0.0.0.0:{port}");
    graft_train::parallel::run_orchestrator(port).map_err(|e| e.to_string())
}
