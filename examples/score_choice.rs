//! Load a HuggingFace model directory and score a multiple-choice task the way lm-eval-harness
//! does (sum log-likelihood of each choice after the context; acc and byte-normalised acc_norm).
//!
//! ```bash
//! cargo run --example score_choice                                    # the shipped tiny Mistral
//! cargo run --example score_choice -- meta-llama/Meta-Llama-3-8B data/eval/finance.jsonl
//! ```
//!
//! The model is a local directory or a Hub id already in the HF cache (`graft download`).

use std::path::{Path, PathBuf};

use graft_train::backend::{device, Backend};
use graft_train::eval::{read_choice_rows, score_choice_task, ChoiceOptions, EvalModel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args = std::env::args().skip(1);
    let model = args.next().unwrap_or_else(|| {
        root.join("tests/fixtures/tiny-mistral")
            .display()
            .to_string()
    });
    let task = args
        .next()
        .map_or_else(|| root.join("data/eval/finance.jsonl"), PathBuf::from);

    let dir = graft_llama::hub::resolve(&model, None)?;
    let eval = EvalModel::<Backend>::load(&dir, &device())?;

    let rows = read_choice_rows(&task, Some(8))?;
    let options = ChoiceOptions::new(eval.config.llama.max_position_embeddings, 4);
    let result = score_choice_task(
        &eval.model,
        eval.tokenizer.as_ref(),
        eval.bos,
        &rows,
        &options,
        &mut |_, _| {},
    )?;
    println!(
        "{} on {}: n = {}, acc = {:.3}, acc_norm = {:.3}",
        dir.display(),
        task.display(),
        result.n,
        result.acc,
        result.acc_norm
    );
    assert_eq!(result.n, rows.len());
    Ok(())
}
