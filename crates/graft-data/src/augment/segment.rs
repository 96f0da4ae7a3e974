//! A document → title, context (truncated to the token budget) and sentences.
//!
//! Sentences come from the `sentencex` crate (Wikimedia's rule-based segmenter: terminators,
//! abbreviation lists, list items, quotes). The original uses pysbd (English, `clean=False`); like it,
//! sentencex returns spans that keep their trailing whitespace, so the sentences concatenate back to
//! the context unchanged. On AdaptLLM's twelve sample texts sentencex finds 119 of pysbd's 120
//! sentences (unicode-segmentation's UAX #29 bounds: 115). Segmentation only decides the keyword
//! candidates and where completion cuts; the regex families scan the context string itself.

use tokenizers::Tokenizer;

/// Context tokens kept: the original's 2048-token budget minus 200 reserved for the tasks.
pub const CONTEXT_TOKENS: usize = 1848;

/// A document split for mining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// The first line when the text has several lines.
    pub title: Option<String>,
    /// The rest (or the whole single-line text), truncated to [`CONTEXT_TOKENS`].
    pub context: String,
    /// Sentences of `context`, each with its trailing whitespace.
    pub sentences: Vec<String>,
}

/// Splits `text` (stripped first): a text of several lines has its first line as title, as in
/// AdaptLLM; a single-line text has no title and is all context (the original would make it all
/// title and mine nothing). The context is cut to [`CONTEXT_TOKENS`] tokens of `general`.
pub fn split(text: &str, general: &Tokenizer) -> Parts {
    let text = text.trim();
    let (title, context) = match text.split_once('\n') {
        Some((title, rest)) => (Some(title.to_string()), rest),
        None => (None, text),
    };
    let context = truncate(context, general, CONTEXT_TOKENS).to_string();
    let sentences = sentences(&context);
    Parts {
        title,
        context,
        sentences,
    }
}

/// The longest prefix of `text` covered by its first `max_tokens` tokens of `tokenizer` (the text
/// itself when it has no more tokens). The cut falls where the next token starts, which may be
/// mid-word, like the original's decode of the first tokens.
pub fn truncate<'a>(text: &'a str, tokenizer: &Tokenizer, max_tokens: usize) -> &'a str {
    // a token covers at least one byte: a text of at most `max_tokens` bytes always fits
    if text.len() <= max_tokens {
        return text;
    }
    // most documents fit: count without offsets first (cheaper), offsets only to cut
    if matches!(tokenizer.encode_fast(text, false), Ok(enc) if enc.len() <= max_tokens) {
        return text;
    }
    let Ok(enc) = tokenizer.encode(text, false) else {
        return text;
    };
    let offsets = enc.get_offsets();
    if offsets.len() <= max_tokens {
        return text;
    }
    let mut end = offsets[max_tokens - 1].1.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// English sentences of `text`, each keeping its trailing whitespace.
pub fn sentences(text: &str) -> Vec<String> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    sentencex::segment("en", text)
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
