//! `graft generate`: continue a prompt with the KV cache, streaming the text to stdout as it comes.
//!
//! Greedy by default (temperature 0); `--temperature T --top-p P --seed S` samples. Stops at any EOS
//! id of `config.json` or `generation_config.json`, or after `--max-new-tokens`.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use graft_data::{TextStream, TextTokenizer};
use graft_llama::generate::{eos_token_ids, generate, GenerateConfig, Sampling, StopReason};

use crate::backend::{device, Backend};

#[derive(clap::Args)]
pub struct Args {
    /// A checkpoint directory (with tokenizer.json), or a Hub repo id in the local HF cache.
    pub model: String,
    /// The text to continue.
    #[arg(long)]
    pub prompt: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this total probability.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the sampling RNG.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Do not put the model's BOS token before the prompt.
    #[arg(long)]
    pub no_bos: bool,
    /// Hub revision, when MODEL is a repo id.
    #[arg(long)]
    pub revision: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = graft_llama::hub::resolve(&args.model, args.revision.as_deref())?;
    let tok_path = dir.join("tokenizer.json");
    anyhow::ensure!(
        tok_path.is_file(),
        "{}: no tokenizer.json; graft generate needs the model's tokenizer\n\
         HINT: copy tokenizer.json from the base model into the checkpoint directory",
        dir.display()
    );
    let (model, config) = graft_llama::load::<Backend>(&dir, &device())
        .with_context(|| format!("loading {}", dir.display()))?;
    let bos = config.llama.bos_token_id;
    let tok = TextTokenizer::from_file(&tok_path, bos, None)?;
    let mut prompt: Vec<u32> = if args.no_bos { None } else { bos }.into_iter().collect();
    let mut encoded = Vec::new();
    tok.encode_docs(std::slice::from_ref(&args.prompt), None, None, &mut encoded)?;
    prompt.extend(encoded);

    let gen_config = GenerateConfig {
        max_new_tokens: args.max_new_tokens,
        sampling: Sampling::new(args.temperature, args.top_p),
        seed: args.seed,
        eos_token_ids: eos_token_ids(&dir, &config.llama.eos_token_ids)?,
        use_cache: true,
    };
    let mut stream = TextStream::new(&tok);
    let mut stdout = std::io::stdout().lock();
    let mut write_err: Option<anyhow::Error> = None;
    let start = Instant::now();
    let out = generate(&model, &prompt, &gen_config, &mut |id| {
        if write_err.is_some() {
            return;
        }
        let piece = stream
            .push(id)
            .map_err(anyhow::Error::from)
            .and_then(|text| {
                stdout.write_all(text.as_bytes())?;
                stdout.flush()?;
                Ok(())
            });
        if let Err(e) = piece {
            write_err = Some(e);
        }
    })?;
    if let Some(e) = write_err {
        return Err(e);
    }
    let rest = stream.finish()?;
    writeln!(stdout, "{rest}")?;
    let secs = start.elapsed().as_secs_f64();
    let why = match out.stop {
        StopReason::Eos(id) => format!("end of sequence (id {id})"),
        StopReason::MaxNewTokens => "max new tokens".into(),
        StopReason::MaxPositions => "model context full".into(),
    };
    tracing::info!(
        prompt_tokens = prompt.len(),
        new_tokens = out.tokens.len(),
        tokens_per_s = format!("{:.1}", out.tokens.len() as f64 / secs.max(1e-9)),
        stop = %why,
        "generated"
    );
    Ok(())
}
