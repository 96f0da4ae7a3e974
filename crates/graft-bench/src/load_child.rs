//! Loading a checkpoint in a fresh process, so that its peak RSS (`VmHWM`) is the load's alone:
//! the parent re-runs the graft binary as `graft bench load-child DIR`, which loads the checkpoint
//! on the CPU backend and prints one JSON line ([`LoadSample`]).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::mem::status_bytes;
use crate::backend::{device, Backend};

/// What one load in a fresh process measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadSample {
    /// Wall time of `graft_llama::load` (config + mmap + convert + upload), seconds.
    pub load_s: f64,
    /// Resident memory just before the load, bytes.
    pub rss_before: u64,
    /// Peak resident memory of the process (`VmHWM`) after the load, bytes.
    pub peak_rss: u64,
    /// Resident memory after the load, with the model alive, bytes.
    pub rss_after: u64,
    /// The dtype the weights were loaded into (e.g. "F32").
    pub dtype: String,
}

/// `graft bench load-child DIR`: loads DIR and prints a [`LoadSample`] as one JSON line.
pub fn run(dir: &Path) -> anyhow::Result<()> {
    let rss_before = status_bytes("VmRSS")?;
    let start = Instant::now();
    let (model, _) = graft_llama::load::<Backend>(dir, &device())
        .with_context(|| format!("loading {}", dir.display()))?;
    let load_s = start.elapsed().as_secs_f64();
    let sample = LoadSample {
        load_s,
        rss_before,
        peak_rss: status_bytes("VmHWM")?,
        rss_after: status_bytes("VmRSS")?,
        dtype: format!("{:?}", model.embed_tokens.val().dtype()),
    };
    drop(model);
    println!("{}", serde_json::to_string(&sample)?);
    Ok(())
}

/// Runs `graft bench load-child DIR` with this same executable and parses its report.
pub fn measure(dir: &Path) -> anyhow::Result<LoadSample> {
    let exe = std::env::current_exe().context("finding the graft executable to re-run")?;
    let output = Command::new(&exe)
        .args(["bench", "load-child"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .with_context(|| format!("running {} bench load-child", exe.display()))?;
    if !output.status.success() {
        anyhow::bail!(
            "the load child process failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("parsing the load child's report {line:?}"))
}
