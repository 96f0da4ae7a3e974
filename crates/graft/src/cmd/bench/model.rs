//! `graft bench model`: generates a random Llama-shaped model (default ~125M parameters), writes it
//! as a bf16 HF checkpoint in a temporary directory, and measures
//!
//! 1. a raw read of the checkpoint's bytes (warm page cache, best of N),
//! 2. `graft_llama::load` of the same files to f32, in a fresh process (best time of N; peak RSS),
//! 3. forward + backward with the causal LM loss on `Autodiff<Flex>` (batch 1), warm-up + N reps,
//!
//! then runs the PyTorch baseline on the same shape and prints both side by side.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use graft_llama::export::{write_hf_dir, ExportDtype, ExportOptions, HfDirFiles, ModelSource};
use graft_llama::{causal_lm_loss, ModelConfig, IGNORE_INDEX};
use serde::Serialize;

use super::load_child::{self, LoadSample};
use super::report::{self, LoadSummary, ModelReport, StepSummary};
use super::torch;
use crate::backend::{device, Backend, TrainBackend};

/// The model shape (defaults: ~125M parameters, the PyTorch baseline's defaults).
#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct Shape {
    /// Hidden size.
    #[arg(long, default_value_t = 768)]
    pub hidden: usize,
    /// Decoder layers.
    #[arg(long, default_value_t = 12)]
    pub layers: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 12)]
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    #[arg(long, default_value_t = 4)]
    pub kv_heads: usize,
    /// MLP intermediate size.
    #[arg(long, default_value_t = 2048)]
    pub ffn: usize,
    /// Vocabulary size.
    #[arg(long, default_value_t = 32000)]
    pub vocab: usize,
    /// Sequence length of the training step (batch 1).
    #[arg(long, default_value_t = 512)]
    pub seq: usize,
}

#[derive(clap::Args)]
pub struct ModelArgs {
    #[command(flatten)]
    pub shape: Shape,
    /// Timed repetitions of each measurement (after one warm-up).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub reps: u64,
    /// CPU threads for graft (sets RAYON_NUM_THREADS) and PyTorch; default: every core.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Skip the PyTorch baseline.
    #[arg(long)]
    pub no_torch: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ModelArgs) -> anyhow::Result<()> {
    let threads = set_threads(args.threads)?;
    let reps = args.reps as usize;
    let shape = args.shape;
    let load_avg_start = load_average();
    let tmp = tempfile::tempdir().context("creating a temporary directory for the model")?;
    let dir = tmp.path().join("model");

    tracing::info!("generating a random model ({shape:?}) as a bf16 checkpoint");
    let start = Instant::now();
    let config = generate(&shape, &dir)?;
    let generate_s = start.elapsed().as_secs_f64();
    let files = graft_llama::weight_files(&dir)?.files;
    let file_bytes = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();

    tracing::info!("raw read of {} file(s), {reps} reps", files.len());
    let raw_read_s = raw_read(&files, reps)?;
    tracing::info!("graft load in a fresh process, {reps} reps");
    let load = measure_load(&dir, reps)?;
    tracing::info!(
        "forward + backward at seq {}, 1 warm-up + {reps} reps",
        shape.seq
    );
    let step = measure_step(&dir, &shape, reps)?;
    drop(tmp);

    let torch = if args.no_torch {
        torch::Baseline::Unavailable("skipped (--no-torch)".into())
    } else {
        tracing::info!("PyTorch baseline on the same shape ({threads} threads)");
        torch::run(&shape, threads, reps)
    };
    let params = graft_llama::memory::param_counts(&config.llama).total();
    let report = ModelReport {
        shape,
        threads,
        params,
        file_bytes,
        f32_bytes: params * 4,
        generate_s,
        raw_read_s,
        load,
        step,
        torch,
        load_avg_start,
        load_avg_end: load_average(),
    };
    if args.json {
        report::print_json(&report)
    } else {
        report::print_text(&report);
        Ok(())
    }
}

/// Sets RAYON_NUM_THREADS (before any parallel work starts) and returns the thread count.
fn set_threads(threads: Option<usize>) -> anyhow::Result<usize> {
    match threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(n) => {
            // Single-threaded here: nothing has touched rayon's global pool yet.
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
            Ok(n)
        }
        None => Ok(std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))),
    }
}

