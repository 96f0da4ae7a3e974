//! The training recipe: one TOML file describing model, data, training, LoRA and evaluation.
//!
//! ```toml
//! name = "biomed-llama3-8b"
//! [model]
//! base = "meta-llama/Llama-3.1-8B"   # local HF dir or Hub id; or a [model.init] table instead
//! dtype = "bf16"
//! [data]                             # graft_data::DataConfig
//! seq_len = 4096
//! [[data.sources]]
//! name = "web"
//! path = "data/web/*.jsonl"
//! [train]
//! micro_batch_size = 4
//! grad_accum = 16
//! steps = 4000
//! lr = 1e-5
//! ```
//! Unknown keys are errors naming the key. `--set train.lr=2e-5` style overrides are applied
//! before validation (see [`crate::overrides`]); relative paths are resolved against the recipe's
//! directory and must exist.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::overrides::apply_overrides;

/// A whole recipe file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Run name (used for the default run directory).
    pub name: String,
    /// The model to train.
    pub model: ModelSection,
    /// The data: corpora, mixing, packing.
    pub data: graft_data::DataConfig,
    /// Optimisation and loop settings.
    pub train: TrainSection,
    /// LoRA settings, used when `train.method = "lora"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraSection>,
    /// Evaluation settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<EvalSection>,
}

/// `[model]`: where the weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A local HF checkpoint directory or a Hub id (`owner/name`). Absent: random init from `init`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Architecture for a randomly initialised model (when `base` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<ModelInit>,
    /// Tokenizer file; defaults to the base model's `tokenizer.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<PathBuf>,
    /// Compute/weight dtype.
    #[serde(default)]
    pub dtype: ModelDtype,
}

/// Weight/compute precision of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelDtype {
    /// float32.
    F32,
    /// bfloat16.
    #[default]
    Bf16,
    /// float16.
    F16,
}

/// `[model.init]`: a Llama architecture for random initialisation (HF `config.json` names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInit {
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (GQA).
    pub num_key_value_heads: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Maximum sequence length.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_norm_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Share the embedding and LM-head weights.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<u32>,
}

/// `train.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Update every parameter.
    #[default]
    Full,
    /// Freeze the base and train low-rank adapters.
    Lora,
}

/// `[train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Full fine-tuning or LoRA.
    #[serde(default)]
    pub method: Method,
    /// Sequences per micro-batch.
    pub micro_batch_size: usize,
    /// Micro-batches per optimizer step.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Number of optimizer steps (or give `total_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Training tokens; steps = ceil(total_tokens / tokens per step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// Peak learning rate.
    pub lr: f64,
    /// Final lr as a fraction of the peak.
    #[serde(default = "default_min_lr_ratio")]
    pub min_lr_ratio: f64,
    /// Linear warmup steps.
    #[serde(default)]
    pub warmup_steps: u64,
    /// AdamW (β₁, β₂).
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    /// AdamW epsilon.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Decoupled weight decay (tensors with ≥ 2 dims only).
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Global gradient-norm clip; 0 disables clipping.
    #[serde(default = "one_f")]
    pub clip_norm: f64,
    /// Seed of the training RNG (init, dropout).
    #[serde(default)]
    pub seed: u64,
    /// Save a checkpoint every this many steps (0: only at the end).
    #[serde(default)]
    pub save_every: u64,
    /// Checkpoints to keep (0: all).
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
    /// Evaluate every this many steps (0: only at the end).
    #[serde(default)]
    pub eval_every: u64,
    /// Batches per source and evaluation.
    #[serde(default = "default_eval_batches")]
    pub eval_batches: usize,
    /// Log scalars every this many steps.
    #[serde(default = "default_log_every")]
    pub log_every: u64,
    /// Stop after this many consecutive non-finite steps.
    #[serde(default = "default_max_nonfinite")]
    pub max_nonfinite_steps: u32,
    /// Storage precision of the AdamW moments: "f32" (default) or "bf16" (half the memory; the
    /// update itself is computed in f32).
    #[serde(default = "default_state_dtype")]
    pub optimizer_state_dtype: String,
    /// Recompute activations in the backward pass to save memory.
    #[serde(default)]
    pub activation_checkpointing: bool,
    /// Optimizer-state sharding over data-parallel ranks (ZeRO, see `graft_train::zero`): 0 keeps
    /// everything replicated, 1 shards the f32 master weights and AdamW moments, 2 also the
    /// gradients (reduce-scattered in f32).
    #[serde(default)]
    pub zero_stage: u8,
    /// Device, e.g. "cpu" or "cuda:0".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Several devices for data parallelism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<String>>,
    /// Nodes (machines) of a multi-node data-parallel run, each with the same devices
    /// (`graft train --nodes N` sets it); 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<usize>,
}

