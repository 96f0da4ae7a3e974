//! `graft plan`: per-GPU memory of a recipe's model for full training and LoRA, with and without
//! activation checkpointing, and whether it fits a GPU of a given size.
//!
//! Data parallelism in graft replicates weights, gradients and optimizer state on every device,
//! so the per-GPU figure does not shrink with more devices; the report says what would be needed
//! otherwise (optimizer-state or gradient sharding over ≥ N GPUs, LoRA, a smaller micro-batch).
//! All sizes are bytes; reports print GB = 10⁹ bytes.

use std::path::Path;

use graft_llama::keymap::LayerParam;
use graft_llama::memory::{
    adamw_state_bytes, checkpointed_activation_bytes, logits_buffer_bytes, lora_param_count,
    param_counts, training_activation_bytes, DTypeSize,
};
use graft_llama::LlamaConfig;
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
}

/// Memory of one training method on one GPU.
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
    /// Gradients of the trained parameters.
    pub gradients: u64,
    /// AdamW state (fp32 master copy when weights are not f32, plus two moments).
    pub optimizer: u64,
    /// Activations kept for backward without checkpointing (includes the logits buffer).
    pub activations: u64,
    /// Activations with `train.activation_checkpointing = true` (includes the logits buffer).
    pub activations_checkpointed: u64,
    /// The logits/loss buffer alone.
    pub logits_buffer: u64,
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
                self.activations_checkpointed
            } else {
                self.activations
            }
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
    /// Data-parallel devices (state replicated on each).
    pub devices: usize,
    /// Memory of one GPU in bytes.
    pub gpu_mem: u64,
    /// The method the recipe trains with.
    pub method: Method,
    /// Whether the recipe turns on activation checkpointing.
    pub activation_checkpointing: bool,
    /// Full fine-tuning.
    pub full: MethodPlan,
    /// LoRA (the recipe's `[lora]`, or rank 16 on q/k/v/o).
    pub lora: MethodPlan,
    /// Verdicts and what it would take to fit, one sentence each.
    pub advice: Vec<String>,
}

/// Plan the recipe: read its model's config, estimate, and judge the fit.
pub fn plan(recipe: &Recipe, options: &PlanOptions) -> Result<PlanReport> {
    let (config, model) = recipe_model_config(recipe)?;
    let dtype = weight_dtype(recipe.model.dtype);
    let state_dtype =
        DTypeSize::from_torch(&recipe.train.optimizer_state_dtype).ok_or_else(|| {
            TrainError::Config(format!(
                "train.optimizer_state_dtype = {:?}: use \"f32\", \"bf16\" or \"f16\"",
                recipe.train.optimizer_state_dtype
            ))
        })?;
    let (batch, seq) = (
        recipe.train.micro_batch_size as u64,
        recipe.data.seq_len as u64,
    );
    let full = full_plan(&config, dtype, state_dtype, batch, seq);
    let lora = lora_plan(recipe, &config, dtype, state_dtype, batch, seq)?;
    let devices = options
        .devices
        .or(recipe.train.devices.as_ref().map(Vec::len))
        .unwrap_or(1)
        .max(1);
    let mut report = PlanReport {
        model,
        params: param_counts(&config).total(),
        dtype: dtype_name(dtype).into(),
        optimizer_state_dtype: recipe.train.optimizer_state_dtype.clone(),
        micro_batch_size: recipe.train.micro_batch_size,
        seq_len: recipe.data.seq_len,
        grad_accum: recipe.train.grad_accum,
        devices,
        gpu_mem: options.gpu_mem.unwrap_or(DEFAULT_GPU_MEM),
        method: recipe.train.method,
        activation_checkpointing: recipe.train.activation_checkpointing,
        full,
        lora,
        advice: Vec::new(),
    };
    report.advice = advise(&report);
    Ok(report)
}

/// Full fine-tuning with AdamW on `config`.
pub fn full_plan(
    config: &LlamaConfig,
    dtype: DTypeSize,
    state: DTypeSize,
    batch: u64,
    seq: u64,
) -> MethodPlan {
    let params = param_counts(config).total();
    MethodPlan {
        label: "full".into(),
        trainable_params: params,
        weights: params * dtype.bytes(),
        adapters: 0,
        gradients: params * dtype.bytes(),
        optimizer: adamw_state_bytes(params, dtype, state),
        activations: training_activation_bytes(config, dtype, batch, seq),
        activations_checkpointed: checkpointed_activation_bytes(config, dtype, batch, seq),
        logits_buffer: logits_buffer_bytes(config, dtype, batch, seq),
    }
}

/// LoRA with the recipe's `[lora]` (or the defaults): frozen weights, f32 adapters, f32 gradients
/// and moments for the adapters only.
fn lora_plan(
    recipe: &Recipe,
    config: &LlamaConfig,
    dtype: DTypeSize,
    state: DTypeSize,
    batch: u64,
    seq: u64,
) -> Result<MethodPlan> {
    let (rank, names): (usize, Vec<String>) = match &recipe.lora {
        Some(l) => (l.rank, l.target_modules.clone()),
        None => (
            DEFAULT_LORA_RANK,
            DEFAULT_LORA_TARGETS.iter().map(|s| s.to_string()).collect(),
        ),
    };
    let targets = names
        .iter()
        .map(|n| lora_target(n))
        .collect::<Result<Vec<_>>>()?;
    let adapters = lora_param_count(config, rank as u64, &targets);
    Ok(MethodPlan {
        label: format!("lora r{rank} ({})", names.join(", ")),
        trainable_params: adapters,
        weights: param_counts(config).total() * dtype.bytes(),
        adapters: adapters * 4,
        gradients: adapters * 4,
        optimizer: adamw_state_bytes(adapters, DTypeSize::F32, state),
        activations: training_activation_bytes(config, dtype, batch, seq),
        activations_checkpointed: checkpointed_activation_bytes(config, dtype, batch, seq),
        logits_buffer: logits_buffer_bytes(config, dtype, batch, seq),
    })
}

/// A LoRA target module name (`q_proj` … `down_proj`) as a layer parameter.
pub fn lora_target(name: &str) -> Result<LayerParam> {
    LayerParam::ALL
        .into_iter()
        .find(|p| p.suffix().split('.').any(|part| part == name) && p.suffix().ends_with("proj.weight"))
        .ok_or_else(|| {
            TrainError::Config(format!(
                "lora.target_modules: unknown module {name:?}; use q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj"
            ))
        })
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

#[path = "plan_advice.rs"]
mod advice;
pub use advice::{advise, format_bytes, render_text};
