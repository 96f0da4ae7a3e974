//! `graft augment` benchmark (`cargo bench -p graft-data --bench augment`): documents/s of graft's
//! AdaptLLM augmentation against the Python original on the same texts, printed as a ratio.
//!
//! Texts: with `LMOPS_ADAPTLLM` pointing at the `adaptllm` folder of a microsoft/LMOps checkout, its
//! 12 sample biomedicine texts (`data_samples/input-raw-texts`) repeated to `GRAFT_BENCH_DOCS`
//! documents (default 2400), and the original is run on them by `adaptllm_original.py` (needs
//! python3 with `pysbd sentencepiece numpy`). Without it, graft alone on the shipped sample corpora.
//! General tokenizer: the Llama-3 fixture; domain tokenizer: trained on the texts (timed apart).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use graft_data::augment::keywords::train_domain_tokenizer;
use graft_data::augment::{Augmenter, DomainVocab};

fn main() {
    let docs: usize = std::env::var("GRAFT_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2400);
    let lmops = std::env::var_os("LMOPS_ADAPTLLM").map(PathBuf::from);
    let base = match &lmops {
        Some(dir) => lmops_texts(dir),
        None => sample_texts(),
    };
    let texts: Vec<String> = base.iter().cycle().take(docs).cloned().collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    println!(
        "texts: {} documents, {:.1} MB ({})",
        texts.len(),
        bytes as f64 / 1e6,
        if lmops.is_some() {
            "LMOps samples"
        } else {
            "graft samples"
        }
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let general = tokenizers::Tokenizer::from_file(
        root.join("tests/fixtures/llama3-tokenizer/tokenizer.json"),
    )
    .expect("Llama-3 tokenizer fixture");
    let t = Instant::now();
    let domain = train_domain_tokenizer(&texts, 32000).expect("train domain tokenizer");
    let vocab = DomainVocab::new(domain, &general);
    println!(
        "domain tokenizer trained in {:.2} s ({} domain-specific tokens)",
        t.elapsed().as_secs_f64(),
        vocab.len()
    );
    let aug = Augmenter::new(general, Some(vocab), "biomedicine");
    aug.augment_all(&texts[..texts.len().min(64)], 0, &|_| {}); // warm-up
    let t = Instant::now();
    let out = aug.augment_all(&texts, 0, &|_| {});
    let secs = t.elapsed().as_secs_f64();
    let tasks: usize = out.iter().map(|d| d.tasks.len()).sum();
    let graft = texts.len() as f64 / secs;
    println!(
        "graft:  {graft:>9.0} docs/s ({secs:.2} s, {} threads, {:.1} tasks/doc)",
        rayon::current_num_threads(),
        tasks as f64 / texts.len() as f64
    );

    stages(&aug, &texts);

    let Some(dir) = lmops else {
        println!(
            "python original: skipped (set LMOPS_ADAPTLLM to an LMOps checkout's adaptllm folder)"
        );
        return;
    };
    match run_python(&dir, &texts) {
        Ok((n, s, workers)) => {
            let py = n as f64 / s;
            println!("python: {py:>9.1} docs/s ({s:.2} s, {workers} worker processes)");
            println!("speed-up: {:.1}x (target >= 20x)", graft / py);
        }
        Err(e) => println!("python original: skipped ({e})"),
    }
}

/// LMOps's sample texts, as raw2read reads them (stripped, one file = one document).
fn lmops_texts(dir: &Path) -> Vec<String> {
    let inputs = dir.join("data_samples/input-raw-texts");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&inputs)
        .unwrap_or_else(|e| panic!("{}: {e}", inputs.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .expect("sample text")
                .trim()
                .to_string()
        })
        .collect()
}

/// The shipped sample corpora, each text given a title line.
fn sample_texts() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let files = [
        "biomedicine/biomedicine-00.jsonl",
        "finance/finance-00.jsonl",
    ];
    let paths: Vec<PathBuf> = files.iter().map(|f| root.join(f)).collect();
    let texts = graft_data::augment::read_texts(&paths, "text").expect("sample corpora");
    texts
        .into_iter()
        .enumerate()
        .map(|(i, t)| format!("Document {i}\n{t}"))
        .collect()
}

fn run_python(dir: &Path, texts: &[String]) -> Result<(usize, f64, usize), String> {
    let mut file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    for t in texts {
        let line = serde_json::json!({ "text": t });
        writeln!(file, "{line}").map_err(|e| e.to_string())?;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/adaptllm_original.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir)
        .arg(file.path())
        .arg("biomedicine")
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(line.trim()).map_err(|e| format!("{e}: {line}"))?;
    let num = |k: &str| v[k].as_f64().ok_or(format!("no `{k}` in {line}"));
    Ok((
        num("docs")? as usize,
        num("seconds")?,
        num("workers")? as usize,
    ))
}

/// Where the time goes, one thread: segmentation (title, truncation, sentences) and regex mining.
fn stages(aug: &Augmenter, texts: &[String]) {
    use graft_data::augment::{mine, segment};
    let general = aug.general();
    let t = Instant::now();
    let parts: Vec<_> = texts.iter().map(|x| segment::split(x, general)).collect();
    let split = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let n: usize = parts
        .iter()
        .map(|p| mine::mine_patterns(&p.context).len())
        .sum();
    let regex = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let kw: usize = match aug.domain_vocab() {
        Some(v) => parts
            .iter()
            .map(|p| {
                v.keywords_of_sentences(&p.sentences)
                    .iter()
                    .flatten()
                    .count()
            })
            .sum(),
        None => 0,
    };
    let keywords = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let serial: usize = texts
        .iter()
        .enumerate()
        .map(|(i, x)| aug.augment(x, 0, i as u64).tasks.len())
        .sum();
    let one = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let all = aug.augment_all(texts, 0, &|_| {});
    let whole = t.elapsed().as_secs_f64();
    let per = |s: f64| s * 1e3 / texts.len() as f64;
    println!(
        "per document, one thread: split+truncate+segment {:.2} ms, regex mining {:.2} ms ({n} candidates), keywords {:.2} ms ({kw} sentences), all stages {:.2} ms ({serial} tasks); all stages, all threads {:.2} ms ({} docs)",
        per(split),
        per(regex),
        per(keywords),
        per(one),
        per(whole),
        all.len()
    );
}
