//! Memory of a training step, as graft's code spends it: the one model behind `graft plan` and
//! `graft inspect`, calibrated with `graft bench memory` (see the README's table).
//!
//! A step's peak is the state (weights, optimizer) plus the largest of its phases:
//! - the fused head + loss ([`crate::ops::linear_cross_entropy`]), which makes the head's gradient
//!   and `d hidden` chunk by chunk in its forward pass;
//! - the decoder layers' backward, where the parameter gradients grow towards their full size
//!   while activations are freed (with checkpointing: one layer re-run at a time);
//! - the end of backward and the optimizer's update of one tensor at a time.
//!
//! [`MemoryEstimate::gradients`] is what the gradients take at the end of backward;
//! [`MemoryEstimate::activations`] is what the step holds at its peak beyond them.

use crate::config::LlamaConfig;
use crate::keymap::{param_keys, LayerParam, ParamKey};

use super::{param_counts, DTypeSize, MemoryEstimate};

/// What the process holds besides tensors (executable, Burn's runtime and thread pools, the
/// allocator's slack), measured with `graft bench memory` on CPU: 14 MB of RSS before the model is
/// built, and 2 MB more than the weights' bytes once it is (see the README's calibration table).
/// A CUDA context (0.5–1 GB) is not measured here and not included.
pub const RUNTIME_OVERHEAD: u64 = 16_000_000;

/// Buffers of the size of the largest trained tensor (f32; at ZeRO ≥ 1 this device's shard of
/// it) alive at once while AdamW updates it: the gradient's scaled copy, the new moments and the
/// new weight (Burn's `AdamW` replaces each tensor by a new one).
pub const OPTIMIZER_STEP_BUFFERS: u64 = 3;

/// Chunk-sized f32 buffers alive at once in the fused loss: the logits, their shifted
/// exponentials (probabilities) and the gradient `softmax − one-hot` with its masked copy.
pub const LOSS_CHUNK_BUFFERS: u64 = 4;

/// What a training step trains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trained {
    /// Every parameter, in the weights' dtype, updated through an f32 master copy when not f32.
    Full,
    /// LoRA adapters (f32) of rank `rank` on `targets`; the base weights (and head) are frozen.
    Lora { rank: u64, targets: Vec<LayerParam> },
}

/// The settings of a training step that decide its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepShape {
    /// Weights and activations.
    pub dtype: DTypeSize,
    /// AdamW moments.
    pub state_dtype: DTypeSize,
    /// Sequences per micro-batch on one device.
    pub batch: u64,
    /// Tokens per sequence.
    pub seq: u64,
    /// Micro-batches per optimizer step.
    pub grad_accum: u64,
    /// Per-layer activation checkpointing.
    pub checkpointing: bool,
    /// ZeRO stage: 0 replicated, 1 optimizer state sharded, 2 gradients too.
    pub zero_stage: u8,
    /// Data-parallel devices the shards are spread over.
    pub devices: u64,
}

impl StepShape {
    /// One device, one micro-batch of `batch × seq`, f32 moments, no checkpointing, stage 0.
    pub fn new(dtype: DTypeSize, batch: u64, seq: u64) -> Self {
        Self {
            dtype,
            state_dtype: DTypeSize::F32,
            batch,
            seq,
            grad_accum: 1,
            checkpointing: false,
            zero_stage: 0,
            devices: 1,
        }
    }

    fn tokens(&self) -> u64 {
        self.batch * self.seq
    }

    /// Devices the optimizer state is split over (1 at stage 0).
    fn optimizer_shards(&self) -> u64 {
        if self.zero_stage >= 1 {
            self.devices.max(1)
        } else {
            1
        }
    }

    /// Devices the gradient sums are split over (1 below stage 2).
    fn gradient_shards(&self) -> u64 {
        if self.zero_stage >= 2 {
            self.devices.max(1)
        } else {
            1
        }
    }
}

/// Per-device memory of one training step of a model of `config`.
pub fn training_memory(config: &LlamaConfig, trained: &Trained, s: &StepShape) -> MemoryEstimate {
    let params = param_counts(config).total();
    let (trainable, grad_dtype, largest) = match trained {
        Trained::Full => (params, s.dtype, largest_param(config)),
        Trained::Lora { rank, targets } => (
            lora_param_count(config, *rank, targets),
            DTypeSize::F32,
            largest_adapter(config, *rank, targets),
        ),
    };
    let grads = GradientBytes::new(trainable, grad_dtype, largest, s);
    let head_trained = matches!(trained, Trained::Full);
    let loss = loss_buffer_bytes(config, s.dtype, s.tokens(), head_trained);
    let activations = activation_peak(config, s, loss, grads.this_backward);
    // the update runs after backward has freed the activations: only its excess counts
    let optimizer_step = (OPTIMIZER_STEP_BUFFERS * largest * 4).div_ceil(s.optimizer_shards());
    MemoryEstimate {
        weights: params * s.dtype.bytes(),
        adapters: if head_trained { 0 } else { trainable * 4 },
        gradients: grads.total,
        optimizer: adamw_state_bytes(trainable, grad_dtype, s.state_dtype)
            .div_ceil(s.optimizer_shards()),
        kv_cache: 0,
        activations,
        overhead: RUNTIME_OVERHEAD + optimizer_step.saturating_sub(activations),
    }
}

