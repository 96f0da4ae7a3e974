//! One micro-batch's loss and parameter gradients, with or without activation checkpointing.
//!
//! Checkpointing is torchtitan's "full AC", per decoder layer: the forward pass runs without a
//! graph and keeps only each layer's input (`[batch, seq, hidden]`); the backward pass walks the
//! layers from the top, re-running one layer at a time under autodiff from its saved input and
//! back-propagating the gradient of its output through it. At any moment the graph of one layer
//! (or of the final norm + fused head and loss) exists, so activation memory is
//! `layers × tokens × hidden` plus one layer's intermediates.
//!
//! LoRA dropout draws the same masks in both passes of a layer: this thread's dropout stream
//! ([`crate::lora::seed_dropout`]) is reseeded from `(seed, layer)` before each.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::module::embedding;
use burn::tensor::{Int, Tensor};

use crate::attention::Positions;
use crate::model::Llama;
use crate::ops::TrainBackend;

/// What [`loss_and_grads`] does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackwardOptions {
    /// Multiplies the mean loss before differentiation (`1 / grad_accum`).
    pub scale: f64,
    /// Labels equal to this are not targets.
    pub ignore_index: i64,
    /// Per-layer activation checkpointing.
    pub checkpointing: bool,
    /// Seeds this thread's LoRA dropout stream ([`crate::lora::seed_dropout`]): once, or per
    /// layer with checkpointing, so that dropout draws the same masks when a layer is re-run.
    pub seed: u64,
}

/// The scaled mean next-token loss of `tokens` against `labels` and the gradients of every
/// trainable parameter of `model`.
///
/// # Shapes
/// - `tokens`, `labels`: `[batch, seq]`
/// - output: the loss, `[1]`
pub fn loss_and_grads<B: TrainBackend>(
    model: &Llama<B>,
    tokens: Tensor<B, 2, Int>,
    labels: Tensor<B, 2, Int>,
    options: &BackwardOptions,
) -> (Tensor<B::InnerBackend, 1>, GradientsParams) {
    if !options.checkpointing {
        crate::lora::seed_dropout(options.seed);
        let (sum, count) = model.loss_sum(tokens, labels, options.ignore_index);
        let loss = sum / count.clamp_min(1.0) * options.scale;
        let grads = GradientsParams::from_grads(loss.backward(), model);
        return (loss.inner(), grads);
    }
    checkpointed(model, tokens, labels, options)
}

fn checkpointed<B: TrainBackend>(
    model: &Llama<B>,
    tokens: Tensor<B, 2, Int>,
    labels: Tensor<B, 2, Int>,
    options: &BackwardOptions,
) -> (Tensor<B::InnerBackend, 1>, GradientsParams) {
    let [_, seq] = tokens.dims();
    let device = tokens.device();
    let c = model.config();
    let heads = [c.num_attention_heads, c.num_key_value_heads];
    let pos = Positions::new(&model.rope, 0, seq, heads, false, c.sliding_window, &device);
    let reseed = |layer: usize| crate::lora::seed_dropout(layer_seed(options.seed, layer));

    // Forward without a graph (every parameter detached), keeping each layer's input.
    let frozen = model.clone().no_grad();
    let mut x = embedding(frozen.embed_tokens.val(), tokens.clone());
    let mut inputs = Vec::with_capacity(frozen.layers.len());
    for (i, layer) in frozen.layers.iter().enumerate() {
        reseed(i);
        inputs.push(x.clone().inner());
        x = layer.forward(x, &pos, None);
    }
    drop(frozen);

    // Final norm, head and loss from the last hidden state.
    let mut acc = GradientsAccumulator::<Llama<B>>::new();
    let top = leaf(x.inner());
    let (sum, count) = model.head_loss_sum(
        model.norm.forward(top.clone()),
        labels,
        options.ignore_index,
    );
    let loss = sum / count.clamp_min(1.0) * options.scale;
    let mut grad = backprop(model, &mut acc, loss.clone(), &top);

    // Each layer from the top: re-run from its input, back-propagate `grad` through it.
    for (i, input) in inputs.into_iter().enumerate().rev() {
        reseed(i);
        let x = leaf(input);
        let y = model.layers[i].forward(x.clone(), &pos, None);
        let surrogate = (y * Tensor::from_inner(grad)).sum();
        grad = backprop(model, &mut acc, surrogate, &x);
    }

    // The embedding, through the gradient of its output.
    let embedded = embedding(model.embed_tokens.val(), tokens);
    let mut grads = (embedded * Tensor::from_inner(grad)).sum().backward();
    acc.accumulate(model, GradientsParams::from_module(&mut grads, model));
    (loss.inner(), acc.grads())
}

/// A fresh graph leaf holding `x`, whose gradient [`backprop`] returns.
fn leaf<B: AutodiffBackend>(x: Tensor<B::InnerBackend, 3>) -> Tensor<B, 3> {
    Tensor::from_inner(x).require_grad()
}

/// Back-propagates the scalar `out`, adds the parameter gradients to `acc` and returns the
/// gradient of `input`.
fn backprop<B: TrainBackend>(
    model: &Llama<B>,
    acc: &mut GradientsAccumulator<Llama<B>>,
    out: Tensor<B, 1>,
    input: &Tensor<B, 3>,
) -> Tensor<B::InnerBackend, 3> {
    let mut grads = out.backward();
    let grad = input
        .grad_remove(&mut grads)
        .unwrap_or_else(|| input.clone().inner().zeros_like());
    acc.accumulate(model, GradientsParams::from_module(&mut grads, model));
    grad
}

/// The RNG seed of `layer` within a micro-batch seeded `seed` (SplitMix64-style mixing).
fn layer_seed(seed: u64, layer: usize) -> u64 {
    let mut z = seed ^ (layer as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
