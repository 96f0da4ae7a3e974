//! Continual pre-training of a tiny Llama from a recipe built in code (no TOML file), through the
//! library entry point `graft_train::Run`: train 2 steps, stop, resume, finish at step 4.
//!
//! ```bash
//! cargo run --example continual_pretraining
//! ```
//!
//! The model is a new one (`[model.init]`, 1 layer, hidden 32) with the Llama-3 tokenizer; the data
//! is the shipped finance sample mixed 1:1 with general instruction replay, as Instruction
//! Pre-Training mixes them. For a real run, set `model.base` to a checkpoint directory or Hub id.

use std::path::Path;
use std::sync::Arc;

use graft_data::{DataConfig, Format, SourceConfig};
use graft_train::recipe::{ModelInit, ModelSection, TrainSection};
use graft_train::run::{Observer, Run, TrainStart};
use graft_train::{ModelDtype, Recipe};

/// Prints the loss of every logged step.
struct PrintLoss;

impl Observer for PrintLoss {
    fn train_started(&self, start: &TrainStart) {
        println!(
            "training to step {} of {} ({} tokens per step)",
            start.stop_step, start.total_steps, start.tokens_per_step
        );
    }
    fn scalar(&self, tag: &str, value: f64, step: u64) {
        if tag == "train/loss" || tag.starts_with("eval/") {
            println!("  step {step}: {tag} = {value:.4}");
        }
    }
}

fn recipe(prepared: &Path) -> Recipe {
    let mut init = ModelInit::llama(32, 64, 1, (2, 1), 128_256);
    init.tie_word_embeddings = true;
    init.max_position_embeddings = 64;
    (init.bos_token_id, init.eos_token_id) = (Some(128_000), Some(128_001));
    let source = |name: &str, path: &str, format| SourceConfig {
        weight: 0.5,
        ..SourceConfig::new(name, path, format)
    };
    Recipe {
        name: "example-cpt".into(),
        model: ModelSection {
            base: None,
            init: Some(init),
            tokenizer: Some("tests/fixtures/llama3-tokenizer/tokenizer.json".into()),
            dtype: ModelDtype::F32,
        },
        data: DataConfig {
            prepared_dir: Some(prepared.to_path_buf()),
            val_fraction: 0.05,
            ..DataConfig::new(
                32,
                vec![
                    source(
                        "finance",
                        "data/finance/*.jsonl",
                        Format::InstructionAugmented,
                    ),
                    source("general", "data/general/*.jsonl", Format::Instruction),
                ],
            )
        },
        train: TrainSection {
            warmup_steps: 1,
            log_every: 1,
            save_every: 2,
            eval_every: 2,
            eval_batches: 1,
            ..TrainSection::new(2, 4, 3e-3)
        },
        lora: None,
        eval: None,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    // Relative paths of the recipe resolve against this (virtual) file's directory: the repo root.
    let recipe_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("example-cpt.toml");
    let recipe = recipe(&work.path().join("prepared"));
    let run_dir = work.path().join("run");

    let first = Run::new(recipe.clone(), &recipe_path)?
        .run_dir(&run_dir)
        .stop_after(Some(2))
        .observer(Arc::new(PrintLoss))
        .execute()?;
    println!("stopped at step {} of {}", first.step, first.total_steps);

    let done = Run::new(recipe, &recipe_path)?
        .run_dir(&run_dir)
        .resume(true)
        .observer(Arc::new(PrintLoss))
        .execute()?;
    let checkpoint = done.checkpoint.ok_or("no checkpoint")?;
    assert_eq!(done.step, 4);
    assert!(checkpoint.join("config.json").is_file());
    println!(
        "final checkpoint (an HF model directory): {}",
        checkpoint.display()
    );
    Ok(())
}
