//! The training loop: micro-batches → loss/grad_accum → backward → accumulate in f32 → global-norm clip
//! → AdamW with the warmup-cosine lr → log → checkpoint; and resume from the latest checkpoint.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor, TensorData};
use graft_llama::export::{ExportOptions, HfDirFiles, ModelSource};
use graft_llama::{Llama, ModelConfig, TrainBackend};

use crate::checkpoint::{Checkpoint, CheckpointDir};
use crate::clip::{clip_global_norm, global_grad_norm};
use crate::error::{Result, TrainError};
use crate::grad_accum::GradAccumulator;
use crate::logging::{ScalarLogger, StepMeter};
use crate::optim::{AdamW, AdamWConfig};
use crate::optim_state::check_state_matches;
use crate::parallel::GradSync;
use crate::periodic_eval::Evaluator;
use crate::recipe::Recipe;
use crate::schedule::WarmupCosine;
use crate::source::{BatchSource, TokenBatch};
use crate::state::{TrainingState, STATE_VERSION};

/// Loop settings, usually taken from a [`Recipe`].
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Optimizer steps in the whole run.
    pub steps: u64,
    /// Micro-batches per step.
    pub grad_accum: usize,
    /// Expected micro-batch shape `[batch, seq]`.
    pub micro_batch: [usize; 2],
    /// Learning-rate schedule.
    pub schedule: WarmupCosine,
    /// AdamW hyperparameters.
    pub adamw: AdamWConfig,
    /// Global-norm clip (0: no clipping).
    pub clip_norm: f64,
    /// Checkpoint every this many steps (0: only at the end).
    pub save_every: u64,
    /// Checkpoints to keep (0: all).
    pub keep_last: usize,
    /// Log scalars every this many steps.
    pub log_every: u64,
    /// Stop after this many non-finite steps in a row.
    pub max_nonfinite_steps: u32,
    /// Seed of the LoRA dropout masks, drawn per rank from `(seed, step, rank, micro-batch)`.
    pub seed: u64,
    /// Per-layer activation checkpointing (see [`graft_llama::backward`]).
    pub activation_checkpointing: bool,
    /// Optimizer-state sharding over data-parallel peers, 0, 1 or 2 (see [`crate::zero`]).
    pub zero_stage: u8,
}

impl TrainConfig {
    /// The loop settings of `recipe`.
    pub fn from_recipe(recipe: &Recipe) -> Self {
        let t = &recipe.train;
        let steps = recipe.total_steps();
        Self {
            steps,
            grad_accum: t.grad_accum,
            micro_batch: [t.micro_batch_size, recipe.data.seq_len],
            schedule: WarmupCosine {
                peak: t.lr,
                min_lr_ratio: t.min_lr_ratio,
                warmup_steps: t.warmup_steps,
                total_steps: steps,
            },
            adamw: AdamWConfig {
                beta1: t.betas[0],
                beta2: t.betas[1],
                eps: t.eps,
                weight_decay: t.weight_decay,
                state_dtype: match t.optimizer_state_dtype.as_str() {
                    "bf16" => burn::tensor::FloatDType::BF16,
                    _ => burn::tensor::FloatDType::F32, // validated: "f32" or "bf16"
                },
            },
            clip_norm: t.clip_norm,
            save_every: t.save_every,
            keep_last: t.keep_last,
            log_every: t.log_every,
            max_nonfinite_steps: t.max_nonfinite_steps,
            seed: t.seed,
            activation_checkpointing: t.activation_checkpointing,
            zero_stage: t.zero_stage,
        }
    }
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// 1-based step number.
    pub step: u64,
    /// Learning rate used.
    pub lr: f64,
    /// Σ over micro-batches of loss / grad_accum.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// True when the step was skipped for a non-finite loss or norm.
    pub skipped: bool,
}

/// An evaluator and its interval in steps (0: only at the end).
type ScheduledEval<B> = (u64, Box<dyn Evaluator<B>>);

/// The custom training loop over a [`Llama`] model.
pub struct Trainer<B: TrainBackend> {
    config: TrainConfig,
    model: Option<Llama<B>>,
    model_config: ModelConfig,
    tokenizer_dir: Option<PathBuf>,
    optim: AdamW<B::InnerBackend>,
    state: TrainingState,
    checkpoints: Option<CheckpointDir>,
    logger: Option<Box<dyn ScalarLogger>>,
    /// Memory and MFU figures of the step lines.
    meter: StepMeter,
    device: B::Device,
    /// Periodic evaluation: every this many steps (0: only at the end), and the evaluator.
    evaluator: Option<ScheduledEval<B::InnerBackend>>,
    /// Data-parallel gradient sync (see [`crate::parallel`]); `None` on a single device.
    grad_sync: Option<Box<dyn GradSync<B>>>,
    /// Sharded optimizer state (`zero_stage` 1 or 2 with several peers), made at the first step.
    zero: Option<crate::zero::Zero<B::InnerBackend>>,
    /// Elements per ZeRO bucket.
    zero_bucket_elems: usize,
}

