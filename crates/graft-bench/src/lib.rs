//! graft-bench: the benchmarks behind `graft bench`, which print numbers, never pass/fail.
//!
//! The `graft` CLI parses `graft bench …` into [`Args`] and calls [`run`]. Some benchmarks measure
//! in a fresh process: they re-run the current executable as `graft bench load-child` /
//! `graft bench memory-child`, so they must be called from the `graft` binary (or a binary that
//! routes those subcommands to [`run`] the same way). Errors are `anyhow` errors for the person
//! reading the benchmark's output.
//!
//! - `graft bench model`: a random Llama-shaped model generated on the fly — load time against a
//!   raw read of the same bytes, peak RSS of the load against the model size, and training-step
//!   (forward + backward) tokens/s on the CPU backend, each beside PyTorch CPU on the same shape
//!   when `torch` and `transformers` are installed (interleaved), with the step's ceiling at the
//!   backend's measured matmul rates; then optimizer steps as `graft train` runs
//!   them, with tokens/s, MFU and peak memory beside `graft plan` (on CUDA: only these).
//! - `graft bench memory RECIPE`: peak memory of a recipe's training steps, measured in a fresh
//!   process per sequence length, beside `graft plan`'s prediction.
//! - `graft bench zero RECIPE`: peak RSS of each rank's process of a 2-node run (loopback) at ZeRO
//!   stages 0, 1 and 2, beside `graft plan`'s per-GPU prediction on 2 devices.
//!
//! Each benchmark is a variant of [`BenchCommand`] with its own module under `bench/`.

use graft_train::backend;

mod load_child;
mod mem;
mod memory;
mod model;
mod report;
mod step;
mod step_report;
mod synth;
mod torch;
mod zero;

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Model benchmark: load time vs raw read, peak RSS vs model size, forward+backward tokens/s,
    /// each against PyTorch CPU on the same shape.
    Model(model::ModelArgs),
    /// Memory benchmark: a recipe's training steps measured (peak RSS, in a fresh process per
    /// sequence length) beside `graft plan`'s prediction.
    Memory(memory::MemoryArgs),
    /// (internal) Measure one recipe's steps and print the figures as JSON; run by `bench memory`.
    #[command(hide = true)]
    MemoryChild(memory::ChildArgs),
    /// ZeRO benchmark: peak RSS of each rank's process of a two-node run on loopback at ZeRO
    /// stages 0, 1 and 2, beside `graft plan`'s per-GPU prediction for 2 devices.
    Zero(zero::ZeroArgs),
    /// Synthesizer benchmark: generated tokens/s of `graft synthesize`'s path against
    /// transformers' batched greedy `generate` on the same model, prompts, batch size and threads.
    Synthesize(synth::SynthArgs),
    /// (internal) Load the checkpoint in DIR and print the load time and peak RSS as JSON; run by
    /// `bench model` in a fresh process so that the peak RSS is the load's alone.
    #[command(hide = true)]
    LoadChild {
        /// An HF checkpoint directory.
        dir: PathBuf,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Model(a) => model::run(a),
        BenchCommand::Memory(a) => memory::run(a),
        BenchCommand::MemoryChild(a) => memory::run_child(a),
        BenchCommand::Zero(a) => zero::run(a),
        BenchCommand::Synthesize(a) => synth::run(a),
        BenchCommand::LoadChild { dir } => load_child::run(&dir),
    }
}
