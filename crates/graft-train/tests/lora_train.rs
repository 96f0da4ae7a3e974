//! LoRA training of tiny-llama3 on the golden batches with graft's AdamW: the base weights stay
//! bit-for-bit unchanged, the adapters move, only adapters get optimizer state; checkpoints hold
//! the PEFT adapter only, and a stopped run resumed from one (base + adapter) matches an
//! uninterrupted run bit for bit.

mod common;

use std::path::Path;

use burn::module::AutodiffModule;
use common::*;
use graft_llama::lora::{
    adapter_tensors, apply_lora, LoraConfig, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE,
};
use graft_train::lora::{base_model_name, lora_config};
use graft_train::recipe::LoraSection;
use graft_train::{CheckpointDir, StepReport, Trainer, VecSource};

/// The tests of this binary that train hold this lock (dropout masks come from per-thread
/// streams, see `graft_llama::lora::seed_dropout`, but the tests were written one at a time).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn lora() -> LoraConfig {
    lora_with_dropout(0.0)
}

fn lora_with_dropout(dropout: f64) -> LoraConfig {
    let section = LoraSection {
        rank: 4,
        alpha: 8.0,
        dropout,
        target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
    };
    lora_config(&section).unwrap()
}

/// A trainer over tiny-llama3 with fresh adapters (seed 0), optionally with a run directory.
fn trainer(run_dir: Option<&Path>, steps: u64) -> Trainer<B> {
    trainer_with(run_dir, steps, &lora())
}

fn trainer_with(run_dir: Option<&Path>, steps: u64, lora: &LoraConfig) -> Trainer<B> {
    let device = Default::default();
    let (model, config) = graft_llama::load::<B>(fixtures().join("tiny-llama3"), &device).unwrap();
    let model = apply_lora(model, lora, 0).unwrap();
    let mut cfg = golden_config();
    cfg.steps = steps;
    cfg.schedule.total_steps = 6;
    cfg.schedule.peak = 1e-2; // large enough that every adapter visibly moves in a few steps
    let t = Trainer::<B>::new(model, config, cfg, device);
    match run_dir {
        Some(dir) => t.with_run_dir(dir).unwrap(),
        None => t,
    }
}

fn adapters(t: &Trainer<B>) -> Vec<(String, Vec<f32>)> {
    adapter_tensors(t.model())
        .into_iter()
        .map(|(n, v)| (n, v.into_data().convert::<f32>().to_vec::<f32>().unwrap()))
        .collect()
}

#[test]
fn lora_steps_change_adapters_only() {
    let _rng = serial();
    let mut t = trainer(None, 3);
    let base_before = params(t.model());
    let adapters_before = adapters(&t);
    let mut data = VecSource::new(golden_batches());
    let reports: Vec<StepReport> = (0..3).map(|_| t.train_step(&mut data).unwrap()).collect();
    assert!(reports
        .iter()
        .all(|r| !r.skipped && r.loss.is_finite() && r.grad_norm > 0.0));

    for ((name, before), (_, after)) in base_before.iter().zip(params(t.model())) {
        assert!(
            before
                .iter()
                .zip(&after)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "frozen {name} changed"
        );
    }
    let adapters_after = adapters(&t);
    assert_eq!(adapters_after.len(), 2 * 3 * 2);
    for ((name, before), (_, after)) in adapters_before.iter().zip(&adapters_after) {
        let moved = before
            .iter()
            .zip(after)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(moved > 1e-4, "{name} did not move ({moved})");
    }
    let state = t.optimizer().state();
    assert_eq!(
        state.len(),
        2 * 3 * 2,
        "AdamW state only for the adapters: {:?}",
        state.keys().collect::<Vec<_>>()
    );
    assert!(
        state.keys().all(|k| k.contains("lora")),
        "{:?}",
        state.keys().collect::<Vec<_>>()
    );
    assert!(state.values().all(|s| s.step == 3));
}

