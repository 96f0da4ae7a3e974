//! RMSNorm and SwiGLU as single ops with their own backward (as Liger Kernel's fused RMSNorm
//! and SwiGLU): one output per op instead of a chain of elementwise tensors, and only the inputs
//! (plus one f32 `rstd` per row for the norm) kept for backward.
//!
//! These are the tensor-op versions, the defaults of [`super::FusedOps`]; the CPU backend
//! overrides them with one pass per row on f32 slices (`cpu_rows.rs`). Statistics and gradients
//! are computed in f32 whatever the inputs' dtype, and cast back to it, as HF's `LlamaRMSNorm`
//! normalizes in f32 before it casts and applies the weight.

use burn::tensor::activation::{sigmoid, silu};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor};

use super::float;

/// [`rms_norm_forward`] on primitives (the default of [`super::FusedOps::rms_norm_forward`]).
pub(crate) fn rms_norm_forward_primitive<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    eps: f64,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let (y, rstd) = rms_norm_forward(float::<B, 2>(x), float(weight), eps);
    (y.into_primitive().tensor(), rstd.into_primitive().tensor())
}

/// [`rms_norm_backward`] on primitives.
pub(crate) fn rms_norm_backward_primitive<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    rstd: FloatTensor<B>,
    dy: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let (dx, dw) = rms_norm_backward(float::<B, 2>(x), float(weight), float(rstd), float(dy));
    (dx.into_primitive().tensor(), dw.into_primitive().tensor())
}

/// [`swiglu_forward`] on primitives.
pub(crate) fn swiglu_forward_primitive<B: Backend>(
    gate: FloatTensor<B>,
    up: FloatTensor<B>,
) -> FloatTensor<B> {
    swiglu_forward(float::<B, 2>(gate), float(up))
        .into_primitive()
        .tensor()
}

/// [`swiglu_backward`] on primitives.
pub(crate) fn swiglu_backward_primitive<B: Backend>(
    gate: FloatTensor<B>,
    up: FloatTensor<B>,
    dh: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let (dg, du) = swiglu_backward(float::<B, 2>(gate), float(up), float(dh));
    (dg.into_primitive().tensor(), du.into_primitive().tensor())
}

/// `x · rsqrt(mean(x²) + eps)` cast to `x`'s dtype, times `weight`; and `rsqrt(mean(x²) + eps)`
/// per row (f32).
///
/// # Shapes
/// - `x`: `[rows, d]`; `weight`: `[d]`
/// - output: `([rows, d], [rows, 1])`
pub fn rms_norm_forward<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let dtype = x.dtype();
    let x = x.cast(DType::F32);
    let rstd = (x.clone().square().mean_dim(1) + eps).sqrt().recip();
    let normed = x * rstd.clone();
    (normed.cast(dtype) * weight.unsqueeze(), rstd)
}

/// Gradients of [`rms_norm_forward`] with respect to `x` and `weight`, from the output's gradient
/// `dy`: with `x̂ = x·rstd` and `g = dy·weight`, `dx = rstd·(g − x̂·mean(g·x̂))` and
/// `dweight = Σ_rows dy·x̂`, in f32, cast to the inputs' dtypes.
pub fn rms_norm_backward<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 1>,
    rstd: Tensor<B, 2>,
    dy: Tensor<B, 2>,
) -> (Tensor<B, 2>, Tensor<B, 1>) {
    let (x_dtype, w_dtype) = (x.dtype(), weight.dtype());
    let [_, d] = x.dims();
    let normed = x.cast(DType::F32) * rstd.clone();
    let dy = dy.cast(DType::F32);
    let g = dy.clone() * weight.cast(DType::F32).unsqueeze();
    let c = (g.clone() * normed.clone()).sum_dim(1) / d as f64;
    let dx = (g - normed.clone() * c) * rstd;
    let dw = (dy * normed).sum_dim(0).squeeze_dim(0);
    (dx.cast(x_dtype), dw.cast(w_dtype))
}

/// `silu(gate) · up` in the inputs' dtype (HF: `act_fn(gate_proj(x)) * up_proj(x)`).
pub fn swiglu_forward<B: Backend>(gate: Tensor<B, 2>, up: Tensor<B, 2>) -> Tensor<B, 2> {
    silu(gate) * up
}

/// Gradients of [`swiglu_forward`] from the output's gradient `dh`, with `s = sigmoid(gate)`:
/// `d gate = dh·up·s·(1 + gate·(1 − s))`, `d up = dh·gate·s`, in f32, cast to the inputs' dtype.
pub fn swiglu_backward<B: Backend>(
    gate: Tensor<B, 2>,
    up: Tensor<B, 2>,
    dh: Tensor<B, 2>,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let dtype = gate.dtype();
    let (g, u, dh) = (
        gate.cast(DType::F32),
        up.cast(DType::F32),
        dh.cast(DType::F32),
    );
    let s = sigmoid(g.clone());
    let silu = g.clone() * s.clone();
    let dgate = dh.clone() * u * s.clone() * ((s.neg() + 1.0) * g + 1.0);
    let dup = dh * silu;
    (dgate.cast(dtype), dup.cast(dtype))
}