/// The gradients of a step on one device.
struct GradientBytes {
    /// At the end of the last micro-batch's backward.
    total: u64,
    /// Made by one backward pass (freed or folded into the f32 sums after it).
    this_backward: u64,
}

impl GradientBytes {
    /// Each micro-batch's gradients arrive in `dtype` and are summed in f32
    /// (`graft_train::grad_accum`); with one micro-batch and no sharding the f32 gradients are
    /// the sums. At ZeRO-2 each device keeps its 1/N of the f32 sums, plus one f32 bucket (the
    /// largest tensor) being reduce-scattered.
    fn new(trainable: u64, dtype: DTypeSize, largest: u64, s: &StepShape) -> Self {
        let shards = s.gradient_shards();
        let mut sums = (trainable * 4).div_ceil(shards);
        if shards > 1 {
            sums += largest * 4;
        }
        let separate = s.grad_accum > 1 || shards > 1;
        let micro = trainable * dtype.bytes();
        if separate {
            Self {
                total: sums + micro,
                this_backward: micro,
            }
        } else {
            Self {
                total: sums.max(micro),
                this_backward: sums.max(micro),
            }
        }
    }
}

/// What a step holds at its peak beyond the gradients: the saved activations (all layers', or
/// with checkpointing each layer's input) plus the larger of the fused loss's buffers (while
/// this backward's gradients do not exist yet) and the backward's per-layer peak (when they
/// nearly all do).
fn activation_peak(config: &LlamaConfig, s: &StepShape, loss: u64, this_backward: u64) -> u64 {
    let (base, per_layer) = activation_parts(config, s);
    base + loss.max(this_backward + per_layer) - this_backward
}

/// (held through the step, extra while one layer's backward runs).
fn activation_parts(config: &LlamaConfig, s: &StepShape) -> (u64, u64) {
    let tokens = s.tokens();
    let layers = config.num_hidden_layers as u64;
    let tiles = attention_tile_bytes(config, s.batch, s.seq);
    let one_layer = tokens * layer_bytes_per_token(config, s.dtype);
    if s.checkpointing {
        let inputs = layers * tokens * config.hidden_size as u64 * s.dtype.bytes();
        (inputs, one_layer + tiles)
    } else {
        (layers * one_layer, tiles)
    }
}

/// The f32 buffers of one attention tile pair (scores, probabilities and, in backward, their
/// gradients): four `[batch, heads, tile, tile]` tensors.
pub fn attention_tile_bytes(config: &LlamaConfig, batch: u64, seq: u64) -> u64 {
    let tile = (crate::ops::flash::DEFAULT_TILE as u64).min(seq);
    4 * batch * config.num_attention_heads as u64 * tile * tile * 4
}

/// Bytes one decoder layer keeps per token for its backward pass under autodiff (what the ops
/// of `DecoderLayer::forward` save): each RMSNorm's input and output and one f32 `rstd`
/// ([`crate::ops::rms_norm`]), q/k/v, their rotated halves and RoPE outputs, the attention output
/// (written seq-major, so `o_proj`'s input is a view of it) and one f32 log-sum-exp per head, and
/// the MLP's gate, up and product ([`crate::ops::swiglu`] keeps only its inputs).
pub fn layer_bytes_per_token(config: &LlamaConfig, dtype: DTypeSize) -> u64 {
    let c = config;
    let q = (c.num_attention_heads * c.head_dim) as u64;
    let kv = (c.num_key_value_heads * c.head_dim) as u64;
    let (h, i) = (c.hidden_size as u64, c.intermediate_size as u64);
    let elems = 4 * h + 4 * q + 4 * kv + 3 * i;
    let rstd = 2 * 4;
    elems * dtype.bytes() + rstd + c.num_attention_heads as u64 * 4
}

/// Activations of a training step over `batch × seq` tokens without checkpointing (full
/// training, one micro-batch): every layer's saved tensors and the fused loss's buffers.
pub fn training_activation_bytes(
    config: &LlamaConfig,
    dtype: DTypeSize,
    batch: u64,
    seq: u64,
) -> u64 {
    training_memory(config, &Trained::Full, &StepShape::new(dtype, batch, seq)).activations
}

