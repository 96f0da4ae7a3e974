//! `graft prepare RECIPE`: tokenize the recipe's data sources into pre-tokenized shards.
//!
//! The tokenizer is the recipe's `[data].tokenizer`, else `[model].tokenizer`, else
//! `<model dir>/tokenizer.json` of `[model].base` (a local directory or a Hub id already in the HF
//! cache). BOS/EOS ids come from the model's `config.json` or `[model.init]` (falling back to
//! Llama-3's `<|begin_of_text|>` / `<|end_of_text|>` tokens). `graft train` runs this step itself.

use std::path::{Path, PathBuf};

use anyhow::Context;
use graft_data::DataConfig;

use crate::prep::{self, TokenizerSource};

#[derive(clap::Args)]
pub struct Args {
    /// Recipe TOML file.
    pub recipe: PathBuf,
    /// Output directory (default: the recipe's `[data].prepared_dir`, else runs/prepared/<recipe name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = DataConfig::from_recipe_file(&args.recipe)
        .with_context(|| format!("reading the [data] table of {}", args.recipe.display()))?;
    let tokenizer = tokenizer_source(&args.recipe, &config)?.load(&args.recipe)?;
    let out = args
        .out
        .unwrap_or_else(|| config.prepared_dir_for(&args.recipe));
    prep::prepare(&config, &tokenizer, &out, &args.recipe)?;
    Ok(())
}

/// The tokenizer settings of the recipe's `[model]` table (read leniently: only the keys used here).
fn tokenizer_source(recipe: &Path, config: &DataConfig) -> anyhow::Result<TokenizerSource> {
    let text =
        std::fs::read_to_string(recipe).with_context(|| format!("reading {}", recipe.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", recipe.display()))?;
    let model = table.get("model").and_then(|m| m.as_table());
    let get = |key: &str| model.and_then(|m| m.get(key)).and_then(|v| v.as_str());
    let recipe_dir = recipe.parent().unwrap_or(Path::new("."));
    let model_dir = get("base")
        .map(|base| prep::resolve_base(base, get("revision"), recipe))
        .transpose()?;
    let (mut bos, mut eos) = prep::special_ids(model_dir.as_deref())?;
    if let Some(init) = model.and_then(|m| m.get("init")).and_then(|i| i.as_table()) {
        let id = |key: &str| {
            init.get(key)
                .and_then(|v| v.as_integer())
                .and_then(|v| u32::try_from(v).ok())
        };
        bos = bos.or(id("bos_token_id"));
        eos = eos.or(id("eos_token_id"));
    }
    Ok(TokenizerSource {
        data_tokenizer: config.tokenizer.clone(),
        model_tokenizer: get("tokenizer").map(|t| recipe_dir.join(t)),
        model_dir,
        bos,
        eos,
    })
}
