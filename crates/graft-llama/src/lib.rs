//! graft-llama: Llama-3 in Burn — HF config, model, loss, safetensors loading, Hub resolution
//! and memory estimates.
//!
//! ```text
//! config.json ──ModelConfig──▶ LlamaConfig ──init──▶ Llama<B> ◀──load── *.safetensors
//!                                                      │  keymap: HF name ⇄ parameter
//!                                                      ▼
//!                                     forward(tokens) → logits → causal_lm_loss
//! ```
//!
//! Entry points: [`hub::resolve`] (local dir or cached Hub repo) / [`hub::download`], [`load()`]
//! (config + weights → model), [`Llama::forward`] / [`Llama::forward_cached`], [`causal_lm_loss`],
//! the key map ([`param_keys`], [`Llama::param`], [`Llama::set_param`], [`Llama::grad`]) and
//! [`memory`] for size reports.

pub mod attention;
pub mod backward;
pub mod batch;
pub mod config;
pub mod error;
pub mod export;
pub mod generate;
pub mod hub;
pub mod keymap;
pub mod load;
pub mod lora;
pub mod loss;
pub mod memory;
pub mod mlp;
pub mod model;
pub mod norm;
pub mod ops;
pub mod proj;
pub mod rope;

pub use backward::{loss_and_grads, BackwardOptions};
pub use config::{HfConfig, LlamaConfig, ModelConfig};
pub use error::{Error, Result};
pub use keymap::{
    checkpoint_name, hf_params, param_keys, LayerParam, ParamKey, ParamKind, ParamTensor,
};
pub use load::{load, load_weights, weight_files, WeightFiles};
pub use lora::{apply_lora, LoraAdapter, LoraConfig};
pub use loss::{causal_lm_loss, causal_lm_loss_sum, IGNORE_INDEX};
pub use memory::{DTypeSize, MemoryEstimate, ParamCounts};
pub use model::{DecoderLayer, KvCache, Llama};
pub use ops::{FusedOps, TrainBackend};
pub use proj::{Proj, ProjConfig};
pub use rope::Llama3Scaling;
