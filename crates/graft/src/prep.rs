//! Shared by `graft prepare` and `graft train`: find a recipe's tokenizer and its BOS/EOS ids, and
//! run the prepare step (tokenize the sources into shards; a no-op when the inputs are unchanged).
//!
//! The tokenizer is, in order: `[data].tokenizer`, `[model].tokenizer`, `<base model dir>/tokenizer.json`.
//! BOS/EOS ids come from the model's `config.json` (or `[model.init]`), falling back to Llama-3's
//! `<|begin_of_text|>` / `<|end_of_text|>` tokens.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use graft_data::{DataConfig, Manifest, TextTokenizer};

/// Where a recipe's tokenizer comes from.
#[derive(Debug, Clone, Default)]
pub struct TokenizerSource {
    /// `[data].tokenizer`.
    pub data_tokenizer: Option<PathBuf>,
    /// `[model].tokenizer`.
    pub model_tokenizer: Option<PathBuf>,
    /// The resolved `[model].base` directory.
    pub model_dir: Option<PathBuf>,
    /// BOS id from the model's config (`None`: look up `<|begin_of_text|>`).
    pub bos: Option<u32>,
    /// EOS id from the model's config (`None`: look up `<|end_of_text|>`).
    pub eos: Option<u32>,
}

impl TokenizerSource {
    /// The `tokenizer.json` to use; `recipe` names the recipe in the error.
    pub fn path(&self, recipe: &Path) -> anyhow::Result<PathBuf> {
        let from_model = self.model_dir.as_ref().map(|d| d.join("tokenizer.json"));
        match self
            .data_tokenizer
            .clone()
            .or_else(|| self.model_tokenizer.clone())
            .or(from_model)
        {
            Some(p) => Ok(p),
            None => bail!(
                "{}: no tokenizer; set [model].tokenizer (or [data].tokenizer), or [model].base so graft can find tokenizer.json",
                recipe.display()
            ),
        }
    }

    /// The directory whose tokenizer files are copied into checkpoints.
    pub fn dir(&self, recipe: &Path) -> anyhow::Result<Option<PathBuf>> {
        Ok(self.path(recipe)?.parent().map(Path::to_path_buf))
    }

    /// Load the tokenizer with its BOS/EOS ids.
    pub fn load(&self, recipe: &Path) -> anyhow::Result<TextTokenizer> {
        let path = self.path(recipe)?;
        let mut tokenizer = TextTokenizer::from_file(&path, self.bos, self.eos)
            .with_context(|| format!("loading the tokenizer of {}", recipe.display()))?;
        tokenizer.bos_id = tokenizer
            .bos_id
            .or_else(|| tokenizer.token_id("<|begin_of_text|>"));
        tokenizer.eos_id = tokenizer
            .eos_id
            .or_else(|| tokenizer.token_id("<|end_of_text|>"));
        Ok(tokenizer)
    }
}

/// Resolve a `[model].base` value (local dir, relative to the recipe's directory, or cached Hub id).
pub fn resolve_base(base: &str, revision: Option<&str>, recipe: &Path) -> anyhow::Result<PathBuf> {
    let local = recipe.parent().unwrap_or(Path::new(".")).join(base);
    let base = if local.exists() {
        local.to_string_lossy().into_owned()
    } else {
        base.to_string()
    };
    graft_llama::hub::resolve(&base, revision).with_context(|| {
        format!("resolving [model].base = {base:?} (download a Hub model first with `graft download {base}`)")
    })
}

/// Tokenize `config`'s sources into `out` (files unchanged since the last run are reused) and print
/// a per-source summary to stderr.
pub fn prepare(
    config: &DataConfig,
    tokenizer: &TextTokenizer,
    out: &Path,
    recipe: &Path,
) -> anyhow::Result<Manifest> {
    let config = &crate::synth_prep::synthesize_sources(config, out, recipe)?;
    let manifest = graft_data::prepare(config, tokenizer, out).with_context(|| {
        format!(
            "preparing the data of {} in {}",
            recipe.display(),
            out.display()
        )
    })?;
    eprintln!(
        "prepared {} in {} ({} file(s) tokenized, {} unchanged)",
        recipe.display(),
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
    Ok(manifest)
}
