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

/// `optimizer.safetensors` names every tensor after the parameter's name in `model.safetensors`.
#[test]
fn optimizer_state_is_named_as_the_model_checkpoint() {
    let run_dir = tempfile::tempdir().unwrap();
    let mut t = trainer(run_dir.path(), 0);
    let mut data = VecSource::new(golden_batches());
    t.train_step(&mut data).unwrap();
    let ckpt = t.save_checkpoint(&data).unwrap();
    let optimizer = tensor_names(&ckpt.path.join("optimizer.safetensors"));
    assert_eq!(
        optimizer,
        moment_names(&tensor_names(&ckpt.path.join("model.safetensors")))
    );
    assert!(optimizer.contains(&"model.layers.1.self_attn.q_proj.weight.exp_avg_sq".into()));
}

/// Rewrites a checkpoint's `optimizer.safetensors` as graft wrote it before HF names (version 1:
/// parameters named by Burn module path, taken here from Burn's own visitor and matched to HF
/// names by parameter id), renaming each path with `rename`.
fn rewrite_as_version_1(
    file: &std::path::Path,
    model: &graft_llama::Llama<B>,
    rename: &dyn Fn(&str) -> String,
) {
    use burn::module::{Module, ModuleVisitor, Param, ParamId};
    use std::collections::HashMap;
    struct Paths(Vec<String>, HashMap<ParamId, String>);
    impl ModuleVisitor<B> for Paths {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<burn::tensor::Tensor<B, D>>) {
            self.1.insert(p.id, self.0.join("."));
        }
    }
    let mut paths = Paths(Vec::new(), HashMap::new());
    model.visit(&mut paths);
    let old_name = |hf: &str| {
        let key = graft_llama::ParamKey::parse(hf).unwrap();
        rename(&paths.1[&model.param_id(key).unwrap()])
    };
    let bytes = std::fs::read(file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let steps: std::collections::BTreeMap<String, u64> =
        serde_json::from_str(&meta["steps"]).unwrap();
    let steps: serde_json::Map<String, serde_json::Value> = steps
        .iter()
        .map(|(k, v)| (old_name(k), (*v).into()))
        .collect();
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| {
            let (param, suffix) = k.rsplit_once('.').unwrap();
            (format!("{}.{suffix}", old_name(param)), v)
        })
        .collect();
    let meta = std::collections::HashMap::from([
        ("format".to_string(), "graft-adamw".to_string()),
        ("version".to_string(), "1".to_string()),
        (
            "steps".to_string(),
            serde_json::Value::Object(steps).to_string(),
        ),
    ]);
    let out = safetensors::serialize(tensors, Some(meta)).unwrap();
    std::fs::write(file, out).unwrap();
}

/// A checkpoint whose optimizer state uses the old module-path names resumes bit-identically.
#[test]
fn optimizer_state_with_module_path_names_still_resumes() {
    let full_dir = tempfile::tempdir().unwrap();
    let mut full = trainer(full_dir.path(), 0);
    let full_reports = full.run(&mut VecSource::new(golden_batches())).unwrap();

    let run_dir = tempfile::tempdir().unwrap();
    let mut first = trainer(run_dir.path(), 3);
    let mut data = VecSource::new(golden_batches());
    let mut reports: Vec<StepReport> = (0..3)
        .map(|_| first.train_step(&mut data).unwrap())
        .collect();
    let ckpt = first.save_checkpoint(&data).unwrap();
    let file = ckpt.path.join("optimizer.safetensors");
    rewrite_as_version_1(&file, first.model(), &|path| path.to_string());
    assert!(tensor_names(&file).contains(&"layers.0.self_attn.q_proj.weight.exp_avg".into()));
    assert!(tensor_names(&file).contains(&"embed_tokens.exp_avg".into()));
    drop(first);

    let mut second = trainer(run_dir.path(), 3);
    let mut data = VecSource::new(golden_batches());
    assert_eq!(second.resume(&mut data).unwrap(), Some(3));
    reports.extend(second.run(&mut data).unwrap());
    let a: Vec<_> = full_reports.iter().map(bits).collect();
    let b: Vec<_> = reports.iter().map(bits).collect();
    assert_eq!(
        a, b,
        "loss curve differs after resuming an old-format checkpoint"
    );
}

/// An old-format name that is no parameter of the model is an error naming the file and the key.
#[test]
fn optimizer_state_with_an_unknown_module_path_is_an_error_naming_it() {
    let run_dir = tempfile::tempdir().unwrap();
    let mut first = trainer(run_dir.path(), 0);
    let mut data = VecSource::new(golden_batches());
    first.train_step(&mut data).unwrap();
    let ckpt = first.save_checkpoint(&data).unwrap();
    let file = ckpt.path.join("optimizer.safetensors");
    rewrite_as_version_1(&file, first.model(), &|path| {
        path.replace("layers.1.mlp.up_proj", "layers.7.mlp.up_proj")
    });
    drop(first);

    let mut second = trainer(run_dir.path(), 0);
    let err = second
        .resume(&mut VecSource::new(golden_batches()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("step-1/optimizer.safetensors")
            && err.contains("model.layers.7.mlp.up_proj.weight"),
        "{err}"
    );
}
