//! `graft inspect`: a model's architecture, parameter counts (total and trainable, full or LoRA),
//! dtype and the memory it needs for inference, LoRA training and full training. Reads only
//! `config.json` and the weight file sizes; no weights are loaded.

use anyhow::Context;
use graft_llama::memory::{
    full_training_memory, inference_memory, lora_memory, lora_param_count, param_counts,
};
use graft_llama::{DTypeSize, LayerParam, LlamaConfig, MemoryEstimate, ModelConfig};
use serde_json::{json, Value};

/// LoRA rank used for the memory estimate when --lora-rank is not given.
const DEFAULT_LORA_RANK: u64 = 16;

#[derive(clap::Args)]
pub struct Args {
    /// A checkpoint directory, or a Hub repo id in the local HF cache (see `graft download`).
    pub model: String,
    /// Hub revision, when MODEL is a repo id.
    #[arg(long)]
    pub revision: Option<String>,
    /// Report LoRA with this rank: trainable parameters are then the adapters'.
    #[arg(long, value_name = "R")]
    pub lora_rank: Option<u64>,
    /// Projections LoRA adapts, or all-linear (default: all seven: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub lora_targets: Vec<String>,
    /// Sequences per batch for the memory estimates.
    #[arg(long, default_value_t = 1)]
    pub batch_size: u64,
    /// Sequence length for the memory estimates (default: 4096, or the model's context if shorter).
    #[arg(long)]
    pub seq_len: Option<u64>,
    /// Weight/activation dtype for the memory estimates: bf16, f16 or f32 (default: the checkpoint's).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = graft_llama::hub::resolve(&args.model, args.revision.as_deref())?;
    let config = ModelConfig::from_file(dir.join("config.json"))?;
    let report = report(&args, &dir, &config)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report, args.lora_rank.is_some());
    }
    Ok(())
}

/// Everything `inspect` shows, as the JSON object `--json` prints.
fn report(args: &Args, dir: &std::path::Path, config: &ModelConfig) -> anyhow::Result<Value> {
    let c = &config.llama;
    let targets = parse_targets(&args.lora_targets)?;
    let rank = args.lora_rank.unwrap_or(DEFAULT_LORA_RANK);
    anyhow::ensure!(rank > 0, "--lora-rank must be at least 1");
    let files = graft_llama::weight_files(dir)?;
    let disk: u64 = files
        .files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()
        .context("reading weight file sizes")?;
    let counts = param_counts(c);
    let lora_params = lora_param_count(c, rank, &targets);
    let lora = args.lora_rank.is_some();
    Ok(json!({
        "model": dir.display().to_string(),
        "architecture": architecture(config),
        "dtype": c.torch_dtype,
        "weights_on_disk": { "files": files.files.len(), "bytes": disk },
        "parameters": {
            "total": counts.total(),
            "embedding": counts.embedding,
            "attention": counts.attention,
            "mlp": counts.mlp,
            "norm": counts.norm,
            "lm_head": counts.lm_head,
            "trainable": if lora { lora_params } else { counts.total() },
            "trainable_method": if lora { "lora" } else { "full" },
        },
        "lora": {
            "rank": rank,
            "targets": targets.iter().map(|t| graft_llama::lora::target_name(*t)).collect::<Vec<_>>(),
            "params": lora_params,
        },
        "memory": memory(args, c, rank, &targets)?,
    }))
}

/// Inference, LoRA and full-training estimates for the batch, sequence and dtype of `args`.
fn memory(
    args: &Args,
    c: &LlamaConfig,
    rank: u64,
    targets: &[LayerParam],
) -> anyhow::Result<Value> {
    let dtype_name = args
        .dtype
        .clone()
        .or_else(|| c.torch_dtype.clone())
        .unwrap_or_else(|| "bfloat16".into());
    let dtype = DTypeSize::from_torch(&dtype_name)
        .with_context(|| format!("dtype {dtype_name:?}: expected bf16, f16 or f32"))?;
    let seq = args
        .seq_len
        .unwrap_or_else(|| 4096.min(c.max_position_embeddings as u64));
    let batch = args.batch_size;
    Ok(json!({
        "dtype": dtype_name,
        "batch_size": batch,
        "seq_len": seq,
        "inference": estimate(&inference_memory(c, dtype, batch, seq)),
        "lora": estimate(&lora_memory(c, dtype, rank, targets, batch, seq)),
        "full_training": estimate(&full_training_memory(c, dtype, batch, seq)),
    }))
}

