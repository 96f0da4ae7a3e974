//! `graft prepare RECIPE [--set key=value]...`: tokenize the recipe's data sources into pre-tokenized shards.
//!
//! The tokenizer is the recipe's `[data].tokenizer`, else `[model].tokenizer`, else
//! `<model dir>/tokenizer.json` of `[model].base` (a local directory or a Hub id already in the HF
//! cache). BOS/EOS ids come from the model's `config.json` or `[model.init]` (falling back to
//! Llama-3's `<|begin_of_text|>` / `<|end_of_text|>` tokens). `graft train` runs this step itself
//! (both call `graft_train::run::prepare_recipe`). The recipe is read as every command reads it
//! ([`Recipe::load`]: unknown keys are errors).

use std::path::PathBuf;

use anyhow::Context;
use graft_train::run::prepare_recipe;
use graft_train::Recipe;

use crate::progress::TerminalObserver;

#[derive(clap::Args)]
pub struct Args {
    /// Recipe TOML file.
    pub recipe: PathBuf,
    /// Output directory (default: the recipe's `[data].prepared_dir`, else runs/prepared/<recipe name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override a recipe key, e.g. `--set data.seq_len=512` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let recipe = Recipe::load(&args.recipe, &args.set)
        .with_context(|| format!("loading recipe {}", args.recipe.display()))?;
    let observer = TerminalObserver::default();
    prepare_recipe(&recipe, &args.recipe, args.out.as_deref(), &observer)?;
    Ok(())
}
