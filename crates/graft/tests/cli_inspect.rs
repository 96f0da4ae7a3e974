//! `graft inspect` on the tiny fixture: parameter counts agree with the checkpoint's tensors,
//! LoRA counts are r·(in+out) per targeted projection and layer, memory estimates are present.

mod cli_common;

use cli_common::*;
use serde_json::Value;

fn inspect(extra: &[&str]) -> Value {
    let tiny = tiny_dir();
    let mut args = vec!["inspect", tiny.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&stdout(&ok(graft(&args, &[])))).expect("JSON")
}

#[test]
fn parameter_count_matches_the_checkpoint() {
    let v = inspect(&[]);
    let on_disk: u64 = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    .iter()
    .flat_map(|f| tensor_sizes(&tiny_dir().join(f)))
    .sum();
    assert_eq!(v["parameters"]["total"].as_u64().unwrap(), on_disk);
    assert_eq!(v["parameters"]["trainable"], v["parameters"]["total"]);
    assert_eq!(v["parameters"]["trainable_method"], "full");
    assert_eq!(v["architecture"]["layers"], 2);
    assert_eq!(v["architecture"]["kv_heads"], 2);
    assert_eq!(v["dtype"], "float32");
    assert_eq!(v["weights_on_disk"]["files"], 2);
    // f32: weights in memory = 4 bytes per parameter.
    assert_eq!(
        v["memory"]["inference"]["weights"].as_u64().unwrap(),
        4 * on_disk
    );
    let full = v["memory"]["full_training"]["total"].as_u64().unwrap();
    let lora = v["memory"]["lora"]["total"].as_u64().unwrap();
    let inference = v["memory"]["inference"]["total"].as_u64().unwrap();
    assert!(
        full > lora && lora > v["memory"]["inference"]["weights"].as_u64().unwrap(),
        "{v}"
    );
    assert!(inference > 0);
}

#[test]
fn lora_trainable_params_are_r_times_in_plus_out() {
    let v = inspect(&["--lora-rank", "4", "--lora-targets", "q_proj,v_proj"]);
    // q_proj: [64 out, 64 in]; v_proj: [2 kv heads · 16, 64]; 2 layers.
    let expected = 2 * 4 * ((64 + 64) + (32 + 64));
    assert_eq!(v["parameters"]["trainable"].as_u64().unwrap(), expected);
    assert_eq!(v["parameters"]["trainable_method"], "lora");
    assert_eq!(
        v["lora"]["targets"],
        serde_json::json!(["q_proj", "v_proj"])
    );
    assert_eq!(
        v["memory"]["lora"]["adapters"].as_u64().unwrap(),
        4 * expected
    );
    // Default targets: all seven projections (gate/up: [176, 64], down: [64, 176]).
    let all = inspect(&["--lora-rank", "2"]);
    let per_layer = 2 * ((64 + 64) + 2 * (32 + 64) + (64 + 64) + 3 * (176 + 64));
    assert_eq!(
        all["parameters"]["trainable"].as_u64().unwrap(),
        2 * per_layer
    );
}

#[test]
fn text_output_and_errors() {
    let tiny = tiny_dir();
    let out = ok(graft(
        &["inspect", tiny.to_str().unwrap(), "--lora-rank", "8"],
        &[],
    ));
    let text = stdout(&out);
    for needle in [
        "LlamaForCausalLM",
        "parameters:",
        "trainable:",
        "LoRA r=8",
        "inference",
        "full training",
        "float32",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let out = graft(
        &[
            "inspect",
            tiny.to_str().unwrap(),
            "--lora-rank",
            "8",
            "--lora-targets",
            "qkv",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--lora-targets")
            && stderr(&out).contains("unknown target module \"qkv\"")
            && stderr(&out).contains("all-linear"),
        "{}",
        stderr(&out)
    );
    let out = graft(&["inspect", "/no/such/dir"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/no/such/dir"), "{}", stderr(&out));
}
