//! `graft bench memory RECIPE [--seq-len N]... [--set KEY=VALUE]... [--reps R] [--json]`: the
//! planner measured. For each sequence length a fresh process (`graft bench memory-child`) builds
//! the recipe's model (base checkpoint or `[model.init]`, LoRA adapters if the recipe says so) and
//! runs one warm-up and `R` timed optimizer steps of the recipe on random tokens ([`super::step`],
//! i.e. `graft_train::Trainer` with the recipe's batch, accumulation, activation checkpointing and
//! AdamW), measuring its resident memory in phases; the parent prints the figures beside
//! `graft plan`'s prediction for the same recipe and sequence length.
//!
//! The CPU computes in f32 whatever the recipe's `model.dtype`, so the plan is asked for f32
//! weights there (the report says so). The child keeps glibc's default allocator settings (not
//! `graft train`'s keep-freed-memory setting) and returns freed heap pages before each reading, so
//! that the phases count live memory.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use burn::tensor::Device;
use graft_llama::memory::RUNTIME_OVERHEAD;
use graft_train::plan::{format_bytes, plan, MethodPlan, PlanOptions};
use graft_train::{Method, ModelDtype, Recipe, TrainConfig};
use serde::{Deserialize, Serialize};

use super::mem::Probe;
use super::step::{self, StepMemory, StepRun, StepTimes};
use super::step_report::build_dtype_name;
use crate::backend::{self, Backend, TrainBackend};
use graft_train::model::resolve_model;

#[derive(clap::Args)]
pub struct MemoryArgs {
    /// Recipe TOML file.
    pub recipe: PathBuf,
    /// Sequence length to measure (repeatable) [default: the recipe's data.seq_len].
    #[arg(long = "seq-len", value_name = "N")]
    pub seq_len: Vec<usize>,
    /// Timed optimizer steps after the warm-up step.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub reps: u64,
    /// Override a recipe key, e.g. `--set train.micro_batch_size=1` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `graft bench memory-child`: what one child process runs.
#[derive(clap::Args)]
pub struct ChildArgs {
    pub recipe: PathBuf,
    #[arg(long)]
    pub reps: u64,
    #[arg(long = "set")]
    pub set: Vec<String>,
}

/// What a child prints (one JSON line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildReport {
    pub memory: StepMemory,
    pub times: StepTimes,
}

/// One sequence length: measured and planned.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub seq_len: usize,
    pub measured: StepMemory,
    /// Peak of a step above the set-up (activations, gradients, transients), bytes.
    pub measured_step: u64,
    /// Peak RSS of the process, its baseline included (the plan counts it in its overhead), bytes.
    pub measured_total: u64,
    pub times: StepTimes,
    /// The plan of the recipe's method at this sequence length.
    pub plan: MethodPlan,
    /// The plan's gradients + activations (with the recipe's checkpointing setting) and the
    /// optimizer update's excess over them.
    pub plan_step: u64,
    /// The plan's total.
    pub plan_total: u64,
}

pub fn run(args: MemoryArgs) -> anyhow::Result<()> {
    let recipe = Recipe::load(&args.recipe, &args.set)
        .with_context(|| format!("loading recipe {}", args.recipe.display()))?;
    let seqs = if args.seq_len.is_empty() {
        vec![recipe.data.seq_len]
    } else {
        args.seq_len.clone()
    };
    let mut runs = Vec::with_capacity(seqs.len());
    for &seq in &seqs {
        let mut set = args.set.clone();
        set.push(format!("data.seq_len={seq}"));
        tracing::info!(seq, "measuring in a fresh process");
        let child = measure_child(&args.recipe, &set, args.reps)?;
        runs.push(planned(&args.recipe, &set, seq, child)?);
    }
    if args.json {
        let value = serde_json::json!({
            "recipe": args.recipe,
            "method": recipe.train.method,
            "activation_checkpointing": recipe.train.activation_checkpointing,
            "micro_batch_size": recipe.train.micro_batch_size,
            "grad_accum": recipe.train.grad_accum,
            "dtype": build_dtype_name(),
            "recipe_dtype": recipe.model.dtype,
            "runs": runs,
        });
        println!("{}", serde_json::to_string(&value)?);
    } else {
        print_text(&args.recipe, &recipe, &runs);
    }
    Ok(())
}

/// The plan for the recipe at `seq` (with the build's compute dtype) joined to the measurement.
fn planned(path: &Path, set: &[String], seq: usize, child: ChildReport) -> anyhow::Result<Run> {
    let mut recipe = Recipe::load(path, set)?;
    recipe.model.dtype = match build_dtype_name() {
        "bf16" => ModelDtype::Bf16,
        _ => ModelDtype::F32,
    };
    let report = plan(&recipe, &PlanOptions::default())
        .with_context(|| format!("planning {}", path.display()))?;
    let plan = match recipe.train.method {
        Method::Full => report.full,
        Method::Lora => report.lora,
    };
    let ac = recipe.train.activation_checkpointing;
    let (act, overhead) = if ac {
        (plan.activations_checkpointed, plan.overhead_checkpointed)
    } else {
        (plan.activations, plan.overhead)
    };
    Ok(Run {
        seq_len: seq,
        measured_step: child.memory.step(),
        measured_total: child.memory.peak.max(child.memory.peak_warmup),
        measured: child.memory,
        times: child.times,
        plan_step: plan.gradients + act + overhead - RUNTIME_OVERHEAD,
        plan_total: plan.total(ac),
        plan,
    })
}

