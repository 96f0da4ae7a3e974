//! Helpers shared by the `lora_*` tests: the tiny-llama3 fixture with adapters attached.
#![allow(dead_code)]

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use graft_llama::lora::{apply_lora, proj_mut, LoraConfig};
use graft_llama::Llama;

/// All seven projections, rank 4, alpha 8 (scale 2), no dropout.
pub fn all_linear(rank: usize) -> LoraConfig {
    LoraConfig::new(rank, 2.0 * rank as f64, 0.0, &["all-linear".to_string()]).unwrap()
}

/// tiny-llama3 loaded from the fixtures.
pub fn tiny<Bk: Backend>() -> Llama<Bk> {
    let dir = super::common::fixtures().join("tiny-llama3");
    graft_llama::load::<Bk>(dir, &Default::default()).unwrap().0
}

/// tiny-llama3 with adapters whose `B` is filled with deterministic non-zero values, so that the
/// adapters change the output.
pub fn adapted<Bk: Backend>(cfg: &LoraConfig, seed: u64) -> Llama<Bk> {
    let mut model = apply_lora(tiny::<Bk>(), cfg, seed).unwrap();
    let mut k = seed as f32;
    for layer in model.layers.iter_mut() {
        for &target in &cfg.targets {
            let adapter = proj_mut(layer, target).unwrap().lora.as_mut().unwrap();
            let [out, r] = adapter.lora_b.dims();
            let values: Vec<f32> = (0..out * r)
                .map(|i| {
                    k += 1.0;
                    0.05 * ((i as f32 * 0.37 + k * 0.11).sin())
                })
                .collect();
            let t =
                Tensor::<Bk, 2>::from_data(TensorData::new(values, [out, r]), &Default::default());
            adapter.lora_b = Param::from_tensor(t);
        }
    }
    model
}

/// Values of a float tensor.
pub fn values<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// Logits of `model` on the golden input ids.
pub fn logits<Bk: graft_llama::FusedOps>(model: &Llama<Bk>) -> Vec<f32> {
    values(model.forward(super::common::int_tensor::<Bk>("input_ids")))
}
