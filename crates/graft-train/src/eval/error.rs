//! Errors of the evaluation module: each names the file and line (or the setting) at fault.

use std::path::PathBuf;

/// Everything that can go wrong while reading evaluation data or scoring it.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// An evaluation file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// One row of a JSONL file is malformed, incomplete or out of range.
    #[error("{}:{line}: {message}", path.display())]
    Row {
        /// The JSONL file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong and what to do.
        message: String,
    },
    /// The tokenizer failed on a row.
    #[error("{}:{line}: tokenizer: {message}", path.display())]
    Tokenizer {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The data holds nothing to score.
    #[error("{}: no targets to score\nHINT: rows need at least two tokens (perplexity) or one row (choice)", path.display())]
    Empty { path: PathBuf },
    /// The model (or its tokenizer) to evaluate could not be loaded.
    #[error("loading {}: {message}", dir.display())]
    Load {
        /// The checkpoint directory.
        dir: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An option is out of range (e.g. a batch size of 0).
    #[error("invalid evaluation setting: {0}")]
    Setting(String),
}

/// Result alias for the evaluation module.
pub type Result<T> = std::result::Result<T, EvalError>;

impl EvalError {
    /// A row error at `path:line`.
    pub fn row(path: &std::path::Path, line: usize, message: impl Into<String>) -> Self {
        EvalError::Row {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}
