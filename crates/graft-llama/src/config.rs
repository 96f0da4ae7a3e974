//! HuggingFace `config.json` in, internal [`LlamaConfig`] out.
//!
//! [`HfConfig`] mirrors `config.json` as Llama-3, 3.1 and 3.2 checkpoints on the Hub spell it
//! (`rope_theta` + `rope_scaling`, or the newer `rope_parameters` block; `torch_dtype` or `dtype`;
//! `eos_token_id` as a number or a list). [`ModelConfig`] keeps the raw JSON beside the parsed
//! config so export can write `config.json` back as it was read.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rope::Llama3Scaling;

/// A token id that `config.json` may spell as one number or a list of numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    /// All ids, in the order given.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// The RoPE block: `rope_scaling` (old spelling) or `rope_parameters` (new spelling, also holds
/// `rope_theta`). `type` is the pre-4.45 spelling of `rope_type`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HfRopeParams {
    pub rope_type: Option<String>,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub rope_theta: Option<f64>,
    pub factor: Option<f64>,
    pub low_freq_factor: Option<f64>,
    pub high_freq_factor: Option<f64>,
    pub original_max_position_embeddings: Option<usize>,
}

/// `config.json` of a Llama checkpoint, as HuggingFace writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfConfig {
    pub architectures: Option<Vec<String>>,
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<HfRopeParams>,
    pub rope_parameters: Option<HfRopeParams>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<TokenIds>,
    pub eos_token_id: Option<TokenIds>,
    pub pad_token_id: Option<TokenIds>,
    pub torch_dtype: Option<String>,
    pub dtype: Option<String>,
    pub hidden_act: Option<String>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    /// Mistral's sliding-window attention span (`null` or absent: full attention).
    #[serde(default)]
    pub sliding_window: Option<usize>,
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}

fn default_max_position_embeddings() -> usize {
    2048
}

/// The internal model configuration: everything the model needs, nothing it does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    /// Llama-3.1 frequency scaling; `None` for plain RoPE (Llama-3).
    pub rope_scaling: Option<Llama3Scaling>,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    /// End-of-sequence ids (Llama-3.1 instruct checkpoints list several).
    pub eos_token_ids: Vec<u32>,
    /// `torch_dtype` (or `dtype`) of the checkpoint, e.g. "bfloat16".
    pub torch_dtype: Option<String>,
    /// Mistral: each query attends to at most this many keys (itself included); `None` for Llama.
    #[serde(default)]
    pub sliding_window: Option<usize>,
}

/// A parsed `config.json`: the internal config plus the raw JSON it came from.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub llama: LlamaConfig,
    pub raw: serde_json::Value,
    /// Where it was read from (for error messages).
    pub path: PathBuf,
}

impl ModelConfig {
    /// Reads and validates a `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Parses `config.json` text; `path` is only used in error messages.
    pub fn from_json_str(text: &str, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let json_err = |e: serde_json::Error| Error::Json {
            path: path.clone(),
            message: e.to_string(),
        };
        let raw: serde_json::Value = serde_json::from_str(text).map_err(json_err)?;
        // From the text rather than `raw`, so errors carry line and column.
        let hf: HfConfig = serde_json::from_str(text).map_err(json_err)?;
        let llama = hf.to_llama(&path)?;
        Ok(Self { llama, raw, path })
    }

    /// The raw JSON with only the dtype changed (`torch_dtype`, and `dtype` where the file had it),
    /// for writing `config.json` back on export.
    pub fn raw_with_dtype(&self, dtype: &str) -> serde_json::Value {
        let mut raw = self.raw.clone();
        if let Some(map) = raw.as_object_mut() {
            let value = serde_json::Value::String(dtype.to_string());
            if map.contains_key("dtype") {
                map.insert("dtype".into(), value.clone());
            }
            if map.contains_key("torch_dtype") || !map.contains_key("dtype") {
                map.insert("torch_dtype".into(), value);
            }
        }
        raw
    }
}

