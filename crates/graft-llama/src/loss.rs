//! Next-token cross-entropy with HF `LlamaForCausalLM` semantics.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor};

use crate::model::Llama;
use crate::ops::{linear_cross_entropy, FusedOps, LinearCeOptions};

/// HF's label value for "no target here".
pub const IGNORE_INDEX: i64 = -100;

/// Sum of next-token cross-entropies and the number of targets that entered it:
/// `logits[:, t]` predicts `labels[:, t + 1]`; targets equal to `ignore_index` are skipped.
/// Log-softmax runs in f32 with the max subtracted. Useful for token-weighted gradient
/// accumulation.
///
/// # Shapes
/// - `logits`: `[batch, seq, vocab]`
/// - `labels`: `[batch, seq]` (the input tokens themselves, or labels with ignored positions)
/// - output: `([1], [1])` — summed loss and target count, as floats
pub fn causal_lm_loss_sum<B: Backend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
    ignore_index: i64,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let [batch, seq, vocab] = logits.dims();
    let n = batch * seq.saturating_sub(1);
    if n == 0 {
        let device = logits.device();
        return (Tensor::zeros([1], &device), Tensor::zeros([1], &device));
    }
    let logits = logits
        .narrow(1, 0, seq - 1)
        .reshape([n, vocab])
        .cast(DType::F32);
    let targets = labels.narrow(1, 1, seq - 1).reshape([n, 1]);
    let ignored = targets.clone().equal_elem(ignore_index);
    let safe_targets = targets.mask_fill(ignored.clone(), 0);
    let log_probs = log_softmax(logits, 1);
    let picked = log_probs
        .gather(1, safe_targets)
        .mask_fill(ignored.clone(), 0.0);
    // f32 so counts above 256 stay exact on bf16 backends.
    let count = ignored.bool_not().float().cast(DType::F32).sum();
    (picked.sum().neg(), count)
}

/// Mean next-token cross-entropy over the non-ignored targets, as HF computes it
/// (`cross_entropy(logits[:, :-1], labels[:, 1:], ignore_index)`). When every target is ignored
/// the loss is 0 (HF returns NaN), so an all-padding micro-batch adds nothing to training.
///
/// # Shapes
/// - `logits`: `[batch, seq, vocab]`
/// - `labels`: `[batch, seq]`
/// - output: `[1]`
pub fn causal_lm_loss<B: Backend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
    ignore_index: i64,
) -> Tensor<B, 1> {
    let (sum, count) = causal_lm_loss_sum(logits, labels, ignore_index);
    sum / count.clamp_min(1.0)
}

impl<B: FusedOps> Llama<B> {
    /// Summed next-token cross-entropy of the model on `tokens` against `labels` and the number of
    /// targets, through the fused chunked head + loss ([`linear_cross_entropy`]): no
    /// `[tokens, vocab]` logits exist at once, in forward or backward. Same semantics as
    /// [`causal_lm_loss_sum`] on [`Llama::forward`]'s logits.
    ///
    /// # Shapes
    /// - `tokens`, `labels`: `[batch, seq]`
    /// - output: `([1], [1])` — summed loss and target count (f32)
    pub fn loss_sum(
        &self,
        tokens: Tensor<B, 2, Int>,
        labels: Tensor<B, 2, Int>,
        ignore_index: i64,
    ) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let hidden = self.hidden_states(tokens, None);
        self.head_loss_sum(hidden, labels, ignore_index)
    }

    /// Mean next-token cross-entropy over the non-ignored targets (0 when there are none), as
    /// [`causal_lm_loss`] computes it from logits, through the fused head + loss.
    ///
    /// # Shapes
    /// - `tokens`, `labels`: `[batch, seq]`
    /// - output: `[1]`
    pub fn loss(
        &self,
        tokens: Tensor<B, 2, Int>,
        labels: Tensor<B, 2, Int>,
        ignore_index: i64,
    ) -> Tensor<B, 1> {
        let (sum, count) = self.loss_sum(tokens, labels, ignore_index);
        sum / count.clamp_min(1.0)
    }

    /// The fused head + loss from final hidden states (after the last norm): `hidden[:, t]`
    /// predicts `labels[:, t + 1]`. A head with a LoRA adapter goes through its logits.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`; `labels`: `[batch, seq]`
    /// - output: `([1], [1])` — summed loss and target count (f32)
    pub fn head_loss_sum(
        &self,
        hidden: Tensor<B, 3>,
        labels: Tensor<B, 2, Int>,
        ignore_index: i64,
    ) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let weight = match &self.lm_head {
            None => self.embed_tokens.val(),
            Some(head) if head.lora.is_none() => head.weight.val(),
            Some(_) => return causal_lm_loss_sum(self.head(hidden), labels, ignore_index),
        };
        let [batch, seq, width] = hidden.dims();
        let n = batch * seq.saturating_sub(1);
        let device = hidden.device();
        if n == 0 {
            return (Tensor::zeros([1], &device), Tensor::zeros([1], &device));
        }
        let hidden = hidden.narrow(1, 0, seq - 1).reshape([n, width]);
        let targets = labels.narrow(1, 1, seq - 1).reshape([n]);
        // f32 so counts above 256 stay exact on bf16 backends.
        let count = targets
            .clone()
            .equal_elem(ignore_index)
            .bool_not()
            .float()
            .cast(DType::F32)
            .sum();
        let options = LinearCeOptions {
            ignore_index,
            ..Default::default()
        };
        (
            linear_cross_entropy(hidden, weight, targets, options),
            count,
        )
    }
}
