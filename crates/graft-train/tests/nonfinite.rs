//! Non-finite steps are skipped without touching weights or moments, and too many in a row stop
//! the run with a clear error.

mod common;

use burn::tensor::TensorData;
use common::*;
use graft_train::{TrainError, Trainer, VecSource};

#[test]
fn nan_steps_are_skipped_then_stop_the_run() {
    let device = Default::default();
    let (mut model, config) =
        graft_llama::load::<B>(fixtures().join("tiny-llama3"), &device).unwrap();
    let key = graft_llama::ParamKey::lookup("model.norm.weight", model.config()).unwrap();
    model
        .set_param_data(key, TensorData::new(vec![f32::NAN; 64], [64]))
        .unwrap();
    let before = params(&model);
    let mut trainer = Trainer::<B>::new(model, config, golden_config(), device);
    let mut data = VecSource::new(golden_batches());
    for step in 1..=2 {
        let r = trainer.train_step(&mut data).unwrap();
        assert!(r.skipped && r.loss.is_nan() && r.step == step);
    }
    assert_eq!(trainer.state().consecutive_nonfinite, 2);
    assert!(
        trainer.optimizer().state().is_empty(),
        "skipped steps must not create moments"
    );
    let err = trainer.train_step(&mut data).unwrap_err();
    assert!(
        matches!(err, TrainError::NonFinite { count: 3, step: 3 }),
        "{err}"
    );
    assert!(err.to_string().contains("non-finite"));
    let after = params(trainer.model());
    for ((n, a), (_, b)) in before.iter().zip(&after) {
        assert!(
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{n} changed during skipped steps"
        );
    }
}

/// A gradient hook that lets `good` steps through, then reports a NaN loss.
struct NanAfter {
    good: usize,
    calls: usize,
}

impl graft_train::parallel::GradSync<B> for NanAfter {
    fn sync(
        &mut self,
        _model: &graft_llama::Llama<B>,
        loss: f64,
        grads: burn::optim::GradientsParams,
    ) -> graft_train::Result<(f64, burn::optim::GradientsParams)> {
        self.calls += 1;
        Ok((
            if self.calls > self.good {
                f64::NAN
            } else {
                loss
            },
            grads,
        ))
    }
    fn world_size(&self) -> usize {
        1
    }
    fn rank(&self) -> usize {
        0
    }
}

#[test]
fn a_run_stopped_by_nan_steps_keeps_its_last_good_checkpoint() {
    let device = Default::default();
    let run = tempfile::tempdir().unwrap();
    let (model, config) = graft_llama::load::<B>(fixtures().join("tiny-llama3"), &device).unwrap();
    let mut cfg = golden_config();
    cfg.save_every = 1;
    let mut trainer = Trainer::<B>::new(model, config, cfg, device.clone())
        .with_run_dir(run.path())
        .unwrap()
        .with_grad_sync(Box::new(NanAfter { good: 2, calls: 0 }));
    let mut data = VecSource::new(golden_batches());
    let err = trainer.run(&mut data).unwrap_err();
    assert!(
        matches!(err, TrainError::NonFinite { count: 3, step: 5 }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("checkpoints/latest is the last good one"),
        "{err}"
    );

    // checkpoints of the two good steps only; latest is step 2, whole, with the weights of step 2
    let dir = graft_train::CheckpointDir::new(run.path()).unwrap();
    let steps: Vec<u64> = dir.list().unwrap().iter().map(|c| c.step).collect();
    assert_eq!(steps, [1, 2]);
    let latest = dir.latest().unwrap().unwrap();
    assert_eq!(latest.step, 2);
    assert_eq!(latest.read_state().unwrap().step, 2);
    let (saved, _) = graft_llama::load::<B>(&latest.path, &device).unwrap();
    let (saved, now) = (params(&saved), params(trainer.model()));
    assert_eq!(saved.len(), now.len());
    for ((n, a), (_, b)) in saved.iter().zip(&now) {
        assert!(
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{n}: checkpoint is not the last good weights"
        );
    }
}
