//! Reading a one-element tensor back to the host: the one helper the loop, the clipping, the
//! data-parallel loss average and evaluation use.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// The first (usually only) element of `t` as f64, whatever its float dtype; NaN for an empty
/// tensor, so that a missing value reads as non-finite (the loop skips such steps).
pub fn scalar<B: Backend, const D: usize>(t: Tensor<B, D>) -> f64 {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{DType, TensorData};

    type B = burn::backend::Flex;

    #[test]
    fn reads_f32_bf16_and_empty_tensors() {
        let device = Default::default();
        let t = Tensor::<B, 1>::from_data(TensorData::from([2.5f32]), &device);
        assert_eq!(scalar(t.clone()), 2.5);
        assert_eq!(scalar(t.cast(DType::BF16)), 2.5);
        let two_d = Tensor::<B, 2>::from_data(TensorData::from([[-1.0f32]]), &device);
        assert_eq!(scalar(two_d), -1.0);
        let empty = Tensor::<B, 1>::from_data(TensorData::new(Vec::<f32>::new(), [0]), &device);
        assert!(scalar(empty).is_nan());
    }
}
