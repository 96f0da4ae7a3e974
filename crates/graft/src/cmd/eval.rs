//! `graft eval perplexity` and `graft eval choice`: thin wrappers over `graft_train::eval`.

use std::path::{Path, PathBuf};

use graft_train::eval::{
    perplexity, read_choice_rows, read_perplexity_rows, score_choice_task, ChoiceOptions, EvalModel,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::backend::{device, Backend};

#[derive(clap::Subcommand)]
pub enum EvalCommand {
    /// Mean next-token NLL and perplexity on JSONL rows ({"text": ...} or {"input_ids": [...]}).
    ///
    /// Each row is scored on its own; rows longer than --seq-len are cut into non-overlapping
    /// windows so that every token after the row's first is predicted exactly once.
    Perplexity(PerplexityArgs),
    /// Multiple-choice accuracy (acc, acc_norm) as lm-eval-harness scores it, on JSONL rows
    /// {"context": ..., "choices": [...], "gold": i} (or "context_ids"/"choices_ids").
    Choice(ChoiceArgs),
}

/// Where the model comes from.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// A checkpoint directory, or a Hub repo id in the local HF cache.
    pub model: String,
    /// Hub revision, when MODEL is a repo id.
    #[arg(long)]
    pub revision: Option<String>,
}

#[derive(clap::Args)]
pub struct PerplexityArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// JSONL rows to score.
    pub data: PathBuf,
    /// Input tokens per window (default: the model's max_position_embeddings, at most 4096).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    /// Print {"tokens": N, "nll": X, "ppl": Y}.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ChoiceArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The task: JSONL multiple-choice rows.
    pub task: PathBuf,
    /// Score only the first N rows.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Choices (context + continuation sequences) per forward pass.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Put between the context and each choice (lm-eval's target_delimiter).
    #[arg(long, default_value = " ")]
    pub target_delimiter: String,
    /// Print one JSON object (with per-row log-likelihoods).
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: EvalCommand) -> anyhow::Result<()> {
    match command {
        EvalCommand::Perplexity(a) => run_perplexity(a),
        EvalCommand::Choice(a) => run_choice(a),
    }
}

fn load(args: &ModelArgs) -> anyhow::Result<EvalModel<Backend>> {
    let dir = graft_llama::hub::resolve(&args.model, args.revision.as_deref())?;
    Ok(EvalModel::load(&dir, &device())?)
}

/// A bar on stderr (hidden when stderr is not a terminal); `progress(done, total)` drives it.
fn bar(what: &str) -> anyhow::Result<ProgressBar> {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr()).with_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} ({elapsed} elapsed, ETA {eta})",
        )?
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    Ok(bar)
}

fn run_perplexity(args: PerplexityArgs) -> anyhow::Result<()> {
    let loaded = load(&args.model)?;
    let config = loaded.model.config().clone();
    let rows = read_perplexity_rows(
        &args.data,
        loaded.tokenizer.as_ref(),
        loaded.bos,
        config.vocab_size,
    )?;
    let seq_len = args
        .seq_len
        .unwrap_or_else(|| config.max_position_embeddings.min(4096));
    let bar = bar("perplexity")?;
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let result = perplexity(
        &loaded.model,
        &rows,
        seq_len,
        args.batch_size,
        &args.data,
        &mut progress,
    )?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!(
            "{}: {} rows, {} tokens scored, mean NLL {:.6} nats/token, perplexity {:.4}",
            args.data.display(),
            rows.len(),
            result.tokens,
            result.nll,
            result.ppl
        );
    }
    Ok(())
}

fn run_choice(args: ChoiceArgs) -> anyhow::Result<()> {
    let loaded = load(&args.model)?;
    let rows = read_choice_rows(&args.task, args.limit)?;
    let mut options = ChoiceOptions::new(
        loaded.model.config().max_position_embeddings,
        args.batch_size,
    );
    options.target_delimiter = args.target_delimiter.clone();
    let bar = bar("choices")?;
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let result = score_choice_task(
        &loaded.model,
        loaded.tokenizer.as_ref(),
        loaded.bos,
        &rows,
        &options,
        &mut progress,
    )?;
    bar.finish_and_clear();
    if args.json {
        let mut value = serde_json::to_value(&result)?;
        value["task"] = serde_json::Value::String(task_name(&args.task));
        println!("{}", serde_json::to_string(&value)?);
    } else {
        let se = |s: Option<f64>| s.map_or(String::new(), |s| format!(" ± {s:.4}"));
        println!(
            "{}: n = {}, acc = {:.4}{}, acc_norm = {:.4}{}",
            task_name(&args.task),
            result.n,
            result.acc,
            se(result.acc_stderr),
            result.acc_norm,
            se(result.acc_norm_stderr)
        );
    }
    Ok(())
}

fn task_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
