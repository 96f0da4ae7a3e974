//! PEFT adapter directories: a saved adapter has PEFT's config and tensor names, loads back into
//! a fresh base with identical logits, and bad adapters are errors naming the file.

mod common;
mod lora_common;

use std::path::Path;

use common::{read_all, B};
use graft_llama::export::{ExportDtype, ExportOptions};
use graft_llama::keymap::LayerParam;
use graft_llama::lora::{
    adapter_tensors, load_adapter, peft_name, read_adapter_config, save_adapter, LoraConfig,
    LoraPart, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE,
};
use lora_common::*;
use serde_json::Value;

fn f32_options() -> ExportOptions {
    ExportOptions {
        dtype: ExportDtype::F32,
        ..Default::default()
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn saved_adapter_has_peft_config_and_names() {
    let cfg = LoraConfig::new(
        4,
        16.0,
        0.05,
        &[
            "q_proj".into(),
            "k_proj".into(),
            "v_proj".into(),
            "o_proj".into(),
        ],
    )
    .unwrap();
    let model = adapted::<B>(&cfg, 5);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("adapter");
    save_adapter(&model, &dir, "meta-llama/Llama-3.1-8B", &f32_options()).unwrap();

    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    files.sort();
    assert_eq!(files, [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]);
    let json = read_json(&dir.join(ADAPTER_CONFIG_FILE));
    assert_eq!(json["peft_type"], "LORA");
    assert_eq!(json["task_type"], "CAUSAL_LM");
    assert_eq!(json["bias"], "none");
    assert_eq!(json["base_model_name_or_path"], "meta-llama/Llama-3.1-8B");
    assert_eq!(json["r"], 4);
    assert_eq!(json["lora_alpha"], 16.0);
    assert_eq!(json["lora_dropout"], 0.05);
    assert_eq!(
        json["target_modules"],
        serde_json::json!(["q_proj", "k_proj", "v_proj", "o_proj"])
    );

    let tensors = read_all(&dir.join(ADAPTER_WEIGHTS_FILE));
    assert_eq!(tensors.len(), 2 * 4 * 2);
    let in_memory = adapter_tensors(&model);
    for (name, dtype, shape, bytes) in &tensors {
        assert!(name.starts_with("base_model.model.model.layers."), "{name}");
        assert_eq!(*dtype, safetensors::Dtype::F32);
        let (_, t) = in_memory
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} not in model"));
        assert_eq!(shape, &t.dims().to_vec());
        let want: Vec<u8> = values(t.clone())
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(bytes, &want, "{name} bytes");
    }
    let q_a = peft_name(1, LayerParam::QProj, LoraPart::A);
    let k_b = peft_name(0, LayerParam::KProj, LoraPart::B);
    assert!(tensors
        .iter()
        .any(|(n, _, s, _)| *n == q_a && s == &vec![4, 64]));
    assert!(tensors
        .iter()
        .any(|(n, _, s, _)| *n == k_b && s == &vec![32, 4]));
}

#[test]
fn saved_adapter_loads_back_with_identical_logits() {
    let cfg = all_linear(4);
    let model = adapted::<B>(&cfg, 9);
    let want = logits(&model);
    let tmp = tempfile::tempdir().unwrap();
    save_adapter(&model, tmp.path(), "base", &f32_options()).unwrap();

    let (fresh, config) = load_adapter(tiny::<B>(), tmp.path()).unwrap();
    assert_eq!(config.lora, cfg);
    assert_eq!(config.base_model.as_deref(), Some("base"));
    assert_eq!(logits(&fresh), want, "fresh base + adapter");

    // Loading into a model that already has (other) adapters of the same shape replaces them.
    let other = adapted::<B>(&cfg, 2);
    let (reloaded, _) = load_adapter(other, tmp.path()).unwrap();
    assert_eq!(logits(&reloaded), want, "adapters replaced");
}

#[test]
fn existing_dir_needs_force_and_is_replaced_whole() {
    let model = adapted::<B>(&all_linear(2), 1);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("stale.txt"), "x").unwrap();
    let err = save_adapter(&model, tmp.path(), "base", &f32_options()).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    let force = ExportOptions {
        force: true,
        ..f32_options()
    };
    save_adapter(&model, tmp.path(), "base", &force).unwrap();
    assert!(!tmp.path().join("stale.txt").exists());
    assert!(tmp.path().join(ADAPTER_WEIGHTS_FILE).is_file());
}

