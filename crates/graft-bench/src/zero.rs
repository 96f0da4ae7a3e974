//! `graft bench zero RECIPE [--stage N]... [--set KEY=VALUE]... [--json]`: peak resident memory of
//! each process of a two-rank data-parallel run at ZeRO stages 0, 1 and 2, beside `graft plan`'s
//! per-GPU prediction for the same recipe on 2 devices.
//!
//! By default each rank is its own process: per stage, `graft orchestrator` on a free loopback
//! port and two `graft train RECIPE --nodes 2 --node-rank R` (one CPU device each), exactly as a
//! two-node run, whose collectives go through the orchestrator. With `--local` both ranks are
//! threads of one `graft train --devices 0,1` process (local collectives), whose RSS is their sum:
//! it is shown beside twice the plan. A figure is the kernel's peak RSS of the process (`wait4`'s
//! `ru_maxrss`): the whole run, data loading and the final checkpoint included. The data is
//! prepared once beforehand (`graft prepare`), so no rank spends memory on it.
//!
//! The plan's total includes a fixed runtime allowance (calibrated on a bare CPU process by
//! `graft bench memory`), where a `graft train` rank also holds a tokenizer, the data stream and
//! the collectives' runtime. The change from stage 0 compares the two without either baseline.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use graft_train::plan::{plan, MethodPlan, PlanOptions};
use graft_train::{Method, Recipe};
use serde::Serialize;

/// Ranks of the measured run (two nodes on loopback).
const RANKS: usize = 2;

#[derive(clap::Args)]
pub struct ZeroArgs {
    /// Recipe TOML file (full training; a model whose optimizer state dominates shows the stages).
    pub recipe: PathBuf,
    /// ZeRO stage to measure (repeatable) [default: 0, 1 and 2].
    #[arg(long = "stage", value_name = "N", value_parser = clap::value_parser!(u8).range(0..=2))]
    pub stages: Vec<u8>,
    /// Override a recipe key, e.g. `--set train.steps=2` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Run both ranks as threads of one process (`--devices 0,1`, local collectives) and report
    /// its peak RSS beside twice the plan's per-GPU figure.
    #[arg(long)]
    pub local: bool,
    /// Seconds a stage may take before its processes are killed.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One ZeRO stage: each rank's peak RSS and the plan's per-GPU figures.
#[derive(Debug, Clone, Serialize)]
pub struct StageRun {
    pub zero_stage: u8,
    /// Peak RSS of each rank's process (with `--local`: of the one process), bytes.
    pub peak_rss: Vec<u64>,
    /// The plan's per-GPU total at this stage (2 devices), bytes.
    pub plan_total: u64,
    /// The plan's per-GPU gradients and optimizer state at this stage, bytes.
    pub plan_gradients: u64,
    pub plan_optimizer: u64,
}

impl StageRun {
    /// The larger rank's peak: what each machine must have.
    pub fn max_rss(&self) -> u64 {
        self.peak_rss.iter().copied().max().unwrap_or(0)
    }

