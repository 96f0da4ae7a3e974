//! A recipe's data, made ready for training: its tokenizer ([`graft_data::TokenizerSource`], from
//! the resolved model), raw sources run through the instruction synthesizer when the recipe says
//! so ([`crate::synthesize::sources`]), then tokenized into shards (`graft_data::prepare`, a no-op
//! when the inputs are unchanged) and opened. `graft prepare` is [`prepare_recipe`]; a [`Run`]
//! does the same before training.
//!
//! [`Run`]: super::Run

use std::path::Path;
use std::sync::Arc;

use graft_data::{DataConfig, Manifest, PreparedData, TextTokenizer};

use super::observer::Observer;
use crate::error::{Result, ResultExt, TrainError};
use crate::model::resolve_model;
use crate::synthesize::sources::{prepared_config, synthesize_sources};
use crate::Recipe;

/// Tokenize the recipe's sources into `out` (default: `[data].prepared_dir`, else
/// `runs/prepared/<recipe file stem>`) with the recipe's tokenizer.
pub fn prepare_recipe(
    recipe: &Recipe,
    recipe_path: &Path,
    out: Option<&Path>,
    observer: &dyn Observer,
) -> Result<Manifest> {
    let model = resolve_model(recipe, recipe_path)?;
    let tokenizer = load_tokenizer(&model.tokenizer, recipe_path)?;
    let out = out.map_or_else(
        || recipe.data.prepared_dir_for(recipe_path),
        Path::to_path_buf,
    );
    prepare(&recipe.data, &tokenizer, &out, recipe_path, observer)
}

/// Load the recipe's tokenizer (with the Llama-3 BOS/EOS fallback).
pub(crate) fn load_tokenizer(
    source: &graft_data::TokenizerSource,
    recipe_path: &Path,
) -> Result<TextTokenizer> {
    source
        .load(recipe_path)
        .context_with(|| format!("loading the tokenizer of {}", recipe_path.display()))
}

/// Tokenize `config`'s sources into `out` (files unchanged since the last run are reused),
/// synthesizing raw sources first; the observer is told what was done.
pub fn prepare(
    config: &DataConfig,
    tokenizer: &TextTokenizer,
    out: &Path,
    recipe_path: &Path,
    observer: &dyn Observer,
) -> Result<Manifest> {
    let config = &synthesize_sources(config, out, recipe_path, observer)?;
    let manifest = graft_data::prepare(config, tokenizer, out).context_with(|| {
        format!(
            "preparing the data of {} in {}",
            recipe_path.display(),
            out.display()
        )
    })?;
    observer.prepared(recipe_path, out, &manifest);
    Ok(manifest)
}

/// Tokenize the recipe's data (reusing unchanged shards) and open it for a model of `vocab_size`.
pub(crate) fn open_data(
    recipe: &Recipe,
    recipe_path: &Path,
    tokenizer: &TextTokenizer,
    vocab_size: usize,
    observer: &dyn Observer,
) -> Result<Arc<PreparedData>> {
    if tokenizer.vocab_size() > vocab_size {
        return Err(TrainError::Recipe {
            path: recipe_path.to_path_buf(),
            message: format!(
                "the tokenizer has {} tokens but the model's vocab_size is {vocab_size}; use the model's tokenizer or raise vocab_size",
                tokenizer.vocab_size()
            ),
        });
    }
    let prepared_dir = recipe.data.prepared_dir_for(recipe_path);
    prepare(
        &recipe.data,
        tokenizer,
        &prepared_dir,
        recipe_path,
        observer,
    )?;
    let data_config = prepared_config(&recipe.data, &prepared_dir);
    PreparedData::open(&data_config, &prepared_dir)
        .context_with(|| format!("opening prepared data in {}", prepared_dir.display()))
}
