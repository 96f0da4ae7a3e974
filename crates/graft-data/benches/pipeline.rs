//! Data pipeline benchmark (`cargo bench -p graft-data`).
//!
//! 1. `prepare` (read JSONL + render instruction-augmented templates + tokenize + write shards) vs
//!    bare `tokenizers` encoding of the same rendered text, in the same run. Target: the pipeline
//!    adds ≤ 20% over bare tokenization.
//! 2. Reading mixed, packed batches back. Target: ≥ 1 GB/s of u32 tokens.
//!
//! Text: the State of the Union speeches if `GRAFT_SOTU_DIR` points at them (see `fetch_sotu.sh`),
//! else ~10 MB of generated text. Tokenizer: `GRAFT_BENCH_TOKENIZER`, else the Llama-3 fixture.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use graft_data::read::Flow;
use graft_data::source::render_file;
use graft_data::{
    prepare, Batch, DataConfig, PreparedData, StreamOptions, TextTokenizer, TrainStream,
};

const FILES_PER_SOURCE: usize = 8;

fn main() {
    let tok_path = std::env::var_os("GRAFT_BENCH_TOKENIZER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/llama3-tokenizer/tokenizer.json")
        });
    let tokenizer =
        TextTokenizer::from_file(&tok_path, Some(128000), Some(128001)).expect("tokenizer loads");
    let (paragraphs, origin) = corpus();
    let bytes: usize = paragraphs.iter().map(String::len).sum();
    println!(
        "corpus: {origin}, {} paragraphs, {:.1} MB",
        paragraphs.len(),
        bytes as f64 / 1e6
    );

    let dir = tempfile::tempdir().expect("temp dir");
    write_sources(dir.path(), &paragraphs);
    let config = config(dir.path());

    // Bare tokenization of exactly the documents prepare will tokenize.
    let docs = rendered_docs(&config);
    let inputs = docs.clone();
    let t = Instant::now();
    // One batch call: tokenizers spreads it over all cores itself.
    let enc = tokenizer
        .inner()
        .encode_batch_fast(inputs, false)
        .expect("encode");
    let bare_tokens: usize = enc.iter().map(|e| e.len() + 2).sum(); // + BOS/EOS, as prepare counts them
    let bare = t.elapsed().as_secs_f64();

    let out = dir.path().join("prepared");
    let t = Instant::now();
    let manifest = prepare(&config, &tokenizer, &out).expect("prepare");
    let prep = t.elapsed().as_secs_f64();
    let prep_tokens: u64 = manifest.sources.iter().map(|s| s.tokens).sum();
    let bare_rate = bare_tokens as f64 / bare;
    let prep_rate = prep_tokens as f64 / prep;
    println!(
        "bare tokenizers encode : {bare_tokens:>11} tokens in {bare:7.2} s = {:>10.0} tokens/s",
        bare_rate
    );
    println!("prepare (read+template+tokenize+write): {prep_tokens:>11} tokens in {prep:7.2} s = {:>10.0} tokens/s", prep_rate);
    println!(
        "prepare time / bare time = {:.3} (target <= 1.20)",
        prep / bare
    );

    let t = Instant::now();
    let again = prepare(&config, &tokenizer, &out).expect("prepare again");
    println!(
        "prepare re-run (no change): {:.3} s, {} file(s) reused",
        t.elapsed().as_secs_f64(),
        again.run.reused
    );

    read_back(&config, &out);
}

/// Reads mixed batches of 32 × 2048 for 2^30 tokens (4 GiB).
fn read_back(config: &DataConfig, out: &Path) {
    let data = PreparedData::open(config, out).expect("open prepared");
    let mut stream = TrainStream::new(
        data,
        StreamOptions {
            batch_size: 32,
            rank: 0,
            world_size: 1,
        },
    )
    .expect("stream");
    let mut batch = Batch::default();
    let mut checksum = 0u64;
    let target_tokens = 1usize << 30;
    let t = Instant::now();
    let mut tokens = 0usize;
    while tokens < target_tokens {
        stream.next_batch_into(&mut batch);
        // Touch every token, as a consumer building a tensor would.
        checksum = checksum.wrapping_add(batch.tokens.iter().map(|&t| t as u64).sum::<u64>());
        tokens += batch.tokens.len();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "read mixed batches: {tokens} tokens in {secs:.2} s = {:.0} tokens/s = {:.2} GB/s (target >= 1 GB/s) [checksum {checksum}]",
        tokens as f64 / secs,
        tokens as f64 * 4.0 / secs / 1e9
    );
    for s in stream.stats() {
        println!(
            "  {:<8} share {:.4}  epochs {:.1}",
            s.name, s.share, s.epochs
        );
    }
}

