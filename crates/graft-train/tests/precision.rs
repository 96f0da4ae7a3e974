//! Checkpoints store every weight in the precision the model holds it in, `config.json` saying
//! so: f32 for the CPU backend's f32 model, bf16 for a bf16 model (whose f32 masters go to
//! `optimizer.safetensors`). Checkpoints written by older graft versions, with f32-trained
//! weights rounded to bf16, still resume.

mod common;

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{FloatDType, Tensor};
use common::*;
use graft_train::{Trainer, VecSource};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

fn trainer(run_dir: &Path, model: graft_llama::Llama<B>) -> Trainer<B> {
    let config = graft_llama::ModelConfig::from_file(fixtures().join("tiny-llama3/config.json"));
    Trainer::<B>::new(model, config.unwrap(), golden_config(), Default::default())
        .with_run_dir(run_dir)
        .unwrap()
}

fn tiny() -> graft_llama::Llama<B> {
    graft_llama::load::<B>(fixtures().join("tiny-llama3"), &Default::default())
        .unwrap()
        .0
}

fn torch_dtype(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["torch_dtype"].as_str().unwrap().to_string()
}

/// `(dtype, bytes)` of every tensor of a safetensors file, by name.
fn file_tensors(path: &Path) -> HashMap<String, (Dtype, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, (v.dtype(), v.data().to_vec())))
        .collect()
}

#[test]
fn an_f32_model_is_checkpointed_in_f32_as_trained() {
    let run = tempfile::tempdir().unwrap();
    let mut t = trainer(run.path(), tiny());
    let mut data = VecSource::new(golden_batches());
    t.train_step(&mut data).unwrap();
    let ckpt = t.save_checkpoint(&data).unwrap();
    assert_eq!(torch_dtype(&ckpt.path), "float32");
    let saved = file_tensors(&ckpt.path.join("model.safetensors"));
    for (name, value) in params(t.model()) {
        let (dtype, bytes) = &saved[&name];
        let bits: Vec<u8> = value.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(
            *dtype == Dtype::F32 && *bytes == bits,
            "{name} not stored as trained"
        );
    }
}

struct ToBf16;
impl<AB: AutodiffBackend> ModuleMapper<AB> for ToBf16 {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let (id, t, mapper) = p.consume();
        let t = Tensor::from_inner(t.inner().cast(FloatDType::BF16)).require_grad();
        Param::from_mapped_value(id, t, mapper)
    }
}

/// A model held in bf16 (as on CUDA) is stored in bf16, bit for bit (its f32 masters are AdamW
/// state: `optim_tests` checks they round-trip through `optimizer.safetensors`). The Llama forward
/// itself does not run in bf16 on the CPU backend, so this saves the initial weights.
#[test]
fn a_bf16_model_is_checkpointed_in_bf16() {
    let run = tempfile::tempdir().unwrap();
    let mut t = trainer(run.path(), tiny().map(&mut ToBf16));
    let data = VecSource::new(golden_batches());
    let ckpt = t.save_checkpoint(&data).unwrap();
    assert_eq!(torch_dtype(&ckpt.path), "bfloat16");
    let saved = file_tensors(&ckpt.path.join("model.safetensors"));
    for (name, value) in params(t.model()) {
        let (dtype, bytes) = &saved[&name];
        let bits: Vec<u8> = value
            .iter()
            .flat_map(|v| burn::tensor::bf16::from_f32(*v).to_le_bytes())
            .collect();
        assert!(
            *dtype == Dtype::BF16 && *bytes == bits,
            "{name} not stored as held"
        );
    }
}

/// Rewrite a checkpoint's weights as graft did before it stored the trained precision: rounded
/// to bf16, `torch_dtype` bfloat16.
fn round_to_bf16_as_old_checkpoints_did(dir: &Path) {
    let path = dir.join("model.safetensors");
    let rounded: Vec<(String, Vec<usize>, Vec<u8>)> = {
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        st.tensors()
            .into_iter()
            .map(|(name, v)| {
                let data = v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .flat_map(|x| burn::tensor::bf16::from_f32(x).to_le_bytes())
                    .collect();
                (name, v.shape().to_vec(), data)
            })
            .collect()
    };
    let views = rounded.iter().map(|(n, s, d)| {
        (
            n.clone(),
            TensorView::new(Dtype::BF16, s.clone(), d).unwrap(),
        )
    });
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let config = config.replace("\"float32\"", "\"bfloat16\"");
    std::fs::write(dir.join("config.json"), config).unwrap();
}

#[test]
fn old_checkpoints_with_weights_rounded_to_bf16_still_resume() {
    let run = tempfile::tempdir().unwrap();
    let mut first = trainer(run.path(), tiny());
    let mut data = VecSource::new(golden_batches());
    for _ in 0..3 {
        first.train_step(&mut data).unwrap();
    }
    let ckpt = first.save_checkpoint(&data).unwrap();
    round_to_bf16_as_old_checkpoints_did(&ckpt.path);

    let mut second = trainer(run.path(), tiny());
    let mut data = VecSource::new(golden_batches());
    assert_eq!(second.resume(&mut data).unwrap(), Some(3));
    for ((n, x), (_, y)) in params(first.model()).iter().zip(&params(second.model())) {
        let rounded = x.iter().map(|v| burn::tensor::bf16::from_f32(*v).to_f32());
        assert!(rounded.eq(y.iter().copied()), "{n}: not the bf16 weights");
    }
    let reports = second.run(&mut data).unwrap();
    assert_eq!(reports.len(), 3);
    assert!(reports.iter().all(|r| r.loss.is_finite() && !r.skipped));
}
