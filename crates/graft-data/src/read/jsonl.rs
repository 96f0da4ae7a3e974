//! JSON Lines, optionally gzip- or zstd-compressed (by extension).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value;

use super::{Flow, RawRecord};
use crate::error::{DataError, Result};

/// Opens `path`, decompressing `.gz` / `.zst`.
fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let inner: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(file).map_err(|e| DataError::io(path, e))?)
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, inner)))
}

/// Reads one JSON object per non-blank line.
pub(super) fn read(path: &Path, f: &mut dyn FnMut(RawRecord) -> Result<Flow>) -> Result<()> {
    let mut reader = open(path)?;
    let mut buf = Vec::with_capacity(1 << 16);
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::Unreadable {
                path: path.to_path_buf(),
                reader: "jsonl",
                message: format!("after line {line_no}: {e}"),
            })?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        if buf.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let value = parse_line(&buf);
        if f(RawRecord {
            location: format!("line {line_no}"),
            value,
        })? == Flow::Stop
        {
            return Ok(());
        }
    }
}

fn parse_line(buf: &[u8]) -> std::result::Result<Value, String> {
    let text = std::str::from_utf8(buf)
        .map_err(|e| format!("not valid UTF-8 (byte {})", e.valid_up_to()))?;
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("expected a JSON object".into()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}
