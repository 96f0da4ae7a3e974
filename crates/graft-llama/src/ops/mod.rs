//! Fused training ops whose memory does not grow with `seq²` or `tokens × vocab`:
//!
//! - [`flash_attention`]: causal (optionally sliding-window) attention tiled over queries and keys
//!   with an online softmax, as FlashAttention-2. Forward keeps the output and one log-sum-exp per
//!   query row; backward recomputes each tile's probabilities from them.
//! - [`linear_cross_entropy`]: the LM head and the next-token loss over chunks of tokens, as Liger
//!   Kernel's fused linear cross-entropy: no `[tokens, vocab]` buffer for all tokens at once, in
//!   forward or backward.
//! - [`rms_norm`] and [`swiglu`]: single ops with their own backward (Liger Kernel's fused RMSNorm
//!   and SwiGLU) that keep only their inputs, instead of a chain of elementwise tensors.
//!
//! All are methods of [`FusedOps`], a Burn backend extension trait (the pattern of Burn's
//! `custom-wgpu-kernel` example). Plain backends get versions written with tensor ops (default
//! methods: [`flash`], [`linear_ce`], [`rows`]); `Autodiff<B, C>` overrides them with custom
//! backward steps (`autodiff.rs`), so nothing of size `seq × seq` or `tokens × vocab` is kept for
//! backward. The CPU backend overrides the compute with kernels on f32 slices (`cpu.rs`).

mod autodiff;
mod cpu;
mod cpu_ce;
mod cpu_flash;
mod cpu_rows;
pub mod flash;
pub mod linear_ce;
pub mod rows;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{Int, Tensor, TensorPrimitive};

pub use flash::FlashOptions;
pub use linear_ce::{GradsWanted, LinearCeOptions};

/// A Burn backend with graft's fused training ops. Implemented for the backends graft runs on
/// (Flex, CUDA) and for `Autodiff` over any of them.
pub trait FusedOps: Backend {
    /// Causal attention without a `seq × seq` buffer; see [`flash_attention`].
    fn flash_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        options: FlashOptions,
    ) -> FloatTensor<Self> {
        Self::flash_attention_with_lse(q, k, v, options).0
    }

    /// The forward pass of [`flash_attention`] and what its backward needs besides the inputs:
    /// the output and the per-row log-sum-exp of the scaled scores. The default is the tensor-op
    /// version ([`flash::forward`]); the CPU backend overrides it with a kernel on f32 slices.
    ///
    /// # Shapes
    /// - `q`: `[batch, heads, seq, head_dim]`; `k`, `v`: `[batch, kv_heads, seq, head_dim]`
    /// - output: `([batch, heads, seq, head_dim], [batch, kv_heads, heads / kv_heads, seq])`
    fn flash_attention_with_lse(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        options: FlashOptions,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        flash::forward_primitive::<Self>([q, k, v], &options)
    }

    /// Gradients of `q`, `k`, `v` from the output's gradient `grad`, recomputing the
    /// probabilities from the log-sum-exp of [`FusedOps::flash_attention_with_lse`]; shapes as
    /// there. The default is the tensor-op version ([`flash::backward`]).
    fn flash_attention_backward(
        qkv: [FloatTensor<Self>; 3],
        out: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: FlashOptions,
    ) -> [FloatTensor<Self>; 3] {
        flash::backward_primitive::<Self>(qkv, out, lse, grad, &options)
    }

    /// Summed next-token cross-entropy of `hidden · weightᵀ` over chunks of tokens; see
    /// [`linear_cross_entropy`].
    fn linear_cross_entropy(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
        options: LinearCeOptions,
    ) -> FloatTensor<Self> {
        let targets = Tensor::<Self, 1, Int>::from_primitive(targets);
        linear_ce::forward(
            float::<Self, 2>(hidden),
            float::<Self, 2>(weight),
            targets,
            &options,
            GradsWanted::default(),
        )
        .loss
        .into_primitive()
        .tensor()
    }

    /// RMSNorm over the last axis of `[rows, d]` as one op; see [`rms_norm`].
    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        Self::rms_norm_forward(x, weight, eps).0
    }

    /// [`rows::rms_norm_forward`]: the output and `rstd` (`[rows, 1]`, f32).
    fn rms_norm_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        rows::rms_norm_forward_primitive::<Self>(x, weight, eps)
    }

    /// [`rows::rms_norm_backward`]: `(d x, d weight)`.
    fn rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        dy: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        rows::rms_norm_backward_primitive::<Self>(x, weight, rstd, dy)
    }

    /// `silu(gate) · up` as one op; see [`swiglu`].
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        rows::swiglu_forward_primitive::<Self>(gate, up)
    }

    /// [`rows::swiglu_backward`]: `(d gate, d up)`.
    fn swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        dh: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        rows::swiglu_backward_primitive::<Self>(gate, up, dh)
    }

    /// Per-row cross-entropy of a chunk of logits and, with `grad`, its gradient; see
    /// [`linear_ce::cross_entropy_rows`] (the default). The CPU backend overrides it with one
    /// parallel pass per row (`cpu_ce.rs`).
    ///
    /// # Shapes
    /// - `logits`: `[rows, vocab]` (f32); `targets`: `[rows]`
    /// - output: `([rows], [rows, vocab])`, f32
    fn cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        ignore_index: i64,
        grad: bool,
    ) -> (FloatTensor<Self>, Option<FloatTensor<Self>>) {
        linear_ce::cross_entropy_rows_primitive::<Self>(logits, targets, ignore_index, grad)
    }
}

