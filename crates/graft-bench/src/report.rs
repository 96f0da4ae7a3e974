//! The results of `graft bench model` and how they are printed (a table, or one JSON object).

use serde::Serialize;

use super::model::Shape;
use super::torch::{Baseline, TorchNumbers};

/// Loads of the checkpoint in fresh processes.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    /// Best load time, seconds.
    pub best_s: f64,
    /// Largest peak RSS (`VmHWM`) of a load process, bytes.
    pub peak_rss: u64,
    /// That process's RSS before the load, bytes.
    pub rss_before: u64,
    /// That process's RSS after the load (model alive), bytes.
    pub rss_after: u64,
    /// The dtype the weights were loaded into.
    pub dtype: String,
}

/// Timed forward + backward steps.
#[derive(Debug, Clone, Serialize)]
pub struct StepSummary {
    pub seq: usize,
    /// The warm-up step (not counted), seconds.
    pub warmup_s: f64,
    /// The loss of the warm-up step (random init: about ln(vocab)).
    pub loss: f32,
    /// `(forward incl. loss, backward)` seconds of each timed step.
    pub runs: Vec<(f64, f64)>,
    pub best_tok_s: f64,
    pub median_tok_s: f64,
}

impl StepSummary {
    /// Both measurements' runs as one summary (the warm-up and loss of `self`).
    pub fn merge(self, other: StepSummary) -> Self {
        let runs = self.runs.into_iter().chain(other.runs).collect();
        Self::new(self.seq, self.warmup_s, self.loss, runs)
    }

    pub fn new(seq: usize, warmup_s: f64, loss: f32, runs: Vec<(f64, f64)>) -> Self {
        let mut tok_s: Vec<f64> = runs.iter().map(|(f, b)| seq as f64 / (f + b)).collect();
        tok_s.sort_by(f64::total_cmp);
        let best_tok_s = tok_s.last().copied().unwrap_or(0.0);
        let median_tok_s = tok_s.get(tok_s.len() / 2).copied().unwrap_or(0.0);
        Self {
            seq,
            warmup_s,
            loss,
            runs,
            best_tok_s,
            median_tok_s,
        }
    }

    /// The fastest step's `(forward, backward)` seconds.
    fn best_run(&self) -> (f64, f64) {
        self.runs
            .iter()
            .copied()
            .min_by(|a, b| (a.0 + a.1).total_cmp(&(b.0 + b.1)))
            .unwrap_or_default()
    }
}

/// Everything `graft bench model` measured.
#[derive(Debug)]
pub struct ModelReport {
    pub shape: Shape,
    pub threads: usize,
    pub params: u64,
    /// Bytes of the bf16 safetensors file(s).
    pub file_bytes: u64,
    /// Bytes of the model in f32.
    pub f32_bytes: u64,
    pub generate_s: f64,
    /// Best raw read of the weight files, seconds.
    pub raw_read_s: f64,
    pub load: LoadSummary,
    pub step: StepSummary,
    /// The step's ceiling: its FLOPs at the backend's matmul rates.
    pub ceiling: Ceiling,
    pub torch: Baseline,
    pub load_avg_start: Option<f64>,
    pub load_avg_end: Option<f64>,
}

impl ModelReport {
    fn torch(&self) -> Option<&TorchNumbers> {
        match &self.torch {
            Baseline::Measured(t) => Some(t),
            Baseline::Unavailable(_) => None,
        }
    }

    fn load_vs_raw(&self) -> f64 {
        self.load.best_s / self.raw_read_s
    }
}

/// What bounds a training step on this machine: nearly all of its FLOPs are matrix products of
/// two shapes, the layers' (`[seq, hidden] · [hidden, ffn]` measured) and the LM head's
/// (`[seq, hidden] · [hidden, vocab]`), so a step cannot beat those FLOPs at those rates.
#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    /// f32 GFLOP/s of the backend at the MLP's shape.
    pub layers_gflops: f64,
    /// f32 GFLOP/s of the backend at the LM head's shape.
    pub head_gflops: f64,
    /// Model FLOPs per token (6·N + attention, as torchtitan).
    pub flops_per_token: f64,
    /// The LM head's share of them (6 · vocab · hidden).
    pub head_flops_per_token: f64,
}

