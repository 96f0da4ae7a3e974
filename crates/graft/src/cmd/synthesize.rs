//! `graft synthesize`: raw domain texts → instruction-augmented records with the instruction
//! synthesizer, as LMOps runs it (see `graft_train::synthesize`). Rerunning the same command
//! resumes an interrupted run.

use std::path::PathBuf;

use anyhow::Context;
use graft_data::synthesis::{SynthSettings, SynthSummary};
use graft_train::synthesize::{synthesize_files, Progress, SynthesizeOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::backend::{device, Backend};

#[derive(clap::Args)]
pub struct Args {
    /// The synthesizer: a checkpoint directory (with tokenizer.json) or a Hub repo id in the local
    /// HF cache, e.g. instruction-pretrain/instruction-synthesizer.
    pub model: String,
    /// Corpora of raw texts: JSONL (.gz/.zst) with a text field, Parquet, or .txt (one text per file).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output JSONL: one record per input text, in input order (appended; rerun to resume).
    #[arg(long)]
    pub out: PathBuf,
    /// Rounds M: texts of round r are prompted after round r−1's examples (LMOps's M-shot).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Most tokens generated per text.
    #[arg(long, default_value_t = 400)]
    pub max_new_tokens: usize,
    /// Prompt + output length bound; prompts over max_model_len − max_new_tokens are shortened.
    #[arg(long, default_value_t = 4096)]
    pub max_model_len: usize,
    /// Prompts generated together.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Field of the input records that holds the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// Hub revision, when MODEL is a repo id.
    #[arg(long)]
    pub revision: Option<String>,
    /// Stop after writing this many records (to test resuming).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    anyhow::ensure!(args.batch_size >= 1, "--batch-size must be at least 1");
    let dir = graft_llama::hub::resolve(&args.model, args.revision.as_deref())?;
    let opts = SynthesizeOptions {
        settings: SynthSettings {
            rounds: args.rounds,
            max_new_tokens: args.max_new_tokens,
            max_model_len: args.max_model_len,
        },
        batch_size: args.batch_size,
        stop_after: args.stop_after,
    };
    let bar = progress_bar()?;
    let mut seen_tokens = 0;
    let summary = synthesize_files::<Backend>(
        &dir,
        &device(),
        &args.inputs,
        &args.text_field,
        &args.out,
        &opts,
        &mut |p: &Progress| {
            bar.set_length(p.texts_total as u64);
            bar.set_position(p.texts_done as u64);
            bar.inc_length(0);
            if p.generated_tokens > seen_tokens {
                bar.set_message(format!("{} tokens", p.generated_tokens));
                seen_tokens = p.generated_tokens;
            }
        },
    )
    .with_context(|| format!("synthesizing into {}", args.out.display()))?;
    bar.finish_and_clear();
    report(&summary, bar.elapsed().as_secs_f64());
    Ok(())
}

fn progress_bar() -> anyhow::Result<ProgressBar> {
    let style = ProgressStyle::with_template(
        "texts {pos}/{len} [{bar:30}] {msg}, {elapsed_precise} elapsed, ETA {eta}",
    )?
    .progress_chars("=> ");
    Ok(ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(style))
}

fn report(s: &SynthSummary, secs: f64) {
    tracing::info!(
        texts = s.texts,
        resumed = s.resumed,
        generated_tokens = s.generated_tokens,
        tokens_per_s = format!("{:.1}", s.generated_tokens as f64 / secs.max(1e-9)),
        pairs = s.pairs,
        malformed_pairs = s.malformed_pairs,
        duplicate_questions = s.duplicate_questions,
        texts_without_pairs = s.texts_without_pairs,
        chained = s.chained,
        chains_dropped_for_length = s.chains_dropped,
        truncated_for_length = s.truncated,
        "synthesized"
    );
}
