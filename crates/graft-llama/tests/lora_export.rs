//! Exporting a LoRA checkpoint: merged into the base on disk (checked against `W + scale·B·A`
//! computed here in plain f32 loops from the safetensors bytes), or as the PEFT adapter alone.

mod common;
mod lora_common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{fixtures, max_abs_diff, read_all, B};
use graft_llama::export::{ExportDtype, ExportOptions};
use graft_llama::lora::export::{export_adapter, export_merged};
use graft_llama::lora::{save_adapter, LoraConfig, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE};
use lora_common::*;
use safetensors::Dtype;

type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

/// Every tensor of every safetensors file in `dir`, by name.
fn dir_tensors(dir: &Path) -> Tensors {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            for (name, dtype, shape, bytes) in read_all(&path) {
                out.insert(name, (dtype, shape, bytes));
            }
        }
    }
    out
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn options(dtype: ExportDtype) -> ExportOptions {
    ExportOptions {
        dtype,
        ..Default::default()
    }
}

/// A LoRA checkpoint of tiny-llama3 (q, v, down; rank 3, alpha 12) whose config names the
/// fixture directory as its base.
fn checkpoint(dir: &Path) -> LoraConfig {
    let cfg = LoraConfig::new(
        3,
        12.0,
        0.0,
        &["q_proj".into(), "v_proj".into(), "down_proj".into()],
    )
    .unwrap();
    let model = adapted::<B>(&cfg, 8);
    let base = fixtures().join("tiny-llama3");
    save_adapter(
        &model,
        dir,
        base.to_str().unwrap(),
        &options(ExportDtype::F32),
    )
    .unwrap();
    cfg
}

#[test]
fn merged_export_equals_base_plus_scaled_ba() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    let cfg = checkpoint(&ckpt);
    let out = tmp.path().join("merged");
    export_merged(
        &ckpt,
        None,
        &out,
        &options(ExportDtype::F32),
        &mut |_, _| {},
    )
    .unwrap();

    let base = dir_tensors(&fixtures().join("tiny-llama3"));
    let adapter = dir_tensors(&ckpt);
    let merged = dir_tensors(&out);
    assert_eq!(
        merged.keys().collect::<Vec<_>>(),
        base.keys().collect::<Vec<_>>()
    );
    let scale = (cfg.alpha / cfg.rank as f64) as f32;
    let mut targeted = 0;
    for (name, (_, shape, bytes)) in &base {
        let got = &merged[name];
        assert_eq!(&got.1, shape, "{name}");
        let module = name
            .strip_prefix("model.")
            .and_then(|n| n.strip_suffix(".weight"))
            .unwrap_or("");
        let a_name = format!("base_model.model.model.{module}.lora_A.weight");
        let Some((_, a_shape, a_bytes)) = adapter.get(&a_name) else {
            assert_eq!(
                &got.2, bytes,
                "{name} is not adapted and must be copied bit for bit"
            );
            continue;
        };
        targeted += 1;
        let b_name = a_name.replace("lora_A", "lora_B");
        let (a, b, w) = (f32s(a_bytes), f32s(&adapter[&b_name].2), f32s(bytes));
        let (rows, cols, r) = (shape[0], shape[1], a_shape[0]);
        let mut want = vec![0f32; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                let mut ba = 0f32;
                for k in 0..r {
                    ba += b[i * r + k] * a[k * cols + j];
                }
                want[i * cols + j] = w[i * cols + j] + scale * ba;
            }
        }
        let got = f32s(&got.2);
        let diff = max_abs_diff(&got, &want);
        assert!(
            diff <= 1e-6,
            "{name}: merged differs from W + scale·B·A by {diff}"
        );
        assert!(
            max_abs_diff(&got, &w) > 1e-3,
            "{name}: the adapter should change the weight"
        );
    }
    assert_eq!(targeted, 2 * 3);
    assert!(out.join("config.json").is_file() && out.join("generation_config.json").is_file());
}

