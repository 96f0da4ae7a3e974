//! `graft`: domain-adaptive continual pre-training of Llama-3, as a command line.
//!
//! Thin glue: every subcommand parses its arguments here and calls into the library crates.

mod cmd;
mod huge_pages;
mod progress;

use graft_train::backend;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "graft",
    version,
    about = "Domain-adaptive continual pre-training of Llama-3 (Instruction Pre-Training) on Burn"
)]
struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download a model from the HuggingFace Hub into the local HF cache.
    Download(cmd::download::Args),
    /// Show a model's architecture, parameter count, dtype and memory needs.
    Inspect(cmd::inspect::Args),
    /// Evaluate a model (perplexity, multiple choice).
    #[command(subcommand)]
    Eval(cmd::eval::EvalCommand),
    /// Look at a recipe's data sources.
    #[command(subcommand)]
    Data(cmd::data::DataCommand),
    /// Augment raw domain text with reading-comprehension tasks mined by rules (AdaptLLM).
    Augment(cmd::augment::Args),
    /// Tokenize a recipe's sources into pre-tokenized shards.
    Prepare(cmd::prepare::Args),
    /// Turn raw domain texts into instruction-augmented records with the instruction synthesizer.
    Synthesize(cmd::synthesize::Args),
    /// Run a training recipe (continual pre-training, full or LoRA).
    Train(cmd::train::Args),
    /// Export a checkpoint to a HuggingFace model directory.
    Export(cmd::export::Args),
    /// Generate text from a prompt.
    Generate(cmd::generate::Args),
    /// Estimate per-GPU memory for a recipe.
    Plan(cmd::plan::Args),
    /// Run the orchestrator that the nodes of a multi-node training run meet through.
    Orchestrator(cmd::orchestrator::Args),
    /// Benchmarks: model load, training step, data pipeline, export.
    Bench(cmd::bench::Args),
}

fn main() -> anyhow::Result<()> {
    huge_pages::ensure();
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match cli.command {
        Command::Download(a) => cmd::download::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Eval(c) => cmd::eval::run(c),
        Command::Data(c) => cmd::data::run(c),
        Command::Augment(a) => cmd::augment::run(a),
        Command::Prepare(a) => cmd::prepare::run(a),
        Command::Synthesize(a) => cmd::synthesize::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Plan(a) => cmd::plan::run(a),
        Command::Orchestrator(a) => cmd::orchestrator::run(a),
        Command::Bench(a) => cmd::bench::run(a),
    }
}

/// Log lines for a person: without `-v` just the message and its fields (`WARN:`/`ERROR:` in
/// front of those levels); with `-v`, timestamps, levels and module paths too.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Log lines go above any progress bar; no colour codes when stderr is a file or pipe.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress::StderrWriter)
        .with_ansi(ansi);
    if verbose == 0 {
        fmt.event_format(progress::PlainFormat).init();
    } else {
        fmt.with_target(true).init();
    }
}
