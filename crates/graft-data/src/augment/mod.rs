//! Reading-comprehension augmentation without an LLM (AdaptLLM, Cheng et al., ICLR 2024).
//!
//! Raw domain text gets tasks mined from itself by rules: NLI, commonsense (cause/effect),
//! paraphrase, word-to-text (definitions, topics, domain keywords), title summarization and text
//! completion. Stages, one module each:
//! - [`segment`]: title / context (truncated to the token budget) / sentences;
//! - [`mine`]: the regex families; [`keywords`]: domain-specific tokens and keyword sentences;
//! - [`templates`], [`layouts`]: the template pools; [`assemble`]: sampling, caps, assembly;
//! - [`recipe`]: the augmenter of a recipe source with `format = "reading-comprehension"`.
//!
//! ```no_run
//! # fn main() -> graft_data::Result<()> {
//! use graft_data::augment::{Augmenter, DomainVocab};
//! let general = tokenizers::Tokenizer::from_file("llama3/tokenizer.json").unwrap();
//! let texts = vec!["Title\nSome domain text. ...".to_string()];
//! let domain = graft_data::augment::keywords::train_domain_tokenizer(&texts, 32000).unwrap();
//! let vocab = DomainVocab::new(domain, &general);
//! let aug = Augmenter::new(general, Some(vocab), "biomedicine");
//! let docs = aug.augment_all(&texts, 0, &|_| {}); // one `Augmented` per text, in order
//! # Ok(()) }
//! ```

pub mod assemble;
pub mod byte_level;
pub mod keywords;
pub mod layouts;
pub mod mine;
pub mod recipe;
pub mod segment;
pub mod templates;

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde_json::Value;
use tokenizers::Tokenizer;

pub use assemble::{Augmented, Task};
pub use keywords::DomainVocab;
pub use mine::{Candidate, Family, Sub};

/// Version of the rules and templates: bump when output for the same input changes (prepared
/// `reading-comprehension` shards are re-rendered).
pub const RULES_VERSION: u32 = 2;

use crate::config::ReaderKind;
use crate::error::{DataError, Result};
use crate::read::{for_each_record, Flow};

/// Augments raw texts into reading-comprehension documents.
pub struct Augmenter {
    general: Tokenizer,
    domain: Option<DomainVocab>,
    domain_name: String,
}

impl Augmenter {
    /// `general`: the base model's tokenizer (bounds the context to the token budget); `domain`:
    /// the domain vocabulary for keyword tasks (`None`: no keyword tasks); `domain_name`: the word
    /// the templates use ("biomedicine", "finance", ...).
    pub fn new(general: Tokenizer, domain: Option<DomainVocab>, domain_name: &str) -> Self {
        Augmenter {
            general,
            domain,
            domain_name: domain_name.to_string(),
        }
    }

    /// The general tokenizer.
    pub fn general(&self) -> &Tokenizer {
        &self.general
    }

    /// The domain vocabulary, if any.
    pub fn domain_vocab(&self) -> Option<&DomainVocab> {
        self.domain.as_ref()
    }

    /// Every candidate the rules find in `text` (before sampling), with the document's RNG.
    fn candidates(&self, parts: &segment::Parts, rng: &mut ChaCha8Rng) -> Vec<Candidate> {
        let mut found = mine::mine_patterns(&parts.context);
        if let Some(vocab) = &self.domain {
            if parts.sentences.is_empty() {
                return found;
            }
            let all = vocab.keywords_of_sentences(&parts.sentences);
            let mut order: Vec<usize> = (0..parts.sentences.len()).collect();
            order.shuffle(rng);
            let keyword = order.into_iter().filter_map(|i| {
                let words = all[i].as_ref()?;
                Some(Candidate {
                    sub: Sub::Keyword,
                    verbalizer: String::new(),
                    first: words.join(", "),
                    second: parts.sentences[i].trim().to_string(),
                })
            });
            found.extend(keyword.take(keywords::MAX_SENTENCES));
        }
        found
    }

    /// Every candidate the rules find in `text`, unsampled (for inspection and tests).
    pub fn mine(&self, text: &str) -> Vec<Candidate> {
        let parts = segment::split(text, &self.general);
        self.candidates(&parts, &mut doc_rng(0, 0))
    }

    /// The reading-comprehension document of `text`, the `index`-th document of a run with `seed`.
    pub fn augment(&self, text: &str, seed: u64, index: u64) -> Augmented {
        let mut rng = doc_rng(seed, index);
        let parts = segment::split(text, &self.general);
        let candidates = self.candidates(&parts, &mut rng);
        assemble::assemble(&parts, candidates, &self.domain_name, &mut rng)
    }

    /// All `texts` in parallel, in order; `done(n)` is called as documents finish (for a progress
    /// bar). Document `i` depends only on `seed`, `i` and its text.
    pub fn augment_all(
        &self,
        texts: &[String],
        seed: u64,
        done: &(dyn Fn(u64) + Sync),
    ) -> Vec<Augmented> {
        texts
            .par_iter()
            .enumerate()
            .map(|(i, text)| {
                let out = self.augment(text, seed, i as u64);
                done(1);
                out
            })
            .collect()
    }
}

/// The RNG of document `index`: its own ChaCha stream of `seed`.
pub fn doc_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

/// The `text_field` of every record of `paths` (JSONL, Parquet or `.txt`), in order. A record
/// without a non-empty string `text_field` is an error naming its file and line/row.
pub fn read_texts(paths: &[impl AsRef<Path>], text_field: &str) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let kind = ReaderKind::from_path(path).ok_or_else(|| {
            DataError::Invalid(format!(
                "{}: cannot tell the reader from the extension (use .jsonl[.gz|.zst], .parquet or .txt)",
                path.display()
            ))
        })?;
        for_each_record(path, kind, text_field, &mut |record| {
            let text = record.value.and_then(|v| text_of(&v, text_field));
            match text {
                Ok(t) => texts.push(t),
                Err(reason) => {
                    return Err(DataError::BadRecord {
                        path: path.to_path_buf(),
                        location: record.location,
                        reason,
                    })
                }
            }
            Ok(Flow::Continue)
        })?;
    }
    Ok(texts)
}

fn text_of(v: &Value, field: &str) -> std::result::Result<String, String> {
    match v.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(format!("field `{field}` is empty")),
        None | Some(Value::Null) => Err(format!("missing field `{field}`")),
        Some(_) => Err(format!("field `{field}` is not a string")),
    }
}
