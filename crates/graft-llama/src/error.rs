//! The crate's error type: every variant names the file, tensor or key involved and hints at a fix.

use std::path::PathBuf;

/// Everything that can go wrong while reading a config, loading or resolving a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (config.json, the shard index) is malformed or misses a required key.
    #[error("{path}: invalid JSON: {message}\nHINT: compare it with the file of the same name in the original checkpoint")]
    Json { path: PathBuf, message: String },

    /// The config describes a model graft cannot run.
    #[error("{path}: unsupported config: {message}")]
    UnsupportedConfig { path: PathBuf, message: String },

    /// A config value is present but inconsistent (e.g. heads that do not divide hidden size).
    #[error("{path}: invalid config: {message}")]
    InvalidConfig { path: PathBuf, message: String },

    /// A safetensors file is truncated or its header is corrupt.
    #[error("{path}: not a valid safetensors file: {message}\nHINT: the file is probably truncated or corrupt; download it again")]
    Safetensors { path: PathBuf, message: String },

    /// No weights at all were found in a checkpoint directory.
    #[error("{dir}: no model.safetensors or model.safetensors.index.json found\nHINT: point at a HuggingFace checkpoint directory holding safetensors weights")]
    NoWeights { dir: PathBuf },

    /// The shard index names a file that is not there.
    #[error("{index}: shard {shard} is named in the index but missing from {dir}\nHINT: download the missing shard")]
    MissingShard {
        index: PathBuf,
        shard: String,
        dir: PathBuf,
    },

    /// The index says a tensor lives in a shard that does not contain it.
    #[error("{path}: tensor {tensor} is listed in the shard index but absent from this shard")]
    IndexMismatch { path: PathBuf, tensor: String },

    /// A tensor the model needs is absent from the checkpoint.
    #[error("{dir}: missing tensor {tensor} (expected shape {expected:?})\nHINT: the checkpoint does not match config.json")]
    MissingTensor {
        dir: PathBuf,
        tensor: String,
        expected: Vec<usize>,
    },

    /// The checkpoint holds a tensor the model has no place for.
    #[error("{path}: unexpected tensor {tensor} with shape {shape:?}\nHINT: the checkpoint does not match config.json (or is not a plain Llama checkpoint)")]
    UnexpectedTensor {
        path: PathBuf,
        tensor: String,
        shape: Vec<usize>,
    },

    /// A tensor has the wrong shape.
    #[error("{path}: tensor {tensor} has shape {actual:?}, expected {expected:?}\nHINT: the checkpoint does not match config.json")]
    ShapeMismatch {
        path: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },

    /// A tensor is stored in a dtype that is not a float type graft can load.
    #[error("{path}: tensor {tensor} has dtype {dtype}, expected F32, BF16 or F16")]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },

    /// An HF parameter name that the key map does not know.
    #[error("unknown parameter name {name} for a model with {layers} layers")]
    UnknownParam { name: String, layers: usize },

    /// A tensor handed to the key map has the wrong rank or shape.
    #[error("parameter {name}: got shape {actual:?}, expected {expected:?}")]
    ParamShape {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },

    /// A model argument is neither a local directory nor a cached or downloadable Hub repo.
    #[error("{model}: {message}")]
    Resolve { model: String, message: String },

    /// A LoRA setting graft cannot use (rank, alpha, dropout, target modules).
    #[error(
        "LoRA: {message}\nHINT: check the [lora] section of the recipe or adapter_config.json"
    )]
    Lora { message: String },

    /// A PEFT adapter directory is malformed or does not fit the model it is applied to.
    #[error("{path}: {message}\nHINT: the adapter must be a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) trained on this base model")]
    Adapter { path: PathBuf, message: String },

    /// Downloading from the HuggingFace Hub failed.
    #[error("download of {repo}/{file} (revision {revision}) failed: {message}\nHINT: check the repo id, your network, and HF_TOKEN for gated models")]
    Download {
        repo: String,
        revision: String,
        file: String,
        message: String,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<graft_fs::Error> for Error {
    fn from(e: graft_fs::Error) -> Self {
        Error::Io {
            path: e.path,
            source: e.source,
        }
    }
}
