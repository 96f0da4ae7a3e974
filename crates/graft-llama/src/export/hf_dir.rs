//! Assembling a complete HF model directory: weights, `config.json`, `generation_config.json` and
//! the tokenizer files, built in a staging directory and renamed into place.

use std::path::{Path, PathBuf};

use super::dtype::ExportDtype;
use super::plan::DEFAULT_MAX_SHARD_SIZE;
use super::source::{read_json, CheckpointSource};
use super::staging::StagingDir;
use super::writer::{write_file_synced, write_json_file, ShardWriter, WrittenShards};
use super::{ExportError, Result, TensorSource};
use crate::config::ModelConfig;
use crate::Error;

/// Tokenizer files copied into an export, where present.
pub const TOKENIZER_FILES: [&str; 5] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "chat_template.jinja",
];

/// License files that travel with the tokenizer files (a tokenizer's license asks that its notice
/// stay beside every copy, e.g. Meta Llama 3's `NOTICE`); copied where present, never enough on
/// their own to count as a tokenizer.
pub const LICENSE_FILES: [&str; 4] = ["LICENSE", "LICENSE.txt", "NOTICE", "USE_POLICY.md"];

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Float format of the exported weights (`torch_dtype` in `config.json`).
    pub dtype: ExportDtype,
    /// Largest shard in bytes (HF's `max_shard_size`); see [`super::parse_size`].
    pub max_shard_size: u64,
    /// Replace a non-empty output directory (only once the new export is complete).
    pub force: bool,
    /// Take the tokenizer files from this directory instead of the checkpoint or its base model.
    pub tokenizer_dir: Option<PathBuf>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            dtype: ExportDtype::BF16,
            max_shard_size: DEFAULT_MAX_SHARD_SIZE,
            force: false,
            tokenizer_dir: None,
        }
    }
}

/// The files of an HF directory besides the weights.
#[derive(Debug, Clone)]
pub struct HfDirFiles {
    /// The model's `config.json` (its raw JSON is written back with only the dtype changed).
    pub config: ModelConfig,
    /// `generation_config.json`; when `None`, one is written from the config's bos/eos ids.
    pub generation_config: Option<serde_json::Value>,
    /// Where to copy the tokenizer files from (none copied when `None`).
    pub tokenizer_dir: Option<PathBuf>,
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub out_dir: PathBuf,
    pub dtype: ExportDtype,
    pub shards: WrittenShards,
    /// The tokenizer files copied (file names).
    pub tokenizer_files: Vec<String>,
}

/// Exports the HF checkpoint directory `src` to `out` (see [`ExportOptions`]).
///
/// The tokenizer comes from `options.tokenizer_dir`, else from `src` itself, else from the base
/// model recorded in `config.json` (`_name_or_path`: a local directory or a Hub repo in the HF cache).
/// `progress(done, total)` reports bytes of tensor data written.
pub fn export_checkpoint(
    src: &Path,
    out: &Path,
    options: &ExportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExportSummary> {
    let mut source = CheckpointSource::open(src)?;
    source.check_complete()?;
    let gen_path = src.join("generation_config.json");
    let generation_config = if gen_path.is_file() {
        Some(read_json(&gen_path)?)
    } else {
        None
    };
    let tokenizer_dir =
        find_tokenizer_dir(src, &source.config().raw, options.tokenizer_dir.as_deref())?;
    let files = HfDirFiles {
        config: source.config().clone(),
        generation_config,
        tokenizer_dir,
    };
    write_hf_dir(out, &files, &mut source, options, progress)
}

/// Writes a complete HF directory at `out` from any [`TensorSource`] (e.g. an in-memory model),
/// tensor by tensor, atomically. `options.tokenizer_dir` is ignored here: pass it in `files`.
pub fn write_hf_dir(
    out: &Path,
    files: &HfDirFiles,
    source: &mut dyn TensorSource,
    options: &ExportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExportSummary> {
    let staging = StagingDir::create(out, options.force)?;
    let specs = source.specs(options.dtype);
    let mut writer = ShardWriter::create(staging.path(), &specs, options.max_shard_size)?;
    writer.write_all_from(source, progress)?;
    let shards = writer.finish()?;
    let config = files.config.raw_with_dtype(options.dtype.torch_name());
    write_json_file(&staging.path().join("config.json"), &config)?;
    let generation = match &files.generation_config {
        Some(g) => g.clone(),
        None => generation_config_from(&files.config.raw),
    };
    write_json_file(&staging.path().join("generation_config.json"), &generation)?;
    let tokenizer_files = match &files.tokenizer_dir {
        Some(dir) => copy_tokenizer(dir, staging.path())?,
        None => Vec::new(),
    };
    staging.commit()?;
    tracing::info!(
        "exported {} tensors ({} bytes, {} file(s)) to {}",
        specs.len(),
        shards.total_size,
        shards.files.len(),
        out.display()
    );
    Ok(ExportSummary {
        out_dir: out.to_path_buf(),
        dtype: options.dtype,
        shards,
        tokenizer_files,
    })
}

/// A `generation_config.json` as `GenerationConfig.from_model_config` writes it: bos/eos/pad ids.
pub fn generation_config_from(config: &serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    out.insert("_from_model_config".into(), true.into());
    for key in [
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "transformers_version",
    ] {
        match config.get(key) {
            Some(serde_json::Value::Null) | None => {}
            Some(value) => {
                out.insert(key.into(), value.clone());
            }
        }
    }
    serde_json::Value::Object(out)
}

/// Where the tokenizer files come from (see [`export_checkpoint`]); `None` (with a warning) if nowhere.
fn find_tokenizer_dir(
    src: &Path,
    config: &serde_json::Value,
    explicit: Option<&Path>,
) -> Result<Option<PathBuf>> {
    if let Some(dir) = explicit {
        if has_tokenizer(dir) {
            return Ok(Some(dir.to_path_buf()));
        }
        return Err(ExportError::NoTokenizer {
            dir: dir.to_path_buf(),
        });
    }
    if has_tokenizer(src) {
        return Ok(Some(src.to_path_buf()));
    }
    let recorded = config
        .get("_name_or_path")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty());
    if let Some(base) = recorded {
        // A local directory, or a Hub repo already in the HF cache (no network access here).
        if let Ok(dir) = crate::hub::resolve(base, None) {
            if has_tokenizer(&dir) {
                tracing::info!(
                    "tokenizer files from the base model {base} ({})",
                    dir.display()
                );
                return Ok(Some(dir));
            }
        }
    }
    tracing::warn!(
        "no tokenizer files in {} or its base model; the export has weights and config only (pass --tokenizer DIR)",
        src.display()
    );
    Ok(None)
}

fn has_tokenizer(dir: &Path) -> bool {
    TOKENIZER_FILES.iter().any(|f| dir.join(f).is_file())
}

/// Copies the tokenizer files present in `from` into `to`, fsynced; returns their names.
fn copy_tokenizer(from: &Path, to: &Path) -> Result<Vec<String>> {
    if !has_tokenizer(from) {
        return Err(ExportError::NoTokenizer {
            dir: from.to_path_buf(),
        });
    }
    let mut copied = Vec::new();
    for name in TOKENIZER_FILES.iter().chain(&LICENSE_FILES) {
        let src = from.join(name);
        if !src.is_file() {
            continue;
        }
        let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
        write_file_synced(&to.join(name), &bytes)?;
        copied.push(name.to_string());
    }
    Ok(copied)
}
