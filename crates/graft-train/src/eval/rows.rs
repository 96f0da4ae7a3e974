//! Reading evaluation JSONL files: one JSON object per line, blank lines skipped, every error
//! naming the file and the 1-based line.

use std::io::BufRead;
use std::path::Path;

use graft_data::TextTokenizer;
use serde::de::DeserializeOwned;

use crate::eval::error::{EvalError, Result};

/// Parses every non-blank line of `path` as a `T`, returning `(line number, row)` pairs.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<(usize, T)>> {
    let io = |source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_no = i + 1;
        let text = line.map_err(io)?;
        if text.trim().is_empty() {
            continue;
        }
        let row = serde_json::from_str(&text)
            .map_err(|e| EvalError::row(path, line_no, format!("not a valid row: {e}")))?;
        rows.push((line_no, row));
    }
    Ok(rows)
}

/// Checks that every id of `ids` is below `vocab`; `what` names the field in the error.
pub fn check_ids(ids: &[u32], vocab: usize, path: &Path, line: usize, what: &str) -> Result<()> {
    match ids.iter().position(|&id| id as usize >= vocab) {
        Some(i) => Err(EvalError::row(
            path,
            line,
            format!(
                "{what}[{i}] = {} is outside the model's vocabulary (size {vocab})\n\
                 HINT: the ids were made with another tokenizer",
                ids[i]
            ),
        )),
        None => Ok(()),
    }
}

/// Encodes `text` without the tokenizer's own special tokens (BOS is added by the caller, so it is
/// never doubled).
pub fn encode(tok: &TextTokenizer, text: &str, path: &Path, line: usize) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    tok.encode_docs(&[text.to_string()], None, None, &mut out)
        .map_err(|e| EvalError::Tokenizer {
            path: path.to_path_buf(),
            line,
            message: e.to_string(),
        })?;
    Ok(out)
}

/// The tokenizer, or an error saying that a text row needs one.
pub fn need_tokenizer<'a>(
    tok: Option<&'a TextTokenizer>,
    path: &Path,
    line: usize,
) -> Result<&'a TextTokenizer> {
    tok.ok_or_else(|| {
        EvalError::row(
            path,
            line,
            "this row holds text but no tokenizer was given\n\
             HINT: put tokenizer.json in the model directory, or give token ids instead of text",
        )
    })
}
