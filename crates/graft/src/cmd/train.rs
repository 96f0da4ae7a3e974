//! `graft train RECIPE [--out RUN_DIR] [--set key=value]... [--resume] [--stop-after STEP] [--devices 0,1,…]`
//!
//! Parses the flags into a [`graft_train::Run`] (which resolves the model, prepares the data,
//! trains with periodic evaluation, TensorBoard scalars and checkpoints; see its docs for the run
//! directory), shows its progress on a terminal bar and prints the final checkpoint.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use graft_train::run::Nodes;
use graft_train::{Run, RunOutcome};

use crate::progress::TerminalObserver;

#[derive(clap::Args)]
#[command(
    after_help = "Run directory: recipe.toml, tensorboard/, scalars.tsv, curves.png, checkpoints/step-<N>/ and checkpoints/latest. \
A run directory that already has checkpoints is not trained over: continue it with --resume, or start \
a new run with --out. A checkpoint is an HF model directory: `graft export <checkpoint> <out-dir>`."
)]
pub struct Args {
    /// Recipe TOML file (see recipes/).
    pub recipe: PathBuf,
    /// Run directory for checkpoints, TensorBoard events and the resolved recipe
    /// [default: runs/<recipe name>].
    #[arg(long, value_name = "RUN_DIR")]
    pub out: Option<PathBuf>,
    /// Override a recipe key, e.g. `--set train.lr=2e-5 --set data.seq_len=512` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue from the newest checkpoint of the run directory (start at step 0 if it has none).
    #[arg(long)]
    pub resume: bool,
    /// Stop after this optimizer step and save a checkpoint; the learning-rate schedule still
    /// spans all steps, so `--resume` later continues the same run.
    #[arg(long, value_name = "STEP")]
    pub stop_after: Option<u64>,
    /// Train data-parallel on these devices (GPU indices), one replica each; overrides
    /// train.device(s). train.grad_accum is per device: the global batch is
    /// micro_batch_size × grad_accum × devices sequences.
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub devices: Vec<usize>,
    #[command(flatten)]
    pub nodes: NodeArgs,
}

/// Joining several nodes (machines) into one data-parallel run, as torchrun's `--nnodes` and
/// `--node-rank`: every node runs `graft train` with the same recipe and `--devices`, and they
/// meet through `graft orchestrator`.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// Nodes of a multi-node run (each with the same devices); the global batch counts them all.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub nodes: u32,
    /// This node's index in 0..N (node 0 logs, evaluates and writes the checkpoints).
    #[arg(long, value_name = "R")]
    pub node_rank: Option<u32>,
    /// The orchestrator every node registers with, e.g. ws://10.0.0.1:3000 (`graft orchestrator`).
    #[arg(long, value_name = "URL")]
    pub orchestrator: Option<String>,
    /// This node's address as the other nodes reach it, e.g. ws://10.0.0.2:3001; its port is
    /// where this node serves tensors to the others.
    #[arg(long, value_name = "URL")]
    pub node_address: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut run = Run::from_recipe(&args.recipe, &args.set)
        .with_context(|| format!("loading recipe {}", args.recipe.display()))?
        .resume(args.resume)
        .stop_after(args.stop_after)
        .devices(&args.devices)
        .observer(Arc::new(TerminalObserver::default()));
    let n = args.nodes;
    if let Some(nodes) = Nodes::from_flags(n.nodes, n.node_rank, n.orchestrator, n.node_address)? {
        run = run.nodes(nodes);
    }
    if let Some(out) = &args.out {
        run = run.run_dir(out);
    }
    report(&run.execute()?);
    Ok(())
}

/// Print where the final checkpoint is and how to export it.
fn report(outcome: &RunOutcome) {
    let (step, total_steps) = (outcome.step, outcome.total_steps);
    let Some(checkpoint) = &outcome.checkpoint else {
        println!(
            "node {} trained to step {step} of {total_steps}; node 0 writes the checkpoints",
            outcome.node_rank
        );
        return;
    };
    if step < total_steps {
        println!("stopped after step {step} of {total_steps}; continue with --resume");
    }
    if let Some(png) = &outcome.curves {
        println!("loss curves: {}", png.display());
    }
    println!("final checkpoint: {}", checkpoint.display());
    println!(
        "  (also {})",
        outcome.run_dir.join("checkpoints").join("latest").display()
    );
    println!(
        "export it as a HuggingFace model: graft export {} <out-dir>",
        checkpoint.display()
    );
}
