//! RMSNorm as HuggingFace Llama computes it.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};

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

impl<B: Backend> RmsNorm<B> {
    /// # Shapes
    /// - input: `[..., d_model]`
    /// - output: `[..., d_model]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dtype = x.dtype();
        let x = x.cast(DType::F32);
        let variance = x.clone().square().mean_dim(D - 1);
        let normed = x * (variance + self.eps).sqrt().recip();
        normed.cast(dtype) * self.weight.val().unsqueeze()
    }
}
