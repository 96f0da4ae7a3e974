//! A damaged or hand-edited checkpoint is a clear error naming the file and the tensor or field,
//! never a panic: `optimizer.safetensors` truncated, with a tensor of the wrong shape or a tensor
//! missing, and a `training_state.json` whose data cursor no longer fits (the other state-file
//! cases are unit tests of `checkpoint.rs`).

#[allow(dead_code)] // the shared helpers this binary does not use
mod common;

use std::path::Path;

use common::*;
use graft_train::{Trainer, VecSource};

fn trainer(run_dir: &Path) -> Trainer<B> {
    let device = Default::default();
    let (model, config) = graft_llama::load::<B>(fixtures().join("tiny-llama3"), &device).unwrap();
    let mut cfg = golden_config();
    cfg.steps = 1;
    Trainer::<B>::new(model, config, cfg, device)
        .with_run_dir(run_dir)
        .unwrap()
}

/// The header of a safetensors file as JSON, and its data.
fn split(bytes: &[u8]) -> (serde_json::Map<String, serde_json::Value>, &[u8]) {
    let n = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (serde_json::from_slice(&bytes[8..n]).unwrap(), &bytes[n..])
}

fn join(header: &serde_json::Map<String, serde_json::Value>, data: &[u8]) -> Vec<u8> {
    let text = serde_json::to_vec(header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(data);
    out
}

#[test]
fn a_damaged_optimizer_file_or_state_names_the_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    trainer(dir.path())
        .run(&mut VecSource::new(golden_batches()))
        .unwrap();
    let ckpt = dir.path().join("checkpoints/step-1");
    let file = ckpt.join("optimizer.safetensors");
    let good = std::fs::read(&file).unwrap();
    let resume = |bytes: &[u8]| {
        std::fs::write(&file, bytes).unwrap();
        let mut t = trainer(dir.path());
        t.resume(&mut VecSource::new(golden_batches()))
            .unwrap_err()
            .to_string()
    };
    let (header, data) = split(&good);

    let err = resume(&good[..good.len() - 100]);
    assert!(err.contains("step-1/optimizer.safetensors"), "{err}");

    // every tensor of one non-square shape transposed: the byte sizes still match, the model not
    let (key, rows, cols) = header
        .iter()
        .filter_map(|(k, v)| {
            let s: Vec<u64> = serde_json::from_value(v.get("shape")?.clone()).ok()?;
            (s.len() == 2 && s[0] != s[1]).then(|| (k.clone(), s[0], s[1]))
        })
        .next()
        .unwrap();
    let mut edited = header.clone();
    for v in edited.values_mut() {
        if v.get("shape") == Some(&serde_json::json!([rows, cols])) {
            v["shape"] = serde_json::json!([cols, rows]);
        }
    }
    let err = resume(&join(&edited, data));
    let param = &key[..key.rfind('.').unwrap()];
    let names_a_param = header
        .iter()
        .filter(|(_, v)| v.get("shape") == Some(&serde_json::json!([rows, cols])))
        .any(|(k, _)| err.contains(&k[..k.rfind('.').unwrap()]));
    assert!(
        err.contains("step-1/optimizer.safetensors")
            && err.contains(&format!("[{cols}, {rows}]"))
            && names_a_param,
        "{param}: {err}"
    );

    // a tensor renamed: the one the parameter misses (or the stray one) is named
    let mut edited = header.clone();
    let value = edited.remove(&key).unwrap();
    let stray = format!("{key}~");
    edited.insert(stray.clone(), value);
    let err = resume(&join(&edited, data));
    assert!(
        err.contains("step-1/optimizer.safetensors")
            && (err.contains(&key) || err.contains(&stray)),
        "{err}"
    );

    // the data cursor of another pipeline
    std::fs::write(&file, &good).unwrap();
    let state = ckpt.join("training_state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    let edited = text.replace("\"next\"", "\"nxet\"");
    assert_ne!(edited, text);
    std::fs::write(&state, edited).unwrap();
    let err = resume(&good);
    assert!(
        err.contains("step-1/training_state.json") && err.contains("field `data_cursor`"),
        "{err}"
    );
}