impl HfConfig {
    /// Validates the HF config and converts it to [`LlamaConfig`]; `path` names the file in errors.
    pub fn to_llama(&self, path: &Path) -> Result<LlamaConfig> {
        self.check_supported(path)?;
        let invalid = |message: String| Error::InvalidConfig {
            path: path.to_path_buf(),
            message,
        };
        let heads = self.num_attention_heads;
        let kv_heads = self.num_key_value_heads.unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(invalid(format!(
                "num_attention_heads ({heads}) must be a positive multiple of num_key_value_heads ({kv_heads})"
            )));
        }
        let head_dim = match self.head_dim {
            Some(d) => d,
            None if self.hidden_size.is_multiple_of(heads) => self.hidden_size / heads,
            None => {
                return Err(invalid(format!(
                    "hidden_size ({}) is not divisible by num_attention_heads ({heads}) and head_dim is not given",
                    self.hidden_size
                )))
            }
        };
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(invalid(format!(
                "head_dim ({head_dim}) must be even and positive for RoPE"
            )));
        }
        let (rope_theta, rope_scaling) = self.rope(path)?;
        Ok(LlamaConfig {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            rms_norm_eps: self.rms_norm_eps,
            max_position_embeddings: self.max_position_embeddings,
            rope_theta,
            rope_scaling,
            tie_word_embeddings: self.tie_word_embeddings,
            bos_token_id: self
                .bos_token_id
                .as_ref()
                .and_then(|t| t.to_vec().first().copied()),
            eos_token_ids: self
                .eos_token_id
                .as_ref()
                .map(TokenIds::to_vec)
                .unwrap_or_default(),
            torch_dtype: self.torch_dtype.clone().or_else(|| self.dtype.clone()),
            sliding_window: self.window(path)?,
        })
    }

    fn check_supported(&self, path: &Path) -> Result<()> {
        let unsupported = |message: String| Error::UnsupportedConfig {
            path: path.to_path_buf(),
            message,
        };
        let arch = match self.model_type.as_deref() {
            Some("llama") => "LlamaForCausalLM",
            Some("mistral") => "MistralForCausalLM",
            other => {
                return Err(unsupported(format!(
                    "model_type is {other:?}, graft supports \"llama\" (Llama-3, 3.1, 3.2) and \"mistral\" (Mistral-7B-v0.1 architecture)"
                )))
            }
        };
        if let Some(archs) = &self.architectures {
            if let Some(bad) = archs.iter().find(|a| a.as_str() != arch) {
                return Err(unsupported(format!(
                    "architecture {bad} is not supported with model_type {:?}; graft supports {arch}",
                    self.model_type.as_deref().unwrap_or_default()
                )));
            }
        }
        if self.attention_bias || self.mlp_bias {
            return Err(unsupported(
                "attention_bias / mlp_bias = true: projections with biases are not supported"
                    .into(),
            ));
        }
        if let Some(act) = self.hidden_act.as_deref() {
            if act != "silu" {
                return Err(unsupported(format!(
                    "hidden_act {act:?}: only \"silu\" is supported"
                )));
            }
        }
        Ok(())
    }

    /// The sliding window of a Mistral config (Llama configs have none, whatever they say).
    fn window(&self, path: &Path) -> Result<Option<usize>> {
        if self.model_type.as_deref() != Some("mistral") {
            return Ok(None);
        }
        match self.sliding_window {
            Some(0) => Err(Error::InvalidConfig {
                path: path.to_path_buf(),
                message: "sliding_window must be positive (null for full attention)".into(),
            }),
            w => Ok(w),
        }
    }

    /// Resolves `(rope_theta, llama3 scaling)` from `rope_parameters` or `rope_theta` + `rope_scaling`.
    fn rope(&self, path: &Path) -> Result<(f64, Option<Llama3Scaling>)> {
        let block = self.rope_parameters.as_ref().or(self.rope_scaling.as_ref());
        let theta = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10_000.0);
        let Some(block) = block else {
            return Ok((theta, None));
        };
        let kind = block
            .rope_type
            .as_deref()
            .or(block.type_.as_deref())
            .unwrap_or("default");
        match kind {
            "default" => Ok((theta, None)),
            "llama3" => {
                let missing = |key: &str| Error::InvalidConfig {
                    path: path.to_path_buf(),
                    message: format!("rope_type \"llama3\" needs {key}"),
                };
                let scaling = Llama3Scaling {
                    factor: block.factor.ok_or_else(|| missing("factor"))?,
                    low_freq_factor: block
                        .low_freq_factor
                        .ok_or_else(|| missing("low_freq_factor"))?,
                    high_freq_factor: block
                        .high_freq_factor
                        .ok_or_else(|| missing("high_freq_factor"))?,
                    original_max_position_embeddings: block
                        .original_max_position_embeddings
                        .ok_or_else(|| missing("original_max_position_embeddings"))?,
                };
                Ok((theta, Some(scaling)))
            }
            other => Err(Error::UnsupportedConfig {
                path: path.to_path_buf(),
                message: format!(
                    "rope_type {other:?} is not supported (only \"default\" and \"llama3\")"
                ),
            }),
        }
    }
}

impl LlamaConfig {
    /// Number of query heads per key/value head (GQA group size).
    pub fn n_rep(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }
}
