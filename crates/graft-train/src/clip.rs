//! Global-norm gradient clipping, as `torch.nn.utils.clip_grad_norm_`.
//!
//! Burn's own clipping works per tensor; this computes one norm over all gradients:
//! `norm = sqrt(Σ‖g‖²)`, and if `clip / (norm + 1e-6) < 1` scales every gradient by that factor.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{FloatDType, Tensor};

/// The global L2 norm of all gradients in `grads` that belong to parameters of `module`.
///
/// Like PyTorch, it is the norm of the per-tensor norms (each computed in f32). Returns 0 when
/// there are no gradients. Reads one scalar back from the device.
pub fn global_grad_norm<B, M>(module: &M, grads: &GradientsParams) -> f64
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let mut visitor = NormVisitor::<B> {
        grads,
        norms: Vec::new(),
    };
    module.visit(&mut visitor);
    if visitor.norms.is_empty() {
        return 0.0;
    }
    let norms = Tensor::cat(visitor.norms, 0);
    crate::scalar::scalar(norms.square().sum().sqrt())
}

/// Clip `grads` to a global norm of at most `max_norm` and return the norm before clipping.
///
/// The scale factor is `max_norm / (norm + 1e-6)`, applied only when it is below 1. A non-finite
/// norm is returned as is and the gradients are left alone (the caller skips the step).
pub fn clip_global_norm<B, M>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let norm = global_grad_norm::<B, M>(module, grads);
    clip_to_norm::<B, M>(module, grads, norm, max_norm);
    norm
}

/// Scale `grads` by `max_norm / (norm + 1e-6)` when that is below 1, `norm` being their global
/// norm (computed here or, for sharded gradients, across ranks: [`crate::zero`]). A non-finite
/// norm leaves them alone.
pub fn clip_to_norm<B, M>(module: &M, grads: &mut GradientsParams, norm: f64, max_norm: f64)
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    if !norm.is_finite() {
        return;
    }
    // torch computes the coefficient as an f32 tensor op.
    let coef = (max_norm as f32) / (norm as f32 + 1e-6);
    if coef < 1.0 {
        scale_grads::<B, M>(module, grads, coef as f64);
    }
}

/// Multiply every gradient of a parameter of `module` by `factor`.
pub fn scale_grads<B, M>(module: &M, grads: &mut GradientsParams, factor: f64)
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let mut visitor = ScaleVisitor::<B> {
        grads,
        factor,
        _b: std::marker::PhantomData,
    };
    module.visit(&mut visitor);
}

struct NormVisitor<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    norms: Vec<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for NormVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let g = g.cast(FloatDType::F32);
            self.norms.push(g.square().sum().sqrt());
        }
    }
}

struct ScaleVisitor<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    factor: f64,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ScaleVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}
