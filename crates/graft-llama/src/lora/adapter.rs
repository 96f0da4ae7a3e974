//! The adapter module: `A`, `B`, dropout and scale beside one frozen projection.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::backend::Backend;
use burn::tensor::module::linear;
use burn::tensor::{DType, Tensor, TensorData};

/// A low-rank adapter beside a frozen projection.
#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    /// `[rank, in_features]`.
    pub lora_a: Param<Tensor<B, 2>>,
    /// `[out_features, rank]`.
    pub lora_b: Param<Tensor<B, 2>>,
    /// Dropout on the adapter input (active only on an autodiff backend; its probability only:
    /// the masks are drawn by [`super::dropout`]).
    pub dropout: Dropout,
    /// Scale numerator; the output is multiplied by `alpha / rank`.
    pub alpha: f64,
}

impl<B: Backend> LoraAdapter<B> {
    /// An adapter from host values of `A` (`[rank, in]`) and `B` (`[out, rank]`), both trainable,
    /// in f32 on `device` whatever the base's dtype (PEFT's `autocast_adapter_dtype`: adapters of
    /// a bf16/f16 base are kept in f32).
    pub fn from_values(
        a: TensorData,
        b: TensorData,
        alpha: f64,
        dropout: f64,
        device: &B::Device,
    ) -> Self {
        let a = Tensor::<B, 2>::from_data(a, device).cast(DType::F32);
        let b = Tensor::<B, 2>::from_data(b, device).cast(DType::F32);
        Self {
            lora_a: Param::from_tensor(a),
            lora_b: Param::from_tensor(b),
            dropout: DropoutConfig::new(dropout).init(),
            alpha,
        }
    }

    /// The rank `r`.
    pub fn rank(&self) -> usize {
        self.lora_a.lazy_shape()[0]
    }

    /// `alpha / rank`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank() as f64
    }

    /// The adapter's contribution `(dropout(x)·Aᵀ·Bᵀ)·scale`, computed in the adapter's dtype
    /// and returned in `x`'s.
    ///
    /// # Shapes
    /// - `x`: `[..., in_features]`
    /// - output: `[..., out_features]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let (a, b) = (self.lora_a.val(), self.lora_b.val());
        let dtype = x.dtype();
        let x = if dtype == a.dtype() {
            x
        } else {
            x.cast(a.dtype())
        };
        // the mask comes from this thread's stream, not Burn's process-wide RNG (see dropout.rs)
        let h = linear(super::dropout(x, self.dropout.prob), a.transpose(), None);
        let out = linear(h, b.transpose(), None).mul_scalar(self.scale());
        if out.dtype() == dtype {
            out
        } else {
            out.cast(dtype)
        }
    }

    /// `scale·B·A`, the update this adapter makes to the projection's weight.
    ///
    /// # Shapes
    /// - output: `[out_features, in_features]`
    pub fn delta(&self) -> Tensor<B, 2> {
        self.lora_b
            .val()
            .matmul(self.lora_a.val())
            .mul_scalar(self.scale())
    }
}
