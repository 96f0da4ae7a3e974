//! The LM head and next-token cross-entropy over chunks of tokens (Liger Kernel's fused linear
//! cross-entropy): each chunk's `[chunk, vocab]` logits are made, reduced to the loss and, when
//! gradients are wanted, turned at once into that chunk's gradients (`softmax − one-hot`), then
//! dropped. Nothing `[tokens, vocab]` is ever whole.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, IndexingUpdateOp, Int, Tensor};

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

/// Which gradients [`forward`] makes (a frozen head needs no `[vocab, hidden]` gradient).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// d loss / d hidden.
    pub hidden: bool,
    /// d loss / d weight.
    pub weight: bool,
}

impl Wanted {
    /// The loss only (inference, evaluation).
    pub const NONE: Self = Self {
        hidden: false,
        weight: false,
    };
    /// Both gradients.
    pub const ALL: Self = Self {
        hidden: true,
        weight: true,
    };
}

/// What [`forward`] returns: the summed loss and, when asked for, the gradients of that sum.
pub struct LinearCe<B: Backend> {
    /// `[1]`, f32.
    pub loss: Tensor<B, 1>,
    /// d loss / d hidden, `[tokens, hidden]` in `hidden`'s dtype (when wanted).
    pub grad_hidden: Option<Tensor<B, 2>>,
    /// d loss / d weight, `[vocab, hidden]`, f32 (when wanted).
    pub grad_weight: Option<Tensor<B, 2>>,
}

/// Summed cross-entropy of `hidden · weightᵀ` against `targets`, chunk by chunk; also the
/// gradients `grads` asks for, made from each chunk's probabilities while they exist.
///
/// # Shapes
/// - `hidden`: `[tokens, hidden]`; `weight`: `[vocab, hidden]`; `targets`: `[tokens]`
pub fn forward<B: Backend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    options: &LinearCeOptions,
    grads: Wanted,
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
        let t = targets.clone().narrow(0, start, n).reshape([n, 1]);
        let ignored = t.clone().equal_elem(options.ignore_index);
        let t = t.mask_fill(ignored.clone(), 0);
        let logits = h.clone().matmul(weight_t.clone()).cast(DType::F32);
        let max = logits.clone().max_dim(1);
        let lse = (logits.clone() - max.clone()).exp().sum_dim(1).log() + max;
        let picked = logits.clone().gather(1, t.clone());
        loss = loss + (lse.clone() - picked).mask_fill(ignored.clone(), 0.0).sum();
        if grads == Wanted::NONE {
            continue;
        }
        // d/d logits = softmax − one-hot, zero on ignored rows
        let keep = ignored.bool_not().float().cast(DType::F32);
        let minus_one = Tensor::<B, 2>::full([n, 1], -1.0, &device).cast(DType::F32);
        let g = ((logits - lse)
            .exp()
            .scatter(1, t, minus_one, IndexingUpdateOp::Add)
            * keep)
            .cast(dtype);
        if grads.hidden {
            grad_hidden.push(g.clone().matmul(weight.clone()));
        }
        if grads.weight {
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
    let grad_weight = grads.weight.then(|| {
        grad_weight
            .unwrap_or_else(|| Tensor::<B, 2>::zeros([vocab, width], &device).cast(DType::F32))
    });
    LinearCe {
        loss,
        grad_hidden,
        grad_weight,
    }
}
