//! A faster encoder for one common kind of domain tokenizer: byte-level BPE (GPT-2's pre-tokenizer
//! and a BPE model, no normalizer, no added tokens), the kind [`super::keywords::train_domain_tokenizer`]
//! trains.
//!
//! Keyword mining encodes every sentence of every document, and the `tokenizers` pipeline spends
//! most of its time on bookkeeping keyword mining does not need (a normalized string with byte
//! alignments per piece, offsets, token strings). This encoder splits a sentence with GPT-2's
//! pattern itself (the `regex` crate; the pattern's one look-ahead, `\s+(?!\S)`, is applied by
//! hand), and asks the tokenizer's own BPE model for each distinct piece once, caching its ids.
//! Sentences reach it with their whitespace already read as single spaces (see
//! [`super::keywords::DomainVocab::sentence_ids`]). `tests/augment.rs` checks it against
//! `Tokenizer::encode` on varied text (scripts, digits, contractions, punctuation, space runs).

use std::collections::HashMap;
use std::sync::RwLock;

use regex::Regex;
use tokenizers::models::ModelWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{Model, Tokenizer};

/// GPT-2's pre-tokenization pattern without its look-ahead alternative (`\s+(?!\S)`), which
/// [`ByteLevelBpe::pieces`] applies to the matches of the final `\s+`.
const PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

/// Cached pieces at most (memory stays bounded on any corpus; later pieces are encoded uncached).
const CACHE_CAP: usize = 1 << 20;

/// Byte-level BPE run without the `tokenizers` pipeline; see the module doc.
pub struct ByteLevelBpe {
    pattern: Regex,
    prefix_space: bool,
    /// GPT-2's byte → character table (printable Latin-1 stands for itself).
    byte_char: [char; 256],
    /// Piece → ids of its tokens that are not whitespace alone.
    cache: RwLock<HashMap<String, Box<[u32]>>>,
}

impl ByteLevelBpe {
    /// The fast encoder of `tokenizer`, or `None` when it is not plain byte-level BPE.
    pub fn of(tokenizer: &Tokenizer) -> Option<ByteLevelBpe> {
        let ModelWrapper::BPE(bpe) = tokenizer.get_model() else {
            return None;
        };
        let Some(PreTokenizerWrapper::ByteLevel(level)) = tokenizer.get_pre_tokenizer() else {
            return None;
        };
        let plain = tokenizer.get_normalizer().is_none()
            && tokenizer.get_added_vocabulary().is_empty()
            && level.use_regex
            && bpe.dropout.unwrap_or(0.0) == 0.0;
        plain.then(|| ByteLevelBpe {
            pattern: Regex::new(PATTERN).expect("GPT-2's pattern compiles"),
            prefix_space: level.add_prefix_space,
            byte_char: byte_chars(),
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// Ids of the tokens of `text` that are not whitespace alone, in order, as
    /// `tokenizer.encode(text, false)` gives them (`model`: that tokenizer's). `text`'s only
    /// whitespace is `' '`. `None` if the model fails on a piece.
    pub fn ids(&self, model: &ModelWrapper, text: &str) -> Option<Vec<u32>> {
        let mut out = Vec::new();
        let owned;
        let text = if self.prefix_space && !text.starts_with(' ') {
            owned = format!(" {text}");
            owned.as_str()
        } else {
            text
        };
        for piece in self.pieces(text) {
            if let Some(ids) = self.cache.read().expect("cache lock").get(piece) {
                out.extend_from_slice(ids);
                continue;
            }
            let ids = self.encode_piece(model, piece)?;
            out.extend_from_slice(&ids);
            let mut cache = self.cache.write().expect("cache lock");
            if cache.len() < CACHE_CAP {
                cache.insert(piece.to_string(), ids);
            }
        }
        Some(out)
    }

    /// GPT-2's pieces of `text`, as its pattern splits it: `\s+(?!\S)` keeps a run of spaces
    /// before a non-space character short of its last space, which starts the next piece.
    fn pieces<'a>(&'a self, text: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let mut at = 0;
        std::iter::from_fn(move || {
            let m = self.pattern.find_at(text, at)?;
            let mut end = m.end();
            let s = m.as_str();
            if s.chars().all(char::is_whitespace) && s.chars().nth(1).is_some() && end < text.len()
            {
                let last = s.chars().next_back().map_or(0, char::len_utf8);
                end -= last;
            }
            at = end;
            Some(&text[m.start()..end])
        })
    }

    /// One piece through the BPE model: ids of its tokens that are not whitespace alone.
    fn encode_piece(&self, model: &ModelWrapper, piece: &str) -> Option<Box<[u32]>> {
        let mapped: String = piece.bytes().map(|b| self.byte_char[b as usize]).collect();
        let space = self.byte_char[b' ' as usize];
        let tokens = model.tokenize(&mapped).ok()?;
        Some(
            tokens
                .iter()
                .filter(|t| !t.value.chars().all(|c| c == space))
                .map(|t| t.id)
                .collect(),
        )
    }
}

/// GPT-2's byte-level alphabet: printable Latin-1 stands for itself, the other bytes are shifted
/// to U+0100 onwards in order.
fn byte_chars() -> [char; 256] {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
    let mut table = ['\0'; 256];
    let mut shifted = 0x100;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).unwrap_or('\0')
        } else {
            shifted += 1;
            char::from_u32(shifted - 1).unwrap_or('\0')
        };
    }
    table
}
