//! Incremental detokenization for streaming generated text (`graft generate`).

use crate::error::Result;
use crate::TextTokenizer;

/// Incremental detokenization: decodes all new ids so far and emits only the text not yet emitted,
/// holding back while the text ends in an incomplete UTF-8 sequence (decoded as U+FFFD), so a
/// multi-byte character split over several byte-level tokens is printed whole.
pub struct TextStream<'a> {
    tok: &'a TextTokenizer,
    ids: Vec<u32>,
    /// Bytes of the decoded text already emitted.
    emitted: usize,
}

impl<'a> TextStream<'a> {
    /// A stream decoding with `tok`.
    pub fn new(tok: &'a TextTokenizer) -> Self {
        Self {
            tok,
            ids: Vec::new(),
            emitted: 0,
        }
    }

    /// Adds a token; returns the newly completed text (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = self.tok.decode(&self.ids)?;
        if text.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        Ok(self.take(&text))
    }

    /// Whatever is left (an incomplete character at the very end is printed as U+FFFD).
    pub fn finish(&mut self) -> Result<String> {
        let text = self.tok.decode(&self.ids)?;
        Ok(self.take(&text))
    }

    fn take(&mut self, text: &str) -> String {
        if text.len() <= self.emitted || !text.is_char_boundary(self.emitted) {
            return String::new();
        }
        let new = text[self.emitted..].to_string();
        self.emitted = text.len();
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_byte_characters_are_never_split() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/llama3-tokenizer/tokenizer.json"
        ));
        let tok = TextTokenizer::from_file(path, None, None).unwrap();
        let text = "Café — 日本語 🙂 ok 𝔘𝔫𝔦 ꙮ 🦀🧬";
        let mut ids = Vec::new();
        tok.encode_docs(&[text.to_string()], None, None, &mut ids)
            .unwrap();
        let mut stream = TextStream::new(&tok);
        let mut pieces = Vec::new();
        for id in ids {
            pieces.push(stream.push(id).unwrap());
        }
        pieces.push(stream.finish().unwrap());
        assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
        assert_eq!(pieces.concat(), text);
        assert!(
            pieces.iter().filter(|p| p.is_empty()).count() >= 1,
            "some tokens held back: {pieces:?}"
        );
    }
}
