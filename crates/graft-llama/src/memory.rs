//! Parameter counts and memory estimates for `graft inspect`: pure functions of a [`LlamaConfig`].
//!
//! Estimates are in bytes and deliberately simple; activations assume no activation
//! checkpointing and count what the backward pass keeps (an upper-end estimate).

use crate::config::LlamaConfig;
use crate::keymap::{param_keys, LayerParam, ParamKind};

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
    /// Gradients of the trained parameters.
    pub gradients: u64,
    /// Optimizer state: fp32 master copy (full training) and AdamW's two moments.
    pub optimizer: u64,
    /// KV cache (inference).
    pub kv_cache: u64,
    /// Activations kept for the backward pass, or the peak of one forward pass for inference.
    pub activations: u64,
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
    }
}

/// Inference: weights + KV cache for `seq` positions + the peak activations of a prefill
/// (one layer's intermediates plus the f32 logits of every position).
pub fn inference_memory(
    config: &LlamaConfig,
    dtype: DTypeSize,
    batch: u64,
    seq: u64,
) -> MemoryEstimate {
    let c = config;
    let tokens = batch * seq;
    let layer_peak = tokens * (2 * c.hidden_size + 3 * c.intermediate_size) as u64 * dtype.bytes()
        + batch * c.num_attention_heads as u64 * seq * seq * 4;
    let logits = tokens * c.vocab_size as u64 * 4;
    MemoryEstimate {
        weights: weight_bytes(c, dtype),
        kv_cache: kv_cache_bytes(c, batch, seq, dtype),
        activations: layer_peak + logits,
        ..Default::default()
    }
}

/// Activations kept for backward by a training step over `batch × seq` tokens: per layer the
/// norm inputs/outputs, q/k/v before and after RoPE, the f32 attention scores and probabilities,
/// the MLP intermediates; plus the logits, their f32 copy and log-probabilities.
pub fn training_activation_bytes(
    config: &LlamaConfig,
    dtype: DTypeSize,
    batch: u64,
    seq: u64,
) -> u64 {
    let c = config;
    let q = (c.num_attention_heads * c.head_dim) as u64;
    let kv = (c.num_key_value_heads * c.head_dim) as u64;
    let per_token = 6 * c.hidden_size as u64 + 3 * q + 3 * kv + 4 * c.intermediate_size as u64;
    let tokens = batch * seq;
    let scores = 2 * batch * c.num_attention_heads as u64 * seq * seq * 4;
    let layers = c.num_hidden_layers as u64 * (tokens * per_token * dtype.bytes() + scores);
    let logits = tokens * c.vocab_size as u64 * (dtype.bytes() + 8);
    layers + logits
}

/// Full fine-tuning with AdamW and mixed precision: `dtype` weights and gradients, plus an fp32
/// master copy and two fp32 moments (for 8B parameters in bf16: 16 GB + 16 GB + 96 GB).
pub fn full_training_memory(
    config: &LlamaConfig,
    dtype: DTypeSize,
    batch: u64,
    seq: u64,
) -> MemoryEstimate {
    let params = param_counts(config).total();
    let master = if dtype == DTypeSize::F32 {
        0
    } else {
        params * 4
    };
    MemoryEstimate {
        weights: params * dtype.bytes(),
        gradients: params * dtype.bytes(),
        optimizer: master + 2 * params * 4,
        activations: training_activation_bytes(config, dtype, batch, seq),
        ..Default::default()
    }
}

/// Number of LoRA adapter parameters: `rank · (in + out)` for each targeted projection of
/// every layer.
pub fn lora_param_count(config: &LlamaConfig, rank: u64, targets: &[LayerParam]) -> u64 {
    let per_layer: u64 = targets
        .iter()
        .filter_map(|p| {
            let shape = crate::keymap::ParamKey::Layer(0, *p).shape(config);
            (shape.len() == 2).then(|| rank * (shape[0] + shape[1]) as u64)
        })
        .sum();
    per_layer * config.num_hidden_layers as u64
}

/// LoRA training: frozen `dtype` weights, fp32 adapters with fp32 gradients and two AdamW
/// moments, and the training activations.
pub fn lora_memory(
    config: &LlamaConfig,
    dtype: DTypeSize,
    rank: u64,
    targets: &[LayerParam],
    batch: u64,
    seq: u64,
) -> MemoryEstimate {
    let adapters = lora_param_count(config, rank, targets);
    MemoryEstimate {
        weights: weight_bytes(config, dtype),
        adapters: adapters * 4,
        gradients: adapters * 4,
        optimizer: adapters * 8,
        activations: training_activation_bytes(config, dtype, batch, seq),
        ..Default::default()
    }
}

/// The logits/loss buffer of a training step over `batch × seq` tokens: the `dtype` logits, their
/// f32 copy and the f32 log-probabilities. Part of both activation estimates.
pub fn logits_buffer_bytes(config: &LlamaConfig, dtype: DTypeSize, batch: u64, seq: u64) -> u64 {
    batch * seq * config.vocab_size as u64 * (dtype.bytes() + 8)
}

/// Activations kept for backward under Burn's `BalancedCheckpointing`: outputs of compute-bound
/// ops (the projections, the attention scores, the matmul of probabilities and values) are kept,
/// memory-bound ops (norms, RoPE, softmax, SiLU, products) are recomputed in the backward pass.
/// Per layer and token that leaves the layer input, q/k/v, the attention output and its
/// projection, gate/up and down outputs; the `dtype` score matrix `q·kᵀ` per layer; plus the
/// logits buffer. The peak of one recomputation (one layer's dropped intermediates, with the f32
/// scores, f32 probabilities and their `dtype` copy) is added once.
pub fn checkpointed_activation_bytes(
    config: &LlamaConfig,
    dtype: DTypeSize,
    batch: u64,
    seq: u64,
) -> u64 {
    let c = config;
    let q = (c.num_attention_heads * c.head_dim) as u64;
    let kv = (c.num_key_value_heads * c.head_dim) as u64;
    let kept = 3 * c.hidden_size as u64 + 2 * q + 2 * kv + 2 * c.intermediate_size as u64;
    let dropped = 3 * c.hidden_size as u64 + q + kv + 2 * c.intermediate_size as u64;
    let tokens = batch * seq;
    let score_elems = batch * c.num_attention_heads as u64 * seq * seq;
    let layers = c.num_hidden_layers as u64 * (tokens * kept + score_elems) * dtype.bytes();
    let recompute_peak = tokens * dropped * dtype.bytes() + score_elems * (8 + dtype.bytes());
    layers + recompute_peak + logits_buffer_bytes(config, dtype, batch, seq)
}

/// AdamW state for `params` trained parameters stored as `weights`: an fp32 master copy when the
/// weights are not f32, plus two moments in `state` precision (12 bytes/param for bf16 weights
/// with f32 moments).
pub fn adamw_state_bytes(params: u64, weights: DTypeSize, state: DTypeSize) -> u64 {
    let master = if weights == DTypeSize::F32 {
        0
    } else {
        params * 4
    };
    master + 2 * params * state.bytes()
}
