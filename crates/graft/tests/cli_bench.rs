//! `graft bench model` and `graft bench memory` end to end on tiny shapes: every section runs and
//! reports figures consistent with each other, and activation memory (measured, in a fresh
//! process) grows linearly with the sequence length.

mod cli_common;

use cli_common::{graft, ok, stderr, stdout, tiny_dir};

/// The JSON object a `--json` run printed.
fn json(out: &std::process::Output) -> serde_json::Value {
    let text = stdout(out);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The CUDA command's path at tiny scale on the CPU: load and forward+backward (no PyTorch),
/// then optimizer steps with tokens/s, MFU from --peak-tflops and memory beside the plan.
#[test]
fn bench_model_tiny_on_cpu() {
    let out = ok(graft(
        &[
            "bench",
            "model",
            "--shape",
            "tiny",
            "--device",
            "cpu",
            "--dtype",
            "f32",
            "--reps",
            "1",
            "--no-torch",
            "--peak-tflops",
            "0.5",
            "--json",
        ],
        &[("RUST_LOG", "warn")],
    ));
    let v = json(&out);
    assert_eq!(v["shape"]["hidden"], 64, "{v}");
    assert!(f(&v["load"]["best_s"]) > 0.0, "{v}");
    assert_eq!(v["load"]["dtype"], "F32", "{v}");
    let steps = &v["train_step"];
    assert_eq!(steps["device"], "cpu");
    assert_eq!(steps["dtype"], "f32");
    // random init (std 0.02): the loss of a uniform guess over 384 tokens
    let loss = f(&steps["times"]["loss"]);
    assert!((loss - 384f64.ln()).abs() < 0.5, "loss {loss}");
    let tok_s = f(&steps["times"]["median_tok_s"]);
    assert!(tok_s > 0.0, "{steps}");
    // 6·(attention + MLP + head) + 12·L·H·hd·seq for hidden 64, 2 layers, 4/2 heads, ffn 176,
    // vocab 384, seq 128: attention 2·(64·64·2 + 2·32·64) = 24576, MLP 2·3·64·176 = 67584,
    // head 384·64 = 24576; attention scores 12·2·4·16·128 = 196608.
    let flops = 6.0 * (24576.0 + 67584.0 + 24576.0) + 196608.0;
    assert_eq!(f(&steps["flops_per_token"]), flops);
    let mfu = f(&steps["mfu"]);
    assert!(
        (mfu - tok_s * flops / 0.5e12).abs() < 1e-9 * mfu.max(1.0),
        "{steps}"
    );
    let m = &steps["memory"];
    assert!(f(&m["peak"]) >= f(&m["setup"]), "{m}");
    assert!(f(&m["model"]) >= f(&m["before"]), "{m}");
    let plan = &steps["plan"];
    assert_eq!(f(&plan["weights"]), f(&steps["params"]) * 4.0, "{plan}");
    assert!(f(&steps["plan_total"]) > f(&plan["weights"]), "{steps}");
}

#[test]
fn bench_model_text_has_ratio_lines() {
    let out = ok(graft(
        &[
            "bench",
            "model",
            "--shape",
            "tiny",
            "--seq",
            "64",
            "--reps",
            "1",
            "--no-torch",
        ],
        &[("RUST_LOG", "warn")],
    ));
    let text = stdout(&out);
    for needle in [
        "load to f32 (s)",
        "fwd+bwd tokens/s (best)",
        "PyTorch baseline not run: skipped (--no-torch)",
        "optimizer steps (graft_train::Trainer",
        "MFU: - (peak FLOP/s unknown",
        "peak in all",
    ] {
        assert!(text.contains(needle), "no {needle:?} in\n{text}");
    }
}

#[test]
fn bench_model_rejects_a_device_the_build_lacks() {
    let (device, hint) = if cfg!(feature = "cuda") {
        ("cpu", "--device cuda:N")
    } else {
        ("cuda:0", "--features cuda")
    };
    let out = graft(&["bench", "model", "--device", device], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(hint), "{}", stderr(&out));
    let out = graft(&["bench", "model", "--device", "gpu"], &[]);
    assert!(
        stderr(&out).contains("use `cpu` or `cuda:N`"),
        "{}",
        stderr(&out)
    );
}

/// A recipe training the tiny fixture model (hidden 64, 4 heads, 2 layers, vocab 384) with
/// activation checkpointing on, micro-batch 1.
fn tiny_recipe(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::write(dir.join("web.jsonl"), "{}\n").unwrap();
    let recipe = format!(
        "name = \"tiny-memory\"\n[model]\nbase = {:?}\ndtype = \"f32\"\n[data]\nseq_len = 128\n\
         [[data.sources]]\nname = \"web\"\npath = \"web.jsonl\"\n[train]\nmicro_batch_size = 1\n\
         grad_accum = 1\nsteps = 10\nlr = 1e-3\nactivation_checkpointing = true\n",
        tiny_dir().display().to_string()
    );
    let path = dir.join("recipe.toml");
    std::fs::write(&path, recipe).unwrap();
    path
}

/// Item 6 of issue 10: with activation checkpointing, the memory a training step needs above the
/// weights and optimizer state (activations, gradients, transients; peak RSS of a fresh process)
/// grows at most ~linearly from seq 1024 to 4096 (4x the tokens), not quadratically (16x).
#[test]
fn activation_memory_grows_linearly_with_seq_len() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let out = ok(graft(
        &[
            "bench",
            "memory",
            recipe.to_str().unwrap(),
            "--seq-len",
            "1024",
            "--seq-len",
            "4096",
            "--json",
        ],
        &[("RUST_LOG", "warn")],
    ));
    let v = json(&out);
    assert_eq!(v["activation_checkpointing"], true, "{v}");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{v}");
    let (short, long) = (f(&runs[0]["measured_step"]), f(&runs[1]["measured_step"]));
    assert!(short > 0.0, "no step memory measured at seq 1024: {v}");
    let growth = long / short;
    assert!(
        growth <= 4.5,
        "step memory grew {growth:.2}x from seq 1024 ({:.1} MB) to 4096 ({:.1} MB): quadratic, not linear",
        short / 1e6,
        long / 1e6
    );
}

/// The text report: one row per sequence length with measured and planned figures, and the
/// growth line.
#[test]
fn bench_memory_text_report() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let out = ok(graft(
        &[
            "bench",
            "memory",
            recipe.to_str().unwrap(),
            "--seq-len",
            "64",
            "--seq-len",
            "128",
        ],
        &[("RUST_LOG", "warn")],
    ));
    let text = stdout(&out);
    assert!(text.contains("activation checkpointing on"), "{text}");
    assert!(
        text.contains("step peak growth seq 64 -> 128 (2.0x longer): measured"),
        "{text}"
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("64 ") || l.trim_start().starts_with("128 "))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
}
