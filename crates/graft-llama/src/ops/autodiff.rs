//! [`FusedOps`] on `Autodiff<B, C>`: custom backward steps (Burn's `Backward` trait, as in
//! `burn-autodiff/src/ops/*.rs`) that keep only small state.
//!
//! - attention keeps `q`, `k`, `v`, the output and one f32 log-sum-exp per query row;
//! - the fused loss makes its gradients in the forward pass, chunk by chunk (Liger Kernel), and
//!   keeps only them (`[tokens, hidden]` and `[vocab, hidden]`), scaled by the incoming gradient
//!   in backward;
//! - RMSNorm keeps its input and one f32 `rstd` per row, SwiGLU its two inputs.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{DType, Int, Tensor};

use super::flash::FlashOptions;
use super::linear_ce::{self, GradsWanted, LinearCeOptions};
use super::{float, FusedOps};

#[derive(Debug)]
struct FlashBackward;

impl<B: FusedOps> Backward<B, 3> for FlashBackward {
    /// `[q, k, v]`, the output, the log-sum-exp and the options.
    type State = (
        [FloatTensor<B>; 3],
        FloatTensor<B>,
        FloatTensor<B>,
        FlashOptions,
    );

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (qkv, out, lse, options) = ops.state;
        let d = B::flash_attention_backward(qkv, out, lse, grad, options);
        for (node, g) in ops.parents.into_iter().zip(d) {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

#[derive(Debug)]
struct LinearCeBackward;

impl<B: Backend> Backward<B, 2> for LinearCeBackward {
    /// d loss / d hidden and d loss / d weight (f32), each if its parent is tracked, and the
    /// weight's dtype.
    type State = (Option<FloatTensor<B>>, Option<FloatTensor<B>>, DType);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let scale = float::<B, 1>(grads.consume::<B>(&ops.node)).cast(DType::F32);
        let (grad_hidden, grad_weight, weight_dtype) = ops.state;
        let [hidden, weight] = ops.parents;
        if let (Some(node), Some(g)) = (hidden, grad_hidden) {
            let g = float::<B, 2>(g);
            let s = scale.clone().cast(g.dtype()).unsqueeze::<2>();
            grads.register::<B>(node.id, (g * s).into_primitive().tensor());
        }
        if let (Some(node), Some(g)) = (weight, grad_weight) {
            let g = float::<B, 2>(g) * scale.unsqueeze::<2>();
            grads.register::<B>(node.id, g.cast(weight_dtype).into_primitive().tensor());
        }
    }
}

#[derive(Debug)]
struct RmsNormBackward;

impl<B: FusedOps> Backward<B, 2> for RmsNormBackward {
    /// `x`, the weight and `rstd`.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (x, weight, rstd) = ops.state;
        let (dx, dw) = B::rms_norm_backward(x, weight, rstd, dy);
        let [x_node, w_node] = ops.parents;
        for (node, g) in [(x_node, dx), (w_node, dw)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

#[derive(Debug)]
struct SwigluBackward;

impl<B: FusedOps> Backward<B, 2> for SwigluBackward {
    /// `gate` and `up`.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dh = grads.consume::<B>(&ops.node);
        let (gate, up) = ops.state;
        let (dg, du) = B::swiglu_backward(gate, up, dh);
        let [g_node, u_node] = ops.parents;
        for (node, g) in [(g_node, dg), (u_node, du)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

impl<B: FusedOps, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        let nodes = [x.node.clone(), weight.node.clone()];
        match RmsNormBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, rstd) =
                    B::rms_norm_forward(x.primitive.clone(), weight.primitive.clone(), eps);
                prep.finish((x.primitive, weight.primitive, rstd), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::rms_norm(x.primitive, weight.primitive, eps))
            }
        }
    }

    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        let nodes = [gate.node.clone(), up.node.clone()];
        match SwigluBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let h = B::swiglu(gate.primitive.clone(), up.primitive.clone());
                prep.finish((gate.primitive, up.primitive), h)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::swiglu(gate.primitive, up.primitive)),
        }
    }

    fn flash_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        options: FlashOptions,
    ) -> FloatTensor<Self> {
        let nodes = [q.node.clone(), k.node.clone(), v.node.clone()];
        match FlashBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let qkv = [q.primitive, k.primitive, v.primitive];
                let [tq, tk, tv] = qkv.clone();
                let (out, lse) = B::flash_attention_with_lse(tq, tk, tv, options);
                prep.finish((qkv, out.clone(), lse, options), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::flash_attention(
                q.primitive,
                k.primitive,
                v.primitive,
                options,
            )),
        }
    }

    fn linear_cross_entropy(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
        options: LinearCeOptions,
    ) -> FloatTensor<Self> {
        let nodes = [hidden.node.clone(), weight.node.clone()];
        let wanted = GradsWanted {
            hidden: !hidden.node.requirement.is_none(),
            weight: !weight.node.requirement.is_none(),
        };
        match LinearCeBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let weight = float::<B, 2>(weight.primitive);
                let weight_dtype = weight.dtype();
                let targets = Tensor::<B, 1, Int>::from_primitive(targets);
                let out =
                    linear_ce::forward(float(hidden.primitive), weight, targets, &options, wanted);
                let primitive = |g: Tensor<B, 2>| g.into_primitive().tensor();
                let state = (
                    out.grad_hidden.map(primitive),
                    out.grad_weight.map(primitive),
                    weight_dtype,
                );
                prep.finish(state, out.loss.into_primitive().tensor())
            }
            OpsKind::UnTracked(prep) => prep.finish(B::linear_cross_entropy(
                hidden.primitive,
                weight.primitive,
                targets,
                options,
            )),
        }
    }
}