impl Ceiling {
    /// Tokens/s of a step whose every FLOP ran at the measured matmul rates.
    pub fn tok_s(&self) -> f64 {
        let layers = self.flops_per_token - self.head_flops_per_token;
        1e9 / (layers / self.layers_gflops + self.head_flops_per_token / self.head_gflops)
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn opt(v: Option<f64>) -> String {
    v.map_or("?".into(), |v| format!("{v:.2}"))
}

/// Prints the report as a table.
pub fn print_text(r: &ModelReport) {
    let s = &r.shape;
    println!(
        "graft bench model: {:.1}M parameters (hidden {}, {} layers, {}/{} heads, ffn {}, vocab {}), seq {}, batch 1, {} threads",
        r.params as f64 / 1e6, s.hidden, s.layers, s.heads, s.kv_heads, s.ffn, s.vocab, s.seq, r.threads
    );
    println!(
        "load average (1 min) {} at start, {} at end; {} cores",
        opt(r.load_avg_start),
        opt(r.load_avg_end),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "checkpoint: {:.1} MB bf16 safetensors (f32 model {:.1} MB), generated in {:.1} s\n",
        mb(r.file_bytes),
        mb(r.f32_bytes),
        r.generate_s
    );
    let t = r.torch();
    let cell = |f: &dyn Fn(&TorchNumbers) -> f64, digits: usize| {
        t.map_or("-".to_string(), |t| format!("{:.*}", digits, f(t)))
    };
    let ratio = |graft: f64, f: &dyn Fn(&TorchNumbers) -> f64| {
        t.map_or("-".to_string(), |t| format!("{:.2}x", graft / f(t)))
    };
    println!(
        "{:<28}{:>12}{:>12}{:>16}",
        "", "graft", "PyTorch", "graft/PyTorch"
    );
    println!(
        "{:<28}{:>12.4}{:>12}",
        "raw read of the file (s)",
        r.raw_read_s,
        cell(&|t| t.raw_read_s, 4)
    );
    println!(
        "{:<28}{:>12.4}{:>12}{:>16}",
        "load to f32 (s)",
        r.load.best_s,
        cell(&|t| t.load_to_f32_s, 4),
        ratio(r.load.best_s, &|t| t.load_to_f32_s)
    );
    println!(
        "{:<28}{:>12}{:>12}",
        "load / raw read",
        format!("{:.2}x", r.load_vs_raw()),
        t.map_or("-".to_string(), |t| format!("{:.2}x", t.load_vs_raw))
    );
    println!(
        "{:<28}{:>12.1}{:>12}{:>16}",
        "fwd+bwd tokens/s (best)",
        r.step.best_tok_s,
        cell(&|t| t.fwd_bwd_tok_s, 1),
        ratio(r.step.best_tok_s, &|t| t.fwd_bwd_tok_s)
    );
    println!(
        "{:<28}{:>12.1}",
        "fwd+bwd tokens/s (median)", r.step.median_tok_s
    );
    let (fwd, bwd) = r.step.best_run();
    println!(
        "\ngraft step: forward+loss {fwd:.2} s + backward {bwd:.2} s (best of {}); warm-up {:.2} s; loss {:.3} (ln vocab = {:.3})",
        r.step.runs.len(), r.step.warmup_s, r.step.loss, (s.vocab as f64).ln()
    );
    let c = &r.ceiling;
    let ceiling = c.tok_s();
    println!(
        "matmul ceiling: {:.1} tokens/s = {:.2} GFLOP/token (6·N + attention) at Burn's f32 matmul rates here ({:.0} GFLOP/s at [{}x{}]·[{}x{}], {:.0} at the head's [{}x{}]·[{}x{}]); graft at {:.0}% of it{}",
        ceiling, c.flops_per_token / 1e9, c.layers_gflops, s.seq, s.hidden, s.hidden, s.ffn,
        c.head_gflops, s.seq, s.hidden, s.hidden, s.vocab,
        100.0 * r.step.best_tok_s / ceiling,
        t.map_or(String::new(), |t| format!(", PyTorch at {:.0}%", 100.0 * t.fwd_bwd_tok_s / ceiling))
    );
    let growth = r.load.peak_rss.saturating_sub(r.load.rss_before);
    println!(
        "graft load peak RSS: {:.1} MB = {:.2}x the bf16 file, {:.2}x the f32 model (process before load {:.1} MB, growth {:.1} MB = {:.2}x f32; after load {:.1} MB; weights in {})",
        mb(r.load.peak_rss), r.load.peak_rss as f64 / r.file_bytes as f64, r.load.peak_rss as f64 / r.f32_bytes as f64,
        mb(r.load.rss_before), mb(growth), growth as f64 / r.f32_bytes as f64, mb(r.load.rss_after), r.load.dtype
    );
    match &r.torch {
        Baseline::Measured(t) => println!(
            "PyTorch {} threads, {:.1}M parameters; graft/PyTorch > 1x is faster for tokens/s, slower for load times",
            t.threads, t.params as f64 / 1e6
        ),
        Baseline::Unavailable(why) => println!("PyTorch baseline not run: {why}"),
    }
}

/// The report as one JSON object (ratios included where the baseline ran).
pub fn to_json(r: &ModelReport) -> serde_json::Value {
    let t = r.torch();
    serde_json::json!({
        "shape": r.shape,
        "threads": r.threads,
        "params": r.params,
        "bf16_file_bytes": r.file_bytes,
        "f32_model_bytes": r.f32_bytes,
        "generate_s": r.generate_s,
        "raw_read_s": r.raw_read_s,
        "load": r.load,
        "load_vs_raw": r.load_vs_raw(),
        "peak_rss_vs_file": r.load.peak_rss as f64 / r.file_bytes as f64,
        "peak_rss_vs_f32_model": r.load.peak_rss as f64 / r.f32_bytes as f64,
        "step": r.step,
        "ceiling": r.ceiling,
        "ceiling_tok_s": r.ceiling.tok_s(),
        "torch": t,
        "torch_unavailable": match &r.torch { Baseline::Unavailable(why) => Some(why), _ => None },
        "tok_s_vs_torch": t.map(|t| r.step.best_tok_s / t.fwd_bwd_tok_s),
        "load_s_vs_torch": t.map(|t| r.load.best_s / t.load_to_f32_s),
        "load_avg_start": r.load_avg_start,
        "load_avg_end": r.load_avg_end,
    })
}
