//! `graft train RECIPE [--out RUN_DIR] [--set key=value]... [--resume] [--stop-after STEP] [--devices 0,1,…]`
//!
//! Loads the recipe (with `--set` overrides) → loads `[model].base` or initialises `[model.init]`
//! → prepares the data (a no-op when the inputs are unchanged) → trains with periodic evaluation,
//! TensorBoard scalars and checkpoints → prints the final checkpoint.
//!
//! Run directory (default `runs/<recipe name>`):
//! ```text
//! recipe.toml                 the resolved recipe of the latest start
//! tensorboard/                events.out.tfevents.* (train/*, eval/*)
//! checkpoints/step-<N>/       HF model dir + optimizer.safetensors + training_state.json
//! checkpoints/latest          → the newest step-<N>
//! ```
//! A run directory that already holds checkpoints is never trained over from scratch: without
//! `--resume` the command stops and says so (like HF `Trainer`'s "output directory exists" check;
//! pass `--resume` or another `--out`). `--resume` continues from `checkpoints/latest` (weights,
//! AdamW moments, schedule position, data position, RNG) and gives the same weights as an
//! uninterrupted run; with no checkpoint yet it starts at step 0 (LitGPT's `--resume auto`).
//!
//! Several devices (`--devices 0,1` or `train.devices`) train data-parallel, one peer per device
//! (see `peer` and docs/distributed.md); `train.grad_accum` is per device, so the global batch is
//! `micro_batch_size × grad_accum × devices` sequences.

mod devices;
mod malloc;
pub(crate) mod model;
mod peer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use graft_data::{PreparedData, TextTokenizer};
use graft_train::checkpoint::write_atomic;
use graft_train::parallel::ParallelConfig;
use graft_train::{CheckpointDir, Recipe, TrainConfig};

use crate::backend;
use crate::prep;

#[derive(clap::Args)]
#[command(
    after_help = "Run directory: recipe.toml, tensorboard/, checkpoints/step-<N>/ and checkpoints/latest. \
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
    pub nodes: devices::NodeArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    malloc::keep_freed_memory();
    let mut recipe = Recipe::load(&args.recipe, &args.set)
        .with_context(|| format!("loading recipe {}", args.recipe.display()))?;
    if !args.devices.is_empty() {
        // --devices replaces the recipe's devices (and is recorded in the run's recipe.toml)
        recipe.train.device = None;
        recipe.train.devices = Some(
            args.devices
                .iter()
                .map(|&i| devices::device_name(i))
                .collect(),
        );
    }
    if args.nodes.nodes > 1 {
        recipe.train.nodes = Some(args.nodes.nodes as usize);
    }
    check_device(&recipe)?;
    anyhow::ensure!(
        recipe.train.zero_stage == 0,
        "train.zero_stage = {}: sharded optimizer state is not implemented in this build yet.\nHINT: --set train.zero_stage=0 (replicated state; see `graft plan` for the memory it needs)",
        recipe.train.zero_stage
    );
    let devices = devices::device_indices(&args.devices, &recipe)
        .with_context(|| format!("choosing the devices of {}", args.recipe.display()))?;
    let parallel = args.nodes.parallel_config(devices.len())?;
    let run_dir = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(&recipe.name));
    check_run_dir(&run_dir, args.resume)?;
    train(&args, &recipe, &run_dir, &devices, &parallel)
}

/// Resolve the model, prepare the data, train on `devices`, report.
fn train(
    args: &Args,
    recipe: &Recipe,
    run_dir: &Path,
    devices: &[usize],
    parallel: &ParallelConfig,
) -> anyhow::Result<()> {
    let model = model::resolve_model(recipe, &args.recipe)?;
    let tokenizer = model.tokenizer.load(&args.recipe)?;
    let data = open_data(args, recipe, &tokenizer, model.config.llama.vocab_size)?;

    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("creating run directory {}", run_dir.display()))?;
    write_recipe(recipe, run_dir)?;
    let mut config = TrainConfig::from_recipe(recipe);
    let total_steps = config.steps;
    if let Some(stop) = args.stop_after {
        config.steps = stop.min(total_steps); // the schedule keeps total_steps
    }
    log_plan(recipe, &config, total_steps, run_dir, devices);
    let job = peer::Job {
        args,
        recipe,
        run_dir,
        model,
        data,
        tokenizer: Mutex::new(Some(tokenizer)),
        config,
        total_steps,
    };
    let step = job.run(
        devices.iter().map(|&i| backend::device_at(i)).collect(),
        parallel,
    )?;
    if args.nodes.rank() > 0 {
        println!(
            "node {} trained to step {step} of {total_steps}; node 0 writes the checkpoints",
            args.nodes.rank()
        );
        return Ok(());
    }
    report_final(run_dir, step, total_steps)
}

