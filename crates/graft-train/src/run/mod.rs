//! Training a recipe, as a library call: what `graft train` does, for any program.
//!
//! ```no_run
//! # fn main() -> graft_train::Result<()> {
//! use graft_train::run::Run;
//! let outcome = Run::from_recipe("recipes/tiny-demo.toml", &["train.steps=10".into()])?
//!     .run_dir("runs/my-run")
//!     .resume(true)
//!     .execute()?;
//! println!("trained to step {} of {}", outcome.step, outcome.total_steps);
//! # Ok(()) }
//! ```
//!
//! [`Run::execute`] resolves the model ([`crate::model`]) → prepares the data ([`data`], a no-op
//! when the inputs are unchanged) → trains on the chosen devices with periodic evaluation,
//! TensorBoard scalars and checkpoints ([`peer`]) → returns where it stopped. It computes on the
//! build's backend ([`crate::backend`]: Flex on the CPU, CUDA bf16 with the `cuda` feature).
//!
//! Run directory (default `runs/<recipe name>`):
//! ```text
//! recipe.toml                 the resolved recipe of the latest start
//! tensorboard/                events.out.tfevents.* (train/*, eval/*)
//! checkpoints/step-<N>/       HF model dir + optimizer.safetensors + training_state.json
//! checkpoints/latest          → the newest step-<N>
//! ```
//! A run directory that already holds checkpoints is never trained over from scratch: without
//! [`Run::resume`] the run stops and says so (like HF `Trainer`'s "output directory exists"
//! check). Resuming continues from `checkpoints/latest` (weights, AdamW moments, schedule
//! position, data position) and gives the same weights as an uninterrupted run; with no
//! checkpoint yet it starts at step 0 (LitGPT's `--resume auto`).
//!
//! Several devices ([`Run::devices`] or `train.devices`) train data-parallel, one peer per device
//! (see [`peer`] and docs/distributed.md); `train.grad_accum` is per device, so the global batch is
//! `micro_batch_size × grad_accum × devices` sequences. Several nodes join with [`Run::nodes`].

pub mod data;
pub mod devices;
mod malloc;
pub use malloc::keep_freed_memory;
pub mod observer;
mod peer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use data::prepare_recipe;
pub use devices::{Nodes, NODES_HINT};
pub use observer::{NoObserver, Observer, TrainStart};

use crate::backend;
use crate::error::{Result, ResultExt, TrainError};
use crate::model::resolve_model;
use crate::parallel::ParallelConfig;
use crate::{CheckpointDir, Recipe, TrainConfig};
use graft_data::atomic::write_atomic;

/// A recipe and how to run it; [`Run::execute`] trains.
pub struct Run {
    recipe: Recipe,
    recipe_path: PathBuf,
    run_dir: Option<PathBuf>,
    resume: bool,
    stop_after: Option<u64>,
    devices: Vec<usize>,
    nodes: Option<Nodes>,
    observer: Arc<dyn Observer>,
}

/// Where a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The step training ended at.
    pub step: u64,
    /// Steps of the whole run (more than `step` after a stop-after).
    pub total_steps: u64,
    /// This node's rank (0 on one node).
    pub node_rank: u32,
    /// The newest checkpoint (`None` on the nodes other than node 0, which write none).
    pub checkpoint: Option<PathBuf>,
    /// `curves.png`, the loss and evaluation curves drawn at the end (node 0, when anything was
    /// logged).
    pub curves: Option<PathBuf>,
}

impl Run {
    /// Load the recipe file at `path` with `key=value` overrides (`graft train --set`).
    pub fn from_recipe(path: impl AsRef<Path>, overrides: &[String]) -> Result<Run> {
        let path = path.as_ref();
        Ok(Self::with_recipe(Recipe::load(path, overrides)?, path))
    }

    /// A recipe built in code: validated, and its relative paths resolved against the directory
    /// of `recipe_path` (which also names the recipe in errors and its prepared data directory,
    /// `runs/prepared/<file stem>`, unless `[data].prepared_dir` is set).
    pub fn new(recipe: Recipe, recipe_path: impl AsRef<Path>) -> Result<Run> {
        let path = recipe_path.as_ref();
        Ok(Self::with_recipe(recipe.resolved(path)?, path))
    }

    fn with_recipe(recipe: Recipe, path: &Path) -> Run {
        Run {
            recipe,
            recipe_path: path.to_path_buf(),
            run_dir: None,
            resume: false,
            stop_after: None,
            devices: Vec::new(),
            nodes: None,
            observer: Arc::new(NoObserver),
        }
    }

