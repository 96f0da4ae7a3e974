//! A run stopped after 3 of 6 steps and resumed from its checkpoint gives bit-for-bit the same
//! losses, gradient norms and final weights as an uninterrupted run; checkpoints load back with
//! graft-llama's loader and are written with TensorBoard scalars alongside.

mod common;

use common::*;
use graft_train::logging::TensorBoardLogger;
use graft_train::{BatchSource, CheckpointDir, StepReport, Trainer, VecSource};

fn trainer(run_dir: &std::path::Path, save_every: u64) -> Trainer<B> {
    let device = Default::default();
    let (model, config) = graft_llama::load::<B>(fixtures().join("tiny-llama3"), &device).unwrap();
    let mut cfg = golden_config();
    cfg.save_every = save_every;
    cfg.keep_last = 2;
    Trainer::<B>::new(model, config, cfg, device)
        .with_run_dir(run_dir)
        .unwrap()
}

fn bits(r: &StepReport) -> (u64, u64, u64, u64) {
    (
        r.step,
        r.lr.to_bits(),
        r.loss.to_bits(),
        r.grad_norm.to_bits(),
    )
}

#[test]
fn stopped_and_resumed_run_is_bit_identical() {
    let full_dir = tempfile::tempdir().unwrap();
    let mut full = trainer(full_dir.path(), 0);
    let full_reports = full.run(&mut VecSource::new(golden_batches())).unwrap();

    let run_dir = tempfile::tempdir().unwrap();
    let mut first = trainer(run_dir.path(), 3);
    let mut data = VecSource::new(golden_batches());
    let mut reports: Vec<StepReport> = (0..3)
        .map(|_| first.train_step(&mut data).unwrap())
        .collect();
    first.save_checkpoint(&data).unwrap();
    drop(first);

    // a fresh process: base weights, fresh optimizer, data from the start — all restored
    let mut second = trainer(run_dir.path(), 3);
    let mut data = VecSource::new(golden_batches());
    assert_eq!(second.resume(&mut data).unwrap(), Some(3));
    assert_eq!(second.state().tokens_seen, 3 * 2 * 64);
    reports.extend(second.run(&mut data).unwrap());

    let a: Vec<_> = full_reports.iter().map(bits).collect();
    let b: Vec<_> = reports.iter().map(bits).collect();
    assert_eq!(a, b, "loss curve differs after resume");
    for ((n, x), (_, y)) in params(full.model()).iter().zip(&params(second.model())) {
        assert!(
            x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{n} differs after resume"
        );
    }
    assert!(
        data.next_batch().is_err(),
        "all 12 golden micro-batches consumed exactly once"
    );
    let steps: Vec<u64> = CheckpointDir::new(run_dir.path())
        .unwrap()
        .list()
        .unwrap()
        .iter()
        .map(|c| c.step)
        .collect();
    assert_eq!(steps, [3, 6]);
}

#[test]
fn checkpoint_loads_with_graft_llama_and_logs_scalars() {
    let run_dir = tempfile::tempdir().unwrap();
    let tb = TensorBoardLogger::new(&run_dir.path().join("tensorboard")).unwrap();
    let event_file = tb.path().to_path_buf();
    let mut t = trainer(run_dir.path(), 2).with_logger(Box::new(tb));
    t.run(&mut VecSource::new(golden_batches())).unwrap();

    let dir = CheckpointDir::new(run_dir.path()).unwrap();
    let latest = dir.latest().unwrap().unwrap();
    assert_eq!(latest.step, 6);
    assert_eq!(dir.list().unwrap().len(), 2, "keep_last = 2");
    let (loaded, _) =
        graft_llama::load::<burn::backend::Flex>(&latest.path, &Default::default()).unwrap();
    for ((n, x), (_, y)) in params(t.model()).iter().zip(&params(&loaded)) {
        assert!(
            x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{n} differs in the checkpoint"
        );
    }
    let state = latest.read_state().unwrap();
    assert_eq!(
        (
            state.step,
            state.lr_step,
            state.data_cursor["next"].as_u64()
        ),
        (6, 6, Some(12))
    );
    let events = std::fs::read(&event_file).unwrap();
    let has = |tag: &str| events.windows(tag.len()).any(|w| w == tag.as_bytes());
    assert!(
        has("train/loss") && has("train/lr") && has("train/grad_norm") && has("train/tokens_per_s")
    );
}
