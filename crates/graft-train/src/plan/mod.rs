//! `graft plan`: per-GPU memory of a recipe's model for full training and LoRA, with and without
//! activation checkpointing, at ZeRO stages 0, 1 and 2, and whether it fits a GPU of a given size.
//!
//! The figures come from graft-llama's one memory model ([`graft_llama::memory`], also behind
//! `graft inspect`), which the crate that owns the model, the fused ops and activation
//! checkpointing keeps in step with what they allocate; this module adds the recipe (method, dtype,
//! batch, accumulation, ZeRO stage, devices) and the verdicts. All sizes are bytes; reports print
//! GB = 10⁹ bytes.

use std::path::{Path, PathBuf};

use graft_llama::memory::{
    loss_buffer_bytes, param_counts, training_memory, DTypeSize, MemoryEstimate, StepShape, Trained,
};
use graft_llama::{LlamaConfig, ModelConfig};
use serde::Serialize;

use crate::error::{Result, TrainError};
use crate::recipe::{Method, ModelDtype, Recipe};

/// GPU size assumed when neither the command line nor the recipe gives one.
pub const DEFAULT_GPU_MEM: u64 = 80_000_000_000;
/// LoRA settings used for the LoRA column when the recipe has no `[lora]` table.
pub const DEFAULT_LORA_RANK: usize = 16;
/// Default LoRA targets (the attention projections).
pub const DEFAULT_LORA_TARGETS: [&str; 4] = ["q_proj", "k_proj", "v_proj", "o_proj"];

/// What to plan for, beyond the recipe.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Memory of one GPU in bytes (default [`DEFAULT_GPU_MEM`]).
    pub gpu_mem: Option<u64>,
    /// Data-parallel devices (default: the recipe's `train.devices`, else 1).
    pub devices: Option<usize>,
    /// The model's `config.json`, instead of the recipe's `model.base` (planning needs no weights).
    pub config: Option<PathBuf>,
}

/// Per-GPU memory of one ZeRO stage (with the recipe's activation checkpointing setting).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StagePlan {
    /// 0, 1 or 2.
    pub zero_stage: u8,
    /// Gradients on each GPU at this stage.
    pub gradients: u64,
    /// AdamW state on each GPU at this stage.
    pub optimizer: u64,
    /// Everything on each GPU.
    pub total: u64,
}

/// Memory of one training method on one GPU, at the recipe's ZeRO stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodPlan {
    /// "full" or "lora r16 (q_proj, v_proj)".
    pub label: String,
    /// Parameters that receive gradients.
    pub trainable_params: u64,
    /// Model weights in the recipe's dtype.
    pub weights: u64,
    /// LoRA adapter weights (f32).
    pub adapters: u64,
    /// Gradients at the end of backward: the f32 sums (this GPU's shard at ZeRO-2) and, with
    /// accumulation or sharding, one micro-batch's gradients in the weights' dtype.
    pub gradients: u64,
    /// AdamW state (fp32 master copy when weights are not f32, plus two moments; 1/N at ZeRO ≥ 1).
    pub optimizer: u64,
    /// What a step holds at its peak beyond the gradients, without checkpointing.
    pub activations: u64,
    /// The same with `train.activation_checkpointing = true`.
    pub activations_checkpointed: u64,
    /// The fused head + loss's buffers at their peak (part of the activations' peak phase).
    pub logits_buffer: u64,
    /// The process's own memory and the optimizer update's excess over the activations' peak.
    pub overhead: u64,
    /// The same with activation checkpointing.
    pub overhead_checkpointed: u64,
    /// Per-GPU totals at ZeRO stages 0, 1 and 2 (the recipe's checkpointing setting).
    pub stages: Vec<StagePlan>,
}

impl MethodPlan {
    /// Weights, adapters, gradients and optimizer state: what does not depend on the batch.
    pub fn state(&self) -> u64 {
        self.weights + self.adapters + self.gradients + self.optimizer
    }

    /// Per-GPU total, with or without activation checkpointing.
    pub fn total(&self, checkpointing: bool) -> u64 {
        self.state()
            + if checkpointing {
                self.activations_checkpointed + self.overhead_checkpointed
            } else {
                self.activations + self.overhead
            }
    }

    /// The per-GPU total at ZeRO `stage`.
    pub fn stage_total(&self, stage: u8) -> u64 {
        self.stages
            .iter()
            .find(|s| s.zero_stage == stage)
            .map_or(0, |s| s.total)
    }
}

