//! Gradient accumulation across micro-batches in f32, whatever the parameters' dtype.
//!
//! Burn's `GradientsAccumulator` sums in the gradients' own dtype: with bf16 parameters (CUDA)
//! every micro-batch's gradient would be rounded to 8 bits of mantissa as it is added, and small
//! contributions vanish into the sum. As torchtitan (FSDP's `reduce_dtype = float32`) and
//! Megatron (`main_grad` buffers, `accumulate_allreduce_grads_in_fp32`) do, each micro-batch's
//! gradient is widened to f32 as it arrives and summed in f32; the sums are what the
//! data-parallel all-reduce ([`crate::parallel`]), the global-norm clip ([`crate::clip`]) and
//! AdamW ([`crate::optim`], which updates its f32 master copy of a bf16 parameter) consume, so
//! nothing rounds them back to bf16 before the update.
//!
//! For f32 parameters this is exactly Burn's accumulator (`sum + grad`, in the same order), so
//! f32 training is bit-for-bit unchanged.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{DType, FloatDType, Tensor};

/// f32 sums of the gradients of one optimizer step, keyed by parameter (Burn's `ParamId`).
#[derive(Default)]
pub struct GradAccumulator {
    sums: GradientsParams,
    micro_batches: usize,
}

impl GradAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one micro-batch's gradients (of the parameters of `module`), widened to f32.
    /// Gradients of tensors that are not parameters of `module` are dropped.
    pub fn accumulate<B, M>(&mut self, module: &M, grads: GradientsParams)
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
    {
        let mut visitor = SumVisitor::<B> {
            sums: &mut self.sums,
            new: grads,
            _backend: std::marker::PhantomData,
        };
        module.visit(&mut visitor);
        self.micro_batches += 1;
    }

    /// Number of micro-batches added so far.
    pub fn micro_batches(&self) -> usize {
        self.micro_batches
    }

    /// The summed gradients, every tensor in f32 (the parameter's shape and id).
    pub fn into_grads(self) -> GradientsParams {
        self.sums
    }
}

struct SumVisitor<'a, B: AutodiffBackend> {
    sums: &'a mut GradientsParams,
    new: GradientsParams,
    _backend: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SumVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(grad) = self.new.remove::<B::InnerBackend, D>(param.id) else {
            return;
        };
        let grad = to_f32(grad);
        let sum = match self.sums.remove::<B::InnerBackend, D>(param.id) {
            Some(sum) => sum + grad,
            None => grad,
        };
        self.sums.register(param.id, sum);
    }
}

/// `t` in f32 (no copy when it already is).
fn to_f32<B: burn::tensor::backend::Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    if t.dtype() == DType::F32 {
        t
    } else {
        t.cast(FloatDType::F32)
    }
}

#[cfg(test)]
mod tests;
