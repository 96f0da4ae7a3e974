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

/// The f32 buffers of one attention tile pair (scores, probabilities and, in backward, their
/// gradients): four `[batch, heads, tile, tile]` tensors.
pub fn attention_tile_bytes(config: &LlamaConfig, batch: u64, seq: u64) -> u64 {
    let tile = (crate::ops::flash::DEFAULT_TILE as u64).min(seq);
    4 * batch * config.num_attention_heads as u64 * tile * tile * 4
}

/// Bytes one decoder layer keeps per token for its backward pass under autodiff (what the ops
/// of `DecoderLayer::forward` save): the two RMSNorms' f32 inputs and outputs, q/k/v, their
/// rotated halves and RoPE outputs, the attention output (and its contiguous copy for `o_proj`),
/// one f32 log-sum-exp per head, and the MLP's gate, SiLU, up and product.
pub fn layer_bytes_per_token(config: &LlamaConfig, dtype: DTypeSize) -> u64 {
    let c = config;
    let q = (c.num_attention_heads * c.head_dim) as u64;
    let kv = (c.num_key_value_heads * c.head_dim) as u64;
    let (h, i) = (c.hidden_size as u64, c.intermediate_size as u64);
    let elems = 2 * h + 5 * q + 4 * kv + 4 * i;
    // the norms' inputs are taken to f32 (a copy unless the model is f32)
    let norm_inputs = 2 * h * 4;
    elems * dtype.bytes() + norm_inputs + c.num_attention_heads as u64 * 4
}

/// Activations kept for backward by a training step over `batch × seq` tokens without
/// checkpointing: every layer's saved tensors, plus the fused loss's buffers.
pub fn training_activation_bytes(
    config: &LlamaConfig,
    dtype: DTypeSize,
    batch: u64,
    seq: u64,
) -> u64 {
    let tokens = batch * seq;
    let layers = config.num_hidden_layers as u64 * tokens * layer_bytes_per_token(config, dtype);
    layers
        + attention_tile_bytes(config, batch, seq)
        + logits_buffer_bytes(config, dtype, batch, seq)
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

/// Rows of tokens per chunk of the fused head + loss for a vocabulary of `vocab`
/// ([`crate::ops::LinearCeOptions`]'s default).
fn loss_chunk_rows(vocab: u64) -> u64 {
    let options = crate::ops::LinearCeOptions::default();
    options.chunk_rows(vocab as usize) as u64
}

/// The fused head + loss of a training step over `batch × seq` tokens
/// ([`crate::ops::linear_cross_entropy`]): the final norm's saved tensors, the f32 logits of one
/// chunk and three temporaries of its size (exponentials, probabilities, their gradient), and the
/// gradients it keeps until backward — `[tokens, hidden]` in `dtype` and `[vocab, hidden]` in f32
/// (counted here only where it is not the weight's own gradient, i.e. for non-f32 weights).
pub fn logits_buffer_bytes(config: &LlamaConfig, dtype: DTypeSize, batch: u64, seq: u64) -> u64 {
    let (h, vocab) = (config.hidden_size as u64, config.vocab_size as u64);
    let tokens = batch * seq;
    let rows = loss_chunk_rows(vocab).min(tokens.max(1));
    let chunk = 4 * rows * vocab * 4;
    let norm = tokens * h * (4 + dtype.bytes());
    let grad_hidden = tokens * h * dtype.bytes();
    let grad_weight = if dtype == DTypeSize::F32 {
        0
    } else {
        vocab * h * 4
    };
    chunk + norm + grad_hidden + grad_weight
}

/// Activations with per-layer activation checkpointing ([`crate::backward`]): each layer's input
/// (`[batch, seq, hidden]` in `dtype`) for the whole step, plus, while one layer is re-run, that
/// layer's saved tensors and the attention tiles of its backward, plus the fused loss's buffers.
pub fn checkpointed_activation_bytes(
    config: &LlamaConfig,
    dtype: DTypeSize,
    batch: u64,
    seq: u64,
) -> u64 {
    let tokens = batch * seq;
    let inputs =
        config.num_hidden_layers as u64 * tokens * config.hidden_size as u64 * dtype.bytes();
    let one_layer = tokens * layer_bytes_per_token(config, dtype);
    inputs
        + one_layer
        + attention_tile_bytes(config, batch, seq)
        + logits_buffer_bytes(config, dtype, batch, seq)
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