/// The whole plan: model, batch, device and the two methods, plus advice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanReport {
    /// Where the model's architecture came from (config.json path or `[model.init]`).
    pub model: String,
    /// Parameter count.
    pub params: u64,
    /// Weight dtype ("f32", "bf16", "f16").
    pub dtype: String,
    /// Precision of the AdamW moments.
    pub optimizer_state_dtype: String,
    /// Sequences per micro-batch on each GPU.
    pub micro_batch_size: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Micro-batches per optimizer step on each GPU.
    pub grad_accum: usize,
    /// Data-parallel GPUs over all nodes (the devices times `train.nodes`).
    pub devices: usize,
    /// The recipe's `train.zero_stage` (with one GPU the same as 0: nothing to shard).
    pub zero_stage: u8,
    /// Memory of one GPU in bytes.
    pub gpu_mem: u64,
    /// The method the recipe trains with.
    pub method: Method,
    /// Whether the recipe turns on activation checkpointing.
    pub activation_checkpointing: bool,
    /// Per-GPU bytes of the recipe as configured (method, checkpointing, ZeRO stage, devices).
    pub recipe_total_per_gpu: u64,
    /// Whether `recipe_total_per_gpu` fits `gpu_mem`.
    pub fits: bool,
    /// `gpu_mem − recipe_total_per_gpu` (negative when it does not fit).
    pub headroom: i64,
    /// Full fine-tuning.
    pub full: MethodPlan,
    /// LoRA (the recipe's `[lora]`, or rank 16 on q/k/v/o).
    pub lora: MethodPlan,
    /// Verdicts and what it would take to fit, one sentence each.
    pub advice: Vec<String>,
}

/// Plan the recipe: read its model's config, estimate, and judge the fit.
pub fn plan(recipe: &Recipe, options: &PlanOptions) -> Result<PlanReport> {
    let (config, model) = match &options.config {
        Some(path) => config_file(path)?,
        None => recipe_model_config(recipe)?,
    };
    let state_dtype =
        DTypeSize::from_torch(&recipe.train.optimizer_state_dtype).ok_or_else(|| {
            TrainError::Config(format!(
                "train.optimizer_state_dtype = {:?}: use \"f32\", \"bf16\" or \"f16\"",
                recipe.train.optimizer_state_dtype
            ))
        })?;
    let devices = options
        .devices
        .or(recipe.train.devices.as_ref().map(Vec::len))
        .unwrap_or(1)
        .max(1)
        // several nodes (`train.nodes`, recorded by `graft train --nodes`) shard over all GPUs
        * recipe.train.nodes.unwrap_or(1).max(1);
    let t = &recipe.train;
    let shape = StepShape {
        dtype: weight_dtype(recipe.model.dtype),
        state_dtype,
        batch: t.micro_batch_size as u64,
        seq: recipe.data.seq_len as u64,
        grad_accum: t.grad_accum as u64,
        checkpointing: t.activation_checkpointing,
        zero_stage: t.zero_stage,
        devices: devices as u64,
    };
    let full = method_plan("full".into(), &config, &Trained::Full, &shape);
    let lora = lora_plan(recipe, &config, &shape)?;
    let chosen = match t.method {
        Method::Full => &full,
        Method::Lora => &lora,
    };
    let total = chosen.total(t.activation_checkpointing);
    let gpu_mem = options.gpu_mem.unwrap_or(DEFAULT_GPU_MEM);
    let mut report = PlanReport {
        model,
        params: param_counts(&config).total(),
        dtype: dtype_name(shape.dtype).into(),
        optimizer_state_dtype: t.optimizer_state_dtype.clone(),
        micro_batch_size: t.micro_batch_size,
        seq_len: recipe.data.seq_len,
        grad_accum: t.grad_accum,
        devices,
        zero_stage: t.zero_stage,
        gpu_mem,
        method: t.method,
        activation_checkpointing: t.activation_checkpointing,
        recipe_total_per_gpu: total,
        fits: total <= gpu_mem,
        headroom: gpu_mem as i64 - total as i64,
        full,
        lora,
        advice: Vec::new(),
    };
    report.advice = advise(&report);
    Ok(report)
}

