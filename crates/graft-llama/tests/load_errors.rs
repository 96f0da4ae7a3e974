//! Bad checkpoints fail with a clear error naming the file, tensor and shapes; odd-but-valid
//! ones (tied heads) load.

mod common;

use std::path::Path;

use common::*;
use graft_llama::{load, Error};
use safetensors::Dtype;

const SHARD2: &str = "model-00002-of-00002.safetensors";

fn load_err(dir: &Path) -> Error {
    match load::<B>(dir, &Default::default()) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e,
    }
}

/// Rewrites `file` in `dir` after applying `edit` to its tensors.
fn rewrite(
    dir: &Path,
    file: &str,
    edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
) {
    let path = dir.join(file);
    let mut tensors = read_all(&path);
    edit(&mut tensors);
    write_safetensors(&path, &tensors);
}

/// The bf16 fixture (one file) rewritten with `edit`, with `tie` as tie_word_embeddings.
fn bf16_variant(
    tie: bool,
    edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
) -> tempfile::TempDir {
    let dir = copy_fixture("tiny-llama3-bf16");
    rewrite(dir.path(), "model.safetensors", edit);
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["tie_word_embeddings"] = tie.into();
    std::fs::write(&path, config.to_string()).unwrap();
    dir
}

#[test]
fn missing_tensor() {
    let dir = bf16_variant(false, |t| {
        t.retain(|x| x.0 != "model.layers.1.mlp.up_proj.weight")
    });
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::MissingTensor { tensor, expected, .. }
        if tensor == "model.layers.1.mlp.up_proj.weight" && expected == &vec![176, 64]),
        "{err}"
    );
}

#[test]
fn untied_model_without_lm_head_is_missing_a_tensor() {
    let dir = bf16_variant(false, |t| t.retain(|x| x.0 != "lm_head.weight"));
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::MissingTensor { tensor, .. } if tensor == "lm_head.weight"),
        "{err}"
    );
}

#[test]
fn unexpected_tensor() {
    let dir = copy_fixture("tiny-llama3");
    rewrite(dir.path(), SHARD2, |t| {
        t.push((
            "model.layers.2.self_attn.q_proj.weight".into(),
            Dtype::F32,
            vec![2],
            vec![0; 8],
        ));
    });
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::UnexpectedTensor { tensor, path, .. }
        if tensor == "model.layers.2.self_attn.q_proj.weight" && path.ends_with(SHARD2)),
        "{err}"
    );
}

#[test]
fn wrong_shape() {
    let dir = copy_fixture("tiny-llama3");
    rewrite(dir.path(), SHARD2, |t| {
        let norm = t
            .iter_mut()
            .find(|x| x.0 == "model.norm.weight")
            .expect("norm in shard 2");
        norm.2 = vec![32];
        norm.3.truncate(32 * 4);
    });
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::ShapeMismatch { tensor, expected, actual, .. }
        if tensor == "model.norm.weight" && expected == &vec![64] && actual == &vec![32]),
        "{err}"
    );
    assert!(err.to_string().contains(SHARD2), "{err}");
}

#[test]
fn integer_dtype() {
    let dir = copy_fixture("tiny-llama3");
    rewrite(dir.path(), SHARD2, |t| {
        let norm = t
            .iter_mut()
            .find(|x| x.0 == "model.norm.weight")
            .expect("norm in shard 2");
        norm.1 = Dtype::I32;
    });
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::UnsupportedDtype { tensor, .. } if tensor == "model.norm.weight"),
        "{err}"
    );
}

#[test]
fn truncated_file() {
    let dir = copy_fixture("tiny-llama3");
    let path = dir.path().join(SHARD2);
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 100).unwrap();
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::Safetensors { path: p, .. } if p.ends_with(SHARD2)),
        "{err}"
    );
}

#[test]
fn corrupt_header() {
    let dir = copy_fixture("tiny-llama3");
    let path = dir.path().join(SHARD2);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..40].copy_from_slice(&[b'#'; 32]);
    std::fs::write(&path, bytes).unwrap();
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::Safetensors { path: p, .. } if p.ends_with(SHARD2)),
        "{err}"
    );
}

#[test]
fn shard_named_in_index_but_absent() {
    let dir = copy_fixture("tiny-llama3");
    std::fs::remove_file(dir.path().join(SHARD2)).unwrap();
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::MissingShard { shard, .. } if shard == SHARD2),
        "{err}"
    );
}

#[test]
fn missing_or_malformed_config() {
    let dir = copy_fixture("tiny-llama3");
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::Json { path, .. } if path.ends_with("config.json")),
        "{err}"
    );
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::Io { path, .. } if path.ends_with("config.json")),
        "{err}"
    );
}

#[test]
fn directory_without_weights() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("tiny-llama3/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    assert!(matches!(load_err(dir.path()), Error::NoWeights { .. }));
}

#[test]
fn tied_model_without_lm_head_loads_and_uses_embeddings() {
    let dir = bf16_variant(true, |t| t.retain(|x| x.0 != "lm_head.weight"));
    let (model, config) = load::<B>(dir.path(), &Default::default()).expect("tied model loads");
    assert!(config.llama.tie_word_embeddings && model.lm_head.is_none());
    let logits = model.forward(int_tensor::<B>("input_ids"));
    assert_eq!(logits.dims(), [2, 32, 384]);
}

#[test]
fn tied_model_with_lm_head_ignores_it() {
    let dir = bf16_variant(true, |_| {});
    let (model, _) = load::<B>(dir.path(), &Default::default()).expect("extra lm_head is ignored");
    assert!(model.lm_head.is_none());
    assert!(model.param_by_name("lm_head.weight").is_err());
}
