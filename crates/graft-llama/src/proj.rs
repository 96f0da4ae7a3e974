//! A bias-free linear projection that keeps its weight in HuggingFace layout.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::module::linear;
use burn::tensor::Tensor;

use crate::lora::LoraAdapter;

/// Configuration of a [`Proj`].
#[derive(Config, Debug)]
pub struct ProjConfig {
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
    /// Initializer of the weight (HF Llama: normal, std = `initializer_range` = 0.02).
    #[config(default = "Initializer::Normal { mean: 0.0, std: 0.02 }")]
    pub initializer: Initializer,
}

/// `y = x · Wᵀ` with `W` stored as `[out_features, in_features]`, exactly as in the HF checkpoint,
/// so loading and export need no transpose. Graft owns this module (rather than using burn's
/// `Linear`) so that LoRA can add an adapter beside the frozen weight.
#[derive(Module, Debug)]
pub struct Proj<B: Backend> {
    /// `[out_features, in_features]`.
    pub weight: Param<Tensor<B, 2>>,
    /// A LoRA adapter added to the output (see [`crate::lora`]); `None` for a plain projection.
    pub lora: Option<LoraAdapter<B>>,
}

impl ProjConfig {
    /// Creates the projection; the weight is initialized lazily, so a model built only to be
    /// loaded never allocates its random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Proj<B> {
        let weight = self.initializer.init_with(
            [self.d_output, self.d_input],
            Some(self.d_input),
            Some(self.d_output),
            device,
        );
        Proj { weight, lora: None }
    }
}

impl<B: Backend> Proj<B> {
    /// Applies the projection to the last dimension: `x · Wᵀ`, plus the LoRA term when an adapter
    /// is attached.
    ///
    /// # Shapes
    /// - input: `[..., in_features]`
    /// - output: `[..., out_features]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        // burn's `linear` takes `[in, out]`; the transpose is a stride swap, not a copy.
        match &self.lora {
            None => linear(x, self.weight.val().transpose(), None),
            Some(adapter) => {
                let base = linear(x.clone(), self.weight.val().transpose(), None);
                base + adapter.forward(x)
            }
        }
    }

    /// `[out_features, in_features]`.
    pub fn dims(&self) -> [usize; 2] {
        let shape = self.weight.lazy_shape();
        [shape[0], shape[1]]
    }
}