impl<B: TrainBackend> Trainer<B> {
    /// A trainer for `model` (described by `model_config`, used when saving checkpoints).
    pub fn new(
        model: Llama<B>,
        model_config: ModelConfig,
        config: TrainConfig,
        device: B::Device,
    ) -> Self {
        let state = TrainingState {
            version: STATE_VERSION,
            step: 0,
            lr_step: 0,
            tokens_seen: 0,
            tokens_per_source: Default::default(),
            consecutive_nonfinite: 0,
            total_nonfinite: 0,
            data_cursor: serde_json::Value::Null,
        };
        let optim = AdamW::new(config.adamw);
        Self {
            config,
            model: Some(model),
            model_config,
            tokenizer_dir: None,
            optim,
            state,
            checkpoints: None,
            logger: None,
            meter: StepMeter::default(),
            device,
            evaluator: None,
            grad_sync: None,
            zero: None,
            zero_bucket_elems: crate::zero::DEFAULT_BUCKET_ELEMS,
        }
    }

    /// Save checkpoints under `<run_dir>/checkpoints`.
    pub fn with_run_dir(mut self, run_dir: &Path) -> Result<Self> {
        self.checkpoints = Some(CheckpointDir::new(run_dir)?);
        Ok(self)
    }

    /// Send scalars to `logger`.
    pub fn with_logger(mut self, logger: Box<dyn ScalarLogger>) -> Self {
        self.logger = Some(logger);
        self
    }

    /// Add memory and MFU to the step lines (see [`crate::logging::meter`]).
    pub fn with_meter(mut self, meter: StepMeter) -> Self {
        self.meter = meter;
        self
    }

    /// All-reduce each step's loss and gradients with the other data-parallel peers. Only rank 0
    /// writes checkpoints; every rank resumes from them.
    pub fn with_grad_sync(mut self, sync: Box<dyn GradSync<B>>) -> Self {
        self.grad_sync = Some(sync);
        self
    }

    /// Group gradients and weights into buckets of at most `elems` elements for the collectives
    /// of sharded training (default [`crate::zero::DEFAULT_BUCKET_ELEMS`]).
    pub fn with_zero_bucket_elems(mut self, elems: usize) -> Self {
        self.zero_bucket_elems = elems;
        self
    }

    /// Evaluate every `every` steps (0: only at the end) and at the last step; the scalars are
    /// logged like training scalars (see [`crate::periodic_eval`]).
    pub fn with_evaluator(
        mut self,
        every: u64,
        evaluator: Box<dyn Evaluator<B::InnerBackend>>,
    ) -> Self {
        self.evaluator = Some((every, evaluator));
        self
    }

    /// Copy tokenizer files from `dir` into every checkpoint.
    pub fn with_tokenizer_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.tokenizer_dir = dir;
        self
    }

    /// The model being trained.
    pub fn model(&self) -> &Llama<B> {
        self.model.as_ref().expect("model is present between steps")
    }

    /// The training state (step, tokens, counters).
    pub fn state(&self) -> &TrainingState {
        &self.state
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &AdamW<B::InnerBackend> {
        &self.optim
    }

    /// Train until `config.steps`, checkpointing every `save_every` steps and at the end (when a
    /// run directory is set).
    pub fn run(&mut self, data: &mut dyn BatchSource) -> Result<Vec<StepReport>> {
        let mut reports = Vec::new();
        let mut last_log = (Instant::now(), self.state.tokens_seen);
        while self.state.step < self.config.steps {
            let report = self.train_step(data)?;
            // data-parallel peers hold the same (averaged) scalars: only rank 0 logs and saves
            let primary = self.grad_sync.as_ref().is_none_or(|s| s.rank() == 0);
            if primary
                && (report.step % self.config.log_every == 0 || report.step == self.config.steps)
            {
                self.log(&report, data, &mut last_log)?;
            }
            self.maybe_evaluate(report.step)?;
            let save = self.config.save_every > 0 && report.step % self.config.save_every == 0;
            // a skipped (non-finite) step saves nothing: `latest` stays the last good checkpoint
            let save = !report.skipped && (save || report.step == self.config.steps);
            // with sharded optimizer state every rank writes its part
            if self.checkpoints.is_some() && (primary || self.zero.is_some()) && save {
                self.save_checkpoint(data)?;
            }
            reports.push(report);
        }
        Ok(reports)
    }
}

mod step;
mod zero_glue;
