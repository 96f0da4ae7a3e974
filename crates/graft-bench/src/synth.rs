//! `graft bench synthesize`: generated tokens/s of the synthesizer path (`graft synthesize`'s
//! protocol, batching and output) against transformers' batched greedy `generate` on the same
//! model, prompts, batch size and threads, printed as a ratio. A benchmark, never a pass/fail.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use graft_data::synthesis::{read_prompt, SynthSettings};
use graft_train::synthesize::{synthesize, SynthesizeOptions};

use crate::backend::{device, Backend};

/// The baseline script, as committed in `crates/graft-bench/benches/synth_baseline.py`.
const SCRIPT: &str = include_str!("../benches/synth_baseline.py");

#[derive(clap::Args)]
pub struct SynthArgs {
    /// The synthesizer (default: the repo's tests/fixtures/tiny-mistral).
    pub model: Option<String>,
    /// Number of texts (synthetic, 20 to 200 words).
    #[arg(long, default_value_t = 32)]
    pub texts: usize,
    /// Prompts generated together.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// New tokens per text.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Threads of the PyTorch baseline (default: all cores, as graft's CPU backend uses).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Deterministic texts of varying length.
fn texts(n: usize) -> Vec<String> {
    const WORDS: [&str; 12] = [
        "the", "trial", "enrolled", "patients", "with", "acute", "disease", "and", "measured",
        "yields", "of", "copper",
    ];
    (0..n)
        .map(|i| {
            let len = 20 + (i * 37) % 181;
            let words: Vec<&str> = (0..len)
                .map(|k| WORDS[(i * 7 + k * k) % WORDS.len()])
                .collect();
            format!("{}.", words.join(" "))
        })
        .collect()
}

pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let dir = match &args.model {
        Some(m) => graft_llama::hub::resolve(m, None)?,
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/tiny-mistral"
        )),
    };
    let tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json"))
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let (model, config) = graft_llama::load::<Backend>(&dir, &device())?;
    let eos = graft_llama::generate::eos_token_ids(&dir, &config.llama.eos_token_ids)?;
    let texts = texts(args.texts);
    let opts = SynthesizeOptions {
        settings: SynthSettings {
            rounds: 1,
            max_new_tokens: args.max_new_tokens,
            max_model_len: config.llama.max_position_embeddings,
        },
        batch_size: args.batch_size,
        stop_after: None,
    };
    let tmp = tempfile::tempdir()?;
    let start = Instant::now();
    let summary = synthesize(
        &model,
        &tokenizer,
        &eos,
        texts.clone(),
        &tmp.path().join("out.jsonl"),
        &opts,
        &mut |_| {},
    )?;
    let secs = start.elapsed().as_secs_f64();
    let graft = summary.generated_tokens as f64 / secs;
    println!(
        "graft synthesize: {} texts, batch {}, {} tokens in {secs:.2} s = {graft:.1} tok/s",
        texts.len(),
        args.batch_size,
        summary.generated_tokens
    );
    let prompts: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            tokenizer
                .encode_fast(read_prompt(t), false)
                .map(|e| e.get_ids().to_vec())
        })
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let spec = serde_json::json!({"model": dir, "prompts": prompts, "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens, "eos": eos, "threads": threads});
    match baseline(&spec, &tmp) {
        Ok(v) => {
            let tok_s = v["tok_s"].as_f64().unwrap_or(f64::NAN);
            println!(
                "transformers generate: {} tokens in {:.2} s = {tok_s:.1} tok/s ({threads} threads)",
                v["tokens"], v["seconds"].as_f64().unwrap_or(f64::NAN)
            );
            println!("ratio graft / transformers: {:.2}x", graft / tok_s);
        }
        Err(e) => println!("transformers baseline not run: {e:#}"),
    }
    Ok(())
}

fn baseline(
    spec: &serde_json::Value,
    tmp: &tempfile::TempDir,
) -> anyhow::Result<serde_json::Value> {
    let script = tmp.path().join("synth_baseline.py");
    std::fs::write(&script, SCRIPT)?;
    let spec_path = tmp.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string())?;
    let out = Command::new("python3")
        .arg(&script)
        .arg(&spec_path)
        .output()
        .context("running python3 (needs torch and transformers)")?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("failed")
    );
    let line = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(line.lines().last().unwrap_or(""))?)
}
