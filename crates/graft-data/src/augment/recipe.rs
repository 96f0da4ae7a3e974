//! The augmenter of a recipe's `reading-comprehension` source, built once per source and shared by
//! the files rendered in parallel (and by `preview`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use tokenizers::Tokenizer;

use super::keywords::{train_domain_tokenizer, DomainVocab};
use super::{read_texts, Augmenter};
use crate::config::SourceConfig;
use crate::error::{DataError, Result};

/// Vocabulary size of a domain tokenizer trained on a corpus (AdaptLLM's domain model: 32,000).
pub const DOMAIN_VOCAB_SIZE: usize = 32_000;

type Cache = Mutex<HashMap<String, Arc<Augmenter>>>;
static CACHE: LazyLock<Cache> = LazyLock::new(Default::default);

/// The augmenter of `source` (paths resolved): its general tokenizer, its domain tokenizer (or one
/// trained on the source's files), its domain name (default: the source name). Cached per source
/// config for the life of the process.
pub fn for_source(source: &SourceConfig) -> Result<Arc<Augmenter>> {
    let key = serde_json::to_string(source).unwrap_or_else(|_| source.name.clone());
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(aug) = cache.get(&key) {
        return Ok(aug.clone());
    }
    let general_path = source.general_tokenizer.as_deref().ok_or_else(|| {
        DataError::Invalid(format!(
            "source `{}`: format = \"reading-comprehension\" needs general_tokenizer",
            source.name
        ))
    })?;
    let general = load_tokenizer(general_path)?;
    let domain = match &source.domain_tokenizer {
        Some(path) => load_tokenizer(path)?,
        None => {
            let texts = read_texts(&source.files()?, &source.text_field)?;
            tracing::info!(
                "source `{}`: training a domain tokenizer on {} documents",
                source.name,
                texts.len()
            );
            train_domain_tokenizer(&texts, DOMAIN_VOCAB_SIZE).map_err(|message| {
                DataError::Tokenizer {
                    path: source.path.clone(),
                    message: format!("training the domain tokenizer: {message}"),
                }
            })?
        }
    };
    let vocab = DomainVocab::new(domain, &general);
    let name = source.domain.as_deref().unwrap_or(&source.name);
    let aug = Arc::new(Augmenter::new(general, Some(vocab), name));
    cache.insert(key, aug.clone());
    Ok(aug)
}

/// Loads a `tokenizer.json` (or the one in a model directory).
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let file = if path.is_dir() {
        path.join("tokenizer.json")
    } else {
        path.to_path_buf()
    };
    Tokenizer::from_file(&file).map_err(|e| DataError::Tokenizer {
        path: file.clone(),
        message: e.to_string(),
    })
}
