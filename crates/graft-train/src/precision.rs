//! The float format each part of a checkpoint is stored in: the one it is trained in.
//!
//! A checkpoint must give a resumed run exactly the state an uninterrupted run has, so nothing
//! trainable is rounded on the way to disk:
//! - the model's weights are written in the dtype the model holds them in (f32 on the CPU backend
//!   whatever the recipe's `model.dtype`, bf16 for a bf16 model on CUDA), with `config.json`'s
//!   `torch_dtype` saying so;
//! - the f32 master copy of a bf16/f16 weight lives in `optimizer.safetensors` (`<name>.master`,
//!   see [`crate::optim_state`]);
//! - LoRA adapters are written in their own dtype (f32, as PEFT keeps them), the frozen base
//!   stored beside them in the base's.
//!
//! Choosing a smaller precision for distribution is `graft export --dtype`'s job.

use burn::tensor::backend::Backend;
use burn::tensor::DType;
use graft_llama::export::ExportDtype;
use graft_llama::{Llama, ParamTensor};

/// The format that stores tensors of `dtypes` exactly: their common dtype, or f32 when they mix
/// formats (or hold none, or one other than f32/bf16/f16).
pub fn stored_dtype(dtypes: impl IntoIterator<Item = DType>) -> ExportDtype {
    let mut dtypes = dtypes.into_iter();
    let Some(first) = dtypes.next() else {
        return ExportDtype::F32;
    };
    if dtypes.any(|d| d != first) {
        return ExportDtype::F32;
    }
    match first {
        DType::BF16 => ExportDtype::BF16,
        DType::F16 => ExportDtype::F16,
        _ => ExportDtype::F32,
    }
}

/// The format of `model`'s own weights (the base of a LoRA model; adapters excluded).
pub fn weights_dtype<B: Backend>(model: &Llama<B>) -> ExportDtype {
    stored_dtype(model.named_params().into_iter().map(|(_, t)| match t {
        ParamTensor::D1(t) => t.dtype(),
        ParamTensor::D2(t) => t.dtype(),
    }))
}

/// The format of `model`'s LoRA adapters (f32 when it has none).
pub fn adapters_dtype<B: Backend>(model: &Llama<B>) -> ExportDtype {
    stored_dtype(
        graft_llama::lora::adapter_tensors(model)
            .into_iter()
            .map(|(_, t)| t.dtype()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_format_is_kept_and_a_mix_is_stored_in_f32() {
        use DType::{BF16, F16, F32, F64};
        assert_eq!(stored_dtype([BF16, BF16]), ExportDtype::BF16);
        assert_eq!(stored_dtype([F16]), ExportDtype::F16);
        assert_eq!(stored_dtype([F32, F32]), ExportDtype::F32);
        assert_eq!(stored_dtype([BF16, F32]), ExportDtype::F32);
        assert_eq!(stored_dtype([F16, BF16]), ExportDtype::F32);
        assert_eq!(stored_dtype([]), ExportDtype::F32);
        assert_eq!(stored_dtype([F64]), ExportDtype::F32);
    }

    #[test]
    fn model_weights_and_adapters_report_their_own_formats() {
        use burn::module::Module;
        type B = burn::backend::Flex;
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/tiny-llama3"
        );
        let (model, _) = graft_llama::load::<B>(path, &Default::default()).unwrap();
        assert_eq!(weights_dtype(&model), ExportDtype::F32);
        let bf16 = model.map(&mut ToBf16);
        assert_eq!(weights_dtype(&bf16), ExportDtype::BF16);
        let cfg = graft_llama::LoraConfig::new(2, 4.0, 0.0, &["q_proj".to_string()]).unwrap();
        let lora = graft_llama::apply_lora(bf16, &cfg, 0).unwrap();
        // PEFT's autocast: adapters of a bf16 base are f32
        assert_eq!(
            (weights_dtype(&lora), adapters_dtype(&lora)),
            (ExportDtype::BF16, ExportDtype::F32)
        );
    }

    struct ToBf16;
    impl burn::module::ModuleMapper<burn::backend::Flex> for ToBf16 {
        fn map_float<const D: usize>(
            &mut self,
            p: burn::module::Param<burn::tensor::Tensor<burn::backend::Flex, D>>,
        ) -> burn::module::Param<burn::tensor::Tensor<burn::backend::Flex, D>> {
            let (id, t, mapper) = p.consume();
            let t = t.cast(burn::tensor::FloatDType::BF16);
            burn::module::Param::from_mapped_value(id, t, mapper)
        }
    }
}
