//! The optimizer-step section of `graft bench model`: a randomly initialised model of the shape,
//! trained for `1 + reps` steps as `graft train` trains ([`super::step`]), with tokens/s, MFU and
//! peak memory beside `graft plan`'s prediction for the same shape, dtype and batch.

use anyhow::Context;
use burn::tensor::{DType, Device, Element};

use graft_llama::memory::{param_counts, DTypeSize};
use graft_llama::{LlamaConfig, ModelConfig};
use graft_train::plan::{format_bytes, full_plan, MethodPlan};
use graft_train::{AdamWConfig, TrainConfig, WarmupCosine};
use serde::Serialize;

use super::mem::{gpu_name, Probe};
use super::model::{model_config, DeviceArg, ModelArgs, Shape};
use super::step::{self, StepMemory, StepRun, StepTimes};
use crate::backend::{self, Backend, TrainBackend};

/// The float dtype this build computes in ("f32" on the CPU backend, "bf16" on CUDA).
pub fn build_dtype_name() -> &'static str {
    match build_dtype() {
        DTypeSize::F32 => "f32",
        DTypeSize::BF16 => "bf16",
        DTypeSize::F16 => "f16",
    }
}

fn build_dtype() -> DTypeSize {
    fn float_dtype<B: burn::tensor::backend::Backend>() -> DType {
        B::FloatElem::dtype()
    }
    match float_dtype::<Backend>() {
        DType::BF16 => DTypeSize::BF16,
        DType::F16 => DTypeSize::F16,
        _ => DTypeSize::F32,
    }
}

/// Peak dense bf16 tensor-core FLOP/s of GPUs known by name (NVIDIA's data sheets).
fn known_peak_flops(gpu: &str) -> Option<f64> {
    let table = [
        ("H100", 989e12),
        ("H200", 989e12),
        ("A100", 312e12),
        ("L40S", 362e12),
    ];
    table
        .iter()
        .find(|(name, _)| gpu.contains(name))
        .map(|&(_, flops)| flops)
}

/// Training FLOPs per token as torchtitan and PaLM count them: 6 × the parameters of every matrix
/// multiply (attention, MLP and the LM head, tied or not; not the embedding lookup or the norms)
/// plus 12 × layers × heads × head_dim × seq for attention scores and values (the full s × s, not
/// the causal half). Activation recomputation is not counted (model FLOPs, not hardware FLOPs).
pub fn flops_per_token(config: &LlamaConfig, seq: usize) -> f64 {
    let counts = param_counts(config);
    let head = (config.vocab_size * config.hidden_size) as f64;
    let matmul = counts.attention as f64 + counts.mlp as f64 + head;
    let attention = 12.0
        * (config.num_hidden_layers * config.num_attention_heads * config.head_dim * seq) as f64;
    6.0 * matmul + attention
}

/// What the optimizer-step section measured.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub device: String,
    pub gpu: Option<String>,
    pub dtype: String,
    pub shape: Shape,
    pub activation_checkpointing: bool,
    pub params: u64,
    pub flops_per_token: f64,
    /// Peak FLOP/s used for MFU, when known.
    pub peak_flops: Option<f64>,
    /// Model FLOP utilisation of the median step.
    pub mfu: Option<f64>,
    pub times: StepTimes,
    pub memory: StepMemory,
    /// `graft plan`'s full-training estimate for this shape (weights and state in `dtype`, f32
    /// AdamW moments, micro-batch 1).
    pub plan: MethodPlan,
    /// The plan's total with the run's activation checkpointing setting.
    pub plan_total: u64,
}

/// Runs the section for `shape` on the device of `args`.
pub fn run(args: &ModelArgs, shape: &Shape, reps: usize) -> anyhow::Result<StepReport> {
    let config = model_config(shape)?;
    let (device, gpu) = match args.device {
        DeviceArg::Cpu => (backend::device(), None),
        DeviceArg::Cuda(i) => (backend::device_at(i), Some(i)),
    };
    let probe = Probe::new(gpu)?;
    let train = train_config(shape.seq, reps, args.activation_checkpointing);
    let job = Job {
        config: config.clone(),
        train,
        probe: &probe,
        device: &device,
        run: StepRun { reps },
    };
    let (times, memory) = job.run()?;
    drop(probe);
    let gpu_name = gpu.and_then(gpu_name);
    let peak_flops = args
        .peak_tflops
        .map(|t| t * 1e12)
        .or_else(|| gpu_name.as_deref().and_then(known_peak_flops));
    let flops_per_token = flops_per_token(&config.llama, shape.seq);
    let plan = full_plan(
        &config.llama,
        build_dtype(),
        DTypeSize::F32,
        1,
        shape.seq as u64,
    );
    Ok(StepReport {
        device: match args.device {
            DeviceArg::Cpu => "cpu".into(),
            DeviceArg::Cuda(i) => format!("cuda:{i}"),
        },
        gpu: gpu_name,
        dtype: build_dtype_name().into(),
        shape: shape.clone(),
        activation_checkpointing: args.activation_checkpointing,
        params: param_counts(&config.llama).total(),
        flops_per_token,
        mfu: peak_flops.map(|p| times.median_tok_s * flops_per_token / p),
        peak_flops,
        plan_total: plan.total(args.activation_checkpointing),
        plan,
        times,
        memory,
    })
}