/// One method's plan at `shape` (its ZeRO stage), with the totals of every stage.
fn method_plan(
    label: String,
    config: &LlamaConfig,
    trained: &Trained,
    shape: &StepShape,
) -> MethodPlan {
    let at = |checkpointing: bool, zero_stage: u8| -> MemoryEstimate {
        let s = StepShape {
            checkpointing,
            zero_stage,
            ..*shape
        };
        training_memory(config, trained, &s)
    };
    let plain = at(false, shape.zero_stage);
    let ckpt = at(true, shape.zero_stage);
    let stages = (0..=2)
        .map(|zero_stage| {
            let m = at(shape.checkpointing, zero_stage);
            StagePlan {
                zero_stage,
                gradients: m.gradients,
                optimizer: m.optimizer,
                total: m.total(),
            }
        })
        .collect();
    let head_trained = matches!(trained, Trained::Full);
    let tokens = shape.batch * shape.seq;
    let logits_buffer = loss_buffer_bytes(config, shape.dtype, tokens, head_trained);
    MethodPlan {
        label,
        trainable_params: match trained {
            Trained::Full => param_counts(config).total(),
            Trained::Lora { .. } => plain.adapters / 4,
        },
        weights: plain.weights,
        adapters: plain.adapters,
        gradients: plain.gradients,
        optimizer: plain.optimizer,
        activations: plain.activations,
        activations_checkpointed: ckpt.activations,
        logits_buffer,
        overhead: plain.overhead,
        overhead_checkpointed: ckpt.overhead,
        stages,
    }
}

/// Full fine-tuning with AdamW on `config`: one micro-batch on one device, ZeRO stage 0.
pub fn full_plan(
    config: &LlamaConfig,
    dtype: DTypeSize,
    state: DTypeSize,
    batch: u64,
    seq: u64,
) -> MethodPlan {
    let shape = StepShape {
        state_dtype: state,
        ..StepShape::new(dtype, batch, seq)
    };
    method_plan("full".into(), config, &Trained::Full, &shape)
}

/// LoRA with the recipe's `[lora]` (or the defaults), its targets parsed as training parses them
/// ([`graft_llama::lora::parse_targets`], `"all-linear"` included).
fn lora_plan(recipe: &Recipe, config: &LlamaConfig, shape: &StepShape) -> Result<MethodPlan> {
    let (rank, names): (usize, Vec<String>) = match &recipe.lora {
        Some(l) => (l.rank, l.target_modules.clone()),
        None => (
            DEFAULT_LORA_RANK,
            DEFAULT_LORA_TARGETS.iter().map(|s| s.to_string()).collect(),
        ),
    };
    let targets = graft_llama::lora::parse_targets(&names)
        .map_err(|e| TrainError::Config(format!("lora.target_modules: {e}")))?;
    let label = format!("lora r{rank} ({})", names.join(", "));
    let trained = Trained::Lora {
        rank: rank as u64,
        targets,
    };
    Ok(method_plan(label, config, &trained, shape))
}

fn weight_dtype(dtype: ModelDtype) -> DTypeSize {
    match dtype {
        ModelDtype::F32 => DTypeSize::F32,
        ModelDtype::Bf16 => DTypeSize::BF16,
        ModelDtype::F16 => DTypeSize::F16,
    }
}

fn dtype_name(dtype: DTypeSize) -> &'static str {
    match dtype {
        DTypeSize::F32 => "f32",
        DTypeSize::BF16 => "bf16",
        DTypeSize::F16 => "f16",
    }
}

/// The architecture of the recipe's model and a description of where it came from: the base
/// model's `config.json` (a local directory, or a Hub id found in the HF cache), or `[model.init]`,
/// as [`crate::model::resolve_config`] resolves it for every command.
pub fn recipe_model_config(recipe: &Recipe) -> Result<(LlamaConfig, String)> {
    // paths in a loaded recipe are already resolved; the name only labels errors
    let (config, what) = crate::model::resolve_config(recipe, Path::new(&recipe.name))
        .map_err(|e| TrainError::Model(crate::error::error_chain(&e)))?;
    Ok((config.llama, what))
}

/// A `config.json` given directly (`graft plan --config`).
fn config_file(path: &Path) -> Result<(LlamaConfig, String)> {
    if !path.is_file() {
        return Err(TrainError::MissingPath {
            key: "--config (config.json)".into(),
            path: path.to_path_buf(),
        });
    }
    let parsed = ModelConfig::from_file(path).map_err(|e| TrainError::Model(e.to_string()))?;
    Ok((parsed.llama, path.display().to_string()))
}

mod advice;
pub use advice::{advise, format_bytes, render_text};
