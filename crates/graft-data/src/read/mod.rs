//! Readers: a file on disk → a sequence of JSON-like records, each tagged with its location.
//!
//! Every reader yields `serde_json::Value` objects so that formats need not know where a record came
//! from: a JSONL line, a Parquet row (converted field by field), or a whole `.txt` file
//! (`{text_field: contents}`).

mod jsonl;
mod parquet;

use std::path::Path;

use serde_json::Value;

use crate::config::ReaderKind;
use crate::error::{DataError, Result};

/// One record as read, or the reason it could not be read.
pub struct RawRecord {
    /// Where it is in its file: `line 12`, `row 3`, or `file`.
    pub location: String,
    /// The record, or why it is malformed.
    pub value: std::result::Result<Value, String>,
}

/// Whether a record callback wants more records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Calls `f` on every record of `path`, in file order, until it returns `Flow::Stop`.
///
/// A file that cannot be opened or decoded as a whole is an error; a single malformed record is
/// passed to `f` as `Err(reason)` so the caller can apply its `on_bad_record` policy.
pub fn for_each_record(
    path: &Path,
    kind: ReaderKind,
    text_field: &str,
    f: &mut dyn FnMut(RawRecord) -> Result<Flow>,
) -> Result<()> {
    match kind {
        ReaderKind::Jsonl => jsonl::read(path, f),
        ReaderKind::Parquet => parquet::read(path, f),
        ReaderKind::Txt => read_txt(path, text_field, f),
    }
}

/// A `.txt` file is a single document.
fn read_txt(
    path: &Path,
    text_field: &str,
    f: &mut dyn FnMut(RawRecord) -> Result<Flow>,
) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let value = match String::from_utf8(bytes) {
        Ok(text) => {
            let mut obj = serde_json::Map::new();
            obj.insert(text_field.to_string(), Value::String(text));
            Ok(Value::Object(obj))
        }
        Err(e) => Err(format!(
            "not valid UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        )),
    };
    f(RawRecord {
        location: "file".into(),
        value,
    })?;
    Ok(())
}