/// A training backend: autodiff over a compute backend, both with graft's fused ops.
pub trait TrainBackend: FusedOps + AutodiffBackend<InnerBackend: FusedOps> {}

impl<B: FusedOps + AutodiffBackend<InnerBackend: FusedOps>> TrainBackend for B {}

/// A float primitive as a tensor of rank `D`.
pub(crate) fn float<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// `softmax(q·kᵀ·scale + causal mask)·v` with grouped-query heads (query head `h` reads key/value
/// head `h / (heads / kv_heads)`, as HF's `repeat_kv`, without repeating them), tiled so that no
/// `seq × seq` tensor per head outlives a tile. Differentiable on `Autodiff` backends.
///
/// # Shapes
/// - `q`: `[batch, heads, seq, head_dim]`
/// - `k`, `v`: `[batch, kv_heads, seq, head_dim]`
/// - output: `[batch, heads, seq, head_dim]`
pub fn flash_attention<B: FusedOps>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    options: FlashOptions,
) -> Tensor<B, 4> {
    let [q, k, v] = [q, k, v].map(|t| t.into_primitive().tensor());
    float(B::flash_attention(q, k, v, options))
}

/// `x · rsqrt(mean(x²) + eps) · weight` over the last axis (HF `LlamaRMSNorm`: normalized in
/// f32, cast to `x`'s dtype, then weighted), as one differentiable op that keeps only `x` and one
/// f32 `rstd` per row for backward.
///
/// # Shapes
/// - `x`: `[..., d]`; `weight`: `[d]`
/// - output: `[..., d]`
pub fn rms_norm<B: FusedOps, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, D> {
    let shape = x.shape();
    let [d] = weight.dims();
    let x = x.reshape([shape.num_elements() / d.max(1), d]);
    let y = B::rms_norm(
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        eps,
    );
    float::<B, 2>(y).reshape(shape)
}

/// `silu(gate) · up` (Llama's SwiGLU), as one differentiable op that keeps only its inputs.
///
/// # Shapes
/// - `gate`, `up`: `[rows, d]`
/// - output: `[rows, d]`
pub fn swiglu<B: FusedOps>(gate: Tensor<B, 2>, up: Tensor<B, 2>) -> Tensor<B, 2> {
    float(B::swiglu(
        gate.into_primitive().tensor(),
        up.into_primitive().tensor(),
    ))
}

/// Sum over the non-ignored targets of `-log softmax(hidden · weightᵀ)[target]`, computed over
/// chunks of rows (tokens) so that at most `chunk × vocab` logits exist at once. Differentiable on
/// `Autodiff` backends with respect to `hidden` and `weight` (a tied embedding gets this gradient
/// added to its embedding gradient).
///
/// # Shapes
/// - `hidden`: `[tokens, hidden]`
/// - `weight`: `[vocab, hidden]` (HF layout of `lm_head.weight` / `embed_tokens.weight`)
/// - `targets`: `[tokens]`, `options.ignore_index` where no target
/// - output: `[1]` (f32)
pub fn linear_cross_entropy<B: FusedOps>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    options: LinearCeOptions,
) -> Tensor<B, 1> {
    float(B::linear_cross_entropy(
        hidden.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        targets.into_primitive(),
        options,
    ))
}

#[cfg(feature = "cuda")]
impl FusedOps for burn::backend::Cuda<half::bf16, i32> {}

#[cfg(feature = "cuda")]
impl FusedOps for burn::backend::Cuda<f32, i32> {}
