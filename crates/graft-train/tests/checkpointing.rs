//! Activation checkpointing changes memory, not results: on tiny-llama3 the weights after three
//! golden optimizer steps are the same with `activation_checkpointing` on as off (the gradients
//! of one micro-batch against transformers' are checked in graft-llama's parity tests).

mod common;

use common::*;
use graft_train::{Trainer, VecSource};

type Named = Vec<(String, Vec<f32>)>;

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

/// Three golden optimizer steps with or without activation checkpointing; the final weights.
fn three_steps(checkpointing: bool) -> Named {
    let device = Default::default();
    let (model, config) = graft_llama::load::<B>(fixtures().join("tiny-llama3"), &device).unwrap();
    let mut train_config = golden_config();
    train_config.steps = 3;
    train_config.activation_checkpointing = checkpointing;
    let mut trainer = Trainer::<B>::new(model, config, train_config, device);
    trainer.run(&mut VecSource::new(golden_batches())).unwrap();
    params(trainer.model())
}

#[test]
fn checkpointing_trains_the_same_model() {
    let plain = three_steps(false);
    let ckpt = three_steps(true);
    let (d, name) = max_diff(&plain, &ckpt);
    assert!(d <= 1e-6, "max abs weight difference {d} in {name}");
    let (init, _) = graft_llama::load::<burn::backend::Flex>(
        fixtures().join("tiny-llama3"),
        &Default::default(),
    )
    .unwrap();
    assert!(
        max_diff(&params(&init), &plain).0 > 1e-4,
        "training moved the weights"
    );
}
