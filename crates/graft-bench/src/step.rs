//! Optimizer steps exactly as `graft train` runs them ([`graft_train::Trainer`]: the causal LM
//! loss over `grad_accum` micro-batches, backward, global-norm clipping, AdamW), on random tokens,
//! timed, with memory measured in phases: before the model exists, with the model, after the
//! warm-up step (weights + optimizer state), and the peak of the timed steps.

use std::time::Instant;

use anyhow::{anyhow, Context};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Device;
use graft_llama::{Llama, ModelConfig};
use graft_train::{TokenBatch, TrainConfig, Trainer, VecSource};
use serde::{Deserialize, Serialize};

use super::mem::Probe;
use crate::backend::Backend;

/// Memory at each phase of [`measure`], bytes of what [`Probe`] measures (`what`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepMemory {
    /// "process RSS" or "GPU memory used (nvidia-smi)".
    pub what: String,
    /// Before the model is built (the process or device baseline).
    pub before: u64,
    /// With the model built.
    pub model: u64,
    /// After the warm-up step: the model and the optimizer state.
    pub setup: u64,
    /// Peak during the warm-up step.
    pub peak_warmup: u64,
    /// Peak during the timed steps.
    pub peak: u64,
}

impl StepMemory {
    /// What the model's weights took.
    pub fn weights(&self) -> u64 {
        self.model.saturating_sub(self.before)
    }
    /// What the warm-up step left allocated: the optimizer state (AdamW moments, master weights).
    pub fn optimizer(&self) -> u64 {
        self.setup.saturating_sub(self.model)
    }
    /// Peak of a step above the set-up: activations, gradients and transients.
    pub fn step(&self) -> u64 {
        self.peak.saturating_sub(self.setup)
    }
    /// Peak of a step above the baseline: what training needs in all.
    pub fn total(&self) -> u64 {
        self.peak.max(self.peak_warmup).saturating_sub(self.before)
    }
}

/// Timing of [`measure`]'s steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepTimes {
    /// Tokens per optimizer step (micro-batch × seq × grad_accum).
    pub tokens_per_step: usize,
    /// The warm-up step, seconds (not counted).
    pub warmup_s: f64,
    /// Each timed step, seconds.
    pub step_s: Vec<f64>,
    /// Tokens per second of the fastest step.
    pub best_tok_s: f64,
    /// Tokens per second of the median step.
    pub median_tok_s: f64,
    /// Loss of the last step.
    pub loss: f64,
}

/// Steps to run: one warm-up (creates the optimizer state) and `reps` timed.
#[derive(Debug, Clone, Copy)]
pub struct StepRun {
    pub reps: usize,
}

/// Builds the model with `build` and runs `1 + run.reps` optimizer steps of `config` on random
/// tokens in `0..vocab`, measuring memory with `probe`.
pub fn measure<AB>(
    probe: &Probe,
    build: impl FnOnce() -> anyhow::Result<Llama<AB>>,
    model_config: ModelConfig,
    config: TrainConfig,
    device: &Device<Backend>,
    run: StepRun,
) -> anyhow::Result<(StepTimes, StepMemory)>
where
    AB: graft_llama::TrainBackend
        + AutodiffBackend<InnerBackend = Backend, Device = Device<Backend>>,
{
    let vocab = model_config.llama.vocab_size;
    let [batch, seq] = config.micro_batch;
    let micro_batches = (1 + run.reps) * config.grad_accum;
    let tokens_per_step = batch * seq * config.grad_accum;
    let mut source = VecSource::new(
        (0..micro_batches)
            .map(|i| TokenBatch {
                tokens: random_tokens(batch * seq, vocab, i as u64),
                batch_size: batch,
                seq_len: seq,
            })
            .collect(),
    );
    let before = probe.current()?;
    let model = build()?;
    sync::<AB>(device)?;
    let model_mem = probe.current()?;
    let mut trainer = Trainer::<AB>::new(model, model_config, config, device.clone());

    probe.reset_peak()?;
    let start = Instant::now();
    trainer
        .train_step(&mut source)
        .context("the warm-up step")?;
    sync::<AB>(device)?;
    let warmup_s = start.elapsed().as_secs_f64();
    let peak_warmup = probe.peak()?;
    let setup = probe.current()?;

    probe.reset_peak()?;
    let mut step_s = Vec::with_capacity(run.reps);
    let mut loss = f64::NAN;
    for i in 0..run.reps {
        let start = Instant::now();
        let report = trainer
            .train_step(&mut source)
            .with_context(|| format!("timed step {}", i + 1))?;
        sync::<AB>(device)?;
        step_s.push(start.elapsed().as_secs_f64());
        loss = report.loss;
    }
    let peak = probe.peak()?;
    let memory = StepMemory {
        what: probe.what().into(),
        before,
        model: model_mem,
        setup,
        peak_warmup,
        peak,
    };
    let mut tok_s: Vec<f64> = step_s.iter().map(|s| tokens_per_step as f64 / s).collect();
    tok_s.sort_by(f64::total_cmp);
    let times = StepTimes {
        tokens_per_step,
        warmup_s,
        best_tok_s: tok_s.last().copied().unwrap_or(0.0),
        median_tok_s: tok_s.get(tok_s.len() / 2).copied().unwrap_or(0.0),
        step_s,
        loss,
    };
    Ok((times, memory))
}

/// Waits for the device's queued work (a no-op on the CPU backend).
fn sync<AB: AutodiffBackend<Device = Device<Backend>>>(
    device: &Device<Backend>,
) -> anyhow::Result<()> {
    AB::sync(device).map_err(|e| anyhow!("waiting for the device: {e:?}"))
}

/// Deterministic pseudo-random token ids in `0..vocab` (xorshift, seeded by `stream`).
pub fn random_tokens(n: usize, vocab: usize, stream: u64) -> Vec<i64> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ stream.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % vocab.max(1) as u64) as i64
        })
        .collect()
}
