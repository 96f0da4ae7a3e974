//! `graft augment INPUT... --out OUT.jsonl`: raw domain text → reading-comprehension documents with
//! tasks mined from the text itself by AdaptLLM's rules (no LLM). One output record per input
//! document, in input order: `{"text": ..., "tasks": [{"type", "question", "answer"}]}`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use graft_data::augment::keywords::train_domain_tokenizer;
use graft_data::augment::recipe::{load_tokenizer, DOMAIN_VOCAB_SIZE};
use graft_data::augment::{read_texts, Augmenter, DomainVocab};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args)]
pub struct Args {
    /// Corpus files: JSONL (optionally .gz/.zst), Parquet or .txt; multi-line texts start with a title line.
    #[arg(required = true)]
    pub input: Vec<PathBuf>,
    /// Output JSONL file (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// The domain's name, as the templates say it ("biomedicine", "finance", "law", ...).
    #[arg(long, default_value = "biomedicine")]
    pub domain: String,
    /// Seed of every random choice (templates, sampling, layouts); the output is a function of it.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The base model's tokenizer.json (or model directory): bounds each text to 1848 tokens, and its
    /// words are not domain keywords.
    #[arg(long)]
    pub general_tokenizer: Option<PathBuf>,
    /// A domain tokenizer.json for keyword tasks (default: train one on the inputs).
    #[arg(long)]
    pub domain_tokenizer: Option<PathBuf>,
    /// Field holding the text in JSONL/Parquet records.
    #[arg(long, default_value = "text")]
    pub text_field: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let general_path = args.general_tokenizer.as_deref().context(
        "--general-tokenizer is required: pass the base model's tokenizer.json (or its model \
         directory), e.g. the Llama-3 one that `graft download meta-llama/Meta-Llama-3-8B` puts in \
         the HF cache; it bounds each text to 1848 tokens and decides which words are general",
    )?;
    let general = load_tokenizer(general_path)?;
    let texts = read_texts(&args.input, &args.text_field)?;
    anyhow::ensure!(!texts.is_empty(), "no documents in the inputs");
    let domain = match &args.domain_tokenizer {
        Some(path) => load_tokenizer(path)?,
        None => {
            tracing::info!("training a domain tokenizer on {} documents", texts.len());
            train_domain_tokenizer(&texts, DOMAIN_VOCAB_SIZE)
                .map_err(|e| anyhow::anyhow!("training the domain tokenizer: {e}"))?
        }
    };
    let vocab = DomainVocab::new(domain, &general);
    tracing::info!("{} domain-specific keyword tokens", vocab.len());
    let augmenter = Augmenter::new(general, Some(vocab), &args.domain);

    let bar = progress(texts.len() as u64);
    let docs = augmenter.augment_all(&texts, args.seed, &|n| bar.inc(n));
    bar.finish_and_clear();
    let mut out = Vec::with_capacity(docs.iter().map(|d| d.text.len() * 2).sum());
    for doc in &docs {
        serde_json::to_writer(&mut out, doc)?;
        out.push(b'\n');
    }
    graft_data::atomic::write_atomic(&args.out, &out)?;
    let tasks: usize = docs.iter().map(|d| d.tasks.len()).sum();
    tracing::info!(
        "wrote {} documents ({tasks} tasks) to {}",
        docs.len(),
        args.out.display()
    );
    Ok(())
}

fn progress(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "augmenting {bar:30} {pos}/{len} documents [{elapsed_precise}, eta {eta}]",
    ) {
        bar.set_style(style);
    }
    bar
}
