//! Parameter counts and memory estimates: pure functions of a [`LlamaConfig`], in bytes. The one
//! memory model of graft — `graft inspect` and `graft plan` (graft-train) both call it. It lives
//! here, beside the model, the fused ops and the activation checkpointing whose allocations it
//! describes, so that a change to those and to their accounting is one change in one crate;
//! the recipe-level choices (method, ZeRO stage, devices) come in as a [`StepShape`].
//! [`training_memory`] models a training step phase by phase; its constants are calibrated with
//! `graft bench memory` (README, "Benchmarks").

use crate::config::LlamaConfig;
use crate::keymap::{param_keys, ParamKind};

/// Storage dtype of weights or activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DTypeSize {
    F32,
    BF16,
    F16,
}

impl DTypeSize {
    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            DTypeSize::F32 => 4,
            DTypeSize::BF16 | DTypeSize::F16 => 2,
        }
    }

    /// From a `torch_dtype` spelling ("float32", "bfloat16", "float16", also "f32"/"bf16"/"f16").
    pub fn from_torch(name: &str) -> Option<Self> {
        match name.trim_start_matches("torch.") {
            "float32" | "float" | "f32" => Some(DTypeSize::F32),
            "bfloat16" | "bf16" => Some(DTypeSize::BF16),
            "float16" | "half" | "f16" => Some(DTypeSize::F16),
            _ => None,
        }
    }
}

/// Parameter counts, total and per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParamCounts {
    pub embedding: u64,
    pub attention: u64,
    pub mlp: u64,
    pub norm: u64,
    /// 0 when the head is tied to the embeddings.
    pub lm_head: u64,
}

impl ParamCounts {
    /// All parameters.
    pub fn total(&self) -> u64 {
        self.embedding + self.attention + self.mlp + self.norm + self.lm_head
    }
}

/// Counts the parameters of a model of `config`.
pub fn param_counts(config: &LlamaConfig) -> ParamCounts {
    let mut counts = ParamCounts::default();
    for key in param_keys(config) {
        let n: u64 = key.shape(config).iter().map(|&d| d as u64).product();
        match key.kind() {
            ParamKind::Embedding => counts.embedding += n,
            ParamKind::Attention => counts.attention += n,
            ParamKind::Mlp => counts.mlp += n,
            ParamKind::Norm => counts.norm += n,
            ParamKind::LmHead => counts.lm_head += n,
        }
    }
    counts
}

/// Bytes of all weights stored as `dtype`.
pub fn weight_bytes(config: &LlamaConfig, dtype: DTypeSize) -> u64 {
    param_counts(config).total() * dtype.bytes()
}

/// Bytes of a KV cache holding `seq` positions of `batch` sequences.
pub fn kv_cache_bytes(config: &LlamaConfig, batch: u64, seq: u64, dtype: DTypeSize) -> u64 {
    let per_token =
        2 * config.num_hidden_layers as u64 * (config.num_key_value_heads * config.head_dim) as u64;
    per_token * batch * seq * dtype.bytes()
}

/// A memory estimate broken down by what holds the bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Model weights (frozen or trained) in their storage dtype.
    pub weights: u64,
    /// Trainable adapter weights (LoRA only).
    pub adapters: u64,
    /// Gradients of the trained parameters: the f32 sums of the step (or this device's shard of
    /// them) and, while a later micro-batch's backward runs, its gradients in the weights' dtype.
    pub gradients: u64,
    /// Optimizer state: fp32 master copy (full training) and AdamW's two moments.
    pub optimizer: u64,
    /// KV cache (inference).
    pub kv_cache: u64,
    /// Activations kept for the backward pass, or the peak of one forward pass for inference.
    pub activations: u64,
    /// The process's own memory ([`RUNTIME_OVERHEAD`]) and the optimizer update's transients
    /// beyond the activations' peak (the two do not overlap in time).
    pub overhead: u64,
}

impl MemoryEstimate {
    /// Sum of all parts.
    pub fn total(&self) -> u64 {
        self.weights
            + self.adapters
            + self.gradients
            + self.optimizer
            + self.kv_cache
            + self.activations
            + self.overhead
    }
}

/// Inference: weights + KV cache for `seq` positions + the peak activations of a prefill
/// (one layer's intermediates, the attention tiles, and the f32 logits of every position).
pub fn inference_memory(
    config: &LlamaConfig,
    dtype: DTypeSize,
    batch: u64,
    seq: u64,
) -> MemoryEstimate {
    let c = config;
    let tokens = batch * seq;
    let layer_peak = tokens * (2 * c.hidden_size + 3 * c.intermediate_size) as u64 * dtype.bytes()
        + attention_tile_bytes(c, batch, seq);
    let logits = tokens * c.vocab_size as u64 * 4;
    MemoryEstimate {
        weights: weight_bytes(c, dtype),
        kv_cache: kv_cache_bytes(c, batch, seq, dtype),
        activations: layer_peak + logits,
        ..Default::default()
    }
}

mod training;
pub use training::*;
