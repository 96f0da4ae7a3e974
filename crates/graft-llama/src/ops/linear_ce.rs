//! The LM head and next-token cross-entropy over chunks of tokens (Liger Kernel's fused linear
//! cross-entropy): each chunk's `[chunk, vocab]` logits are made, reduced to the loss and, when
//! gradients are wanted, turned at once into that chunk's gradients (`softmax − one-hot`), then
//! dropped. Nothing `[tokens, vocab]` is ever whole.

use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{DType, IndexingUpdateOp, Int, Tensor};

use super::{float, FusedOps};

/// How [`forward`] chunks and what it ignores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearCeOptions {
    /// Targets equal to this are skipped (HF: −100).
    pub ignore_index: i64,
    /// Upper bound on the logits of one chunk, in elements (`chunk rows × vocab`).
    pub chunk_elements: usize,
}

impl Default for LinearCeOptions {
    /// HF's ignore index and 32 Mi logits (128 MiB in f32) per chunk: 256 tokens of Llama-3's
    /// 128,256-token vocabulary.
    fn default() -> Self {
        Self {
            ignore_index: crate::loss::IGNORE_INDEX,
            chunk_elements: 32 << 20,
        }
    }
}

impl LinearCeOptions {
    /// Rows per chunk for a vocabulary of `vocab` (at least 1).
    pub fn chunk_rows(&self, vocab: usize) -> usize {
        (self.chunk_elements / vocab.max(1)).max(1)
    }
}

/// Which gradients [`forward`] makes: a frozen head (LoRA) or a constant input costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GradsWanted {
    /// d loss / d hidden.
    pub hidden: bool,
    /// d loss / d weight.
    pub weight: bool,
}

impl GradsWanted {
    /// True if any gradient is wanted.
    pub fn any(&self) -> bool {
        self.hidden || self.weight
    }
}

/// What [`forward`] returns: the summed loss and, when asked for, the gradients of that sum.
pub struct LinearCe<B: Backend> {
    /// `[1]`, f32.
    pub loss: Tensor<B, 1>,
    /// d loss / d hidden, `[tokens, hidden]` in `hidden`'s dtype, if wanted.
    pub grad_hidden: Option<Tensor<B, 2>>,
    /// d loss / d weight, `[vocab, hidden]`, f32, if wanted.
    pub grad_weight: Option<Tensor<B, 2>>,
}

/// Summed cross-entropy of `hidden · weightᵀ` against `targets`, chunk by chunk; also the
/// gradients in `grads`, made from each chunk's probabilities while they exist.
///
/// # Shapes
/// - `hidden`: `[tokens, hidden]`; `weight`: `[vocab, hidden]`; `targets`: `[tokens]`
pub fn forward<B: FusedOps>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    options: &LinearCeOptions,
    grads: GradsWanted,
) -> LinearCe<B> {
    let [tokens, _] = hidden.dims();
    let [vocab, width] = weight.dims();
    let device = hidden.device();
    let rows = options.chunk_rows(vocab);
    let mut loss = Tensor::<B, 1>::zeros([1], &device).cast(DType::F32);
    let mut grad_hidden = Vec::new();
    let mut grad_weight: Option<Tensor<B, 2>> = None;
    let dtype = hidden.dtype();
    let weight_t = weight.clone().transpose();
    for start in (0..tokens).step_by(rows) {
        let n = rows.min(tokens - start);
        let h = hidden.clone().narrow(0, start, n);
        let t = targets.clone().narrow(0, start, n);
        let logits = h.clone().matmul(weight_t.clone()).cast(DType::F32);
        let (rows_loss, g) = B::cross_entropy_rows(
            logits.into_primitive().tensor(),
            t.into_primitive(),
            options.ignore_index,
            grads.any(),
        );
        loss = loss + float::<B, 1>(rows_loss).sum();
        let Some(g) = g else { continue };
        let g = float::<B, 2>(g).cast(dtype);
        if grads.hidden {
            grad_hidden.push(g.clone().matmul(weight.clone()));
        }
        if grads.weight {
            // dW = gᵀ · h, made in the weight's own `[vocab, hidden]` layout (the strided gemm
            // reads `gᵀ` in place), so neither this sum nor the backward's scaling copies it
            let gw = g.transpose().matmul(h).cast(DType::F32);
            grad_weight = Some(match grad_weight {
                Some(acc) => acc + gw,
                None => gw,
            });
        }
    }
    let grad_hidden = grads.hidden.then(|| {
        if grad_hidden.is_empty() {
            Tensor::<B, 2>::zeros([0, width], &device).cast(dtype)
        } else {
            Tensor::cat(grad_hidden, 0)
        }
    });
    let grad_weight = grads.weight.then(|| match grad_weight {
        Some(grad) => grad,
        None => Tensor::<B, 2>::zeros([vocab, width], &device).cast(DType::F32),
    });
    LinearCe {
        loss,
        grad_hidden,
        grad_weight,
    }
}

/// Cross-entropy of each row of `logits` against its target, and with `grad` the gradient of
/// their sum (`softmax − one-hot`); an ignored row has loss 0 and a zero gradient. Tensor ops, for
/// any backend: [`FusedOps::cross_entropy_rows`]'s default.
///
/// # Shapes
/// - `logits`: `[rows, vocab]` (f32); `targets`: `[rows]`
/// - output: `([rows], [rows, vocab])`, f32
pub fn cross_entropy_rows<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    ignore_index: i64,
    grad: bool,
) -> (Tensor<B, 1>, Option<Tensor<B, 2>>) {
    let [n, _] = logits.dims();
    let t = targets.reshape([n, 1]);
    let ignored = t.clone().equal_elem(ignore_index);
    let t = t.mask_fill(ignored.clone(), 0);
    let max = logits.clone().max_dim(1);
    let picked = logits.clone().gather(1, t.clone());
    // one exp pass: `e` gives both the log-sum-exp and (scaled) the softmax
    let e = (logits - max.clone()).exp();
    let sum = e.clone().sum_dim(1);
    let lse = sum.clone().log() + max;
    let loss = (lse - picked).mask_fill(ignored.clone(), 0.0).reshape([n]);
    let grad = grad.then(|| {
        // e · (keep / sum), then −keep at the target: the `[n, 1]` factors keep the
        // `[n, vocab]` passes to one multiply
        let keep = ignored.bool_not().float().cast(DType::F32);
        (e * (keep.clone() / sum)).scatter(1, t, keep.neg(), IndexingUpdateOp::Add)
    });
    (loss, grad)
}

/// [`cross_entropy_rows`] on backend primitives (the shape of [`FusedOps::cross_entropy_rows`]).
pub(crate) fn cross_entropy_rows_primitive<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
    ignore_index: i64,
    grad: bool,
) -> (FloatTensor<B>, Option<FloatTensor<B>>) {
    let (loss, g) = cross_entropy_rows(
        float::<B, 2>(logits),
        Tensor::<B, 1, Int>::from_primitive(targets),
        ignore_index,
        grad,
    );
    let primitive = |g: Tensor<B, 2>| g.into_primitive().tensor();
    (loss.into_primitive().tensor(), g.map(primitive))
}
