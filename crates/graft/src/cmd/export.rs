//! `graft export`: write a checkpoint as a HuggingFace model directory that `transformers` loads
//! (`config.json`, `generation_config.json`, safetensors shards + index, tokenizer files).
//!
//! A LoRA checkpoint (a directory with `adapter_config.json`) is merged into its base model
//! (`base_model_name_or_path`, or `--base DIR`) by default: `W + (alpha/r)·B·A` for every adapted
//! weight, streamed tensor by tensor. With `--adapter-only` it is written as a PEFT adapter
//! (`adapter_config.json` + `adapter_model.safetensors`) for `PeftModel.from_pretrained`.

use std::path::PathBuf;

use anyhow::Context;
use graft_llama::export::{parse_size, ExportDtype, ExportOptions};
use graft_llama::lora::export::export_any;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args)]
pub struct Args {
    /// The checkpoint: an HF-format directory (graft's training checkpoints are), or a Hub repo id
    /// already in the local HF cache (see `graft download`).
    pub checkpoint: String,
    /// The output directory; created, and must be empty unless --force is given.
    pub out_dir: PathBuf,
    /// Float format of the exported weights: bf16, f16 or f32 (rounding is round-to-nearest-even).
    /// Training checkpoints keep the precision they were trained in (f32 on the CPU); this flag is
    /// what chooses the precision of the exported model.
    #[arg(long, default_value = "bf16")]
    pub dtype: ExportDtype,
    /// Largest shard file, as HF spells it: 5GB (GB = 10^9 bytes), 500MB, 2GiB, or a byte count.
    #[arg(long, default_value = "5GB")]
    pub max_shard_size: String,
    /// Replace a non-empty OUT_DIR (only after the new export is complete).
    #[arg(long)]
    pub force: bool,
    /// Copy the tokenizer files from this directory (default: the checkpoint's own, else its base model's).
    #[arg(long, value_name = "DIR")]
    pub tokenizer: Option<PathBuf>,
    /// Hub revision, when CHECKPOINT is a repo id.
    #[arg(long)]
    pub revision: Option<String>,
    /// LoRA checkpoints: write the PEFT adapter only instead of merging it into the base model.
    #[arg(long)]
    pub adapter_only: bool,
    /// LoRA checkpoints: the base model to merge into (default: the adapter's
    /// `base_model_name_or_path`, a local directory or a Hub repo in the HF cache).
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let max_shard_size = parse_size(&args.max_shard_size)?;
    let src = graft_llama::hub::resolve(&args.checkpoint, args.revision.as_deref())?;
    let options = ExportOptions {
        dtype: args.dtype,
        max_shard_size,
        force: args.force,
        tokenizer_dir: args.tokenizer.clone(),
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {binary_bytes}/{binary_total_bytes} ({eta})",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    bar.set_message("exporting");
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let (base, adapter_only) = (args.base.as_deref(), args.adapter_only);
    let summary = export_any(
        &src,
        base,
        adapter_only,
        &args.out_dir,
        &options,
        &mut progress,
    )
    .with_context(|| format!("exporting {} to {}", src.display(), args.out_dir.display()))?;
    bar.finish_and_clear();
    println!(
        "exported {} ({}, {:.1} M parameters, {} in {} file{}{}) to {}",
        src.display(),
        summary.dtype.torch_name(),
        summary.shards.total_parameters as f64 / 1e6,
        human_bytes(summary.shards.total_size),
        summary.shards.files.len(),
        if summary.shards.files.len() == 1 {
            ""
        } else {
            "s"
        },
        if summary.tokenizer_files.is_empty() {
            ", no tokenizer".to_string()
        } else {
            format!(", tokenizer: {}", summary.tokenizer_files.join(" "))
        },
        args.out_dir.display()
    );
    Ok(())
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.2} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b => format!("{:.1} KB", b as f64 / 1e3),
    }
}