/// [`training_activation_bytes`] with per-layer activation checkpointing ([`crate::backward`]).
pub fn checkpointed_activation_bytes(
    config: &LlamaConfig,
    dtype: DTypeSize,
    batch: u64,
    seq: u64,
) -> u64 {
    let shape = StepShape {
        checkpointing: true,
        ..StepShape::new(dtype, batch, seq)
    };
    training_memory(config, &Trained::Full, &shape).activations
}

/// Full fine-tuning with AdamW and mixed precision, one micro-batch, no checkpointing.
pub fn full_training_memory(
    config: &LlamaConfig,
    dtype: DTypeSize,
    batch: u64,
    seq: u64,
) -> MemoryEstimate {
    training_memory(config, &Trained::Full, &StepShape::new(dtype, batch, seq))
}

/// Number of LoRA adapter parameters: `rank · (in + out)` for each targeted projection of
/// every layer.
pub fn lora_param_count(config: &LlamaConfig, rank: u64, targets: &[LayerParam]) -> u64 {
    let per_layer: u64 = targets
        .iter()
        .filter_map(|p| {
            let shape = ParamKey::Layer(0, *p).shape(config);
            (shape.len() == 2).then(|| rank * (shape[0] + shape[1]) as u64)
        })
        .sum();
    per_layer * config.num_hidden_layers as u64
}

/// LoRA training, one micro-batch, no checkpointing: frozen `dtype` weights, f32 adapters with
/// f32 gradients and two AdamW moments.
pub fn lora_memory(
    config: &LlamaConfig,
    dtype: DTypeSize,
    rank: u64,
    targets: &[LayerParam],
    batch: u64,
    seq: u64,
) -> MemoryEstimate {
    let trained = Trained::Lora {
        rank,
        targets: targets.to_vec(),
    };
    training_memory(config, &trained, &StepShape::new(dtype, batch, seq))
}

/// Elements of the largest parameter tensor (the embedding, for Llama-3).
fn largest_param(config: &LlamaConfig) -> u64 {
    param_keys(config)
        .iter()
        .map(|k| k.shape(config).iter().map(|&d| d as u64).product())
        .max()
        .unwrap_or(0)
}

/// Elements of the largest LoRA adapter matrix (`rank × max(in, out)`).
fn largest_adapter(config: &LlamaConfig, rank: u64, targets: &[LayerParam]) -> u64 {
    targets
        .iter()
        .map(|p| {
            let shape = ParamKey::Layer(0, *p).shape(config);
            rank * shape.iter().copied().max().unwrap_or(0) as u64
        })
        .max()
        .unwrap_or(0)
}

/// Rows of tokens per chunk of the fused head + loss for a vocabulary of `vocab`
/// ([`crate::ops::LinearCeOptions`]'s default).
fn loss_chunk_rows(vocab: u64) -> u64 {
    let options = crate::ops::LinearCeOptions::default();
    options.chunk_rows(vocab as usize) as u64
}

/// The fused head + loss of a training step over `batch × seq` tokens with a trained head
/// (see [`loss_buffer_bytes`]).
pub fn logits_buffer_bytes(config: &LlamaConfig, dtype: DTypeSize, batch: u64, seq: u64) -> u64 {
    loss_buffer_bytes(config, dtype, batch * seq, true)
}

/// The fused head + loss ([`crate::ops::linear_cross_entropy`]) at its peak: the final norm's
/// saved tensors (f32 + `dtype`), [`LOSS_CHUNK_BUFFERS`] f32 chunks of logits, `d hidden`
/// (`[tokens, hidden]` in `dtype`, its chunks and their concatenation) and, when the head is
/// trained, its f32 gradient being summed over chunks (the sum and one chunk's term) and, for
/// non-f32 weights, its copy in the weights' dtype.
pub fn loss_buffer_bytes(
    config: &LlamaConfig,
    dtype: DTypeSize,
    tokens: u64,
    head_trained: bool,
) -> u64 {
    let (h, vocab) = (config.hidden_size as u64, config.vocab_size as u64);
    let rows = loss_chunk_rows(vocab).min(tokens.max(1));
    let chunk = LOSS_CHUNK_BUFFERS * rows * vocab * 4;
    let norm = tokens * h * (4 + dtype.bytes());
    let grad_hidden = 2 * tokens * h * dtype.bytes();
    let grad_head = if head_trained {
        let cast = if dtype == DTypeSize::F32 {
            0
        } else {
            dtype.bytes()
        };
        vocab * h * (2 * 4 + cast)
    } else {
        0
    };
    chunk + norm + grad_hidden + grad_head
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