/// Tokenize the recipe's data (reusing unchanged shards) and open it.
fn open_data(
    args: &Args,
    recipe: &Recipe,
    tokenizer: &TextTokenizer,
    vocab_size: usize,
) -> anyhow::Result<Arc<PreparedData>> {
    if tokenizer.vocab_size() > vocab_size {
        bail!(
            "{}: the tokenizer has {} tokens but the model's vocab_size is {vocab_size}; use the model's tokenizer or raise vocab_size",
            args.recipe.display(),
            tokenizer.vocab_size()
        );
    }
    let prepared_dir = recipe.data.prepared_dir_for(&args.recipe);
    prep::prepare(&recipe.data, tokenizer, &prepared_dir, &args.recipe)?;
    let data_config = crate::synth_prep::prepared_config(&recipe.data, &prepared_dir);
    let data = PreparedData::open(&data_config, &prepared_dir)
        .with_context(|| format!("opening prepared data in {}", prepared_dir.display()))?;
    Ok(data)
}

/// Refuse to train over a run directory that already has checkpoints unless resuming.
fn check_run_dir(run_dir: &Path, resume: bool) -> anyhow::Result<()> {
    if resume || !run_dir.join("checkpoints").is_dir() {
        return Ok(());
    }
    let latest = CheckpointDir::new(run_dir)?.latest()?;
    if let Some(ckpt) = latest {
        bail!(
            "run directory {} already has checkpoints (newest: step {}).\n\
             HINT: continue that run with --resume, or start a new one with --out <another dir> \
             (or delete {} yourself)",
            run_dir.display(),
            ckpt.step,
            run_dir.display()
        );
    }
    Ok(())
}

/// This build computes on one backend; a recipe asking for another device is an error, not a surprise.
fn check_device(recipe: &Recipe) -> anyhow::Result<()> {
    let first = recipe.train.devices.as_ref().and_then(|d| d.first());
    let Some(device) = recipe.train.device.as_ref().or(first) else {
        return Ok(());
    };
    let wants_cuda = device.starts_with("cuda");
    if wants_cuda != cfg!(feature = "cuda") {
        bail!(
            "train.device = {device:?}, but this graft was built for {}.\nHINT: {}",
            if cfg!(feature = "cuda") {
                "CUDA"
            } else {
                "the CPU"
            },
            if wants_cuda {
                "build with `--features cuda`, or pass --set train.device=cpu"
            } else {
                "pass --set train.device=cuda:0"
            }
        );
    }
    Ok(())
}

/// Save the resolved recipe as `<run>/recipe.toml`, warning when a resumed run's recipe changed.
fn write_recipe(recipe: &Recipe, run_dir: &Path) -> anyhow::Result<()> {
    let path = run_dir.join("recipe.toml");
    let text = recipe.to_toml()?;
    if let Ok(old) = std::fs::read_to_string(&path) {
        if old != text {
            tracing::warn!(path = %path.display(), "the recipe differs from the one this run directory was started with; using the new one");
        }
    }
    write_atomic(&path, text.as_bytes())?;
    Ok(())
}

fn log_plan(
    recipe: &Recipe,
    config: &TrainConfig,
    total_steps: u64,
    run_dir: &Path,
    devices: &[usize],
) {
    tracing::info!(
        recipe = %recipe.name,
        devices = ?devices,
        steps = total_steps,
        stop_after = config.steps,
        tokens_per_step = recipe.tokens_per_step(),
        run = %run_dir.display(),
        "training"
    );
    if recipe.train.activation_checkpointing {
        tracing::info!("activation checkpointing: on (per decoder layer)");
    }
}

/// Print where the final checkpoint is and how to export it.
fn report_final(run_dir: &Path, step: u64, total_steps: u64) -> anyhow::Result<()> {
    let latest = CheckpointDir::new(run_dir)?
        .latest()?
        .context("training finished but no checkpoint was written")?;
    if step < total_steps {
        println!("stopped after step {step} of {total_steps}; continue with --resume");
    }
    println!("final checkpoint: {}", latest.path.display());
    println!(
        "  (also {})",
        run_dir.join("checkpoints").join("latest").display()
    );
    println!(
        "export it as a HuggingFace model: graft export {} <out-dir>",
        latest.path.display()
    );
    Ok(())
}
