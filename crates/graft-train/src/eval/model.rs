//! The model an evaluation scores: an HF checkpoint directory loaded with its BOS id and, when the
//! directory has `tokenizer.json`, its tokenizer (`graft eval`, the examples).

use std::path::Path;

use burn::tensor::backend::Backend;
use graft_data::TextTokenizer;
use graft_llama::{Llama, ModelConfig};

use super::error::{EvalError, Result};

/// A loaded model, its config, BOS id and tokenizer (`None` without `tokenizer.json`).
pub struct EvalModel<B: Backend> {
    pub model: Llama<B>,
    pub config: ModelConfig,
    pub bos: Option<u32>,
    pub tokenizer: Option<TextTokenizer>,
}

impl<B: Backend> EvalModel<B> {
    /// Load the checkpoint directory `dir` (see `graft_llama::hub::resolve` for model arguments).
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let fail = |message: String| EvalError::Load {
            dir: dir.to_path_buf(),
            message,
        };
        let (model, config) =
            graft_llama::load::<B>(dir, device).map_err(|e| fail(e.to_string()))?;
        let bos = config.llama.bos_token_id;
        let eos = config.llama.eos_token_ids.first().copied();
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = if tok_path.is_file() {
            Some(TextTokenizer::from_file(&tok_path, bos, eos).map_err(|e| fail(e.to_string()))?)
        } else {
            None
        };
        Ok(Self {
            model,
            config,
            bos,
            tokenizer,
        })
    }
}