    /// What the measured process holds by the plan: one GPU's, or [`RANKS`] GPUs' with `--local`.
    pub fn plan_process(&self) -> u64 {
        match self.peak_rss.len() {
            1 => RANKS as u64 * self.plan_total,
            _ => self.plan_total,
        }
    }
}

pub fn run(args: ZeroArgs) -> anyhow::Result<()> {
    let recipe = Recipe::load(&args.recipe, &args.set)
        .with_context(|| format!("loading recipe {}", args.recipe.display()))?;
    let plan = planned(&recipe, &args.recipe)?;
    let stages = match args.stages.is_empty() {
        true => vec![0, 1, 2],
        false => args.stages.clone(),
    };
    let exe = std::env::current_exe().context("finding the graft executable to re-run")?;
    let work = tempfile::tempdir().context("creating a temporary directory")?;
    prepare(&exe, &args, work.path())?;
    let mut runs = Vec::with_capacity(stages.len());
    for &stage in &stages {
        tracing::info!(stage, local = args.local, "measuring 2 ranks");
        let peak_rss = measure_stage(&exe, &args, stage, work.path())?;
        let s = &plan.stages[usize::from(stage)];
        runs.push(StageRun {
            zero_stage: stage,
            peak_rss,
            plan_total: s.total,
            plan_gradients: s.gradients,
            plan_optimizer: s.optimizer,
        });
    }
    if args.json {
        let value = serde_json::json!({
            "recipe": args.recipe,
            "ranks": RANKS,
            "processes": if args.local { 1 } else { RANKS },
            "params": plan.trainable_params,
            "micro_batch_size": recipe.train.micro_batch_size,
            "seq_len": recipe.data.seq_len,
            "grad_accum": recipe.train.grad_accum,
            "runs": runs,
        });
        println!("{}", serde_json::to_string(&value)?);
    } else {
        print_text(&args, &recipe, &plan, &runs);
    }
    Ok(())
}

/// `graft plan`'s full-training figures for the recipe on [`RANKS`] devices.
fn planned(recipe: &Recipe, path: &Path) -> anyhow::Result<MethodPlan> {
    if recipe.train.method != Method::Full {
        anyhow::bail!(
            "{}: `graft bench zero` measures full training (train.method = \"full\"); LoRA's optimizer state is too small to show the stages",
            path.display()
        );
    }
    let options = PlanOptions {
        devices: Some(RANKS),
        ..Default::default()
    };
    let report = plan(recipe, &options).with_context(|| format!("planning {}", path.display()))?;
    Ok(report.full)
}

/// `graft prepare` once, so that the ranks find the data tokenized.
fn prepare(exe: &Path, args: &ZeroArgs, work: &Path) -> anyhow::Result<()> {
    let mut cmd = Command::new(exe);
    cmd.arg("prepare").arg(&args.recipe);
    for s in &args.set {
        cmd.arg("--set").arg(s);
    }
    let log = work.join("prepare.log");
    let status = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .status()
        .with_context(|| format!("running {} prepare", exe.display()))?;
    if !status.success() {
        anyhow::bail!("graft prepare failed ({status}):\n{}", tail(&log));
    }
    Ok(())
}

/// A child process killed (and reaped) when dropped unless it was reaped already.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `graft orchestrator` on a free loopback port, once it listens; its port.
fn orchestrator(exe: &Path) -> anyhow::Result<(Guard, u16)> {
    let port = free_port()?;
    let guard = Guard(Some(
        Command::new(exe)
            .args(["orchestrator", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting graft orchestrator")?,
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            anyhow::bail!("graft orchestrator did not listen on port {port} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((guard, port))
}

/// One stage: the `graft train` processes (one per rank and an orchestrator, or one with
/// `--local`); each process's peak RSS.
fn measure_stage(exe: &Path, args: &ZeroArgs, stage: u8, work: &Path) -> anyhow::Result<Vec<u64>> {
    let (_orchestrator, port) = match args.local {
        true => (Guard(None), 0),
        false => orchestrator(exe)?,
    };
    let out = work.join(format!("stage{stage}"));
    let processes = if args.local { 1 } else { RANKS };
    let mut ranks = Vec::with_capacity(processes);
    for rank in 0..processes {
        let log = work.join(format!("stage{stage}-rank{rank}.log"));
        let mut cmd = Command::new(exe);
        cmd.arg("train").arg(&args.recipe).arg("--out").arg(&out);
        for s in &args.set {
            cmd.arg("--set").arg(s);
        }
        cmd.args(["--set", &format!("train.zero_stage={stage}")]);
        if args.local {
            cmd.args(["--devices", "0,1"]);
        } else {
            let (ranks_s, rank_s) = (RANKS.to_string(), rank.to_string());
            let node = format!("ws://127.0.0.1:{}", free_port()?);
            cmd.args(["--nodes", &ranks_s, "--node-rank", &rank_s])
                .args(["--orchestrator", &format!("ws://127.0.0.1:{port}")])
                .args(["--node-address", &node]);
        }
        cmd.env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        let child = cmd.spawn().context("starting graft train")?;
        ranks.push((Guard(Some(child)), log));
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut peaks = vec![None; processes];
    while peaks.iter().any(Option::is_none) {
        for (rank, (guard, log)) in ranks.iter_mut().enumerate() {
            let Some(child) = guard.0.as_ref() else {
                continue;
            };
            if let Some((ok, peak)) = reap(child.id())? {
                guard.0 = None; // reaped: nothing left to kill
                if !ok {
                    anyhow::bail!("stage {stage}: rank {rank} failed:\n{}", tail(log));
                }
                peaks[rank] = Some(peak);
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "stage {stage}: the ranks did not finish in {} s",
                args.timeout
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(peaks.into_iter().map(Option::unwrap_or_default).collect())
}

/// Reaps process `pid` if it has exited: whether it succeeded and its peak RSS in bytes.
fn reap(pid: u32) -> anyhow::Result<Option<(bool, u64)>> {
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills; pid is our own unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::wait4(pid as libc::pid_t, &mut status, libc::WNOHANG, &mut usage) };
    match got {
        0 => Ok(None),
        -1 => Err(std::io::Error::last_os_error()).context("waiting for a rank"),
        _ => {
            let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
            // Linux reports ru_maxrss in KiB
            Ok(Some((ok, usage.ru_maxrss.max(0) as u64 * 1024)))
        }
    }
}

/// The last lines of a log, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn print_text(args: &ZeroArgs, recipe: &Recipe, plan: &MethodPlan, runs: &[StageRun]) {
    let how = match args.local {
        true => "threads of 1 process (--devices 0,1)",
        false => "2 processes (2 nodes on loopback)",
    };
    println!(
        "graft bench zero {}: full training of {:.1}M parameters, micro-batch {} x {} tokens, grad_accum {}, {RANKS} ranks as {how}",
        args.recipe.display(),
        plan.trainable_params as f64 / 1e6,
        recipe.train.micro_batch_size,
        recipe.data.seq_len,
        recipe.train.grad_accum,
    );
    let (cols, what) = match args.local {
        true => (
            ["process (MB)", "", "2 x plan (MB)"],
            "the process's peak RSS; plan: `graft plan --devices 2` per GPU, twice",
        ),
        false => (
            ["rank 0 (MB)", "rank 1 (MB)", "plan (MB)"],
            "peak RSS of each rank's process; plan: `graft plan --devices 2`, per GPU",
        ),
    };
    println!("measured: {what}; over the whole run\n");
    println!(
        "{:>5}  {:>12}  {:>12}  {:>13}  {:>8}  {:>12}  {:>10}",
        "stage", cols[0], cols[1], cols[2], "max/plan", "Δ meas (MB)", "Δ plan"
    );
    let base = runs.iter().find(|r| r.zero_stage == 0);
    let mb = |b: u64| b as f64 / 1e6;
    for r in runs {
        let delta = |f: fn(&StageRun) -> u64| match base {
            Some(b) => format!("{:+.1}", mb(f(r)) - mb(f(b))),
            None => "-".into(),
        };
        let second = r
            .peak_rss
            .get(1)
            .map_or(String::new(), |b| format!("{:.1}", mb(*b)));
        println!(
            "{:>5}  {:>12.1}  {:>12}  {:>13.1}  {:>7.2}x  {:>12}  {:>10}",
            r.zero_stage,
            mb(r.peak_rss.first().copied().unwrap_or(0)),
            second,
            mb(r.plan_process()),
            r.max_rss() as f64 / r.plan_process().max(1) as f64,
            delta(StageRun::max_rss),
            delta(StageRun::plan_process),
        );
    }
    println!(
        "(Δ: change from stage 0, measured (the larger process) and planned. Plan per GPU: weights {:.1} MB, gradients and AdamW state by stage, activations, {:.0} MB of process runtime)",
        mb(plan.weights + plan.adapters),
        mb(graft_llama::memory::RUNTIME_OVERHEAD),
    );
}