    /// The run directory [default: `runs/<recipe name>`].
    pub fn run_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.run_dir = Some(dir.into());
        self
    }

    /// Continue from the run directory's newest checkpoint (start at step 0 if it has none).
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Stop after this optimizer step and save a checkpoint; the learning-rate schedule still spans
    /// all steps, so resuming later continues the same run.
    pub fn stop_after(mut self, step: Option<u64>) -> Self {
        self.stop_after = step;
        self
    }

    /// Train data-parallel on these device indices (GPU indices on CUDA), one replica each;
    /// replaces the recipe's `train.device(s)`. Empty: the recipe's devices.
    pub fn devices(mut self, devices: &[usize]) -> Self {
        self.devices = devices.to_vec();
        self
    }

    /// Join a multi-node run through its orchestrator.
    pub fn nodes(mut self, nodes: Nodes) -> Self {
        self.nodes = Some(nodes);
        self
    }

    /// Report progress and results to `observer`.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// The recipe as it will run.
    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    /// Train: resolve the model, prepare the data, train, checkpoint.
    pub fn execute(self) -> Result<RunOutcome> {
        malloc::keep_freed_memory();
        let mut recipe = self.recipe.clone();
        if !self.devices.is_empty() {
            // explicit devices replace the recipe's (and are recorded in the run's recipe.toml)
            recipe.train.device = None;
            recipe.train.devices = Some(
                self.devices
                    .iter()
                    .map(|&i| devices::device_name(i))
                    .collect(),
            );
        }
        if let Some(nodes) = self.nodes.as_ref().filter(|n| n.nodes > 1) {
            recipe.train.nodes = Some(nodes.nodes as usize);
        }
        check_device(&recipe)?;
        let indices = devices::device_indices(&self.devices, &recipe)
            .context_with(|| format!("choosing the devices of {}", self.recipe_path.display()))?;
        let parallel = devices::parallel_config(self.nodes.as_ref(), indices.len())?;
        let run_dir = self
            .run_dir
            .clone()
            .unwrap_or_else(|| Path::new("runs").join(&recipe.name));
        check_run_dir(&run_dir, self.resume)?;
        self.train(&recipe, &run_dir, &indices, &parallel)
    }

    /// Resolve the model, prepare the data, train on `devices`, report.
    fn train(
        &self,
        recipe: &Recipe,
        run_dir: &Path,
        devices: &[usize],
        parallel: &ParallelConfig,
    ) -> Result<RunOutcome> {
        let model = resolve_model(recipe, &self.recipe_path)?;
        let tokenizer = data::load_tokenizer(&model.tokenizer, &self.recipe_path)?;
        let vocab_size = model.config.llama.vocab_size;
        let data = data::open_data(
            recipe,
            &self.recipe_path,
            &tokenizer,
            vocab_size,
            &*self.observer,
        )?;

        std::fs::create_dir_all(run_dir)
            .map_err(|e| TrainError::io("creating run directory", run_dir, e))?;
        let node_rank = parallel.global.as_ref().map_or(0, |g| g.node_rank);
        if node_rank == 0 {
            // node 0 alone writes into the run directory (several nodes may share it)
            write_recipe(recipe, run_dir)?;
        }
        let mut config = TrainConfig::from_recipe(recipe);
        let total_steps = config.steps;
        if let Some(stop) = self.stop_after {
            config.steps = stop.min(total_steps); // the schedule keeps total_steps
        }
        log_plan(recipe, &config, total_steps, run_dir, devices);
        let job = peer::Job {
            recipe,
            recipe_path: &self.recipe_path,
            resume: self.resume,
            observer: self.observer.clone(),
            run_dir,
            model,
            data,
            tokenizer: Mutex::new(Some(tokenizer)),
            config,
            first_device: devices.first().copied().unwrap_or(0),
            total_steps,
        };
        let step = job.run(
            devices.iter().map(|&i| backend::device_at(i)).collect(),
            parallel,
        )?;
        let mut curves = None;
        if node_rank == 0 {
            let png = run_dir.join(crate::logging::curves::CURVES_FILE);
            let scalars = run_dir.join(crate::logging::curves::SCALARS_FILE);
            if crate::logging::curves::write_curves(&scalars, &png)? {
                curves = Some(png);
            }
        }
        let checkpoint = if node_rank == 0 {
            let latest = CheckpointDir::new(run_dir)?.latest()?.ok_or_else(|| {
                TrainError::Config("training finished but no checkpoint was written".into())
            })?;
            Some(latest.path)
        } else {
            None
        };
        Ok(RunOutcome {
            run_dir: run_dir.to_path_buf(),
            step,
            total_steps,
            node_rank,
            checkpoint,
            curves,
        })
    }
}

/// Refuse to train over a run directory that already has checkpoints unless resuming.
fn check_run_dir(run_dir: &Path, resume: bool) -> Result<()> {
    if resume || !run_dir.join("checkpoints").is_dir() {
        return Ok(());
    }
    let latest = CheckpointDir::new(run_dir)?.latest()?;
    if let Some(ckpt) = latest {
        return Err(TrainError::Config(format!(
            "run directory {} already has checkpoints (newest: step {}).\n\
             HINT: continue that run with --resume, or start a new one with --out <another dir> \
             (or delete {} yourself)",
            run_dir.display(),
            ckpt.step,
            run_dir.display()
        )));
    }
    Ok(())
}

/// This build computes on one backend; a recipe asking for another device is an error, not a surprise.
fn check_device(recipe: &Recipe) -> Result<()> {
    let first = recipe.train.devices.as_ref().and_then(|d| d.first());
    let Some(device) = recipe.train.device.as_ref().or(first) else {
        return Ok(());
    };
    let wants_cuda = device.starts_with("cuda");
    if wants_cuda != cfg!(feature = "cuda") {
        return Err(TrainError::Config(format!(
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
        )));
    }
    Ok(())
}

/// Save the resolved recipe as `<run>/recipe.toml`, warning when a resumed run's recipe changed.
fn write_recipe(recipe: &Recipe, run_dir: &Path) -> Result<()> {
    let path = run_dir.join("recipe.toml");
    let text = recipe.to_toml()?;
    if let Ok(old) = std::fs::read_to_string(&path) {
        if old != text {
            tracing::warn!(path = %path.display(), "the recipe differs from the one this run directory was started with; using the new one");
        }
    }
    Ok(write_atomic(&path, text.as_bytes())?)
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