#[test]
fn adapter_checkpoints_resume_bit_identically() {
    let _rng = serial();
    let full_dir = tempfile::tempdir().unwrap();
    let mut full = trainer(Some(full_dir.path()), 4);
    let full_reports = full.run(&mut VecSource::new(golden_batches())).unwrap();

    let run_dir = tempfile::tempdir().unwrap();
    let mut first = trainer(Some(run_dir.path()), 4);
    let mut data = VecSource::new(golden_batches());
    let mut reports: Vec<StepReport> = (0..2)
        .map(|_| first.train_step(&mut data).unwrap())
        .collect();
    let ckpt = first.save_checkpoint(&data).unwrap();
    drop(first);

    let mut files: Vec<String> = std::fs::read_dir(&ckpt.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            ADAPTER_CONFIG_FILE,
            ADAPTER_WEIGHTS_FILE,
            "optimizer.safetensors",
            "training_state.json"
        ]
    );
    // the optimizer state reads beside the adapter: the same PEFT names, with the moments' suffixes
    assert_eq!(
        tensor_names(&ckpt.path.join("optimizer.safetensors")),
        moment_names(&tensor_names(&ckpt.path.join(ADAPTER_WEIGHTS_FILE)))
    );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ckpt.path.join(ADAPTER_CONFIG_FILE)).unwrap(),
    )
    .unwrap();
    let base = std::path::absolute(fixtures().join("tiny-llama3")).unwrap();
    assert_eq!(
        config["base_model_name_or_path"],
        base.to_string_lossy().as_ref()
    );
    assert_eq!(
        (config["r"].as_u64(), config["peft_type"].as_str()),
        (Some(4), Some("LORA"))
    );

    // A fresh process: base weights with new adapters (same seed), fresh optimizer, data from the start.
    let mut second = trainer(Some(run_dir.path()), 4);
    let mut data = VecSource::new(golden_batches());
    assert_eq!(second.resume(&mut data).unwrap(), Some(2));
    reports.extend(second.run(&mut data).unwrap());

    let bits = |r: &StepReport| (r.step, r.loss.to_bits(), r.grad_norm.to_bits());
    assert_eq!(
        full_reports.iter().map(bits).collect::<Vec<_>>(),
        reports.iter().map(bits).collect::<Vec<_>>()
    );
    for ((n, x), (_, y)) in adapters(&full).iter().zip(&adapters(&second)) {
        assert!(
            x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{n} differs after resume"
        );
    }
    // The final adapter checkpoint merges into the base with graft export's merge.
    let latest = CheckpointDir::new(run_dir.path())
        .unwrap()
        .latest()
        .unwrap()
        .unwrap();
    assert_eq!(latest.step, 4);
    let out = run_dir.path().join("merged");
    let options = graft_llama::export::ExportOptions {
        dtype: graft_llama::export::ExportDtype::F32,
        ..Default::default()
    };
    graft_llama::lora::export::export_merged(&latest.path, None, &out, &options, &mut |_, _| {})
        .unwrap();
    let (merged, _) = graft_llama::load::<burn::backend::Flex>(&out, &Default::default()).unwrap();
    let tokens = burn::tensor::Tensor::<burn::backend::Flex, 2, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(golden_batches()[0].tokens.clone(), [2, 32]),
        &Default::default(),
    );
    let want: Vec<f32> = second
        .model()
        .valid()
        .forward(tokens.clone())
        .into_data()
        .to_vec()
        .unwrap();
    let got: Vec<f32> = merged.forward(tokens).into_data().to_vec().unwrap();
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff < 1e-4,
        "merged export logits differ from the trained adapter's by {diff}"
    );
}

/// Dropout masks come from a stream the trainer seeds from (seed, step, rank, micro-batch): a
/// resumed run draws the same masks as an uninterrupted one.
#[test]
fn dropout_masks_resume_bit_identically() {
    let _rng = serial();
    let cfg = lora_with_dropout(0.3);
    let mut full = trainer_with(None, 4, &cfg);
    let full_reports = full.run(&mut VecSource::new(golden_batches())).unwrap();
    let mut plain = trainer_with(None, 4, &lora());
    let plain_reports = plain.run(&mut VecSource::new(golden_batches())).unwrap();
    // B starts at zero, so the adapters (and their dropout) change the loss from step 2 on
    assert_eq!(full_reports[0].loss, plain_reports[0].loss);
    assert_ne!(
        full_reports[3].loss, plain_reports[3].loss,
        "dropout had no effect"
    );

    let run_dir = tempfile::tempdir().unwrap();
    let mut first = trainer_with(Some(run_dir.path()), 4, &cfg);
    let mut data = VecSource::new(golden_batches());
    let mut reports: Vec<StepReport> = (0..2)
        .map(|_| first.train_step(&mut data).unwrap())
        .collect();
    first.save_checkpoint(&data).unwrap();
    drop(first);
    let mut second = trainer_with(Some(run_dir.path()), 4, &cfg);
    let mut data = VecSource::new(golden_batches());
    assert_eq!(second.resume(&mut data).unwrap(), Some(2));
    reports.extend(second.run(&mut data).unwrap());
    let bits = |r: &StepReport| (r.step, r.loss.to_bits(), r.grad_norm.to_bits());
    assert_eq!(
        full_reports.iter().map(bits).collect::<Vec<_>>(),
        reports.iter().map(bits).collect::<Vec<_>>()
    );
}

