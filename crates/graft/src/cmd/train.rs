//! `graft train RECIPE [--out RUN_DIR] [--set key=value]... [--resume] [--stop-after STEP]`
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

mod malloc;
mod model;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use graft_data::{PreparedData, StreamOptions, TextTokenizer, TrainStream};
use graft_train::checkpoint::write_atomic;
use graft_train::logging::TensorBoardLogger;
use graft_train::{CheckpointDir, PeriodicEval, Recipe, TrainConfig, Trainer};

use burn::tensor::backend::AutodiffBackend;
use graft_train::checkpointing::{dispatch, TrainJob};

use crate::backend::{self, Backend};
use crate::prep;
use crate::progress::{BarLogger, CountingSource, TrainBar};

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
}

pub fn run(args: Args) -> anyhow::Result<()> {
    malloc::keep_freed_memory();
    let recipe = Recipe::load(&args.recipe, &args.set)
        .with_context(|| format!("loading recipe {}", args.recipe.display()))?;
    check_device(&recipe)?;
    if recipe.train.devices.as_ref().is_some_and(|d| d.len() > 1) {
        bail!(
            "{}: train.devices lists several devices, but data-parallel training is not wired into `graft train` yet.\n\
             HINT: --set train.devices='[\"cuda:0\"]' and raise train.grad_accum to keep the global batch",
            args.recipe.display()
        );
    }
    let run_dir = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(&recipe.name));
    check_run_dir(&run_dir, args.resume)?;
    // `train.activation_checkpointing` picks the autodiff backend type (see graft_train::checkpointing)
    let checkpointing = recipe.train.activation_checkpointing;
    dispatch::<Backend, _>(
        checkpointing,
        TrainRun {
            args,
            recipe,
            run_dir,
        },
    )
}

/// Everything after the recipe checks, generic over the training backend.
struct TrainRun {
    args: Args,
    recipe: Recipe,
    run_dir: PathBuf,
}

impl TrainJob<Backend> for TrainRun {
    type Output = anyhow::Result<()>;

    fn run<AB: AutodiffBackend<InnerBackend = Backend>>(self) -> anyhow::Result<()> {
        let TrainRun {
            args,
            recipe,
            run_dir,
        } = self;
        train::<AB>(&args, &recipe, &run_dir)
    }
}

/// Load the model, prepare the data, train, report.
fn train<AB: AutodiffBackend<InnerBackend = Backend>>(
    args: &Args,
    recipe: &Recipe,
    run_dir: &Path,
) -> anyhow::Result<()> {
    // the same device twice: as the training backend sees it, and as the (inner) compute backend
    let (device, eval_device) = (AB::Device::default(), backend::device());
    let loaded = model::load_model::<AB>(recipe, &args.recipe, &device)?;
    let tokenizer = loaded.tokenizer.load(&args.recipe)?;
    let (data, mut stream) = open_data(args, recipe, &tokenizer, loaded.config.llama.vocab_size)?;

    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("creating run directory {}", run_dir.display()))?;
    write_recipe(recipe, run_dir)?;
    let mut config = TrainConfig::from_recipe(recipe);
    let total_steps = config.steps;
    if let Some(stop) = args.stop_after {
        config.steps = stop.min(total_steps); // the schedule keeps total_steps
    }
    let bar = TrainBar::new(total_steps, recipe.tokens_per_step())?;
    let logger = TensorBoardLogger::new(&run_dir.join("tensorboard"))?;
    let evaluator = evaluator(recipe, data, tokenizer, eval_device)?;
    // LoRA (train.method = "lora"): freeze the base, attach the [lora] adapters; checkpoints then
    // hold the adapter only and --resume loads it back onto the base (graft_train::lora).
    let model = graft_train::lora::prepare_model(loaded.model, recipe)?;
    let mut trainer = Trainer::<AB>::new(model, loaded.config, config.clone(), device)
        .with_run_dir(run_dir)?
        .with_logger(Box::new(BarLogger {
            inner: Box::new(logger),
            bar: bar.bar(),
        }))
        .with_tokenizer_dir(loaded.tokenizer.dir(&args.recipe)?)
        .with_evaluator(recipe.train.eval_every, Box::new(evaluator));
    if args.resume {
        match trainer.resume(&mut stream)? {
            Some(step) => {
                bar.start_at(step);
                tracing::info!(step, run = %run_dir.display(), "resuming");
            }
            None => {
                tracing::info!(run = %run_dir.display(), "--resume: no checkpoint yet, starting at step 0")
            }
        }
    }
    log_plan(recipe, &config, total_steps, run_dir);
    let mut source = CountingSource {
        inner: &mut stream,
        bar: bar.bar(),
    };
    trainer.run(&mut source).context("training")?;
    drop(bar);
    report_final(run_dir, trainer.state().step, total_steps)
}

/// Tokenize the recipe's data (reusing unchanged shards) and open rank 0 of 1 of its training stream.
fn open_data(
    args: &Args,
    recipe: &Recipe,
    tokenizer: &TextTokenizer,
    vocab_size: usize,
) -> anyhow::Result<(Arc<PreparedData>, TrainStream)> {
    if tokenizer.vocab_size() > vocab_size {
        bail!(
            "{}: the tokenizer has {} tokens but the model's vocab_size is {vocab_size}; use the model's tokenizer or raise vocab_size",
            args.recipe.display(),
            tokenizer.vocab_size()
        );
    }
    let prepared_dir = recipe.data.prepared_dir_for(&args.recipe);
    prep::prepare(&recipe.data, tokenizer, &prepared_dir, &args.recipe)?;
    let data = PreparedData::open(&recipe.data, &prepared_dir)
        .with_context(|| format!("opening prepared data in {}", prepared_dir.display()))?;
    let opts = StreamOptions {
        batch_size: recipe.train.micro_batch_size,
        rank: 0,
        world_size: 1,
    };
    let stream = TrainStream::new(data.clone(), opts)?;
    Ok((data, stream))
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

/// Held-out loss per source, plus the recipe's multiple-choice tasks.
fn evaluator(
    recipe: &Recipe,
    data: Arc<PreparedData>,
    tokenizer: TextTokenizer,
    device: burn::tensor::Device<Backend>,
) -> anyhow::Result<PeriodicEval<Backend>> {
    let eval = PeriodicEval::<Backend>::new(
        data,
        recipe.train.micro_batch_size,
        recipe.train.eval_batches,
        device,
    )?;
    let tasks = recipe
        .eval
        .as_ref()
        .map(|e| e.tasks.clone())
        .unwrap_or_default();
    if tasks.is_empty() {
        return Ok(eval);
    }
    Ok(eval.with_tasks(&tasks, tokenizer)?)
}

fn log_plan(recipe: &Recipe, config: &TrainConfig, total_steps: u64, run_dir: &Path) {
    tracing::info!(
        recipe = %recipe.name,
        steps = total_steps,
        stop_after = config.steps,
        tokens_per_step = recipe.tokens_per_step(),
        run = %run_dir.display(),
        "training"
    );
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
