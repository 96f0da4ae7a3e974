//! Tokenization with HF `tokenizers`: documents → ids, BOS/EOS added by us, never by the tokenizer.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::error::{DataError, Result};

/// A `tokenizer.json` plus the BOS/EOS ids to wrap every document with.
///
/// Documents are encoded with `add_special_tokens = false`, so the result does not depend on
/// whether the tokenizer's post-processor adds BOS (Llama-3 base's does not, Instruct's does).
pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    hash: String,
    /// Id put before every document (when the config's `add_bos` is on).
    pub bos_id: Option<u32>,
    /// Id put after every document (when the config's `add_eos` is on).
    pub eos_id: Option<u32>,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`; `bos_id`/`eos_id` come from the model's config.
    pub fn from_file(path: &Path, bos_id: Option<u32>, eos_id: Option<u32>) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let inner = Tokenizer::from_bytes(&bytes).map_err(|e| DataError::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let hash = hex(&Sha256::digest(&bytes));
        Ok(TextTokenizer {
            inner,
            path: path.to_path_buf(),
            hash,
            bos_id,
            eos_id,
        })
    }

    /// The id of a token string such as `<|begin_of_text|>`, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The underlying HF tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Where it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SHA-256 of the tokenizer file (part of the prepare fingerprint).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Encodes documents (no special tokens), appending `[bos] ids [eos]` of each to `out` and each
    /// document's end offset (relative to `out`'s start) to `ends`.
    pub fn encode_docs(
        &self,
        docs: &[String],
        bos: Option<u32>,
        eos: Option<u32>,
        out: &mut Vec<u32>,
    ) -> Result<Vec<usize>> {
        let inputs: Vec<&str> = docs.iter().map(String::as_str).collect();
        let encodings =
            self.inner
                .encode_batch_fast(inputs, false)
                .map_err(|e| DataError::Tokenizer {
                    path: self.path.clone(),
                    message: e.to_string(),
                })?;
        let mut ends = Vec::with_capacity(docs.len());
        for enc in &encodings {
            out.extend(bos);
            out.extend_from_slice(enc.get_ids());
            out.extend(eos);
            ends.push(out.len());
        }
        Ok(ends)
    }

    /// Decodes ids back to text (special tokens kept), for previews and tests.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| DataError::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
