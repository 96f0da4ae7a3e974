//! `graft prepare RECIPE [--set key=value]...`: tokenize the recipe's data sources into pre-tokenized shards.
//!
//! The tokenizer is the recipe's `[data].tokenizer`, else `[model].tokenizer`, else
//! `<model dir>/tokenizer.json` of `[model].base` (a local directory or a Hub id already in the HF
//! cache). BOS/EOS ids come from the model's `config.json` or `[model.init]` (falling back to
//! Llama-3's `<|begin_of_text|>` / `<|end_of_text|>` tokens). `graft train` runs this step itself.
//! The recipe is read as every command reads it ([`Recipe::load`]: unknown keys are errors).

use std::path::PathBuf;

use anyhow::Context;
use graft_train::Recipe;

use crate::prep;

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
    // the tokenizer and BOS/EOS exactly as `graft train` finds them
    let model = crate::cmd::train::model::resolve_model(&recipe, &args.recipe)?;
    let tokenizer = model.tokenizer.load(&args.recipe)?;
    let out = args
        .out
        .unwrap_or_else(|| recipe.data.prepared_dir_for(&args.recipe));
    prep::prepare(&recipe.data, &tokenizer, &out, &args.recipe)?;
    Ok(())
}
