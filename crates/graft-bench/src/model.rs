//! `graft bench model`: generates a random Llama-shaped model (default ~125M parameters), writes it
//! as a bf16 HF checkpoint in a temporary directory, and measures
//!
//! 1. a raw read of the checkpoint's bytes (warm page cache, best of N),
//! 2. `graft_llama::load` of the same files to f32, in a fresh process (best time of N; peak RSS),
//! 3. forward + backward with the causal LM loss on `Autodiff<Flex>` (batch 1), warm-up + N reps,
//!    in two windows interleaved with two runs of the PyTorch baseline on the same shape (best of
//!    each side, so that a machine whose speed drifts favours neither),
//! 4. the backend's f32 matmul rates at the layers' and the LM head's shapes: the step's ceiling,
//!
//! and prints graft and PyTorch side by side.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use graft_llama::export::{write_hf_dir, ExportDtype, ExportOptions, HfDirFiles, ModelSource};
use graft_llama::{ModelConfig, IGNORE_INDEX};
use serde::Serialize;

use super::load_child::{self, LoadSample};
use super::report::{self, LoadSummary, ModelReport, StepSummary};
use super::{step, step_report, torch};
use crate::backend::{device, Backend, TrainBackend};

/// Named model shapes (`--shape`); `--hidden` … `--seq` override single fields.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Preset {
    /// ~125M parameters: hidden 768, 12 layers, 12/4 heads, ffn 2048, vocab 32000, seq 512.
    #[value(name = "125m")]
    M125,
    /// The Llama-3 vocabulary on a small body: hidden 128, 2 layers, 4/2 heads, ffn 384,
    /// vocab 128256, seq 512 (the tiny-demo's architecture, untied).
    #[value(name = "llama3-vocab")]
    Llama3Vocab,
    /// Llama-3-8B: hidden 4096, 32 layers (use --layers for a few), 32/8 heads, ffn 14336,
    /// vocab 128256, seq 4096.
    #[value(name = "llama3-8b")]
    Llama3_8b,
    /// A test-sized model: hidden 64, 2 layers, 4/2 heads, ffn 176, vocab 384, seq 128.
    #[value(name = "tiny")]
    Tiny,
}

impl Preset {
    fn shape(self) -> Shape {
        let s = |hidden, layers, heads, kv_heads, ffn, vocab, seq| Shape {
            hidden,
            layers,
            heads,
            kv_heads,
            ffn,
            vocab,
            seq,
        };
        match self {
            Preset::M125 => s(768, 12, 12, 4, 2048, 32000, 512),
            Preset::Llama3Vocab => s(128, 2, 4, 2, 384, 128_256, 512),
            Preset::Llama3_8b => s(4096, 32, 32, 8, 14336, 128_256, 4096),
            Preset::Tiny => s(64, 2, 4, 2, 176, 384, 128),
        }
    }
}

/// A model shape, resolved from a preset and overrides.
#[derive(Debug, Clone, Serialize)]
pub struct Shape {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    /// Sequence length of the training step (batch 1).
    pub seq: usize,
}

/// The model shape: a preset (default 125m, the PyTorch baseline's defaults) and overrides.
#[derive(clap::Args, Debug, Clone)]
pub struct ShapeArgs {
    /// Named shape; the flags below override its fields.
    #[arg(long, value_enum, default_value = "125m")]
    pub shape: Preset,
    /// Hidden size.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Decoder layers.
    #[arg(long)]
    pub layers: Option<usize>,
    /// Attention heads.
    #[arg(long)]
    pub heads: Option<usize>,
    /// Key/value heads (grouped-query attention).
    #[arg(long)]
    pub kv_heads: Option<usize>,
    /// MLP intermediate size.
    #[arg(long)]
    pub ffn: Option<usize>,
    /// Vocabulary size.
    #[arg(long)]
    pub vocab: Option<usize>,
    /// Sequence length of the training step (batch 1).
    #[arg(long)]
    pub seq: Option<usize>,
}

impl ShapeArgs {
    /// The preset with the overrides applied.
    pub fn resolve(&self) -> Shape {
        let mut s = self.shape.shape();
        for (field, value) in [
            (&mut s.hidden, self.hidden),
            (&mut s.layers, self.layers),
            (&mut s.heads, self.heads),
            (&mut s.kv_heads, self.kv_heads),
            (&mut s.ffn, self.ffn),
            (&mut s.vocab, self.vocab),
            (&mut s.seq, self.seq),
        ] {
            if let Some(v) = value {
                *field = v;
            }
        }
        s
    }
}