/// Writes a randomly initialized model of `shape` to `dir` as a bf16 HF checkpoint.
fn generate(shape: &Shape, dir: &Path) -> anyhow::Result<ModelConfig> {
    let head_dim = shape.hidden / shape.heads.max(1);
    let json = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": shape.vocab, "hidden_size": shape.hidden, "intermediate_size": shape.ffn,
        "num_hidden_layers": shape.layers, "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.kv_heads, "head_dim": head_dim, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 8192.max(shape.seq), "rope_theta": 500000.0,
        "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
        "torch_dtype": "float32",
    });
    let config = ModelConfig::from_json_str(&json.to_string(), "bench model config")
        .context("the benchmark shape is not a valid Llama config")?;
    let model = config.llama.init::<Backend>(&device());
    let files = HfDirFiles {
        config: config.clone(),
        generation_config: None,
        tokenizer_dir: None,
    };
    let options = ExportOptions {
        dtype: ExportDtype::BF16,
        ..ExportOptions::default()
    };
    write_hf_dir(
        dir,
        &files,
        &mut ModelSource::new(&model),
        &options,
        &mut |_, _| {},
    )
    .with_context(|| format!("writing the benchmark model to {}", dir.display()))?;
    Ok(config)
}

/// Best time of `reps` full reads of `files` (16 MiB at a time), after one warm-up read.
fn raw_read(files: &[std::path::PathBuf], reps: usize) -> anyhow::Result<f64> {
    use std::io::Read;
    let mut buf = vec![0u8; 1 << 24];
    let mut read_all = || -> anyhow::Result<f64> {
        let start = Instant::now();
        for path in files {
            let mut f =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            while f
                .read(&mut buf)
                .with_context(|| format!("reading {}", path.display()))?
                > 0
            {}
        }
        Ok(start.elapsed().as_secs_f64())
    };
    read_all()?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        best = best.min(read_all()?);
    }
    Ok(best)
}

/// `reps` loads, each in a fresh process: the best time, and the largest peak RSS seen.
fn measure_load(dir: &Path, reps: usize) -> anyhow::Result<LoadSummary> {
    let samples: Vec<LoadSample> = (0..reps)
        .map(|_| load_child::measure(dir))
        .collect::<anyhow::Result<_>>()?;
    let best_s = samples
        .iter()
        .map(|s| s.load_s)
        .fold(f64::INFINITY, f64::min);
    let peak = samples
        .iter()
        .max_by_key(|s| s.peak_rss)
        .cloned()
        .context("no load sample")?;
    Ok(LoadSummary {
        best_s,
        peak_rss: peak.peak_rss,
        rss_before: peak.rss_before,
        rss_after: peak.rss_after,
        dtype: peak.dtype,
    })
}

/// Forward (logits + causal LM loss) and backward on `Autodiff<Flex>`, batch 1: one warm-up
/// step, then `reps` timed ones.
fn measure_step(dir: &Path, shape: &Shape, reps: usize) -> anyhow::Result<StepSummary> {
    let device = device();
    let (model, _) = graft_llama::load::<TrainBackend>(dir, &device)
        .with_context(|| format!("loading {} for the training step", dir.display()))?;
    let tokens = random_tokens(shape.seq, shape.vocab);
    let tokens =
        Tensor::<TrainBackend, 2, Int>::from_data(TensorData::new(tokens, [1, shape.seq]), &device);
    let step = || -> anyhow::Result<(f64, f64, f32)> {
        let start = Instant::now();
        let logits = model.forward(tokens.clone());
        let loss = causal_lm_loss(logits, tokens.clone(), IGNORE_INDEX);
        let value: f32 = loss.clone().into_scalar().elem::<f32>();
        let fwd_s = start.elapsed().as_secs_f64();
        let grads = loss.backward();
        let bwd_s = start.elapsed().as_secs_f64() - fwd_s;
        anyhow::ensure!(
            model.embed_tokens.val().grad(&grads).is_some(),
            "backward produced no gradient for embed_tokens"
        );
        Ok((fwd_s, bwd_s, value))
    };
    let (warm_fwd, warm_bwd, loss) = step()?;
    let mut runs = Vec::with_capacity(reps);
    for _ in 0..reps {
        let (f, b, _) = step()?;
        runs.push((f, b));
    }
    Ok(StepSummary::new(shape.seq, warm_fwd + warm_bwd, loss, runs))
}

/// Deterministic pseudo-random token ids in `0..vocab` (xorshift).
fn random_tokens(seq: usize, vocab: usize) -> Vec<i64> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..seq)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % vocab.max(1) as u64) as i64
        })
        .collect()
}

/// The 1-minute load average (`/proc/loadavg`), for judging how noisy the numbers are.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
