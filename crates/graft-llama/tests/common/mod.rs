//! Shared helpers for graft-llama's integration tests.
#![allow(dead_code)]

/// HF `config.json` texts of real checkpoints.
pub mod configs;

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Int, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

pub type B = Flex;
pub type AB = Autodiff<Flex>;

/// The repo's golden fixtures (see tests/fixtures/README.md).
pub fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures"))
}

pub fn golden(file: &str) -> PathBuf {
    fixtures().join("golden/tiny-llama3").join(file)
}

/// Reads every tensor of a safetensors file as `(name, dtype, shape, raw bytes)`.
pub fn read_all(path: &Path) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("read fixture");
    let st = SafeTensors::deserialize(&bytes).expect("parse fixture");
    let mut out: Vec<_> = st
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                v.dtype(),
                v.shape().to_vec(),
                v.data().to_vec(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// One f32 tensor of a safetensors file, as `(shape, values)`.
pub fn read_f32(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).expect("read fixture");
    let st = SafeTensors::deserialize(&bytes).expect("parse fixture");
    let v = st.tensor(name).expect("tensor in fixture");
    assert_eq!(v.dtype(), Dtype::F32, "{name}");
    (v.shape().to_vec(), bytemuck::pod_collect_to_vec(v.data()))
}

/// One i64 tensor of a safetensors file, as `(shape, values)`.
pub fn read_i64(path: &Path, name: &str) -> (Vec<usize>, Vec<i64>) {
    let bytes = std::fs::read(path).expect("read fixture");
    let st = SafeTensors::deserialize(&bytes).expect("parse fixture");
    let v = st.tensor(name).expect("tensor in fixture");
    assert_eq!(v.dtype(), Dtype::I64, "{name}");
    (v.shape().to_vec(), bytemuck::pod_collect_to_vec(v.data()))
}

/// A `[batch, seq]` int tensor from a golden i64 tensor.
pub fn int_tensor<Bk: burn::tensor::backend::Backend>(name: &str) -> Tensor<Bk, 2, Int> {
    let (shape, values) = read_i64(&golden("forward.safetensors"), name);
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// Max |a - b| over two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Copies a fixture checkpoint directory into a fresh temp dir.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(fixtures().join(name)).expect("fixture dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).expect("copy");
    }
    tmp
}

/// Writes `(name, dtype, shape, bytes)` tensors as a safetensors file.
pub fn write_safetensors(path: &Path, tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            let view = safetensors::tensor::TensorView::new(*d, s.clone(), b).expect("view");
            (n.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("write safetensors");
}
