//! `manifest.json`: what `prepare` wrote, with the fingerprints that decide whether to redo it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{DataConfig, Format, SourceConfig};
use crate::error::{DataError, Result};
use crate::tokenize::hex;

/// Version of the prepared-data layout (bump to force a re-prepare).
pub const MANIFEST_VERSION: u32 = 1;
/// File name of the manifest inside a prepared directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Everything `prepare` produced. Written last, so a manifest always describes complete shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// SHA-256 of the tokenizer file.
    pub tokenizer_hash: String,
    pub vocab_size: usize,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub sources: Vec<SourceManifest>,
    /// What the last `prepare` call did (not stored).
    #[serde(skip)]
    pub run: PrepareRun,
}

/// Files (re)written and reused by one `prepare` call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrepareRun {
    pub written: usize,
    pub reused: usize,
}

/// One source's shards and counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceManifest {
    pub name: String,
    pub format: Format,
    /// Hash of the source's rendering config (format, fields, M, seed, policy, BOS/EOS).
    pub config_hash: String,
    pub documents: u64,
    pub tokens: u64,
    pub records: u64,
    pub bad_records: u64,
    pub dropped_pairs: u64,
    pub files: Vec<FileEntry>,
}

/// One input file and the shard made from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_s: u64,
    pub mtime_ns: u32,
    /// Shard file name, relative to the prepared directory.
    pub shard: String,
    pub documents: u64,
    pub tokens: u64,
    pub records: u64,
    pub bad_records: u64,
    pub dropped_pairs: u64,
}

/// Size and modification time of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub size: u64,
    pub mtime_s: u64,
    pub mtime_ns: u32,
}

impl FileStamp {
    /// Reads the stamp of `path`.
    pub fn of(path: &Path) -> Result<FileStamp> {
        let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
        let mtime = meta.modified().map_err(|e| DataError::io(path, e))?;
        let since = mtime
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(FileStamp {
            size: meta.len(),
            mtime_s: since.as_secs(),
            mtime_ns: since.subsec_nanos(),
        })
    }

    /// Whether `entry` was made from a file with this stamp.
    pub fn matches(&self, entry: &FileEntry) -> bool {
        self.size == entry.size && self.mtime_s == entry.mtime_s && self.mtime_ns == entry.mtime_ns
    }
}

impl Manifest {
    /// Reads `dir/manifest.json`.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::NotPrepared {
            dir: dir.to_path_buf(),
            message: format!("cannot read {MANIFEST_FILE}: {e}"),
        })?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| DataError::NotPrepared {
                dir: dir.to_path_buf(),
                message: format!("{MANIFEST_FILE} is invalid: {e}"),
            })?;
        if manifest.version != MANIFEST_VERSION {
            return Err(DataError::NotPrepared {
                dir: dir.to_path_buf(),
                message: format!(
                    "prepared with layout version {}, this build uses {MANIFEST_VERSION}",
                    manifest.version
                ),
            });
        }
        Ok(manifest)
    }

    /// The entry of a source.
    pub fn source(&self, name: &str) -> Option<&SourceManifest> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// Hash of everything in the config that changes how a source's records become tokens.
pub fn source_config_hash(config: &DataConfig, source: &SourceConfig) -> String {
    let key = serde_json::json!({
        "layout": MANIFEST_VERSION,
        "name": source.name,
        "reader": source.reader,
        "format": source.format,
        "text_field": source.text_field,
        "pairs_field": source.pairs_field,
        "question_field": source.question_field,
        "response_field": source.response_field,
        "examples_per_doc": source.examples_per_doc,
        "seed": config.seed,
        "on_bad_record": config.on_bad_record,
        "add_bos": config.add_bos,
        "add_eos": config.add_eos,
        "augment": augment_key(source),
    });
    hex(&Sha256::digest(key.to_string().as_bytes()))
}

/// What a `reading-comprehension` source's documents depend on besides the file itself: the rules'
/// version, domain name, tokenizer paths and, when the domain tokenizer is trained on the source, every
/// file of the source (adding or changing one retrains it). `null` for other formats.
fn augment_key(source: &SourceConfig) -> serde_json::Value {
    if source.format != Format::ReadingComprehension {
        return serde_json::Value::Null;
    }
    let corpus: Vec<(PathBuf, u64, u64, u32)> = match &source.domain_tokenizer {
        Some(_) => Vec::new(),
        None => source
            .files()
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let s = FileStamp::of(&p).ok();
                let (size, secs, ns) = s.map_or((0, 0, 0), |s| (s.size, s.mtime_s, s.mtime_ns));
                (p, size, secs, ns)
            })
            .collect(),
    };
    serde_json::json!({
        "rules": crate::augment::RULES_VERSION,
        "domain": source.domain,
        "general_tokenizer": source.general_tokenizer,
        "domain_tokenizer": source.domain_tokenizer,
        "corpus": corpus,
    })
}

/// Shard file name for one input file of a source.
pub fn shard_name(source: &str, config_hash: &str, tokenizer_hash: &str, path: &Path) -> String {
    let mut h = Sha256::new();
    h.update(config_hash.as_bytes());
    h.update(tokenizer_hash.as_bytes());
    h.update(path.to_string_lossy().as_bytes());
    format!("{source}.{}.tok", &hex(&h.finalize())[..16])
}