/// Runs `graft bench memory-child` with this executable and parses its report.
fn measure_child(recipe: &Path, set: &[String], reps: u64) -> anyhow::Result<ChildReport> {
    let exe = std::env::current_exe().context("finding the graft executable to re-run")?;
    let mut cmd = Command::new(&exe);
    cmd.args(["bench", "memory-child"])
        .arg(recipe)
        .arg("--reps")
        .arg(reps.to_string());
    for s in set {
        cmd.arg("--set").arg(s);
    }
    let output = cmd
        .env("RUST_LOG", "warn")
        .output()
        .with_context(|| format!("running {} bench memory-child", exe.display()))?;
    if !output.status.success() {
        anyhow::bail!(
            "the measuring child process failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("parsing the child's report {line:?}"))
}

/// The child: build the recipe's model and measure its steps; print a [`ChildReport`].
pub fn run_child(args: ChildArgs) -> anyhow::Result<()> {
    let recipe = Recipe::load(&args.recipe, &args.set)
        .with_context(|| format!("loading recipe {}", args.recipe.display()))?;
    let probe = Probe::new(None)?;
    let device = backend::device();
    let job = Job {
        recipe: &recipe,
        path: &args.recipe,
        probe: &probe,
        device: &device,
        run: StepRun {
            reps: args.reps as usize,
        },
    };
    let (times, memory) = job.run()?;
    println!("{}", serde_json::to_string(&ChildReport { memory, times })?);
    Ok(())
}

struct Job<'a> {
    recipe: &'a Recipe,
    path: &'a Path,
    probe: &'a Probe,
    device: &'a Device<Backend>,
    run: StepRun,
}

impl Job<'_> {
    fn run(self) -> anyhow::Result<(StepTimes, StepMemory)> {
        let spec = resolve_model(self.recipe, self.path)?;
        let config = spec.config.clone();
        let build = || -> anyhow::Result<_> {
            let model = spec.build::<TrainBackend>(self.device)?;
            Ok(graft_train::lora::prepare_model(model, self.recipe)?)
        };
        let train = TrainConfig::from_recipe(self.recipe);
        step::measure::<TrainBackend>(self.probe, build, config, train, self.device, self.run)
    }
}

fn print_text(path: &Path, recipe: &Recipe, runs: &[Run]) {
    let t = &recipe.train;
    println!(
        "graft bench memory {}: {:?} training, activation checkpointing {}, micro-batch {} x grad_accum {}, computed in {} (recipe: {:?})",
        path.display(),
        t.method,
        if t.activation_checkpointing { "on" } else { "off" },
        t.micro_batch_size,
        t.grad_accum,
        build_dtype_name(),
        recipe.model.dtype,
    );
    println!("measured: RSS of a fresh process (weights, optimizer and step peak above the phase before; total: its peak RSS); plan: `graft plan` for the same recipe\n");
    println!(
        "{:>8}  {:>21}  {:>21}  {:>21}  {:>21}  {:>8}",
        "seq",
        "weights meas/plan",
        "optimizer meas/plan",
        "step peak meas/plan",
        "total meas/plan",
        "ratio"
    );
    let pair = |a: u64, b: u64| format!("{}/{}", gb(a), gb(b));
    for r in runs {
        let (m, p) = (&r.measured, &r.plan);
        println!(
            "{:>8}  {:>21}  {:>21}  {:>21}  {:>21}  {:>7.2}x",
            r.seq_len,
            pair(m.weights(), p.weights + p.adapters),
            pair(m.optimizer(), p.optimizer),
            pair(r.measured_step, r.plan_step),
            pair(r.measured_total, r.plan_total),
            r.measured_total as f64 / r.plan_total.max(1) as f64
        );
    }
    println!("(GB; step peak = gradients + activations + transients above weights and optimizer state; plan activations include the logits buffer)");
    for w in runs.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        println!(
            "step peak growth seq {} -> {} ({:.1}x longer): measured {:.2}x, plan {:.2}x",
            a.seq_len,
            b.seq_len,
            b.seq_len as f64 / a.seq_len as f64,
            b.measured_step as f64 / a.measured_step.max(1) as f64,
            b.plan_step as f64 / a.plan_step.max(1) as f64
        );
    }
    if let Some(r) = runs.last() {
        println!(
            "process baseline {}; tokens/s at seq {}: {:.1}",
            format_bytes(r.measured.before),
            r.seq_len,
            r.times.median_tok_s
        );
    }
}

fn gb(bytes: u64) -> String {
    format!("{:.3}", bytes as f64 / 1e9)
}
