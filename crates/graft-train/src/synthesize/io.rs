//! Files of a synthesis run: the input texts, and the append-only, resumable output.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use graft_data::read::{for_each_record, Flow};
use graft_data::synthesis::{read_output, SynthRecord};
use graft_data::ReaderKind;
use serde_json::Value;

use crate::error::{Result, TrainError};

/// Every text of `inputs`, in order (JSONL/.gz/.zst with `text_field`, Parquet, `.txt`). A bad
/// record is an error naming its file and line (or row).
pub fn read_texts(inputs: &[PathBuf], text_field: &str) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    for path in inputs {
        let kind = ReaderKind::from_path(path).ok_or_else(|| {
            TrainError::Data(format!(
                "{}: cannot tell the format from the file name (use .jsonl[.gz|.zst], .parquet or .txt)",
                path.display()
            ))
        })?;
        for_each_record(path, kind, text_field, &mut |record| {
            let bad = |reason: String| graft_data::DataError::BadRecord {
                path: path.clone(),
                location: record.location.clone(),
                reason,
            };
            let value = record.value.clone().map_err(bad)?;
            match value.get(text_field) {
                Some(Value::String(s)) => texts.push(s.clone()),
                None | Some(Value::Null) => {
                    return Err(bad(format!(
                        "missing field `{text_field}` (choose another with --text-field)"
                    )))
                }
                Some(_) => return Err(bad(format!("field `{text_field}` is not a string"))),
            }
            Ok(Flow::Continue)
        })
        .map_err(|e| TrainError::Data(e.to_string()))?;
    }
    Ok(texts)
}

/// The records already in `out` (a resumed run), checked against this run's texts; the file is cut
/// back to its last complete line. Missing file: none.
pub fn resume(out: &Path, texts: &[String], texts_per_round: usize) -> Result<Vec<SynthRecord>> {
    if !out.exists() {
        return Ok(Vec::new());
    }
    let (records, good) = read_output(out).map_err(|e| TrainError::Data(e.to_string()))?;
    let mismatch = |i: usize, what: &str| {
        TrainError::Config(format!(
            "{}: record {} does not belong to this run ({what}); it was written for other inputs \
             or settings. Hint: delete it or choose another --out",
            out.display(),
            i + 1
        ))
    };
    if records.len() > texts.len() {
        return Err(mismatch(texts.len(), "more records than input texts"));
    }
    for (i, r) in records.iter().enumerate() {
        if r.synth.index != i || r.text != texts[i] {
            return Err(mismatch(i, "another text"));
        }
        if r.synth.texts_per_round != texts_per_round {
            return Err(mismatch(i, "another number of rounds"));
        }
    }
    let len = std::fs::metadata(out)
        .map_err(|e| TrainError::io("reading", out, e))?
        .len();
    // Only a cut-off line is removed: a complete file keeps its mtime, so `graft prepare` sees
    // it unchanged.
    if len > good {
        let file = OpenOptions::new()
            .write(true)
            .open(out)
            .map_err(|e| TrainError::io("opening", out, e))?;
        file.set_len(good)
            .map_err(|e| TrainError::io("truncating", out, e))?;
    }
    Ok(records)
}

/// Appends records and makes them durable (`fsync`) at each [`OutputWriter::sync`].
pub struct OutputWriter {
    path: PathBuf,
    inner: BufWriter<File>,
}

impl OutputWriter {
    pub fn open(path: &Path) -> Result<Self> {
        let file =
            graft_fs::open_append(path).map_err(|e| TrainError::io("opening", e.path, e.source))?;
        Ok(Self {
            path: path.to_path_buf(),
            inner: BufWriter::new(file),
        })
    }

    pub fn append(&mut self, record: &SynthRecord) -> Result<()> {
        let line = serde_json::to_string(record).map_err(|e| TrainError::Data(e.to_string()))?;
        writeln!(self.inner, "{line}").map_err(|e| TrainError::io("writing", &self.path, e))
    }

    pub fn sync(&mut self) -> Result<()> {
        self.inner
            .flush()
            .and_then(|_| self.inner.get_ref().sync_data())
            .map_err(|e| TrainError::io("syncing", &self.path, e))
    }
}