/// `[lora]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSection {
    /// Adapter rank.
    pub rank: usize,
    /// Scale numerator (scale = alpha / rank).
    pub alpha: f64,
    /// Dropout on the adapter input.
    #[serde(default)]
    pub dropout: f64,
    /// Projections to adapt, e.g. ["q_proj", "v_proj"].
    pub target_modules: Vec<String>,
}

/// `[eval]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Multiple-choice task files.
    #[serde(default)]
    pub tasks: Vec<PathBuf>,
}

fn one() -> usize {
    1
}
fn one_f() -> f64 {
    1.0
}
fn default_max_pos() -> usize {
    8192
}
fn default_norm_eps() -> f64 {
    1e-5
}
fn default_rope_theta() -> f64 {
    500000.0
}
fn default_min_lr_ratio() -> f64 {
    0.1
}
fn default_betas() -> [f64; 2] {
    [0.9, 0.95]
}
fn default_eps() -> f64 {
    1e-8
}
fn default_weight_decay() -> f64 {
    0.1
}
fn default_keep_last() -> usize {
    3
}
fn default_eval_batches() -> usize {
    16
}
fn default_log_every() -> u64 {
    10
}
fn default_max_nonfinite() -> u32 {
    5
}
fn default_state_dtype() -> String {
    "f32".into()
}

impl TrainSection {
    /// `[train]` for `steps` optimizer steps of `micro_batch_size` sequences at peak learning
    /// rate `lr`, every other key at its default (for recipes built in code).
    pub fn new(micro_batch_size: usize, steps: u64, lr: f64) -> Self {
        TrainSection {
            method: Method::default(),
            micro_batch_size,
            grad_accum: one(),
            steps: Some(steps),
            total_tokens: None,
            lr,
            min_lr_ratio: default_min_lr_ratio(),
            warmup_steps: 0,
            betas: default_betas(),
            eps: default_eps(),
            weight_decay: default_weight_decay(),
            clip_norm: one_f(),
            seed: 0,
            save_every: 0,
            keep_last: default_keep_last(),
            eval_every: 0,
            eval_batches: default_eval_batches(),
            log_every: default_log_every(),
            zero_stage: 0,
            max_nonfinite_steps: default_max_nonfinite(),
            optimizer_state_dtype: default_state_dtype(),
            activation_checkpointing: false,
            device: None,
            devices: None,
            nodes: None,
        }
    }
}

impl ModelInit {
    /// A Llama architecture of these sizes; context 8192, RMSNorm eps 1e-5, RoPE θ 500000, untied
    /// embeddings and no BOS/EOS ids unless set afterwards.
    pub fn llama(
        hidden_size: usize,
        intermediate_size: usize,
        num_hidden_layers: usize,
        (num_attention_heads, num_key_value_heads): (usize, usize),
        vocab_size: usize,
    ) -> Self {
        ModelInit {
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            vocab_size,
            max_position_embeddings: default_max_pos(),
            rms_norm_eps: default_norm_eps(),
            rope_theta: default_rope_theta(),
            tie_word_embeddings: false,
            bos_token_id: None,
            eos_token_id: None,
        }
    }
}

