//! Shared helpers of the evaluation tests: the tiny fixture model and its golden outputs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use graft_llama::Llama;
use safetensors::{Dtype, SafeTensors};

pub type B = Flex;

/// The repo's fixtures (see tests/fixtures/README.md).
pub fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures"))
}

pub fn tiny() -> Llama<B> {
    graft_llama::load::<B>(fixtures().join("tiny-llama3"), &Default::default())
        .expect("load tiny-llama3")
        .0
}

fn tensor(name: &str) -> (Dtype, Vec<usize>, Vec<u8>) {
    let path = fixtures().join("golden/tiny-llama3/forward.safetensors");
    let bytes = std::fs::read(&path).expect("read golden");
    let st = SafeTensors::deserialize(&bytes).expect("parse golden");
    let v = st.tensor(name).expect("golden tensor");
    (v.dtype(), v.shape().to_vec(), v.data().to_vec())
}

/// The golden `input_ids` rows (2 × 32, BOS first).
pub fn golden_ids() -> Vec<Vec<u32>> {
    let (dtype, shape, data) = tensor("input_ids");
    assert_eq!(dtype, Dtype::I64);
    let flat: Vec<u32> = data
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect();
    flat.chunks(shape[1]).map(<[u32]>::to_vec).collect()
}

/// The golden mean loss over both rows.
pub fn golden_loss() -> f64 {
    let (_, _, data) = tensor("loss");
    f32::from_le_bytes(data[..4].try_into().unwrap()) as f64
}

/// `log_softmax` of the golden logits, computed in f64: `[row][position][token]`.
pub fn golden_log_probs() -> Vec<Vec<Vec<f64>>> {
    let (dtype, shape, data) = tensor("logits");
    assert_eq!(dtype, Dtype::F32);
    let flat: Vec<f64> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect();
    let vocab = shape[2];
    flat.chunks(shape[1] * vocab)
        .map(|row| {
            row.chunks(vocab)
                .map(|logits| {
                    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
                    logits.iter().map(|l| l - lse).collect()
                })
                .collect()
        })
        .collect()
}

/// Writes `lines` as a JSONL file in `dir`.
pub fn write_jsonl(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write jsonl");
    path
}
