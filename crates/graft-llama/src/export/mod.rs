//! Export to a HuggingFace model directory: `config.json`, `generation_config.json`, safetensors
//! weights (one file or shards plus `model.safetensors.index.json`) and the tokenizer files.
//!
//! The weights stream tensor by tensor: a [`TensorSource`] names every tensor up front (HF name,
//! shape, dtype), the [`ShardWriter`] plans shards and headers from that, then pulls each tensor's
//! data, converts it to the export dtype in small chunks and writes it at its place in the file.
//! The model is never held twice in memory. Everything is written into a staging directory beside
//! the output and renamed into place only when complete ([`StagingDir`]).
//!
//! Two sources exist: [`CheckpointSource`] (an HF directory on disk, memory-mapped) for
//! `graft export`, and [`ModelSource`] (an in-memory [`crate::Llama`], for graft-train's
//! checkpoints), written with [`write_hf_dir`]. Names and shapes come from the crate's key map;
//! weights keep HF layout in the model, so nothing is permuted on the way out.

mod dtype;
mod hf_dir;
mod model_source;
mod plan;
mod source;
mod staging;
pub(crate) mod writer;

use std::borrow::Cow;
use std::path::PathBuf;

pub use dtype::{f32_to_bf16_bits, f32_to_f16_bits, ExportDtype};
pub use hf_dir::{
    export_checkpoint, generation_config_from, write_hf_dir, ExportOptions, ExportSummary,
    HfDirFiles, LICENSE_FILES, TOKENIZER_FILES,
};
pub use model_source::ModelSource;
pub use plan::{
    parse_size, plan_shards, shard_file_name, ShardLayout, DEFAULT_MAX_SHARD_SIZE, INDEX_FILE,
    SINGLE_FILE,
};
pub use safetensors::Dtype;
pub use source::{llama_tensor_order, CheckpointSource};
pub use staging::StagingDir;
pub use writer::{ShardWriter, WrittenShards};

/// Everything that can go wrong while exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the source checkpoint failed (missing file, corrupt shard, bad config, ...).
    #[error(transparent)]
    Llama(#[from] crate::Error),

    /// The output directory already holds files.
    #[error("{path} is not a LoRA checkpoint (no adapter_config.json); --adapter-only and --base apply to LoRA checkpoints only")]
    NotLora { path: PathBuf },
    #[error("{path}: output directory is not empty\nHINT: pass --force to replace it (the old directory is replaced only after the new export is complete), or choose another directory")]
    OutDirNotEmpty { path: PathBuf },

    /// A `--max-shard-size` that cannot be parsed.
    #[error("invalid size {text:?}: {message}\nHINT: write a size like 5GB, 500MB or 2GiB")]
    InvalidSize { text: String, message: String },

    /// A tensor whose dtype the exporter cannot write or convert.
    #[error("tensor {tensor}: unsupported dtype {dtype}\nHINT: export handles F32, BF16, F16 and F64 weights (integer buffers are copied)")]
    UnsupportedDtype { tensor: String, dtype: String },

    /// A tensor's data does not match its declared shape, or its shape is unusable.
    #[error("tensor {tensor}: {message}")]
    Shape { tensor: String, message: String },

    /// The source gave data for a tensor the plan does not contain, or gave it twice.
    #[error("tensor {tensor}: {message}")]
    Plan { tensor: String, message: String },

    /// No tokenizer files where they were asked for.
    #[error("{dir}: no tokenizer files (tokenizer.json, tokenizer_config.json, ...) found\nHINT: pass --tokenizer pointing at the base model's directory")]
    NoTokenizer { dir: PathBuf },
}

/// Result alias for export.
pub type Result<T> = std::result::Result<T, ExportError>;

impl ExportError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        crate::Error::io(path, source).into()
    }
}

/// One tensor of the export: HF name, shape, and the dtype it is written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: Dtype,
}

impl TensorSpec {
    /// Bytes of this tensor's data in the file.
    pub fn byte_len(&self) -> Result<u64> {
        plan::byte_len(&self.name, self.dtype, &self.shape)
    }

    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

/// The data of one tensor, in HF layout, as a source hands it to the writer.
pub enum TensorData<'a> {
    /// f32 values in row-major order.
    F32(Cow<'a, [f32]>),
    /// Little-endian bytes of the given dtype in row-major order.
    Bytes { dtype: Dtype, bytes: Cow<'a, [u8]> },
    /// Little-endian bytes of `dtype` in row-major order, in consecutive pieces of whole elements.
    /// The writer converts and writes each piece before asking for the next, so a source can
    /// free a piece once the next one is requested (a memory-mapped shard drops its pages).
    Stream {
        dtype: Dtype,
        chunks: ChunkStream<'a>,
    },
}

/// The pieces of a [`TensorData::Stream`].
pub type ChunkStream<'a> = Box<dyn Iterator<Item = Result<Cow<'a, [u8]>>> + 'a>;

impl std::fmt::Debug for TensorData<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TensorData::F32(v) => write!(f, "F32({} values)", v.len()),
            TensorData::Bytes { dtype, bytes } => {
                write!(f, "Bytes({dtype}, {} bytes)", bytes.len())
            }
            TensorData::Stream { dtype, .. } => write!(f, "Stream({dtype})"),
        }
    }
}

impl TensorData<'_> {
    /// Takes Burn tensor data (F32, BF16, F16 or F64) without copying it where possible.
    pub fn from_burn(name: &str, data: burn::tensor::TensorData) -> Result<Self> {
        use burn::tensor::DType as B;
        let dtype = match data.dtype {
            B::F32 => Dtype::F32,
            B::BF16 => Dtype::BF16,
            B::F16 => Dtype::F16,
            B::F64 => Dtype::F64,
            other => {
                return Err(ExportError::UnsupportedDtype {
                    tensor: name.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        let bytes = data
            .into_bytes()
            .try_into_vec::<u8>()
            .unwrap_or_else(|shared| shared.to_vec());
        Ok(TensorData::Bytes {
            dtype,
            bytes: Cow::Owned(bytes),
        })
    }
}

/// Something that can hand over a model's tensors one at a time, in HF names and HF layout.
///
/// Implemented by [`CheckpointSource`]; an in-memory Burn model implements it by mapping its
/// parameters through the crate's key map (q/k un-permuted) and reading one parameter per call.
pub trait TensorSource {
    /// Every tensor to export, in HF state-dict order (this order decides the sharding), with the
    /// dtype it should be written in (see [`ExportDtype`]).
    fn specs(&self, dtype: ExportDtype) -> Vec<TensorSpec>;

    /// The data of tensor `name` (one of [`TensorSource::specs`]). Called once per tensor; the
    /// writer drops the data before asking for the next one. Large tensors can be handed over
    /// piece by piece as a [`TensorData::Stream`].
    fn read(&mut self, name: &str) -> Result<TensorData<'_>>;
}
