//! `graft prepare RECIPE`: tokenize the recipe's data sources into pre-tokenized shards.
//!
//! The tokenizer is the recipe's `[data].tokenizer` if set, else `<model dir>/tokenizer.json` of
//! `[model].base` (a local directory or a Hub id already in the HF cache). BOS/EOS ids come from the
//! model's `config.json` (falling back to Llama-3's `<|begin_of_text|>` / `<|end_of_text|>` tokens).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use graft_data::{DataConfig, TextTokenizer};

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
    let model_dir = model_dir(&args.recipe)?;
    let tokenizer_path = match (&config.tokenizer, &model_dir) {
        (Some(t), _) => t.clone(),
        (None, Some(dir)) => dir.join("tokenizer.json"),
        (None, None) => bail!(
            "{}: set [data].tokenizer or [model].base so graft can find tokenizer.json",
            args.recipe.display()
        ),
    };
    let (bos, eos) = special_ids(model_dir.as_deref())?;
    let mut tokenizer = TextTokenizer::from_file(&tokenizer_path, bos, eos)?;
    tokenizer.bos_id = tokenizer
        .bos_id
        .or_else(|| tokenizer.token_id("<|begin_of_text|>"));
    tokenizer.eos_id = tokenizer
        .eos_id
        .or_else(|| tokenizer.token_id("<|end_of_text|>"));
    let out = args
        .out
        .unwrap_or_else(|| config.prepared_dir_for(&args.recipe));
    let manifest = graft_data::prepare(&config, &tokenizer, &out)?;
    eprintln!(
        "prepared {} in {} ({} file(s) tokenized, {} unchanged)",
        args.recipe.display(),
        out.display(),
        manifest.run.written,
        manifest.run.reused
    );
    for s in &manifest.sources {
        eprintln!(
            "  {:<16} {:>8} docs {:>12} tokens  bad records {}  dropped pairs {}",
            s.name, s.documents, s.tokens, s.bad_records, s.dropped_pairs
        );
    }
    Ok(())
}

/// The model directory of the recipe's `[model].base` (with optional `revision`), if it has one.
fn model_dir(recipe: &Path) -> anyhow::Result<Option<PathBuf>> {
    let text =
        std::fs::read_to_string(recipe).with_context(|| format!("reading {}", recipe.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", recipe.display()))?;
    let model = table.get("model").and_then(|m| m.as_table());
    let Some(base) = model.and_then(|m| m.get("base")).and_then(|b| b.as_str()) else {
        return Ok(None);
    };
    let revision = model
        .and_then(|m| m.get("revision"))
        .and_then(|r| r.as_str());
    // A relative local path is relative to the recipe's directory, like every path in a recipe.
    let local = recipe.parent().unwrap_or(Path::new(".")).join(base);
    let base = if local.exists() {
        local.to_string_lossy().into_owned()
    } else {
        base.to_string()
    };
    let dir = graft_llama::hub::resolve(&base, revision)
        .with_context(|| format!("resolving [model].base = {base:?}"))?;
    Ok(Some(dir))
}

/// BOS and first EOS id from the model's `config.json`, when there is one.
fn special_ids(model_dir: Option<&Path>) -> anyhow::Result<(Option<u32>, Option<u32>)> {
    let Some(dir) = model_dir else {
        return Ok((None, None));
    };
    let path = dir.join("config.json");
    if !path.exists() {
        return Ok((None, None));
    }
    let config = graft_llama::ModelConfig::from_file(&path)?;
    Ok((
        config.llama.bos_token_id,
        config.llama.eos_token_ids.first().copied(),
    ))
}
