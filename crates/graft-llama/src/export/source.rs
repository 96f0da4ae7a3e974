//! An HF checkpoint directory as a [`TensorSource`]: `config.json` plus `model.safetensors` or
//! shards named by `model.safetensors.index.json`, memory-mapped and read tensor by tensor.
//!
//! Each tensor is handed to the writer in pieces whose pages go back to the kernel once written
//! (`madvise(DONTNEED)`), so exporting costs a few pieces of memory, not the model's size.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::dtype::{output_dtype, ExportDtype};
use super::{Result, TensorData, TensorSource, TensorSpec};
use crate::config::ModelConfig;
use crate::load::{weight_files, CONFIG_FILE};
use crate::Error;

struct SourceTensor {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    shard: usize,
    /// Absolute byte range in the shard file.
    start: usize,
    end: usize,
}

/// A memory-mapped HF checkpoint directory.
pub struct CheckpointSource {
    dir: PathBuf,
    config: ModelConfig,
    maps: Vec<(PathBuf, Mmap)>,
    tensors: Vec<SourceTensor>,
    by_name: HashMap<String, usize>,
}

impl CheckpointSource {
    /// Opens `dir`: reads `config.json`, maps every shard and validates each safetensors header.
    pub fn open(dir: &Path) -> Result<Self> {
        let config = ModelConfig::from_file(dir.join(CONFIG_FILE))?;
        let files = weight_files(dir)?.files;
        let mut maps = Vec::with_capacity(files.len());
        let mut tensors: Vec<SourceTensor> = Vec::new();
        let mut by_name = HashMap::new();
        for (shard, path) in files.into_iter().enumerate() {
            let map = map_file(&path)?;
            for tensor in shard_tensors(&path, &map, shard)? {
                if by_name.insert(tensor.name.clone(), tensors.len()).is_some() {
                    let name = format!("{} (a second copy)", tensor.name);
                    return Err(Error::UnexpectedTensor {
                        path,
                        tensor: name,
                        shape: tensor.shape,
                    }
                    .into());
                }
                tensors.push(tensor);
            }
            maps.push((path, map));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            maps,
            tensors,
            by_name,
        })
    }

    /// The directory this source reads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed `config.json` (with its raw JSON).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Whether `config.json` ties `lm_head` to the embedding (`tie_word_embeddings`).
    pub fn tie_word_embeddings(&self) -> bool {
        self.config.llama.tie_word_embeddings
    }

    /// Names of all tensors in the checkpoint, in HF state-dict order.
    pub fn tensor_names(&self) -> Vec<String> {
        llama_tensor_order(self.tensors.iter().map(|t| t.name.clone()))
    }

    /// Checks that an untied model has its `lm_head.weight`.
    pub fn check_complete(&self) -> Result<()> {
        if self.tie_word_embeddings() || self.by_name.contains_key("lm_head.weight") {
            return Ok(());
        }
        let expected = self
            .by_name
            .get("model.embed_tokens.weight")
            .map(|&i| self.tensors[i].shape.clone());
        Err(Error::MissingTensor {
            dir: self.dir.clone(),
            tensor: "lm_head.weight".into(),
            expected: expected.unwrap_or_default(),
        }
        .into())
    }
}

impl TensorSource for CheckpointSource {
    fn specs(&self, dtype: ExportDtype) -> Vec<TensorSpec> {
        let tied = self.tie_word_embeddings();
        self.tensor_names()
            .into_iter()
            .filter(|name| !(tied && name == "lm_head.weight"))
            .map(|name| {
                let t = &self.tensors[self.by_name[&name]];
                TensorSpec {
                    name,
                    shape: t.shape.clone(),
                    dtype: output_dtype(t.dtype, dtype),
                }
            })
            .collect()
    }

    fn read(&mut self, name: &str) -> Result<TensorData<'_>> {
        let &i = self.by_name.get(name).ok_or_else(|| Error::MissingTensor {
            dir: self.dir.clone(),
            tensor: name.to_string(),
            expected: Vec::new(),
        })?;
        let t = &self.tensors[i];
        let chunks = MappedChunks {
            map: &self.maps[t.shard].1,
            pos: t.start,
            end: t.start,
            stop: t.end,
        };
        Ok(TensorData::Stream {
            dtype: t.dtype,
            chunks: Box::new(chunks),
        })
    }
}