/// A continual-pre-training step's settings (the Llama-3-8B recipes': AdamW β 0.9/0.95, wd 0.1,
/// clip 1.0), micro-batch 1, no gradient accumulation.
fn train_config(seq: usize, reps: usize, activation_checkpointing: bool) -> TrainConfig {
    TrainConfig {
        steps: 1 + reps as u64,
        grad_accum: 1,
        micro_batch: [1, seq],
        schedule: WarmupCosine {
            peak: 1e-5,
            min_lr_ratio: 0.1,
            warmup_steps: 0,
            total_steps: 1000,
        },
        adamw: AdamWConfig::default(),
        clip_norm: 1.0,
        save_every: 0,
        keep_last: 0,
        log_every: 1,
        max_nonfinite_steps: 1 + reps as u32,
        seed: 0,
        activation_checkpointing,
        zero_stage: 0,
    }
}

/// The steps on the training backend that `train.activation_checkpointing` picks.
struct Job<'a> {
    config: ModelConfig,
    train: TrainConfig,
    probe: &'a Probe,
    device: &'a Device<Backend>,
    run: StepRun,
}

impl Job<'_> {
    fn run(self) -> anyhow::Result<(StepTimes, StepMemory)> {
        let Job {
            config,
            train,
            probe,
            device,
            run,
        } = self;
        let llama = config.llama.clone();
        let build = || {
            <TrainBackend as burn::tensor::backend::Backend>::seed(device, 0);
            Ok(llama.init::<TrainBackend>(device).materialize())
        };
        step::measure::<TrainBackend>(probe, build, config, train, device, run)
            .context("timing optimizer steps")
    }
}

impl StepReport {
    /// Prints the section as text.
    pub fn print_text(&self) {
        let s = &self.shape;
        println!(
            "optimizer steps (graft_train::Trainer: loss, backward, clip, AdamW) on {}{}: {:.3}B parameters (hidden {}, {} layers, {}/{} heads, ffn {}, vocab {}), {}, seq {}, batch 1, activation checkpointing {}",
            self.device,
            self.gpu.as_deref().map(|g| format!(" ({g})")).unwrap_or_default(),
            self.params as f64 / 1e9, s.hidden, s.layers, s.heads, s.kv_heads, s.ffn, s.vocab,
            self.dtype, s.seq,
            if self.activation_checkpointing { "on" } else { "off" },
        );
        let t = &self.times;
        let median_s = t.tokens_per_step as f64 / t.median_tok_s.max(f64::MIN_POSITIVE);
        println!(
            "tokens/s {:.1} (median), {:.1} (best) of {} step(s); step {:.3} s, warm-up {:.2} s; loss {:.3}",
            t.median_tok_s, t.best_tok_s, t.step_s.len(), median_s, t.warmup_s, t.loss
        );
        match (self.mfu, self.peak_flops) {
            (Some(mfu), Some(peak)) => println!(
                "MFU {:.1}% of {:.0} TFLOP/s ({:.2} GFLOP/token: 6·N + attention, as torchtitan)",
                mfu * 100.0,
                peak / 1e12,
                self.flops_per_token / 1e9
            ),
            _ => println!(
                "MFU: - (peak FLOP/s unknown: pass --peak-tflops); {:.2} GFLOP/token, {:.2} GFLOP/s achieved",
                self.flops_per_token / 1e9,
                t.median_tok_s * self.flops_per_token / 1e9
            ),
        }
        self.print_memory();
    }

    fn print_memory(&self) {
        let (m, p) = (&self.memory, &self.plan);
        let act = if self.activation_checkpointing {
            p.activations_checkpointed
        } else {
            p.activations
        };
        println!(
            "memory ({}; measured above the baseline of {} before the model):",
            m.what,
            format_bytes(m.before)
        );
        println!("  {:<44}{:>12}{:>12}", "", "measured", "plan");
        let row = |label: &str, measured: u64, plan: u64| {
            println!(
                "  {label:<44}{:>12}{:>12}",
                format_bytes(measured),
                format_bytes(plan)
            )
        };
        row("weights", m.weights(), p.weights);
        row(
            "optimizer state (after the warm-up step)",
            m.optimizer(),
            p.optimizer,
        );
        row(
            "step peak above that (gradients + activations)",
            m.step(),
            p.gradients + act,
        );
        row("peak in all", m.total(), self.plan_total);
        println!(
            "  measured/plan {:.2}x (plan: activations {}, of which the logits/loss buffer {})",
            m.total() as f64 / self.plan_total.max(1) as f64,
            format_bytes(act),
            format_bytes(p.logits_buffer)
        );
    }
}