/// The LoRA targets as training parses them (`all-linear` included); none given: all seven.
fn parse_targets(names: &[String]) -> anyhow::Result<Vec<LayerParam>> {
    if names.is_empty() {
        return Ok(graft_llama::lora::TARGETS.iter().map(|(p, _)| *p).collect());
    }
    let names: Vec<String> = names.iter().map(|n| n.trim().to_string()).collect();
    graft_llama::lora::parse_targets(&names).context("--lora-targets")
}

fn architecture(config: &ModelConfig) -> Value {
    let c: &LlamaConfig = &config.llama;
    let name = config
        .raw
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
        .unwrap_or("LlamaForCausalLM");
    json!({
        "name": name,
        "layers": c.num_hidden_layers,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "attention_heads": c.num_attention_heads,
        "kv_heads": c.num_key_value_heads,
        "head_dim": c.head_dim,
        "vocab_size": c.vocab_size,
        "max_position_embeddings": c.max_position_embeddings,
        "rope_theta": c.rope_theta,
        "rope_scaling_factor": c.rope_scaling.as_ref().map(|s| s.factor),
        "tie_word_embeddings": c.tie_word_embeddings,
    })
}

fn estimate(m: &MemoryEstimate) -> Value {
    json!({
        "total": m.total(),
        "weights": m.weights,
        "adapters": m.adapters,
        "gradients": m.gradients,
        "optimizer": m.optimizer,
        "kv_cache": m.kv_cache,
        "activations": m.activations,
    })
}

fn print_text(r: &Value, lora: bool) {
    let a = &r["architecture"];
    let p = &r["parameters"];
    let m = &r["memory"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    println!("model: {}", r["model"].as_str().unwrap_or("?"));
    println!(
        "architecture: {} — {} layers, hidden {}, intermediate {}, {} heads ({} kv, head_dim {}), vocab {}, context {}{}{}",
        a["name"].as_str().unwrap_or("?"), a["layers"], a["hidden_size"], a["intermediate_size"],
        a["attention_heads"], a["kv_heads"], a["head_dim"], a["vocab_size"], a["max_position_embeddings"],
        match a["rope_scaling_factor"].as_f64() { Some(f) => format!(", llama3 RoPE ×{f}"), None => String::new() },
        if a["tie_word_embeddings"].as_bool() == Some(true) { ", tied embeddings" } else { "" },
    );
    println!(
        "dtype: {} ({} weight file(s), {} on disk)",
        r["dtype"].as_str().unwrap_or("unknown"),
        r["weights_on_disk"]["files"],
        human(n(&r["weights_on_disk"]["bytes"]))
    );
    println!(
        "parameters: {} total (embedding {}, attention {}, mlp {}, norm {}, lm_head {})",
        count(n(&p["total"])),
        count(n(&p["embedding"])),
        count(n(&p["attention"])),
        count(n(&p["mlp"])),
        count(n(&p["norm"])),
        count(n(&p["lm_head"]))
    );
    let l = &r["lora"];
    let lora_desc = format!("LoRA r={} on {}", l["rank"], join(&l["targets"]));
    if lora {
        let pct = 100.0 * n(&p["trainable"]) as f64 / n(&p["total"]).max(1) as f64;
        println!(
            "trainable: {} ({lora_desc}, {pct:.3}% of the model)",
            count(n(&p["trainable"]))
        );
    } else {
        println!(
            "trainable: {} (full fine-tuning; --lora-rank R for LoRA)",
            count(n(&p["trainable"]))
        );
    }
    println!(
        "memory ({}, batch {} × seq {}):",
        m["dtype"].as_str().unwrap_or("?"),
        m["batch_size"],
        m["seq_len"]
    );
    let line = |what: &str, e: &Value| {
        let parts: Vec<String> = [
            "weights",
            "adapters",
            "gradients",
            "optimizer",
            "kv_cache",
            "activations",
        ]
        .iter()
        .filter(|k| n(&e[**k]) > 0)
        .map(|k| format!("{} {}", k.replace('_', " "), human(n(&e[*k]))))
        .collect();
        println!(
            "  {what:<24} {:>10}  ({})",
            human(n(&e["total"])),
            parts.join(", ")
        );
    };
    line("inference", &m["inference"]);
    line(&format!("LoRA (r={})", l["rank"]), &m["lora"]);
    line("full training (AdamW)", &m["full_training"]);
}

fn join(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{:.1} KiB", b as f64 / 1024.0),
    }
}
