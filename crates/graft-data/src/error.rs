//! The crate's error type: every variant names the file, line/row, source or key involved, and a hint.

use std::path::PathBuf;

/// Result alias for graft-data.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Everything that can go wrong between a corpus on disk and a batch of tokens.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The recipe's `[data]` table (or a standalone data config) does not parse.
    #[error("{path}: invalid data config: {message}\nhint: check the [data] table against the documented keys")]
    Config { path: PathBuf, message: String },
    /// A config value is out of range or inconsistent.
    #[error("invalid data config: {0}")]
    Invalid(String),
    /// A source names a path or glob that matches no file.
    #[error("source `{source_name}`: no file matches {path}\nhint: paths are relative to the recipe file's directory")]
    MissingInput { source_name: String, path: PathBuf },
    /// No source with this name in the config.
    #[error("no source named `{0}` in the data config")]
    UnknownSource(String),
    /// A record (JSONL line, Parquet row, text file) is malformed.
    #[error("{path}:{location}: {reason}\nhint: fix the record, or set on_bad_record = \"skip\" to skip and count it")]
    BadRecord {
        path: PathBuf,
        location: String,
        reason: String,
    },
    /// A file cannot be read as the format its reader expects (e.g. not a Parquet file).
    #[error("{path}: cannot read as {reader}: {message}")]
    Unreadable {
        path: PathBuf,
        reader: &'static str,
        message: String,
    },
    /// A source produced no documents.
    #[error("source `{0}` has no documents (all files empty, or every record skipped)")]
    EmptySource(String),
    /// The tokenizer failed to load or encode.
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    /// A pre-tokenized shard has a wrong header or length.
    #[error("{path}: corrupt shard: {message}\nhint: delete the prepared directory's manifest.json and run `graft prepare` again")]
    CorruptShard { path: PathBuf, message: String },
    /// The prepared data does not match the config (not prepared, or prepared for other inputs).
    #[error("{dir}: {message}\nhint: run `graft prepare RECIPE` first")]
    NotPrepared { dir: PathBuf, message: String },
    /// A stream cursor does not belong to this stream.
    #[error("cannot restore data cursor: {0}")]
    BadCursor(String),
}

impl DataError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<graft_fs::Error> for DataError {
    fn from(e: graft_fs::Error) -> Self {
        DataError::Io {
            path: e.path,
            source: e.source,
        }
    }
}