#[test]
fn base_model_names() {
    let _rng = serial();
    let (_, config) = graft_llama::load::<burn::backend::Flex>(
        fixtures().join("tiny-llama3"),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(
        base_model_name(&config),
        std::path::absolute(fixtures().join("tiny-llama3"))
            .unwrap()
            .to_string_lossy()
    );
    let mut cached = config.clone();
    cached.path = "/cache/hub/models--meta-llama--Llama-3.1-8B/snapshots/abc123/config.json".into();
    assert_eq!(base_model_name(&cached), "meta-llama/Llama-3.1-8B");
    cached.path = "recipes/x.toml [model.init]".into();
    assert_eq!(base_model_name(&cached), "");
    let bad = LoraSection {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: vec!["wq".into()],
    };
    assert!(lora_config(&bad).unwrap_err().to_string().contains("wq"));
}

/// A base that exists only in memory (a `[model.init]` model) is stored in the checkpoint's
/// `base/`, so the adapter can be merged and a resumed run gets the same base back.
#[test]
fn in_memory_base_is_stored_beside_the_adapter() {
    let _rng = serial();
    let device = Default::default();
    let (model, mut config) =
        graft_llama::load::<B>(fixtures().join("tiny-llama3"), &device).unwrap();
    config.path = "recipe.toml [model.init]".into();
    let mut cfg = golden_config();
    cfg.steps = 2;
    let run_dir = tempfile::tempdir().unwrap();
    let model = apply_lora(model, &lora(), 0).unwrap();
    let mut first = Trainer::<B>::new(model, config.clone(), cfg.clone(), device)
        .with_run_dir(run_dir.path())
        .unwrap();
    first.run(&mut VecSource::new(golden_batches())).unwrap();

    let latest = CheckpointDir::new(run_dir.path())
        .unwrap()
        .latest()
        .unwrap()
        .unwrap();
    assert!(
        latest.path.join("base/config.json").is_file()
            && latest.path.join("base/model.safetensors").is_file()
    );
    let adapter_config = graft_llama::lora::read_adapter_config(&latest.path).unwrap();
    assert_eq!(adapter_config.base_model.as_deref(), Some("base"));
    let out = run_dir.path().join("merged");
    let options = graft_llama::export::ExportOptions {
        dtype: graft_llama::export::ExportDtype::F32,
        ..Default::default()
    };
    graft_llama::lora::export::export_merged(&latest.path, None, &out, &options, &mut |_, _| {})
        .unwrap();
    assert!(out.join("model.safetensors").is_file());

    // Resume onto a different (random) base: the stored base and adapter come back exactly.
    let other = apply_lora(config.llama.init::<B>(&device), &lora(), 1).unwrap();
    let mut second = Trainer::<B>::new(other, config, cfg, device)
        .with_run_dir(run_dir.path())
        .unwrap();
    assert_eq!(
        second
            .resume(&mut VecSource::new(golden_batches()))
            .unwrap(),
        Some(2)
    );
    let same = |a: Vec<(String, Vec<f32>)>, b: Vec<(String, Vec<f32>)>| {
        a.iter().zip(&b).all(|((n, x), (m, y))| {
            n == m && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        })
    };
    assert!(
        same(params(first.model()), params(second.model())),
        "base weights not restored"
    );
    assert!(
        same(adapters(&first), adapters(&second)),
        "adapters not restored"
    );
}

/// What one data-parallel peer ends with: its reports and adapters.
type PeerRun = (Vec<StepReport>, Vec<(String, Vec<f32>)>);

/// Two peers (2 micro-batches each per step) train tiny-llama3's adapters with dropout until
/// `steps`, resuming from `run_dir` when it has a checkpoint.
fn two_lora_peers(run_dir: Option<&Path>, steps: u64) -> Vec<PeerRun> {
    use graft_train::parallel::{run_data_parallel, ParallelConfig};
    type Inner = <B as burn::tensor::backend::AutodiffBackend>::InnerBackend;
    burn::collective::reset_collective::<Inner>();
    let batches = golden_batches();
    let devices = vec![Default::default(); 2];
    run_data_parallel::<Inner, _, _>(&ParallelConfig::local(2), &devices, |dp| {
        let rank = dp.rank();
        let mut t =
            trainer_with(run_dir, steps, &lora_with_dropout(0.3)).with_grad_sync(Box::new(dp));
        let mut data = VecSource::new(batches.iter().skip(rank).step_by(2).cloned().collect());
        if run_dir.is_some() {
            t.resume(&mut data)?;
        }
        let reports = t.run(&mut data)?;
        Ok((reports, adapters(&t)))
    })
    .unwrap()
}

/// With several data-parallel peers in one process each draws its masks from its own stream:
/// two runs agree bitwise, and so does a run stopped and resumed.
#[test]
fn dropout_with_two_peers_is_reproducible_and_resumes_bitwise() {
    let bits = |run: &[PeerRun]| -> Vec<(u64, u64, u64)> {
        let r = &run[0].0;
        r.iter()
            .map(|r| (r.step, r.loss.to_bits(), r.grad_norm.to_bits()))
            .collect()
    };
    let same = |a: &[PeerRun], b: &[PeerRun], what: &str| {
        for ((n, x), (_, y)) in a[0].1.iter().zip(&b[0].1) {
            assert!(
                x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
                "{what}: {n}"
            );
        }
    };
    let first = two_lora_peers(None, 3);
    let again = two_lora_peers(None, 3);
    assert_eq!(bits(&first), bits(&again), "run to run");
    same(&first, &again, "run to run");
    same(&first, &first[1..], "the peers hold the same adapters");
    let dir = tempfile::tempdir().unwrap();
    let mut split = two_lora_peers(Some(dir.path()), 2);
    let rest = two_lora_peers(Some(dir.path()), 3);
    split[0].0.extend(rest[0].0.clone());
    assert_eq!(bits(&split), bits(&first), "stopped at step 2 and resumed");
    same(&rest, &first, "stopped at step 2 and resumed");
}
