//! Shared helpers: the tiny-llama3 fixture, its golden batches and hyperparameters.

use std::path::PathBuf;

use graft_train::{AdamWConfig, TokenBatch, TrainConfig, WarmupCosine};
use safetensors::SafeTensors;

pub type B = burn::backend::Autodiff<burn::backend::Flex>;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn golden_json() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("golden/tiny-llama3/train.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The 6×2 golden micro-batches, step-major.
pub fn golden_batches() -> Vec<TokenBatch> {
    let bytes =
        std::fs::read(fixtures().join("golden/tiny-llama3/train_batches.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("batches").unwrap();
    assert_eq!(view.shape(), &[6, 2, 2, 32]);
    let ids: Vec<i64> = view
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    ids.chunks(64)
        .map(|c| TokenBatch {
            tokens: c.to_vec(),
            batch_size: 2,
            seq_len: 32,
        })
        .collect()
}

/// The hyperparameters of train.json as a loop config.
pub fn golden_config() -> TrainConfig {
    let g = golden_json();
    let hp = &g["hyperparameters"];
    let f = |k: &str| hp[k].as_f64().unwrap();
    TrainConfig {
        steps: hp["steps"].as_u64().unwrap(),
        grad_accum: hp["grad_accum"].as_u64().unwrap() as usize,
        micro_batch: [
            hp["micro_batch"].as_u64().unwrap() as usize,
            hp["seq_len"].as_u64().unwrap() as usize,
        ],
        schedule: WarmupCosine {
            peak: f("peak_lr"),
            min_lr_ratio: f("min_lr_ratio"),
            warmup_steps: hp["warmup_steps"].as_u64().unwrap(),
            total_steps: hp["steps"].as_u64().unwrap(),
        },
        adamw: AdamWConfig {
            beta1: f("beta1"),
            beta2: f("beta2"),
            eps: f("eps"),
            weight_decay: f("weight_decay"),
            ..AdamWConfig::default()
        },
        clip_norm: f("clip_norm"),
        save_every: 0,
        keep_last: 0,
        log_every: 1,
        max_nonfinite_steps: 3,
        seed: 0,
        activation_checkpointing: false,
        zero_stage: 0,
    }
}

/// Every parameter of `model` as f32 values, by HF name.
pub fn params<Bk: burn::tensor::backend::Backend>(
    model: &graft_llama::Llama<Bk>,
) -> Vec<(String, Vec<f32>)> {
    model
        .named_params()
        .into_iter()
        .map(|(n, t)| (n, t.into_data().convert::<f32>().to_vec::<f32>().unwrap()))
        .collect()
}

/// The tensor names of a safetensors file, sorted.
#[allow(dead_code)] // not every test binary reads checkpoint files
pub fn tensor_names(path: &std::path::Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    names
}

/// The names `optimizer.safetensors` must hold for parameters named `weights` (f32 weights: the
/// two moments, no master copy), sorted.
#[allow(dead_code)]
pub fn moment_names(weights: &[String]) -> Vec<String> {
    let mut names: Vec<String> = weights
        .iter()
        .flat_map(|w| [format!("{w}.exp_avg"), format!("{w}.exp_avg_sq")])
        .collect();
    names.sort();
    names
}