#[test]
fn merged_export_loads_with_the_adapted_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    let cfg = checkpoint(&ckpt);
    let want = logits(&adapted::<B>(&cfg, 8));
    let out = tmp.path().join("merged");
    export_merged(
        &ckpt,
        None,
        &out,
        &options(ExportDtype::F32),
        &mut |_, _| {},
    )
    .unwrap();
    let (merged, _) = graft_llama::load::<B>(&out, &Default::default()).unwrap();
    let diff = max_abs_diff(&logits(&merged), &want);
    assert!(diff < 1e-4, "logits of the merged export differ by {diff}");
}

#[test]
fn merged_bf16_export_rounds_the_f32_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    checkpoint(&ckpt);
    let (f32_out, bf16_out) = (tmp.path().join("f32"), tmp.path().join("bf16"));
    export_merged(
        &ckpt,
        None,
        &f32_out,
        &options(ExportDtype::F32),
        &mut |_, _| {},
    )
    .unwrap();
    let mut progress = Vec::new();
    export_merged(
        &ckpt,
        None,
        &bf16_out,
        &options(ExportDtype::BF16),
        &mut |d, t| progress.push((d, t)),
    )
    .unwrap();
    let (exact, rounded) = (dir_tensors(&f32_out), dir_tensors(&bf16_out));
    let name = "model.layers.1.mlp.down_proj.weight";
    assert_eq!(rounded[name].0, Dtype::BF16);
    let want: Vec<u8> = f32s(&exact[name].2)
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect();
    assert_eq!(rounded[name].2, want);
    let &(done, total) = progress.last().unwrap();
    assert_eq!(done, total);
}

#[test]
fn base_comes_from_the_flag_when_the_config_names_none_found() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    let cfg = checkpoint(&ckpt);
    let config_path = ckpt.join(ADAPTER_CONFIG_FILE);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    json["base_model_name_or_path"] = "no-such-org/no-such-model".into();
    std::fs::write(&config_path, json.to_string()).unwrap();
    let out = tmp.path().join("merged");
    let err = export_merged(
        &ckpt,
        None,
        &out,
        &options(ExportDtype::F32),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no-such-org/no-such-model") && err.contains("--base"),
        "{err}"
    );
    assert!(!out.exists(), "a failed export leaves no output");
    let base = fixtures().join("tiny-llama3");
    export_merged(
        &ckpt,
        Some(&base),
        &out,
        &options(ExportDtype::F32),
        &mut |_, _| {},
    )
    .unwrap();
    let (merged, _) = graft_llama::load::<B>(&out, &Default::default()).unwrap();
    assert!(max_abs_diff(&logits(&merged), &logits(&adapted::<B>(&cfg, 8))) < 1e-4);
}

#[test]
fn adapter_only_export_keeps_peft_names_and_config() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    checkpoint(&ckpt);
    std::fs::write(
        ckpt.join("optimizer.safetensors"),
        b"not part of the adapter",
    )
    .unwrap();
    let out = tmp.path().join("adapter");
    let summary = export_adapter(&ckpt, &out, &options(ExportDtype::F32)).unwrap();
    assert_eq!(summary.shards.files, [ADAPTER_WEIGHTS_FILE]);
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    files.sort();
    assert_eq!(files, [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]);
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    assert_eq!(
        read(&out.join(ADAPTER_CONFIG_FILE)),
        read(&ckpt.join(ADAPTER_CONFIG_FILE))
    );
    let saved: Tensors = read_all(&ckpt.join(ADAPTER_WEIGHTS_FILE))
        .into_iter()
        .map(|(n, d, s, b)| (n, (d, s, b)))
        .collect();
    assert_eq!(dir_tensors(&out), saved);

    let bf16 = tmp.path().join("adapter-bf16");
    export_adapter(&ckpt, &bf16, &options(ExportDtype::BF16)).unwrap();
    let tensors = dir_tensors(&bf16);
    assert_eq!(tensors.len(), 2 * 3 * 2);
    assert!(tensors
        .iter()
        .all(|(n, t)| n.starts_with("base_model.model.model.layers.") && t.0 == Dtype::BF16));
}
