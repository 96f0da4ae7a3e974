//! An export loads back with graft-llama's loader and gives the same logits: from an HF
//! directory (f32 and bf16) and from an in-memory model written with `write_hf_dir`.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};
use graft_llama::export::{
    export_checkpoint, generation_config_from, write_hf_dir, ExportDtype, ExportOptions,
    HfDirFiles, ModelSource,
};
use graft_llama::Llama;

type B = Flex;

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures"))
}

/// The golden `input_ids` [2, 32].
fn input_ids() -> Tensor<B, 2, Int> {
    let bytes = std::fs::read(fixtures().join("golden/tiny-llama3/forward.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("input_ids").unwrap();
    let values: Vec<i64> = bytemuck::pod_collect_to_vec(view.data());
    Tensor::from_data(
        TensorData::new(values, view.shape().to_vec()),
        &Default::default(),
    )
}

fn load(dir: &Path) -> Llama<B> {
    graft_llama::load::<B>(dir, &Default::default())
        .expect("load")
        .0
}

fn logits(model: &Llama<B>) -> Vec<f32> {
    model
        .forward(input_ids())
        .into_data()
        .to_vec::<f32>()
        .unwrap()
}

fn export(dtype: ExportDtype, out: &Path) {
    let options = ExportOptions {
        dtype,
        max_shard_size: 200_000,
        force: false,
        tokenizer_dir: None,
    };
    export_checkpoint(
        &fixtures().join("tiny-llama3"),
        out,
        &options,
        &mut |_, _| {},
    )
    .unwrap();
}

#[test]
fn f32_export_loads_back_with_identical_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("f32");
    export(ExportDtype::F32, &out);
    assert!(
        out.join("model-00003-of-00003.safetensors").is_file(),
        "expected 3 shards at 200KB"
    );
    let original = logits(&load(&fixtures().join("tiny-llama3")));
    assert_eq!(logits(&load(&out)), original);
}

#[test]
fn bf16_export_loads_back_like_the_pytorch_bf16_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bf16");
    export(ExportDtype::BF16, &out);
    let reference = logits(&load(&fixtures().join("tiny-llama3-bf16")));
    let ours = logits(&load(&out));
    assert_eq!(ours, reference);
    assert_ne!(
        ours,
        logits(&load(&fixtures().join("tiny-llama3"))),
        "bf16 rounding had no effect"
    );
}

#[test]
fn in_memory_model_written_as_hf_dir_loads_back_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, config) =
        graft_llama::load::<B>(fixtures().join("tiny-llama3"), &Default::default()).unwrap();
    let files = HfDirFiles {
        config: config.clone(),
        generation_config: None,
        tokenizer_dir: None,
    };
    let out = tmp.path().join("from-model");
    let options = ExportOptions {
        dtype: ExportDtype::F32,
        ..ExportOptions::default()
    };
    let summary = write_hf_dir(
        &out,
        &files,
        &mut ModelSource::new(&model),
        &options,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(summary.shards.files, ["model.safetensors"]);
    assert_eq!(summary.shards.total_parameters, 141_632);
    assert_eq!(logits(&load(&out)), logits(&model));
    let generation: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("generation_config.json")).unwrap())
            .unwrap();
    assert_eq!(generation, generation_config_from(&config.raw));
    // Same bytes as exporting the checkpoint directory itself.
    let direct = tmp.path().join("direct");
    export_checkpoint(
        &fixtures().join("tiny-llama3"),
        &direct,
        &options,
        &mut |_, _| {},
    )
    .unwrap();
    let read = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(read(&out), read(&direct));
}

#[test]
fn f16_checkpoint_loads_as_the_f16_rounding_of_every_weight() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("f16");
    export(ExportDtype::F16, &out);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "float16");
    let (f32_model, f16_model) = (load(&fixtures().join("tiny-llama3")), load(&out));
    let (want, got) = (f32_model.named_params(), f16_model.named_params());
    assert_eq!(want.len(), got.len());
    for ((name, a), (name_b, b)) in want.into_iter().zip(got) {
        assert_eq!(name, name_b);
        let a = a.into_data().to_vec::<f32>().unwrap();
        let b = b.into_data().convert::<f32>().to_vec::<f32>().unwrap();
        let rounded: Vec<f32> = a.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect();
        assert_eq!(
            b, rounded,
            "{name}: not the f16 rounding of the f32 weights"
        );
    }
    let (x, y) = (logits(&f32_model), logits(&f16_model));
    let diff = x
        .iter()
        .zip(&y)
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max);
    assert!(
        diff > 0.0 && diff < 1e-2,
        "f16 logits differ from f32 by {diff}"
    );
}