impl Recipe {
    /// Read, override (`key=value` specs), validate and resolve the recipe at `path`.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Recipe> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io("reading", path, e))?;
        Self::from_str_at(&text, path, overrides)
    }

    /// Like [`Recipe::load`] with the text given; `path` locates relative paths and names errors.
    pub fn from_str_at(text: &str, path: &Path, overrides: &[String]) -> Result<Recipe> {
        let err = |message: String| TrainError::Recipe {
            path: path.to_path_buf(),
            message,
        };
        let mut recipe: Recipe = if overrides.is_empty() {
            toml::from_str(text).map_err(|e| err(e.to_string()))?
        } else {
            let mut value: toml::Table = toml::from_str(text).map_err(|e| err(e.to_string()))?;
            apply_overrides(&mut value, overrides)?;
            let merged = toml::to_string(&value).map_err(|e| err(e.to_string()))?;
            toml::from_str(&merged)
                .map_err(|e| err(format!("after --set {}: {e}", overrides.join(" "))))?
        };
        recipe.validate().map_err(err)?;
        recipe.resolve_paths(path.parent().unwrap_or(Path::new(".")))?;
        Ok(recipe)
    }

    /// Validate a recipe built in code and resolve its relative paths against the directory of
    /// `path`, as [`Recipe::load`] does for a file (`path` also names the recipe in errors).
    pub fn resolved(mut self, path: &Path) -> Result<Recipe> {
        self.validate().map_err(|message| TrainError::Recipe {
            path: path.to_path_buf(),
            message,
        })?;
        self.resolve_paths(path.parent().unwrap_or(Path::new(".")))?;
        Ok(self)
    }

    /// The resolved recipe as TOML (for the run directory's copy).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self)
            .map_err(|e| TrainError::Config(format!("cannot serialise recipe: {e}")))
    }

    /// Tokens consumed by one optimizer step.
    pub fn tokens_per_step(&self) -> u64 {
        (self.train.micro_batch_size
            * self.train.grad_accum
            * self.data_parallel()
            * self.data.seq_len) as u64
    }

    /// Data-parallel replicas: the length of `train.devices` (what `graft train --devices` sets,
    /// else 1) times `train.nodes`. `train.grad_accum` is per replica, so the global batch is
    /// `micro_batch_size × grad_accum × replicas` sequences (torchtune's and torchtitan's convention).
    pub fn data_parallel(&self) -> usize {
        self.train.devices.as_ref().map_or(1, |d| d.len().max(1))
            * self.train.nodes.unwrap_or(1).max(1)
    }

    /// Number of optimizer steps: `train.steps`, or `total_tokens` / tokens per step, rounded up.
    pub fn total_steps(&self) -> u64 {
        match (self.train.steps, self.train.total_tokens) {
            (Some(s), _) => s,
            (None, Some(t)) => t.div_ceil(self.tokens_per_step().max(1)),
            (None, None) => 0,
        }
    }
}

