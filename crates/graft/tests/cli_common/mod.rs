//! Helpers of the CLI tests for inspect, download, eval and generate: run the real binary, read the
//! golden fixtures, build a tiny word-level tokenizer that fits the 384-token fixture model.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

/// The repo's fixtures.
pub fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures"))
}

pub fn tiny_dir() -> PathBuf {
    fixtures().join("tiny-llama3")
}

/// Runs `graft ARGS` with `envs` set, returning its output.
pub fn graft(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_graft"));
    cmd.args(args).env_remove("HF_HUB_OFFLINE");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run graft")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success, printing stderr otherwise.
pub fn ok(out: Output) -> Output {
    assert!(out.status.success(), "graft failed:\n{}", stderr(&out));
    out
}

/// A safetensors tensor's `(dtype, shape, bytes)`, parsed by hand (8-byte header length, JSON).
pub fn read_tensor(path: &Path, name: &str) -> (String, Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).expect("read safetensors");
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let t = &header[name];
    let shape = t["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let off: Vec<usize> = t["data_offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    (
        t["dtype"].as_str().unwrap().to_string(),
        shape,
        bytes[8 + n + off[0]..8 + n + off[1]].to_vec(),
    )
}

/// Element counts of every tensor of a safetensors file.
pub fn tensor_sizes(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).expect("read safetensors");
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| {
            v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .product()
        })
        .collect()
}

pub fn golden() -> PathBuf {
    fixtures().join("golden/tiny-llama3/forward.safetensors")
}

/// The golden input ids, 2 rows of 32.
pub fn golden_ids() -> Vec<Vec<i64>> {
    let (dtype, shape, data) = read_tensor(&golden(), "input_ids");
    assert_eq!(dtype, "I64");
    let flat: Vec<i64> = data
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    flat.chunks(shape[1]).map(<[i64]>::to_vec).collect()
}

pub fn golden_f32(name: &str) -> Vec<f32> {
    let (dtype, _, data) = read_tensor(&golden(), name);
    assert_eq!(dtype, "F32");
    data.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// A copy of the tiny model with a word-level `tokenizer.json`: "<unk>" 0, "<s>" 1, "</s>" 2 and
/// "w3" … "w383" for the other ids; whitespace pre-tokenizer; decoding joins tokens with spaces.
pub fn tiny_with_tokenizer() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(tiny_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    let mut vocab = serde_json::Map::new();
    for (i, special) in ["<unk>", "<s>", "</s>"].iter().enumerate() {
        vocab.insert(special.to_string(), i.into());
    }
    for i in 3..384 {
        vocab.insert(format!("w{i}"), i.into());
    }
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    std::fs::write(tmp.path().join("tokenizer.json"), tokenizer.to_string()).unwrap();
    tmp
}

/// Writes JSONL lines into `dir/name`.
pub fn write_jsonl(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}
