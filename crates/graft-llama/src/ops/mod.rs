//! Fused training ops whose memory does not grow with `seq²` or `tokens × vocab`:
//!
//! - [`flash_attention`]: causal (optionally sliding-window) attention tiled over queries and keys
//!   with an online softmax, as FlashAttention-2. Forward keeps the output and one log-sum-exp per
//!   query row; backward recomputes each tile's probabilities from them.
//! - [`linear_cross_entropy`]: the LM head and the next-token loss over chunks of tokens, as Liger
//!   Kernel's fused linear cross-entropy: no `[tokens, vocab]` buffer for all tokens at once, in
//!   forward or backward.
//!
//! Both are methods of [`FusedOps`], a Burn backend extension trait (the pattern of Burn's
//! `custom-wgpu-kernel` example). Plain backends get the tiled forward written with tensor ops
//! (default methods); `Autodiff<B, C>` overrides them with custom backward steps
//! ([`autodiff`]), so nothing of size `seq × seq` or `tokens × vocab` is kept for backward.

mod autodiff;
mod cpu_ce;
pub mod flash;
pub mod linear_ce;

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
        let [q, k, v] = [q, k, v].map(float::<Self, 4>);
        flash::forward(q, k, v, &options)
            .0
            .into_primitive()
            .tensor()
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