impl Recipe {
    /// Check values that serde cannot: ranges and combinations. Returns a message naming the key.
    fn validate(&self) -> std::result::Result<(), String> {
        let t = &self.train;
        match (&self.model.base, &self.model.init) {
            (None, None) => {
                return Err("[model] needs `base` (a checkpoint) or a [model.init] table".into())
            }
            (Some(_), Some(_)) => {
                return Err("[model] has both `base` and [model.init]; keep one".into())
            }
            _ => {}
        }
        match (t.steps, t.total_tokens) {
            (None, None) => return Err("[train] needs `steps` or `total_tokens`".into()),
            (Some(_), Some(_)) => {
                return Err("[train] has both `steps` and `total_tokens`; keep one".into())
            }
            (Some(0), _) | (_, Some(0)) => {
                return Err("train.steps / train.total_tokens must be > 0".into())
            }
            _ => {}
        }
        let checks: [(bool, &str); 9] = [
            (t.micro_batch_size > 0, "train.micro_batch_size must be > 0"),
            (
                t.grad_accum > 0 && t.nodes != Some(0),
                "train.grad_accum and train.nodes must be > 0",
            ),
            (
                t.lr > 0.0 && t.lr.is_finite(),
                "train.lr must be a positive number",
            ),
            (
                (0.0..=1.0).contains(&t.min_lr_ratio),
                "train.min_lr_ratio must be in [0, 1]",
            ),
            (
                t.betas.iter().all(|b| (0.0..1.0).contains(b)),
                "train.betas must be in [0, 1)",
            ),
            (t.eps > 0.0, "train.eps must be > 0"),
            (
                t.weight_decay >= 0.0 && t.clip_norm >= 0.0,
                "train.weight_decay and train.clip_norm must be >= 0",
            ),
            (
                t.log_every > 0 && t.max_nonfinite_steps > 0,
                "train.log_every and train.max_nonfinite_steps must be > 0",
            ),
            (
                matches!(t.optimizer_state_dtype.as_str(), "f32" | "bf16"),
                "train.optimizer_state_dtype must be \"f32\" or \"bf16\"",
            ),
        ];
        if let Some((_, msg)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(msg.to_string());
        }
        if t.zero_stage > 2 {
            return Err(format!(
                "train.zero_stage = {}: use 0 (replicated), 1 (optimizer state sharded) or 2 (also gradients)",
                t.zero_stage
            ));
        }
        if t.device.is_some() && t.devices.is_some() {
            return Err("[train] has both `device` and `devices`; keep one".into());
        }
        if t.method == Method::Lora && self.lora.is_none() {
            return Err("train.method = \"lora\" needs a [lora] table".into());
        }
        if let Some(l) = &self.lora {
            if l.rank == 0 || !(0.0..1.0).contains(&l.dropout) || l.target_modules.is_empty() {
                return Err(
                    "[lora] needs rank > 0, dropout in [0, 1) and at least one target module"
                        .into(),
                );
            }
        }
        self.data.validate().map_err(|e| format!("[data]: {e}"))
    }

    /// Make relative paths absolute against `base` and check that named files exist.
    fn resolve_paths(&mut self, base: &Path) -> Result<()> {
        let resolve = |key: &str, p: &mut PathBuf| -> Result<()> {
            if p.is_relative() {
                *p = base.join(&*p);
            }
            if !p.exists() {
                return Err(TrainError::MissingPath {
                    key: key.to_string(),
                    path: p.clone(),
                });
            }
            Ok(())
        };
        if let Some(b) = &mut self.model.base {
            let as_path = base.join(&*b);
            let looks_local = b.starts_with('.') || b.starts_with('/') || as_path.exists();
            if looks_local {
                let mut p = PathBuf::from(&*b);
                resolve("model.base", &mut p)?;
                *b = p.to_string_lossy().into_owned();
            } else if !is_hub_id(b) {
                return Err(TrainError::MissingPath {
                    key: "model.base".into(),
                    path: as_path,
                });
            }
        }
        if let Some(tok) = &mut self.model.tokenizer {
            resolve("model.tokenizer", tok)?;
        }
        if let Some(eval) = &mut self.eval {
            for (i, task) in eval.tasks.iter_mut().enumerate() {
                resolve(&format!("eval.tasks[{i}]"), task)?;
            }
        }
        self.data.resolve_paths(base);
        if let Some(tok) = &self.data.tokenizer {
            if !tok.exists() {
                return Err(TrainError::MissingPath {
                    key: "data.tokenizer".into(),
                    path: tok.clone(),
                });
            }
        }
        Ok(())
    }
}

/// `owner/name` with Hub-legal characters.
fn is_hub_id(s: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    matches!(s.split_once('/'), Some((a, b)) if ok(a) && ok(b))
}

#[cfg(test)]
mod tests;
