//! Non-finite steps are skipped without touching weights or moments, and too many in a row stop
//! the run with a clear error.

mod common;

use burn::tensor::TensorData;
use common::*;
use graft_train::{TrainError, Trainer, VecSource};

#[test]
fn nan_steps_are_skipped_then_stop_the_run() {
    let device = Default::default();
    let (mut model, config) = graft_llama::load::<B>(fixtures().join("tiny-llama3"), &device).unwrap();
    let key = graft_llama::ParamKey::lookup("model.norm.weight", model.config()).unwrap();
    model.set_param_data(key, TensorData::new(vec![f32::NAN; 64], [64])).unwrap();
    let before = params(&model);
    let mut trainer = Trainer::<B>::new(model, config, golden_config(), device);
    let mut data = VecSource::new(golden_batches());
    for step in 1..=2 {
        let r = trainer.train_step(&mut data).unwrap();
        assert!(r.skipped && r.loss.is_nan() && r.step == step);
    }
    assert_eq!(trainer.state().consecutive_nonfinite, 2);
    assert!(trainer.optimizer().state().is_empty(), "skipped steps must not create moments");
    let err = trainer.train_step(&mut data).unwrap_err();
    assert!(matches!(err, TrainError::NonFinite { count: 3, step: 3 }), "{err}");
    assert!(err.to_string().contains("non-finite"));
    let after = params(trainer.model());
    for ((n, a), (_, b)) in before.iter().zip(&after) {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "{n} changed during skipped steps");
    }
}
