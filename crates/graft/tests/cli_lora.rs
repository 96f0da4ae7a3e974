//! LoRA through the real binary: `graft train` with `method = "lora"` writes adapter checkpoints
//! (PEFT files, no full model except the in-memory base in `base/`), `--resume` continues from
//! one, and `graft export` merges it (the merge is the base plus the adapter's `scale·B·A`) or
//! writes the adapter alone.

mod train_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A tiny LoRA recipe over part of the shipped samples (absolute paths), written into `dir`.
fn lora_recipe(dir: &Path) -> PathBuf {
    let r = repo();
    let text = format!(
        r#"name = "cli-lora"
[model]
tokenizer = "{tok}"
dtype = "f32"
[model.init]
vocab_size = 128256
tie_word_embeddings = true
hidden_size = 32
intermediate_size = 64
num_hidden_layers = 1
num_attention_heads = 2
num_key_value_heads = 1
max_position_embeddings = 64
[data]
seq_len = 32
val_fraction = 0.05
prepared_dir = "{prepared}"
[[data.sources]]
name = "finance"
path = "{data}/finance/finance-00.jsonl"
format = "instruction-augmented"
[[data.sources]]
name = "general"
path = "{data}/general/general-00.jsonl"
format = "instruction"
[train]
method = "lora"
micro_batch_size = 2
grad_accum = 1
steps = 4
lr = 5e-2
log_every = 1
save_every = 2
keep_last = 0
eval_every = 4
eval_batches = 1
[lora]
rank = 2
alpha = 4.0
target_modules = ["q_proj", "v_proj", "down_proj"]
"#,
        tok = r
            .join("tests/fixtures/llama3-tokenizer/tokenizer.json")
            .display(),
        data = r.join("data").display(),
        prepared = dir.join("prepared").display(),
    );
    let path = dir.join("lora.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = graft(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "graft {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    format!("{stdout}{stderr}")
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    v.sort();
    v
}

/// Every tensor of an f32 safetensors file, by name (8-byte header length, JSON header, data).
fn tensors(path: &Path) -> std::collections::BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    header
        .into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .map(|(name, info)| {
            assert_eq!(info["dtype"], "F32", "{name}");
            let (b, e) = (
                info["data_offsets"][0].as_u64().unwrap() as usize,
                info["data_offsets"][1].as_u64().unwrap() as usize,
            );
            (
                name,
                data[b..e]
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn lora_train_resume_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = lora_recipe(tmp.path());
    let run = tmp.path().join("run");
    let (recipe_s, run_s) = (recipe.to_str().unwrap(), run.to_str().unwrap());
    let log = ok(&["train", recipe_s, "--out", run_s, "--stop-after", "2"]);
    assert!(log.contains("LoRA: base frozen"), "{log}");
    let step2 = run.join("checkpoints/step-2");
    assert_eq!(
        names(&step2),
        [
            "NOTICE",
            "adapter_config.json",
            "adapter_model.safetensors",
            "base",
            "optimizer.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "training_state.json"
        ]
    );
    ok(&["train", recipe_s, "--out", run_s, "--resume"]);
    let step4 = run.join("checkpoints/step-4");
    let adapter = tensors(&step4.join("adapter_model.safetensors"));
    assert_eq!(adapter.len(), 3 * 2);
    assert!(adapter
        .keys()
        .all(|n| n.starts_with("base_model.model.model.layers.0.") && n.contains(".lora_")));
    assert!(
        adapter
            .iter()
            .filter(|(n, _)| n.contains("lora_B"))
            .all(|(_, v)| v.iter().any(|x| *x != 0.0)),
        "B trained"
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(step4.join("training_state.json")).unwrap())
            .unwrap();
    assert_eq!(state["step"], 4);

    // Merged export: untargeted tensors are the base's, targeted ones base + 2·B·A.
    let merged = tmp.path().join("merged");
    ok(&[
        "export",
        step4.to_str().unwrap(),
        merged.to_str().unwrap(),
        "--dtype",
        "f32",
    ]);
    let (base, out) = (
        tensors(&step4.join("base/model.safetensors")),
        tensors(&merged.join("model.safetensors")),
    );
    assert_eq!(
        base.keys().collect::<Vec<_>>(),
        out.keys().collect::<Vec<_>>()
    );
    for (name, w) in &base {
        let module = name
            .trim_start_matches("model.")
            .trim_end_matches(".weight");
        let Some(a) = adapter.get(&format!("base_model.model.model.{module}.lora_A.weight")) else {
            assert_eq!(&out[name], w, "{name} copied");
            continue;
        };
        let b = &adapter[&format!("base_model.model.model.{module}.lora_B.weight")];
        let (r, cols) = (2, a.len() / 2);
        for (i, got) in out[name].iter().enumerate() {
            let (row, col) = (i / cols, i % cols);
            let ba: f32 = (0..r).map(|k| b[row * r + k] * a[k * cols + col]).sum();
            assert!((got - (w[i] + 2.0 * ba)).abs() <= 1e-6, "{name}[{i}]");
        }
    }
    // Adapter only.
    let only = tmp.path().join("adapter");
    ok(&[
        "export",
        step4.to_str().unwrap(),
        only.to_str().unwrap(),
        "--adapter-only",
        "--dtype",
        "f32",
    ]);
    assert_eq!(
        names(&only),
        ["adapter_config.json", "adapter_model.safetensors"]
    );
    assert_eq!(tensors(&only.join("adapter_model.safetensors")), adapter);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(only.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(
        (
            config["peft_type"].as_str(),
            config["r"].as_u64(),
            config["lora_alpha"].as_f64()
        ),
        (Some("LORA"), Some(2), Some(4.0))
    );
    // --adapter-only on a plain checkpoint is refused, naming the reason.
    let plain = repo().join("tests/fixtures/tiny-llama3");
    let out = graft(&[
        "export",
        plain.to_str().unwrap(),
        tmp.path().join("x").to_str().unwrap(),
        "--adapter-only",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a LoRA checkpoint"));
}

/// A bf16 LoRA recipe: the adapters are trained in f32 (PEFT's autocast) and stored in f32, not
/// rounded to bf16 at every save, so a run stopped at step 2 and resumed matches an
/// uninterrupted one bit for bit (losses, adapters, AdamW state).
#[test]
fn bf16_lora_run_stopped_and_resumed_matches_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = lora_recipe(tmp.path());
    let recipe_s = recipe.to_str().unwrap();
    let (full, split) = (tmp.path().join("full"), tmp.path().join("split"));
    let (full_s, split_s) = (full.to_str().unwrap(), split.to_str().unwrap());
    let bf16 = ["--set", "model.dtype=bf16"];
    let train = |run: &str, extra: &[&str]| {
        ok(&[&["train", recipe_s, "--out", run][..], &bf16, extra].concat())
    };
    train(full_s, &[]);
    train(split_s, &["--stop-after", "2"]);
    train(split_s, &["--resume"]);
    assert_eq!(train_common::losses(&full).len(), 4);
    assert_eq!(
        train_common::losses(&full),
        train_common::losses(&split),
        "losses differ"
    );

    let (a, b) = (
        full.join("checkpoints/step-4"),
        split.join("checkpoints/step-4"),
    );
    let adapter = tensors(&a.join("adapter_model.safetensors")); // asserts F32
    assert_eq!(adapter.len(), 6);
    for file in ["adapter_model.safetensors", "optimizer.safetensors"] {
        let (ta, tb) = (
            train_common::tensors(&a.join(file)),
            train_common::tensors(&b.join(file)),
        );
        assert!(!ta.0.is_empty() && ta == tb, "step-4 {file} differs");
    }
}