/// Paragraphs of the SOTU speeches, or generated text.
fn corpus() -> (Vec<String>, String) {
    if let Some(dir) = std::env::var_os("GRAFT_SOTU_DIR") {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("GRAFT_SOTU_DIR is readable")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .collect();
        files.sort();
        let paras: Vec<String> = files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|t| paragraphs_of(&t))
            .collect();
        if !paras.is_empty() {
            return (
                paras,
                format!("SOTU speeches from {}", Path::new(&dir).display()),
            );
        }
    }
    (generated(10_000_000), "generated text".into())
}

/// Splits a speech (one line per file) into paragraphs of about 1,500 characters at sentence ends.
fn paragraphs_of(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for sentence in text.split_inclusive(". ") {
        cur.push_str(sentence);
        if cur.len() > 1500 {
            out.push(std::mem::take(&mut cur).trim().to_string());
        }
    }
    if cur.trim().len() > 40 {
        out.push(cur.trim().to_string());
    }
    out
}

fn generated(bytes: usize) -> Vec<String> {
    const WORDS: [&str; 24] = [
        "the",
        "committee",
        "reported",
        "revenue",
        "patients",
        "increased",
        "treatment",
        "markets",
        "of",
        "and",
        "interest",
        "rates",
        "clinical",
        "trial",
        "results",
        "showed",
        "a",
        "significant",
        "decline",
        "in",
        "inflation",
        "protein",
        "expression",
        "government",
    ];
    let (mut out, mut total, mut state) = (Vec::new(), 0usize, 0x2545_F491_4F6C_DD1Du64);
    while total < bytes {
        let mut p = String::new();
        for i in 0..120 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            p.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
            p.push_str(if i % 15 == 14 { ". " } else { " " });
        }
        total += p.len();
        out.push(p);
    }
    out
}

/// Two sources: "domain" (instruction-augmented, pairs made from each paragraph) and "replay" (raw).
fn write_sources(dir: &Path, paragraphs: &[String]) {
    for (name, fmt) in [("domain", true), ("replay", false)] {
        std::fs::create_dir_all(dir.join(name)).expect("mkdir");
        let mut files: Vec<_> = (0..FILES_PER_SOURCE)
            .map(|i| {
                std::io::BufWriter::new(
                    std::fs::File::create(dir.join(format!("{name}/{i:02}.jsonl")))
                        .expect("create"),
                )
            })
            .collect();
        for (i, p) in paragraphs
            .iter()
            .enumerate()
            .filter(|(i, _)| (i % 2 == 0) == fmt)
        {
            let record = if fmt {
                let first: String = p.chars().take(80).collect();
                serde_json::json!({"text": p, "qa_pairs": [
                    {"question": "What is the first point of the passage?", "answer": first},
                    {"question": "How long is the passage?", "answer": format!("{} characters.", p.len())}]})
            } else {
                serde_json::json!({ "text": p })
            };
            writeln!(files[i % FILES_PER_SOURCE], "{record}").expect("write");
        }
    }
}

fn config(dir: &Path) -> DataConfig {
    let toml = "seq_len = 2048\nseed = 1\n\
        [[sources]]\nname = \"domain\"\npath = \"domain/*.jsonl\"\nformat = \"instruction-augmented\"\nweight = 1.0\n\
        [[sources]]\nname = \"replay\"\npath = \"replay/*.jsonl\"\nweight = 1.0\n";
    let mut c = DataConfig::from_toml_str(toml, Path::new("bench.toml")).expect("config");
    c.resolve_paths(dir);
    c
}

fn rendered_docs(config: &DataConfig) -> Vec<String> {
    let mut docs = Vec::new();
    for source in &config.sources {
        for file in source.files().expect("files") {
            render_file(source, &file, config.seed, config.on_bad_record, &mut |d| {
                docs.push(d);
                Ok(Flow::Continue)
            })
            .expect("render");
        }
    }
    docs
}