#[derive(clap::Args)]
pub struct ModelArgs {
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Device: `cpu` (the default build) or `cuda:N` (a `--features cuda` build). On the CPU the
    /// benchmark compares load and forward+backward with PyTorch, then times optimizer steps; on
    /// CUDA it times optimizer steps only.
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceArg,
    /// Compute dtype, which is the build's: f32 on the CPU, bf16 on CUDA (checked, not chosen).
    #[arg(long, value_parser = ["f32", "bf16"])]
    pub dtype: Option<String>,
    /// Train the optimizer steps with `train.activation_checkpointing = true`.
    #[arg(long)]
    pub activation_checkpointing: bool,
    /// Peak dense FLOP/s of the device in TFLOP/s, for MFU [default: known GPUs by name
    /// (H100/H200 989, A100 312 for bf16); none on the CPU].
    #[arg(long, value_name = "TFLOPS")]
    pub peak_tflops: Option<f64>,
    /// Timed repetitions of each measurement (after one warm-up).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub reps: u64,
    /// CPU threads for graft (sets RAYON_NUM_THREADS) and PyTorch; default: every core.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Skip the PyTorch baseline.
    #[arg(long)]
    pub no_torch: bool,
    /// Skip the load and forward+backward comparison (CPU): time optimizer steps only.
    #[arg(long)]
    pub steps_only: bool,
    /// Skip the optimizer steps.
    #[arg(long)]
    pub no_train_step: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `--device`: the CPU, or GPU N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceArg {
    Cpu,
    Cuda(usize),
}

fn parse_device(s: &str) -> Result<DeviceArg, String> {
    if s == "cpu" {
        return Ok(DeviceArg::Cpu);
    }
    let index = match s.strip_prefix("cuda") {
        Some("") => Some(0),
        Some(rest) => rest.strip_prefix(':').and_then(|i| i.parse().ok()),
        None => None,
    };
    index
        .map(DeviceArg::Cuda)
        .ok_or_else(|| format!("{s:?}: use `cpu` or `cuda:N`"))
}

/// Checks that this build runs on `device` in `dtype` (the build decides both).
fn check_build(device: DeviceArg, dtype: Option<&str>) -> anyhow::Result<()> {
    let cuda_build = cfg!(feature = "cuda");
    match device {
        DeviceArg::Cuda(_) if !cuda_build => anyhow::bail!(
            "--device cuda: this graft was built without CUDA; rebuild with `cargo build --release -p graft --features cuda`"
        ),
        DeviceArg::Cpu if cuda_build => anyhow::bail!(
            "--device cpu: this graft was built with --features cuda and runs on the GPU; use --device cuda:N, or a default build for the CPU"
        ),
        _ => {}
    }
    let build_dtype = super::step_report::build_dtype_name();
    if let Some(d) = dtype.filter(|d| *d != build_dtype) {
        anyhow::bail!("--dtype {d}: this build computes in {build_dtype} (the CPU backend in f32, the CUDA build in bf16)");
    }
    Ok(())
}

pub fn run(args: ModelArgs) -> anyhow::Result<()> {
    check_build(args.device, args.dtype.as_deref())?;
    let threads = set_threads(args.threads)?;
    let reps = args.reps as usize;
    let shape = args.shape.resolve();
    // the allocator setting `graft train` runs with (freed blocks reused, not re-faulted)
    graft_train::run::keep_freed_memory();
    let cpu = match args.device {
        DeviceArg::Cpu if !args.steps_only => Some(compare_cpu(&args, &shape, threads, reps)?),
        _ => None,
    };
    let steps = if args.no_train_step {
        None
    } else {
        tracing::info!("optimizer steps at seq {}, 1 warm-up + {reps}", shape.seq);
        Some(step_report::run(&args, &shape, reps)?)
    };
    if args.json {
        let mut value = match &cpu {
            Some(report) => report::to_json(report),
            None => serde_json::json!({ "shape": shape, "threads": threads }),
        };
        value["train_step"] = serde_json::to_value(&steps)?;
        println!("{}", serde_json::to_string(&value)?);
        return Ok(());
    }
    if let Some(report) = &cpu {
        report::print_text(report);
    }
    if let Some(steps) = &steps {
        if cpu.is_some() {
            println!();
        }
        steps.print_text();
    }
    Ok(())
}

/// The CPU comparison with PyTorch: generate a bf16 checkpoint, raw read, load in fresh
/// processes, forward+backward, and the baseline script on the same shape.
fn compare_cpu(
    args: &ModelArgs,
    shape: &Shape,
    threads: usize,
    reps: usize,
) -> anyhow::Result<ModelReport> {
    let load_avg_start = load_average();
    let tmp = tempfile::tempdir().context("creating a temporary directory for the model")?;
    let dir = tmp.path().join("model");

    tracing::info!("generating a random model ({shape:?}) as a bf16 checkpoint");
    let start = Instant::now();
    let config = generate(shape, &dir)?;
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
    // graft, PyTorch, graft, PyTorch: the best of each side's two windows, so that a machine
    // whose speed drifts during the benchmark (a shared VM) favours neither
    let torch_run = || {
        if args.no_torch {
            torch::Baseline::Unavailable("skipped (--no-torch)".into())
        } else {
            tracing::info!("PyTorch baseline on the same shape ({threads} threads)");
            torch::run(shape, threads, reps)
        }
    };
    let mut step: Option<StepSummary> = None;
    let mut baseline: Option<torch::Baseline> = None;
    for window in 0..2 {
        tracing::info!(
            "forward + backward at seq {}, 1 warm-up + {reps} reps (window {}/2)",
            shape.seq,
            window + 1
        );
        let s = measure_step(&dir, shape, reps)?;
        step = Some(match step {
            Some(first) => first.merge(s),
            None => s,
        });
        let t = torch_run();
        baseline = Some(match baseline {
            Some(first) => torch::best_of(first, t),
            None => t,
        });
        if matches!(baseline, Some(torch::Baseline::Unavailable(_))) {
            break;
        }
    }
    let (step, torch) = (
        step.context("no step measured")?,
        baseline.context("no baseline")?,
    );
    drop(tmp);
    tracing::info!("f32 matmul rates at the MLP's and the LM head's shapes");
    let ceiling = report::Ceiling {
        layers_gflops: matmul_rate([shape.seq, shape.hidden, shape.ffn], reps),
        head_gflops: matmul_rate([shape.seq, shape.hidden, shape.vocab], reps),
        flops_per_token: step_report::flops_per_token(&config.llama, shape.seq),
        head_flops_per_token: 6.0 * (shape.vocab * shape.hidden) as f64,
    };
    let params = graft_llama::memory::param_counts(&config.llama).total();
    Ok(ModelReport {
        shape: shape.clone(),
        threads,
        params,
        file_bytes,
        f32_bytes: params * 4,
        generate_s,
        raw_read_s,
        load,
        step,
        ceiling,
        torch,
        load_avg_start,
        load_avg_end: load_average(),
    })
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

/// The HF config of a model of `shape` (untied, as the PyTorch baseline).
pub fn model_config(shape: &Shape) -> anyhow::Result<ModelConfig> {
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
    ModelConfig::from_json_str(&json.to_string(), "bench model config")
        .context("the benchmark shape is not a valid Llama config")
}

/// Writes a randomly initialized model of `shape` to `dir` as a bf16 HF checkpoint.
fn generate(shape: &Shape, dir: &Path) -> anyhow::Result<ModelConfig> {
    let config = model_config(shape)?;
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

/// Forward (the fused head + causal LM loss, as training runs it) and backward on `Autodiff<Flex>`, batch 1: one warm-up
/// step, then `reps` timed ones.
fn measure_step(dir: &Path, shape: &Shape, reps: usize) -> anyhow::Result<StepSummary> {
    let device = device();
    let (model, _) = graft_llama::load::<TrainBackend>(dir, &device)
        .with_context(|| format!("loading {} for the training step", dir.display()))?;
    let tokens = step::random_tokens(shape.seq, shape.vocab, 0);
    let tokens =
        Tensor::<TrainBackend, 2, Int>::from_data(TensorData::new(tokens, [1, shape.seq]), &device);
    let step = || -> anyhow::Result<(f64, f64, f32)> {
        let start = Instant::now();
        // graft's training path: the fused, chunked head + loss (`graft_train::Trainer` runs it);
        // PyTorch's baseline materialises the logits, as transformers does.
        let loss = model.loss(tokens.clone(), tokens.clone(), IGNORE_INDEX);
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

/// The backend's f32 matmul rate on this machine in GFLOP/s for `[m, k] · [k, n]`: the best of
/// `reps` timed rounds of products of about 1 GFLOP each, on the threads the step used.
fn matmul_rate([m, k, n]: [usize; 3], reps: usize) -> f64 {
    use burn::tensor::{backend::Backend as _, Distribution};
    let device = device();
    let a = Tensor::<Backend, 2>::random([m, k], Distribution::Default, &device);
    let b = Tensor::<Backend, 2>::random([k, n], Distribution::Default, &device);
    let one = 2.0 * (m * k * n) as f64;
    let rounds = (1e9 / one).ceil().max(1.0) as usize;
    let mut best = f64::INFINITY;
    for rep in 0..=reps.max(2) {
        let start = Instant::now();
        for _ in 0..rounds {
            drop(a.clone().matmul(b.clone()));
        }
        let _ = Backend::sync(&device);
        if rep > 0 {
            best = best.min(start.elapsed().as_secs_f64());
        }
    }
    one * rounds as f64 / best / 1e9
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
