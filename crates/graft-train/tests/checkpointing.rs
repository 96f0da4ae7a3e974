//! Activation checkpointing changes memory, not results: on tiny-llama3 the gradients of one
//! micro-batch, and the weights after three optimizer steps, are the same with Burn's
//! `BalancedCheckpointing` as without; `dispatch` runs the monomorphization the flag selects.

mod common;

use std::any::TypeId;

use burn::backend::Flex;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use common::*;
use graft_train::checkpointing::{dispatch, Checkpointed, Plain, TrainJob};
use graft_train::{Trainer, VecSource};

type Named = Vec<(String, Vec<f32>)>;

/// Gradients of every parameter for the first golden micro-batch, by HF name.
fn gradients<AB: AutodiffBackend>() -> Named {
    let device = Default::default();
    let (model, config) = graft_llama::load::<AB>(fixtures().join("tiny-llama3"), &device).unwrap();
    let batch = &golden_batches()[0];
    let tokens = Tensor::<AB, 2, Int>::from_data(
        TensorData::new(batch.tokens.clone(), [batch.batch_size, batch.seq_len]),
        &device,
    );
    let loss = graft_llama::causal_lm_loss(
        model.forward(tokens.clone()),
        tokens,
        graft_llama::IGNORE_INDEX,
    );
    let grads = loss.backward();
    graft_llama::param_keys(&config.llama)
        .into_iter()
        .map(|key| {
            let g = model
                .grad(key, &grads)
                .unwrap_or_else(|| panic!("no gradient for {}", key.hf_name()));
            (
                key.hf_name(),
                g.into_data().convert::<f32>().to_vec::<f32>().unwrap(),
            )
        })
        .collect()
}

/// Largest absolute difference between two named tensor lists (same names, same order).
fn max_diff(a: &Named, b: &Named) -> (f32, String) {
    assert_eq!(a.len(), b.len());
    let mut worst = (0.0f32, String::new());
    for ((na, va), (nb, vb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        assert_eq!(va.len(), vb.len(), "{na}");
        let d = va
            .iter()
            .zip(vb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        if d > worst.0 {
            worst = (d, na.clone());
        }
    }
    worst
}

#[test]
fn same_gradients_with_and_without_checkpointing() {
    let plain = gradients::<Plain<Flex>>();
    let ckpt = gradients::<Checkpointed<Flex>>();
    assert!(
        plain.iter().all(|(_, g)| g.iter().any(|v| *v != 0.0)),
        "every parameter gets a gradient"
    );
    let (d, name) = max_diff(&plain, &ckpt);
    assert!(d <= 1e-6, "max abs gradient difference {d} in {name}");
}

/// Three golden optimizer steps on the backend the flag selects; returns the weights and which
/// backend ran.
struct ThreeSteps;

impl TrainJob<Flex> for ThreeSteps {
    type Output = (Named, TypeId);
    fn run<AB: AutodiffBackend<InnerBackend = Flex, Device = burn::tensor::Device<Flex>>>(
        self,
    ) -> Self::Output {
        let device = Default::default();
        let (model, config) =
            graft_llama::load::<AB>(fixtures().join("tiny-llama3"), &device).unwrap();
        let mut train_config = golden_config();
        train_config.steps = 3;
        let mut trainer = Trainer::<AB>::new(model, config, train_config, device);
        trainer.run(&mut VecSource::new(golden_batches())).unwrap();
        (params(trainer.model()), TypeId::of::<AB>())
    }
}

#[test]
fn dispatch_trains_the_same_either_way() {
    let (plain, plain_ty) = dispatch::<Flex, _>(false, ThreeSteps);
    let (ckpt, ckpt_ty) = dispatch::<Flex, _>(true, ThreeSteps);
    assert_eq!(plain_ty, TypeId::of::<Plain<Flex>>());
    assert_eq!(ckpt_ty, TypeId::of::<Checkpointed<Flex>>());
    let (d, name) = max_diff(&plain, &ckpt);
    assert!(d <= 1e-6, "max abs weight difference {d} in {name}");
    let (init, _) =
        graft_llama::load::<B>(fixtures().join("tiny-llama3"), &Default::default()).unwrap();
    assert!(
        max_diff(&params(&init), &plain).0 > 1e-4,
        "training moved the weights"
    );
}
