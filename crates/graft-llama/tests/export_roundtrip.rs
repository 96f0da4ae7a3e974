//! Export of the golden HF fixtures: f32 re-export reproduces the source shards byte for byte,
//! bf16 export reproduces the PyTorch-written bf16 checkpoint byte for byte, tied models stay tied.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use graft_llama::export::{export_checkpoint, ExportDtype, ExportOptions};
use safetensors::SafeTensors;

fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures")).join(name)
}

fn options(dtype: ExportDtype, max_shard_size: u64) -> ExportOptions {
    ExportOptions {
        dtype,
        max_shard_size,
        force: false,
        tokenizer_dir: None,
    }
}

fn export(src: &Path, out: &Path, opts: &ExportOptions) -> graft_llama::export::ExportSummary {
    export_checkpoint(src, out, opts, &mut |_, _| {}).expect("export succeeds")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// name → (dtype, shape, bytes) of every tensor in the safetensors files of `dir`.
fn tensors(dir: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let mut all = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            let bytes = fs::read(&path).unwrap();
            let st = SafeTensors::deserialize(&bytes).unwrap();
            for (name, view) in st.tensors() {
                let value = (
                    view.dtype().to_string(),
                    view.shape().to_vec(),
                    view.data().to_vec(),
                );
                assert!(all.insert(name.clone(), value).is_none(), "{name} twice");
            }
        }
    }
    all
}

/// HF's shard size for the fixture (generate.py): (total // 2) // 1000 + 8 KB.
const FIXTURE_SHARD: u64 = 291_000;

#[test]
fn f32_export_reproduces_the_sharded_source_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let src = fixture("tiny-llama3");
    let summary = export(&src, &out, &options(ExportDtype::F32, FIXTURE_SHARD));
    assert_eq!(
        summary.shards.files,
        [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors"
        ]
    );
    for file in &summary.shards.files {
        assert_eq!(
            fs::read(out.join(file)).unwrap(),
            fs::read(src.join(file)).unwrap(),
            "{file} differs"
        );
    }
    let index = "model.safetensors.index.json";
    assert_eq!(json(&out.join(index)), json(&src.join(index)));
    assert_eq!(
        fs::read(out.join(index)).unwrap(),
        fs::read(src.join(index)).unwrap(),
        "index text differs"
    );
    assert_eq!(tensors(&out), tensors(&src));
    assert_eq!(
        json(&out.join("config.json")),
        json(&src.join("config.json"))
    );
    assert_eq!(
        json(&out.join("generation_config.json")),
        json(&src.join("generation_config.json"))
    );
    assert!(!out.join("model.safetensors").exists());
}

#[test]
fn bf16_export_matches_the_pytorch_bf16_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bf16");
    let summary = export(
        &fixture("tiny-llama3"),
        &out,
        &options(ExportDtype::BF16, 5_000_000_000),
    );
    assert_eq!(summary.shards.files, ["model.safetensors"]);
    assert!(!summary.shards.index_written && !out.join("model.safetensors.index.json").exists());
    let reference = fixture("tiny-llama3-bf16");
    assert_eq!(tensors(&out), tensors(&reference));
    let ours = fs::read(out.join("model.safetensors")).unwrap();
    assert_eq!(
        ours,
        fs::read(reference.join("model.safetensors")).unwrap(),
        "file bytes differ"
    );
    let st = SafeTensors::deserialize(&ours).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&ours).unwrap();
    assert_eq!(
        meta.metadata()
            .as_ref()
            .and_then(|m| m.get("format"))
            .map(String::as_str),
        Some("pt")
    );
    assert_eq!(st.len(), 21);
    let config = json(&out.join("config.json"));
    assert_eq!(config, json(&reference.join("config.json")));
    assert_eq!(config["torch_dtype"], "bfloat16");
}

