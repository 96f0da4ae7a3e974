//! RMSNorm as HuggingFace Llama computes it.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::ops::FusedOps;

/// Configuration of an [`RmsNorm`].
#[derive(Config, Debug)]
pub struct RmsNormConfig {
    /// Size of the normalized (last) dimension.
    pub d_model: usize,
    /// Added to the mean square before the square root.
    #[config(default = 1e-5)]
    pub eps: f64,
}

/// `x · rsqrt(mean(x²) + eps) · weight`, normalized in f32 and cast back to the input dtype
/// before the weight is applied (HF `LlamaRMSNorm`).
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// `[d_model]`.
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl RmsNormConfig {
    /// Creates the norm with weights of one (lazily initialized).
    pub fn init<B: Backend>(&self, device: &B::Device) -> RmsNorm<B> {
        RmsNorm {
            weight: Initializer::Ones.init([self.d_model], device),
            eps: self.eps,
        }
    }
}

impl<B: FusedOps> RmsNorm<B> {
    /// One op ([`crate::ops::rms_norm`]) that keeps only `x` and one f32 per row for backward.
    ///
    /// # Shapes
    /// - input: `[..., d_model]`
    /// - output: `[..., d_model]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        crate::ops::rms_norm(x, self.weight.val(), self.eps)
    }
}
