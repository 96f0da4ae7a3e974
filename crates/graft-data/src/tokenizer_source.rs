//! Which tokenizer a recipe's data is tokenized with, and its BOS/EOS ids (used by `graft prepare`
//! and `graft train` alike).
//!
//! The tokenizer is, in order: `[data].tokenizer`, `[model].tokenizer`, `<base model dir>/tokenizer.json`.
//! BOS/EOS ids come from the model's `config.json` (or `[model.init]`), falling back to Llama-3's
//! `<|begin_of_text|>` / `<|end_of_text|>` tokens.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::TextTokenizer;

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
    pub fn path(&self, recipe: &Path) -> Result<PathBuf> {
        let from_model = self.model_dir.as_ref().map(|d| d.join("tokenizer.json"));
        match self
            .data_tokenizer
            .clone()
            .or_else(|| self.model_tokenizer.clone())
            .or(from_model)
        {
            Some(p) => Ok(p),
            None => Err(DataError::Config {
                path: recipe.to_path_buf(),
                message: "no tokenizer; set [model].tokenizer (or [data].tokenizer), or [model].base so graft can find tokenizer.json".into(),
            }),
        }
    }

    /// The directory whose tokenizer files are copied into checkpoints.
    pub fn dir(&self, recipe: &Path) -> Result<Option<PathBuf>> {
        Ok(self.path(recipe)?.parent().map(Path::to_path_buf))
    }

    /// Load the tokenizer with its BOS/EOS ids (Llama-3's special tokens when the model has none).
    pub fn load(&self, recipe: &Path) -> Result<TextTokenizer> {
        let path = self.path(recipe)?;
        let mut tokenizer = TextTokenizer::from_file(&path, self.bos, self.eos)?;
        tokenizer.bos_id = tokenizer
            .bos_id
            .or_else(|| tokenizer.token_id("<|begin_of_text|>"));
        tokenizer.eos_id = tokenizer
            .eos_id
            .or_else(|| tokenizer.token_id("<|end_of_text|>"));
        Ok(tokenizer)
    }
}