#[test]
fn f16_export_sets_dtype_and_rounds_every_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("f16");
    export(
        &fixture("tiny-llama3"),
        &out,
        &options(ExportDtype::F16, 5_000_000_000),
    );
    assert_eq!(json(&out.join("config.json"))["torch_dtype"], "float16");
    let source = tensors(&fixture("tiny-llama3"));
    let exported = tensors(&out);
    assert_eq!(
        exported.keys().collect::<Vec<_>>(),
        source.keys().collect::<Vec<_>>()
    );
    for (name, (dtype, shape, bytes)) in &exported {
        let (_, src_shape, src_bytes) = &source[name];
        assert_eq!((dtype.as_str(), shape), ("F16", src_shape), "{name}");
        let expected: Vec<u8> = src_bytes
            .chunks_exact(4)
            .flat_map(|b| {
                half::f16::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])).to_le_bytes()
            })
            .collect();
        assert_eq!(bytes, &expected, "{name}");
    }
}

/// A tied copy of the fixture: `tie_word_embeddings: true`, one file, with or without `lm_head`.
fn tied_fixture(dir: &Path, keep_lm_head: bool) {
    fs::create_dir_all(dir).unwrap();
    let src = fixture("tiny-llama3");
    let mut config = json(&src.join("config.json"));
    config["tie_word_embeddings"] = true.into();
    fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    let all = tensors(&src);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = all
        .iter()
        .filter(|(name, _)| keep_lm_head || name.as_str() != "lm_head.weight")
        .map(|(name, (_, shape, bytes))| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

#[test]
fn tied_embeddings_stay_tied() {
    let tmp = tempfile::tempdir().unwrap();
    for keep in [false, true] {
        let src = tmp.path().join(format!("tied-src-{keep}"));
        tied_fixture(&src, keep);
        let out = tmp.path().join(format!("tied-out-{keep}"));
        let summary = export(&src, &out, &options(ExportDtype::F32, 5_000_000_000));
        let exported = tensors(&out);
        assert!(
            !exported.contains_key("lm_head.weight"),
            "lm_head written for a tied model (source had it: {keep})"
        );
        assert_eq!(exported.len(), 20);
        assert_eq!(summary.shards.total_parameters, 141_632 - 384 * 64);
        assert_eq!(
            exported["model.embed_tokens.weight"],
            tensors(&fixture("tiny-llama3"))["model.embed_tokens.weight"]
        );
        assert_eq!(json(&out.join("config.json"))["tie_word_embeddings"], true);
        // No generation_config.json in the source: one is written from bos/eos.
        let generation = json(&out.join("generation_config.json"));
        assert_eq!(
            (
                generation["bos_token_id"].clone(),
                generation["eos_token_id"].clone()
            ),
            (1.into(), 2.into())
        );
    }
}

#[test]
fn untied_model_without_lm_head_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tied_fixture(&src, false);
    let mut config = json(&src.join("config.json"));
    config["tie_word_embeddings"] = false.into();
    fs::write(src.join("config.json"), config.to_string()).unwrap();
    let err = export_checkpoint(
        &src,
        &tmp.path().join("out"),
        &ExportOptions::default(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("lm_head.weight"), "{err}");
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn tokenizer_files_are_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("with-tok");
    let tok = fixture("llama3-tokenizer");
    let mut opts = options(ExportDtype::BF16, 5_000_000_000);
    opts.tokenizer_dir = Some(tok.clone());
    let summary = export(&fixture("tiny-llama3"), &out, &opts);
    assert_eq!(
        summary.tokenizer_files,
        ["tokenizer.json", "tokenizer_config.json", "NOTICE"]
    );
    // the tokenizer's license notice travels with it (Meta Llama 3 Community License)
    for file in ["tokenizer.json", "tokenizer_config.json", "NOTICE"] {
        assert_eq!(
            fs::read(out.join(file)).unwrap(),
            fs::read(tok.join(file)).unwrap(),
            "{file}"
        );
    }
    // Re-exporting the export finds the tokenizer in the checkpoint itself.
    let again = tmp.path().join("again");
    let summary = export(&out, &again, &options(ExportDtype::BF16, 5_000_000_000));
    assert_eq!(summary.tokenizer_files.len(), 3);
    assert_eq!(
        fs::read(again.join("model.safetensors")).unwrap(),
        fs::read(out.join("model.safetensors")).unwrap()
    );
}
