//! LoRA on a new domain, then export and evaluation: the `recipes/tiny-lora-demo.toml` recipe (a
//! tiny Llama, LoRA on finance + general replay) shrunk to 3 steps with `--set`-style overrides,
//! its adapter merged into the base and exported as an HF model directory, which is then scored
//! on the shipped finance multiple-choice sample and its perplexity measured.
//!
//! ```bash
//! cargo run --example lora_new_domain
//! ```

use std::path::Path;

use graft_llama::export::ExportOptions;
use graft_llama::lora::export::export_merged;
use graft_train::backend::{device, Backend};
use graft_train::eval::{
    perplexity, read_choice_rows, read_perplexity_rows, score_choice_task, ChoiceOptions, EvalModel,
};
use graft_train::Run;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir()?;
    let overrides = [
        "train.steps=3".to_string(),
        "train.micro_batch_size=2".into(),
        "train.grad_accum=1".into(),
        "train.save_every=3".into(),
        "train.eval_every=0".into(),
        "data.seq_len=32".into(),
        format!("data.prepared_dir={:?}", work.path().join("prepared")),
    ];
    let outcome = Run::from_recipe(root.join("recipes/tiny-lora-demo.toml"), &overrides)?
        .run_dir(work.path().join("run"))
        .execute()?;
    let adapter = outcome.checkpoint.ok_or("no checkpoint")?;
    println!(
        "LoRA adapter after {} steps: {}",
        outcome.step,
        adapter.display()
    );

    // Merge W + alpha/r · B·A into the base and write an HF model directory (f32 here).
    let merged = work.path().join("merged");
    let options = ExportOptions {
        dtype: "f32".parse()?,
        ..ExportOptions::default()
    };
    export_merged(&adapter, None, &merged, &options, &mut |_, _| {})?;
    println!("exported: {}", merged.display());

    // Evaluate the exported model as `graft eval` does.
    let eval = EvalModel::<Backend>::load(&merged, &device())?;
    let (model, config, bos) = (&eval.model, &eval.config, eval.bos);
    let tokenizer = eval.tokenizer.as_ref();
    let task = root.join("data/eval/finance.jsonl");
    let rows = read_choice_rows(&task, Some(4))?;
    let options = ChoiceOptions::new(config.llama.max_position_embeddings, 4);
    let choice = score_choice_task(model, tokenizer, bos, &rows, &options, &mut |_, _| {})?;
    println!(
        "finance sample: n = {}, acc = {:.3}, acc_norm = {:.3}",
        choice.n, choice.acc, choice.acc_norm
    );

    // Perplexity on the raw text of 4 finance documents, as {"text": …} rows.
    let text = work.path().join("finance-text.jsonl");
    let corpus = std::fs::read_to_string(root.join("data/finance/finance-00.jsonl"))?;
    let mut rows_jsonl = String::new();
    for line in corpus.lines().take(4) {
        let record: serde_json::Value = serde_json::from_str(line)?;
        rows_jsonl += &format!("{}\n", serde_json::json!({ "text": record["text"] }));
    }
    std::fs::write(&text, rows_jsonl)?;
    let rows = read_perplexity_rows(&text, tokenizer, bos, config.llama.vocab_size)?;
    let ppl = perplexity(model, &rows, 64, 2, &text, &mut |_, _| {})?;
    println!(
        "perplexity on 4 finance documents: {:.2} ({} tokens)",
        ppl.ppl, ppl.tokens
    );
    assert!(ppl.ppl.is_finite() && choice.n == 4);
    Ok(())
}
