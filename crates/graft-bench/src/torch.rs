//! The PyTorch CPU baseline: `benches/torch_baseline.py` (embedded in the binary, so the
//! benchmark needs no checkout) run with `python3` on the same shape, when `torch`,
//! `transformers` and `safetensors` are importable. Never an error when they are not: the caller
//! gets [`Baseline::Unavailable`] with a hint on how to install them.

use std::process::Command;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::model::Shape;

/// The baseline script, as committed in `crates/graft-bench/benches/torch_baseline.py`.
const SCRIPT: &str = include_str!("../benches/torch_baseline.py");

/// What the PyTorch script prints (one JSON line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TorchNumbers {
    pub params: u64,
    pub seq: usize,
    pub threads: usize,
    pub fwd_bwd_tok_s: f64,
    pub bf16_file_bytes: u64,
    pub raw_read_s: f64,
    pub load_to_f32_s: f64,
    pub load_vs_raw: f64,
}

/// The outcome of trying to run the baseline.
#[derive(Debug, Clone)]
pub enum Baseline {
    Measured(TorchNumbers),
    /// Not run; the reason (and what to do about it).
    Unavailable(String),
}

/// Runs the baseline for `shape` with `threads` threads and `reps` timed steps.
/// The better of two baselines: the faster step and load of either (graft's side is measured
/// twice too, interleaved with these, so that a machine whose speed drifts favours neither).
pub fn best_of(a: Baseline, b: Baseline) -> Baseline {
    match (a, b) {
        (Baseline::Measured(a), Baseline::Measured(b)) => {
            let mut best = if b.fwd_bwd_tok_s > a.fwd_bwd_tok_s {
                b.clone()
            } else {
                a.clone()
            };
            best.load_to_f32_s = a.load_to_f32_s.min(b.load_to_f32_s);
            best.raw_read_s = a.raw_read_s.min(b.raw_read_s);
            best.load_vs_raw = best.load_to_f32_s / best.raw_read_s;
            Baseline::Measured(best)
        }
        (Baseline::Measured(t), _) | (_, Baseline::Measured(t)) => Baseline::Measured(t),
        (unavailable, _) => unavailable,
    }
}

pub fn run(shape: &Shape, threads: usize, reps: usize) -> Baseline {
    if let Err(why) = check_python() {
        return Baseline::Unavailable(why);
    }
    match run_script(shape, threads, reps) {
        Ok(numbers) => Baseline::Measured(numbers),
        Err(e) => Baseline::Unavailable(format!("the PyTorch baseline failed: {e:#}")),
    }
}

const INSTALL_HINT: &str = "install it with `pip install torch transformers safetensors` \
     (CPU wheels: `pip install torch --index-url https://download.pytorch.org/whl/cpu`)";

/// `Err(reason)` unless `python3` can import torch, transformers and safetensors.
fn check_python() -> Result<(), String> {
    let probe = Command::new("python3")
        .args(["-c", "import torch, transformers, safetensors"])
        .output();
    match probe {
        Err(e) => Err(format!("no python3 ({e}); {INSTALL_HINT}")),
        Ok(out) if !out.status.success() => {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().last().unwrap_or("import failed");
            Err(format!(
                "python3 cannot import the baseline's packages ({last}); {INSTALL_HINT}"
            ))
        }
        Ok(_) => Ok(()),
    }
}

fn run_script(shape: &Shape, threads: usize, reps: usize) -> anyhow::Result<TorchNumbers> {
    let dir = tempfile::tempdir().context("creating a temporary directory for the baseline")?;
    let script = dir.path().join("torch_baseline.py");
    std::fs::write(&script, SCRIPT).with_context(|| format!("writing {}", script.display()))?;
    let mut cmd = Command::new("python3");
    cmd.arg(&script);
    for (flag, value) in [
        ("--hidden", shape.hidden),
        ("--layers", shape.layers),
        ("--heads", shape.heads),
        ("--kv-heads", shape.kv_heads),
        ("--ffn", shape.ffn),
        ("--vocab", shape.vocab),
        ("--seq", shape.seq),
        ("--threads", threads),
        ("--reps", reps),
    ] {
        cmd.arg(flag).arg(value.to_string());
    }
    // The script saves its checkpoint under TMPDIR; keep it inside our temporary directory.
    cmd.env("TMPDIR", dir.path());
    let out = cmd.output().context("running python3 torch_baseline.py")?;
    if !out.status.success() {
        anyhow::bail!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("parsing the baseline's output {line:?}"))
}
