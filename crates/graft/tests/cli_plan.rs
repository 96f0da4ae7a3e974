//! `graft plan` end to end: the Llama-3-8B figures (16 GB bf16 weights, 96 GB AdamW state, and
//! the gradients graft holds: f32 sums plus a micro-batch's bf16 gradients), JSON output, ZeRO
//! stages, the shipped 8B recipe on 4 × 80 GB with `--config`, the fit verdict and errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// config.json of meta-llama/Meta-Llama-3-8B.
const LLAMA3_8B: &str = r#"{
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
  "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 8192,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.40.0.dev0", "use_cache": true, "vocab_size": 128256
}"#;

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("Meta-Llama-3-8B")).unwrap();
    std::fs::write(dir.path().join("Meta-Llama-3-8B/config.json"), LLAMA3_8B).unwrap();
    std::fs::write(dir.path().join("web.jsonl"), "{}\n").unwrap();
    let recipe = "name = \"biomed-8b\"\n[model]\nbase = \"Meta-Llama-3-8B\"\ndtype = \"bf16\"\n[data]\nseq_len = 4096\n\
                  [[data.sources]]\nname = \"web\"\npath = \"web.jsonl\"\n[train]\nmicro_batch_size = 1\n\
                  grad_accum = 16\nsteps = 4000\nlr = 1e-5\n";
    let path = dir.path().join("recipe.toml");
    std::fs::write(&path, recipe).unwrap();
    (dir, path)
}

fn graft(args: &[&str], recipe: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .arg("plan")
        .arg(recipe)
        .args(args)
        .output()
        .unwrap()
}

/// The value column(s) of the table row starting with `label`.
fn row<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no row {label:?} in\n{text}"))[label.len()..]
        .trim()
}

#[test]
fn llama3_8b_table() {
    let (_d, recipe) = setup();
    let out = graft(&["--gpu-mem", "80GB", "--devices", "4"], &recipe);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        row(&text, "parameters").starts_with("8030261248 (8.03 B), bf16 weights"),
        "{text}"
    );
    assert!(row(&text, "weights").starts_with("16.06 GB"), "{text}");
    assert!(row(&text, "gradients").starts_with("48.18 GB"), "{text}");
    assert!(
        row(&text, "optimizer state (AdamW)").starts_with("96.36 GB"),
        "{text}"
    );
    assert!(
        row(&text, "  of which logits/loss buffer").starts_with("5.96 GB"),
        "{text}"
    );
    // flash attention, the fused chunked loss and per-layer checkpointing: seq 4096, micro-batch 1
    let ckpt: f64 = row(&text, "activations, checkpointed")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        ckpt <= 10.0,
        "checkpointed activations {ckpt} GB > 10 GB\n{text}"
    );
    assert!(text.contains("4 GPU(s) of 80.00 GB"), "{text}");
    assert_eq!(
        row(&text, "fits 80.00 GB?").split_whitespace().next(),
        Some("no"),
        "{text}"
    );
    assert!(
        text.contains("does NOT fit")
            && text.contains("train.zero_stage = 2 over >= ")
            && text.contains("use LoRA"),
        "{text}"
    );
}

#[test]
fn json_report() {
    let (_d, recipe) = setup();
    let out = graft(&["--json", "--gpu-mem", "141GB"], &recipe);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["params"], 8_030_261_248u64);
    assert_eq!(v["full"]["weights"], 16_060_522_496u64);
    assert_eq!(v["full"]["gradients"], 48_181_567_488u64);
    assert_eq!(v["full"]["optimizer"], 96_363_134_976u64);
    assert_eq!(v["gpu_mem"], 141_000_000_000u64);
    assert_eq!(v["devices"], 1);
    assert!(v["advice"].as_array().unwrap().len() == 3);
    assert_eq!(v["zero_stage"], 0);
    assert_eq!(v["fits"], false);
    let total = v["recipe_total_per_gpu"].as_u64().unwrap();
    assert!(total > 141_000_000_000, "{v}");
    assert_eq!(v["full"]["stages"][0]["total"], total);
}

/// Issue 11: the shipped 8B recipe (full training, ZeRO-2, 4 devices, checkpointing) planned from
/// a bare config.json before any weights are downloaded fits 4 × 80 GB with >= 8 GB headroom.
#[test]
fn shipped_8b_recipes_fit_four_80gb_gpus_at_zero_stage_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, LLAMA3_8B).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for name in ["biomedicine-llama3-8b", "finance-llama3-8b"] {
        let recipe = root.join(format!("recipes/{name}.toml"));
        let args = ["--json", "--gpu-mem", "80GB", "--config"];
        let out = graft(&[&args[..], &[config.to_str().unwrap()]].concat(), &recipe);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (v["method"].as_str(), v["zero_stage"].as_u64()),
            (Some("full"), Some(2))
        );
        assert_eq!(v["devices"], 4, "{name}");
        assert_eq!(v["fits"], true, "{name}: {v}");
        let headroom = 80_000_000_000 - v["recipe_total_per_gpu"].as_i64().unwrap();
        assert!(
            headroom >= 8_000_000_000,
            "{name}: {headroom} bytes of headroom"
        );
        assert_eq!(v["headroom"], headroom);
    }
    let out = graft(
        &["--config", "/no/such/config.json"],
        &root.join("recipes/biomedicine-llama3-8b.toml"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--config") && err.contains("/no/such/config.json"),
        "{err}"
    );
}

#[test]
fn bad_input_is_named() {
    let (dir, recipe) = setup();
    let out = graft(&["--gpu-mem", "lots"], &recipe);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--gpu-mem") && err.contains("lots"), "{err}");

    std::fs::remove_file(dir.path().join("Meta-Llama-3-8B/config.json")).unwrap();
    let out = graft(&[], &recipe);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.json"), "{err}");
}