#[test]
fn bf16_adapter_is_rounded_and_loads() {
    let model = adapted::<B>(&all_linear(2), 4);
    let tmp = tempfile::tempdir().unwrap();
    let options = ExportOptions {
        dtype: ExportDtype::BF16,
        ..Default::default()
    };
    save_adapter(&model, tmp.path(), "base", &options).unwrap();
    let tensors = read_all(&tmp.path().join(ADAPTER_WEIGHTS_FILE));
    assert!(tensors.iter().all(|t| t.1 == safetensors::Dtype::BF16));
    let (loaded, _) = load_adapter(tiny::<B>(), tmp.path()).unwrap();
    let name = peft_name(0, LayerParam::UpProj, LoraPart::B);
    let got = adapter_tensors(&loaded)
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1;
    let want = adapter_tensors(&model)
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1;
    for (g, w) in values(got).iter().zip(values(want)) {
        assert_eq!(*g, half::bf16::from_f32(w).to_f32());
    }
}

/// Edits the saved adapter's config or weights and checks the load error names the problem.
#[test]
fn bad_adapters_are_errors() {
    let model = adapted::<B>(&all_linear(2), 6);
    let tmp = tempfile::tempdir().unwrap();
    save_adapter(&model, tmp.path(), "base", &f32_options()).unwrap();
    let config_path = tmp.path().join(ADAPTER_CONFIG_FILE);
    let good = read_json(&config_path);
    let cases: [(&str, Value, &str); 4] = [
        ("use_dora", Value::Bool(true), "use_dora"),
        ("peft_type", "IA3".into(), "peft_type"),
        (
            "target_modules",
            serde_json::json!(["q_proj", "lm_head"]),
            "lm_head",
        ),
        ("r", 3.into(), "shape"),
    ];
    for (key, value, needle) in cases {
        let mut json = good.clone();
        json[key] = value;
        std::fs::write(&config_path, serde_json::to_string(&json).unwrap()).unwrap();
        let err = load_adapter(tiny::<B>(), tmp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{key}: {err}");
        assert!(
            err.contains("adapter"),
            "{key}: error should name the file: {err}"
        );
    }
    // Fewer targets in the config than tensors in the file: the extra tensors are named.
    let mut json = good.clone();
    json["target_modules"] = serde_json::json!(["q_proj"]);
    std::fs::write(&config_path, serde_json::to_string(&json).unwrap()).unwrap();
    let err = load_adapter(tiny::<B>(), tmp.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unexpected tensor") && err.contains(ADAPTER_WEIGHTS_FILE),
        "{err}"
    );
    // More targets than tensors: a missing tensor.
    std::fs::write(&config_path, serde_json::to_string(&good).unwrap()).unwrap();
    let mut tensors = read_all(&tmp.path().join(ADAPTER_WEIGHTS_FILE));
    tensors.retain(|t| !t.0.contains("layers.1.mlp.up_proj.lora_B"));
    common::write_safetensors(&tmp.path().join(ADAPTER_WEIGHTS_FILE), &tensors);
    let err = load_adapter(tiny::<B>(), tmp.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing tensor") && err.contains("layers.1.mlp.up_proj.lora_B"),
        "{err}"
    );
    // No adapter at all.
    let empty = tempfile::tempdir().unwrap();
    let err = read_adapter_config(empty.path()).unwrap_err().to_string();
    assert!(err.contains(ADAPTER_CONFIG_FILE), "{err}");
}
