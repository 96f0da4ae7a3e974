//! Domain keywords: whole-word tokens of a domain tokenizer that the general tokenizer lacks.
//!
//! AdaptLLM compares two sentencepiece vocabularies (domain-specific = a domain piece that starts a
//! word, is not a general piece, and has 10+ characters after the word-start marker). graft reads
//! HF `tokenizer.json` files instead, so a piece is compared by what it spells: the word-start
//! marker (`▁` of sentencepiece/Metaspace, `Ġ` of byte-level BPE) is read as a leading space and
//! byte-level characters are mapped back to bytes; a Llama-3 (byte-level) general vocabulary and a
//! sentencepiece-style domain vocabulary therefore compare correctly.
//!
//! With no domain tokenizer, [`train_domain_tokenizer`] trains a byte-level BPE on the corpus itself
//! with the `tokenizers` crate's trainer.

use std::collections::{HashMap, HashSet};

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::Tokenizer;

use super::byte_level::ByteLevelBpe;

/// A sentence needs at least this many distinct domain-specific tokens ...
pub const MIN_KEYWORDS: usize = 3;
/// ... and at most this many distinct tokens.
pub const MAX_SENTENCE_TOKENS: usize = 100;
/// Keyword sentences kept per document (the scan stops there).
pub const MAX_SENTENCES: usize = 2;
/// A domain-specific word has at least this many characters.
pub const MIN_WORD_CHARS: usize = 10;

/// The domain tokenizer and which of its token ids are domain-specific words.
pub struct DomainVocab {
    domain: Tokenizer,
    /// The same tokenizer without the `tokenizers` pipeline, when it is plain byte-level BPE.
    fast: Option<ByteLevelBpe>,
    /// Domain-specific token id → the word it spells.
    specific: HashMap<u32, String>,
}

impl DomainVocab {
    /// Domain-specific tokens of `domain` relative to `general`.
    pub fn new(domain: Tokenizer, general: &Tokenizer) -> DomainVocab {
        let general_words: HashSet<String> = general
            .get_vocab(true)
            .keys()
            .filter_map(|piece| word_start(piece))
            .collect();
        let specific = domain
            .get_vocab(true)
            .into_iter()
            .filter_map(|(piece, id)| {
                let word = word_start(&piece)?;
                (word.chars().count() >= MIN_WORD_CHARS && !general_words.contains(&word))
                    .then_some((id, word))
            })
            .collect();
        let fast = ByteLevelBpe::of(&domain);
        DomainVocab {
            domain,
            fast,
            specific,
        }
    }

    /// How many domain-specific tokens there are.
    pub fn len(&self) -> usize {
        self.specific.len()
    }

    /// True if `word` is one of the domain-specific words.
    pub fn is_specific(&self, word: &str) -> bool {
        self.specific.values().any(|w| w == word)
    }

    /// True when the domain tokenizer has no domain-specific token.
    pub fn is_empty(&self) -> bool {
        self.specific.is_empty()
    }

    /// The first [`MIN_KEYWORDS`] domain-specific words of `sentence` in sentence order, if the
    /// sentence qualifies (enough distinct specific tokens, not too many distinct tokens).
    pub fn keywords(&self, sentence: &str) -> Option<Vec<String>> {
        self.qualify(&self.sentence_ids(sentence))
    }

    /// [`Self::keywords`] of every sentence.
    pub fn keywords_of_sentences(&self, sentences: &[String]) -> Vec<Option<Vec<String>>> {
        sentences.iter().map(|s| self.keywords(s)).collect()
    }

    /// The domain tokens of `sentence` encoded alone, as the original encodes each sentence with
    /// sentencepiece: stripped, every whitespace character read as a space (so a word after a line
    /// break starts a word), tokens that are whitespace alone left out. Byte-level BPE takes a
    /// faster road to the same ids ([`super::byte_level`]).
    pub fn sentence_ids(&self, sentence: &str) -> Vec<u32> {
        let text = prepare(sentence);
        let fast = (self.fast.as_ref()).and_then(|f| f.ids(self.domain.get_model(), &text));
        fast.unwrap_or_else(|| self.pipeline_ids(&text))
    }