/// Bytes of a mapped tensor read in pieces; each piece's pages are dropped when the next is asked
/// for (the writer has converted and written it by then), so memory stays at one piece.
struct MappedChunks<'a> {
    map: &'a Mmap,
    /// Start of the piece handed out last, its end, and the end of the tensor.
    pos: usize,
    end: usize,
    stop: usize,
}

/// Bytes per piece: a multiple of every element size and of the page size.
const PIECE: usize = 8 << 20;

impl<'a> Iterator for MappedChunks<'a> {
    type Item = Result<Cow<'a, [u8]>>;

    fn next(&mut self) -> Option<Self::Item> {
        release(self.map, self.pos, self.end);
        if self.end >= self.stop {
            return None;
        }
        self.pos = self.end;
        self.end = (self.pos + PIECE).min(self.stop);
        let map: &'a Mmap = self.map;
        Some(Ok(Cow::Borrowed(&map[self.pos..self.end])))
    }
}

/// Drops the resident pages of `map[start..end]` (a no-op off Unix).
fn release(map: &Mmap, start: usize, end: usize) {
    if end <= start {
        return;
    }
    #[cfg(unix)]
    {
        // SAFETY: `map` is a read-only mapping of a file. MADV_DONTNEED only drops the pages;
        // touching them again reads the same bytes back from the file, so any slice still alive
        // keeps its contents.
        let advice = memmap2::UncheckedAdvice::DontNeed;
        if let Err(e) = unsafe { map.unchecked_advise_range(advice, start, end - start) } {
            tracing::debug!("madvise(DONTNEED): {e}");
        }
    }
    #[cfg(not(unix))]
    let _ = map;
}

/// Sorts HF Llama parameter names into `LlamaForCausalLM.state_dict()` order: embedding, each
/// layer's q/k/v/o, gate/up/down, the two norms (weight before bias), final norm, `lm_head`, then
/// anything else by name. This order decides the sharding, as in `save_pretrained`.
pub fn llama_tensor_order(names: impl IntoIterator<Item = String>) -> Vec<String> {
    const LAYER_PARTS: [&str; 9] = [
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
        "input_layernorm",
        "post_attention_layernorm",
    ];
    let rank = |name: &str| -> (u8, usize, usize, u8) {
        let suffix = |rest: &str| u8::from(rest.ends_with(".bias"));
        if let Some(rest) = name.strip_prefix("model.layers.") {
            if let Some((layer, rest)) = rest.split_once('.') {
                if let Ok(layer) = layer.parse::<usize>() {
                    let part = LAYER_PARTS
                        .iter()
                        .position(|p| rest.starts_with(&format!("{p}.")))
                        .unwrap_or(LAYER_PARTS.len());
                    return (1, layer, part, suffix(rest));
                }
            }
        }
        match name {
            "model.embed_tokens.weight" => (0, 0, 0, 0),
            "model.norm.weight" => (2, 0, 0, 0),
            "lm_head.weight" => (3, 0, 0, 0),
            _ => (4, 0, 0, 0),
        }
    };
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    names
}

/// The tensors of one mapped shard, with absolute byte ranges.
fn shard_tensors(path: &Path, map: &Mmap, shard: usize) -> Result<Vec<SourceTensor>> {
    let (header_len, metadata) =
        SafeTensors::read_metadata(map).map_err(|e| Error::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let data_start = 8 + header_len;
    let tensors = metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let (begin, end) = info.data_offsets;
            let (dtype, shape) = (info.dtype, info.shape.clone());
            SourceTensor {
                name,
                dtype,
                shape,
                shard,
                start: data_start + begin,
                end: data_start + end,
            }
        })
        .collect();
    Ok(tensors)
}

fn map_file(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the file is opened read-only; like every mmap-based loader we assume nobody truncates
    // it while the export runs.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(map)
}

/// Reads and parses a JSON file, naming it in any error.
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
        .into()
    })
}
