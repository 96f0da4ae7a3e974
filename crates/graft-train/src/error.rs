//! The error type of graft-train: one enum whose variants name the file, key or tensor involved and
//! say what to do next.

use std::path::PathBuf;

/// Errors from recipes, checkpoints, logging, the optimizer and the training loop.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file or directory could not be read, written, renamed or removed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "writing" or "renaming".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The recipe (or a `--set` override) is not valid TOML or does not match the recipe schema.
    #[error("recipe {}: {message}", path.display())]
    Recipe {
        /// The recipe file.
        path: PathBuf,
        /// What is wrong, naming the key (and line, where known).
        message: String,
    },
    /// A `--set key=value` override is malformed or names a path that cannot be set.
    #[error("override `{spec}`: {message}")]
    Override {
        /// The override as given on the command line.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// A file or directory named by a recipe key does not exist.
    #[error("recipe key `{key}` names {}, which does not exist (paths are relative to the recipe's directory)", path.display())]
    MissingPath {
        /// The dotted recipe key.
        key: String,
        /// The resolved path that is missing.
        path: PathBuf,
    },
    /// A checkpoint is malformed (missing file, bad JSON, wrong tensor).
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// Saved optimizer state does not match the model being trained.
    #[error("optimizer state for parameter `{param}`: {message}")]
    OptimizerState {
        /// The parameter name (as in `optimizer.safetensors`).
        param: String,
        /// What is wrong, e.g. the shapes that differ.
        message: String,
    },
    /// Too many optimizer steps in a row had a non-finite loss or gradient norm.
    #[error(
        "{count} consecutive steps (last: step {step}) had a non-finite loss or gradient norm; \
         stopping; no checkpoint was written for them, so checkpoints/latest is the last good one. \
         Hint: lower train.lr, raise train.warmup_steps, or check the data and model dtype, then --resume"
    )]
    NonFinite {
        /// The number of consecutive skipped steps.
        count: u32,
        /// The last step that was skipped (1-based).
        step: u64,
    },
    /// A batch or tensor had an unexpected shape.
    #[error("{what}: expected shape {expected:?}, got {actual:?}")]
    Shape {
        /// Which tensor.
        what: String,
        /// The expected shape.
        expected: Vec<usize>,
        /// The actual shape.
        actual: Vec<usize>,
    },
    /// The data pipeline failed.
    #[error("data: {0}")]
    Data(String),
    /// The model (graft-llama) failed to load, initialise or export.
    #[error("model: {0}")]
    Model(String),
    /// Invalid training configuration detected at run time.
    #[error("{0}")]
    Config(String),
    /// A step of a run failed: `context` says which (and names the recipe, file or model), `source`
    /// why. Displayed as the context alone; error reporters (anyhow's `{:#}`) add the cause.
    #[error("{context}")]
    Context {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// Result alias for graft-train.
pub type Result<T> = std::result::Result<T, TrainError>;

/// `.context(..)` for results of graft-train and the crates below it: wraps the error in
/// [`TrainError::Context`].
pub trait ResultExt<T> {
    /// Wrap an error with what was being done.
    fn context_with(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> ResultExt<T> for std::result::Result<T, E> {
    fn context_with(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| TrainError::Context {
            context: context(),
            source: Box::new(e),
        })
    }
}

/// An error and its causes on one line, `outer: inner: …` (as anyhow's `{:#}`).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

impl TrainError {
    /// Build an [`TrainError::Io`] with the path and action.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl From<graft_data::DataError> for TrainError {
    /// graft-data's I/O errors keep their path (they come from the shared atomic-write helper,
    /// [`graft_data::atomic`]); anything else is a data error.
    fn from(e: graft_data::DataError) -> Self {
        match e {
            graft_data::DataError::Io { path, source } => TrainError::Io {
                action: "writing",
                path,
                source,
            },
            other => TrainError::Data(other.to_string()),
        }
    }
}