    /// [`Self::sentence_ids`] through the whole `tokenizers` pipeline, whatever the tokenizer.
    pub fn encoded_ids(&self, sentence: &str) -> Vec<u32> {
        self.pipeline_ids(&prepare(sentence))
    }

    /// True when the domain tokenizer takes the byte-level fast road.
    pub fn is_fast(&self) -> bool {
        self.fast.is_some()
    }

    fn pipeline_ids(&self, text: &str) -> Vec<u32> {
        let enc = match self.domain.encode(text, false) {
            Ok(enc) => enc,
            Err(e) => {
                tracing::warn!("domain tokenizer failed on a sentence ({e}); no keywords from it");
                return Vec::new();
            }
        };
        let blank = |t: &String| t.chars().all(|c| c == 'Ġ' || c == '▁' || c.is_whitespace());
        (enc.get_ids().iter().zip(enc.get_tokens()))
            .filter(|(_, t)| !blank(t))
            .map(|(id, _)| *id)
            .collect()
    }

    fn qualify(&self, ids: &[u32]) -> Option<Vec<String>> {
        let distinct: HashSet<u32> = ids.iter().copied().collect();
        if distinct.len() > MAX_SENTENCE_TOKENS {
            return None;
        }
        let mut seen = HashSet::new();
        let words: Vec<&String> = ids
            .iter()
            .filter(|id| seen.insert(**id))
            .filter_map(|id| self.specific.get(id))
            .collect();
        (words.len() >= MIN_KEYWORDS).then(|| {
            words[..MIN_KEYWORDS]
                .iter()
                .map(|w| w.to_string())
                .collect()
        })
    }
}

/// A sentence as it is encoded: stripped, whitespace read as spaces.
fn prepare(sentence: &str) -> String {
    (sentence.trim().chars())
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect()
}

/// The word a word-start piece spells (without the marker), or `None` for a piece inside a word.
fn word_start(piece: &str) -> Option<String> {
    if let Some(rest) = piece.strip_prefix('▁') {
        return Some(rest.replace('▁', " "));
    }
    let rest = piece.strip_prefix('Ġ')?;
    let bytes: Option<Vec<u8>> = rest.chars().map(byte_level_byte).collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

/// GPT-2's byte-level alphabet read backwards: printable Latin-1 stands for itself, the other
/// bytes were shifted to U+0100 onwards in order.
fn byte_level_byte(c: char) -> Option<u8> {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
    let code = c as u32;
    if code < 0x100 {
        return printable(code).then_some(code as u8);
    }
    let n = (code - 0x100) as usize;
    (0u32..0x100)
        .filter(|b| !printable(*b))
        .nth(n)
        .map(|b| b as u8)
}

/// Trains a byte-level BPE tokenizer of at most `vocab_size` tokens on `texts` (a domain
/// tokenizer for keyword mining). Pairs seen fewer than twice are not merged, so a word must recur
/// to become a token.
pub fn train_domain_tokenizer(texts: &[String], vocab_size: usize) -> Result<Tokenizer, String> {
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer
        .with_pre_tokenizer(Some(ByteLevel::new(true, true, true)))
        .with_decoder(Some(ByteLevel::default()));
    let mut trainer = TrainerWrapper::from(trainer);
    tokenizer
        .train(&mut trainer, texts.iter())
        .map_err(|e| e.to_string())?;
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_start_reads_both_markers() {
        assert_eq!(
            word_start("▁hepatotoxicity").as_deref(),
            Some("hepatotoxicity")
        );
        assert_eq!(
            word_start("Ġhepatotoxicity").as_deref(),
            Some("hepatotoxicity")
        );
        assert_eq!(word_start("hepato"), None);
        // "é" is two bytes, written "Ã©" in the byte-level alphabet
        assert_eq!(word_start("ĠcafÃ©").as_deref(), Some("café"));
    }
}
