//! LoRA: low-rank adapters beside the frozen projections of a [`Llama`], as PEFT defines them.
//!
//! An adapted projection computes `y = x·Wᵀ + (dropout(x)·Aᵀ·Bᵀ)·(alpha/r)` with `A: [r, in]`
//! (kaiming-uniform, `a = √5`, i.e. uniform in `±1/√in`) and `B: [out, r]` (zeros), so a fresh
//! adapter leaves the model's output unchanged. [`apply_lora`] freezes every base parameter
//! (`require_grad = false`: no gradient, no optimizer state) and attaches adapters to the targeted
//! projections of every layer; [`merge_lora`] folds them back (`W + scale·B·A`). Adapters are
//! kept in f32 whatever the base's dtype, as PEFT does by default (`autocast_adapter_dtype`).
//!
//! Adapter tensors are named as PEFT names them in `adapter_model.safetensors`
//! (`base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`); [`peft`] reads and writes
//! PEFT adapter directories and [`export`] merges an adapter into its base checkpoint on disk.

mod adapter;
mod dropout;
pub mod export;
pub mod peft;

use burn::module::{Module, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use crate::keymap::LayerParam;
use crate::model::{DecoderLayer, Llama};
use crate::proj::Proj;

pub use adapter::LoraAdapter;
pub use dropout::{dropout, seed_dropout};
pub use peft::{
    is_adapter_dir, load_adapter, load_adapter_weights, read_adapter_config, resolve_base,
    save_adapter, AdapterConfig, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE,
};

/// The projections LoRA can target, with their PEFT module names.
pub const TARGETS: [(LayerParam, &str); 7] = [
    (LayerParam::QProj, "q_proj"),
    (LayerParam::KProj, "k_proj"),
    (LayerParam::VProj, "v_proj"),
    (LayerParam::OProj, "o_proj"),
    (LayerParam::GateProj, "gate_proj"),
    (LayerParam::UpProj, "up_proj"),
    (LayerParam::DownProj, "down_proj"),
];

/// LoRA hyperparameters (PEFT's `r`, `lora_alpha`, `lora_dropout`, `target_modules`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank `r` of the adapters.
    pub rank: usize,
    /// Scale numerator: the adapter output is multiplied by `alpha / rank`.
    pub alpha: f64,
    /// Dropout probability on the adapter's input (training only).
    pub dropout: f64,
    /// The adapted projections, in [`TARGETS`] order, without repeats.
    pub targets: Vec<LayerParam>,
}

impl LoraConfig {
    /// Builds a config from PEFT-style module names (`q_proj`, ..., `down_proj`, or `all-linear`
    /// for all seven), checking every value.
    pub fn new(rank: usize, alpha: f64, dropout: f64, modules: &[String]) -> Result<Self> {
        let bad = |message: String| Error::Lora { message };
        if rank == 0 {
            return Err(bad("rank must be at least 1".into()));
        }
        if !alpha.is_finite() || alpha <= 0.0 {
            return Err(bad(format!("alpha must be a positive number, got {alpha}")));
        }
        if !(0.0..1.0).contains(&dropout) {
            return Err(bad(format!("dropout must be in [0, 1), got {dropout}")));
        }
        let targets = parse_targets(modules)?;
        Ok(Self {
            rank,
            alpha,
            dropout,
            targets,
        })
    }

    /// `alpha / rank`, the factor applied to the adapter output.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// The PEFT module names of the targets (`["q_proj", "v_proj"]`).
    pub fn target_names(&self) -> Vec<&'static str> {
        self.targets.iter().map(|&p| target_name(p)).collect()
    }
}

/// Parses module names into targets, in [`TARGETS`] order; unknown names are errors.
pub fn parse_targets(modules: &[String]) -> Result<Vec<LayerParam>> {
    if modules.is_empty() {
        return Err(Error::Lora {
            message: "no target modules given".into(),
        });
    }
    let mut chosen = [false; TARGETS.len()];
    for name in modules {
        if name == "all-linear" {
            chosen = [true; TARGETS.len()];
            continue;
        }
        let Some(i) = TARGETS.iter().position(|(_, n)| n == name) else {
            let known: Vec<&str> = TARGETS.iter().map(|(_, n)| *n).collect();
            return Err(Error::Lora {
                message: format!(
                    "unknown target module {name:?}; use any of {} or \"all-linear\"",
                    known.join(", ")
                ),
            });
        };
        chosen[i] = true;
    }
    Ok(TARGETS
        .iter()
        .zip(chosen)
        .filter_map(|((p, _), on)| on.then_some(*p))
        .collect())
}

/// The PEFT module name of a projection (`q_proj`); norms have none and give `""`.
pub fn target_name(param: LayerParam) -> &'static str {
    TARGETS
        .iter()
        .find(|(p, _)| *p == param)
        .map_or("", |(_, n)| n)
}

/// Which of an adapter's two matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoraPart {
    /// `lora_A`, `[r, in]`.
    A,
    /// `lora_B`, `[out, r]`.
    B,
}

/// PEFT's name of an adapter tensor, e.g.
/// `base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight`.
pub fn peft_name(layer: usize, target: LayerParam, part: LoraPart) -> String {
    let module = target.suffix().trim_end_matches(".weight");
    let part = match part {
        LoraPart::A => "lora_A",
        LoraPart::B => "lora_B",
    };
    format!("base_model.model.model.layers.{layer}.{module}.{part}.weight")
}

/// The inverse of [`peft_name`] (layer index not range-checked).
pub fn parse_peft_name(name: &str) -> Option<(usize, LayerParam, LoraPart)> {
    let rest = name.strip_prefix("base_model.model.model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let layer = layer.parse().ok()?;
    let (module, part) = if let Some(m) = rest.strip_suffix(".lora_A.weight") {
        (m, LoraPart::A)
    } else {
        (rest.strip_suffix(".lora_B.weight")?, LoraPart::B)
    };
    let (target, _) = TARGETS
        .iter()
        .find(|(p, _)| p.suffix().trim_end_matches(".weight") == module)?;
    Some((layer, *target, part))
}

/// The shape of an adapter tensor of `target` in a model of `config`.
pub fn adapter_shape(
    config: &LlamaConfig,
    target: LayerParam,
    rank: usize,
    part: LoraPart,
) -> [usize; 2] {
    let shape = crate::keymap::ParamKey::Layer(0, target).shape(config);
    match part {
        LoraPart::A => [rank, shape[1]],
        LoraPart::B => [shape[0], rank],
    }
}

/// Number of trainable (adapter) parameters of a LoRA run on a model of `config`:
/// `rank · (in + out)` per adapted projection and layer.
pub fn trainable_param_count(config: &LlamaConfig, lora: &LoraConfig) -> u64 {
    crate::memory::lora_param_count(config, lora.rank as u64, &lora.targets)
}

/// The projection of `layer` that `param` names (`None` for the norms).
pub fn proj<B: Backend>(layer: &DecoderLayer<B>, param: LayerParam) -> Option<&Proj<B>> {
    use LayerParam as L;
    Some(match param {
        L::QProj => &layer.self_attn.q_proj,
        L::KProj => &layer.self_attn.k_proj,
        L::VProj => &layer.self_attn.v_proj,
        L::OProj => &layer.self_attn.o_proj,
        L::GateProj => &layer.mlp.gate_proj,
        L::UpProj => &layer.mlp.up_proj,
        L::DownProj => &layer.mlp.down_proj,
        L::InputLayernorm | L::PostAttentionLayernorm => return None,
    })
}

/// Mutable twin of [`proj`].
pub fn proj_mut<B: Backend>(
    layer: &mut DecoderLayer<B>,
    param: LayerParam,
) -> Option<&mut Proj<B>> {
    use LayerParam as L;
    Some(match param {
        L::QProj => &mut layer.self_attn.q_proj,
        L::KProj => &mut layer.self_attn.k_proj,
        L::VProj => &mut layer.self_attn.v_proj,
        L::OProj => &mut layer.self_attn.o_proj,
        L::GateProj => &mut layer.mlp.gate_proj,
        L::UpProj => &mut layer.mlp.up_proj,
        L::DownProj => &mut layer.mlp.down_proj,
        L::InputLayernorm | L::PostAttentionLayernorm => return None,
    })
}

/// Freezes every parameter of `model` and attaches fresh adapters (`A` kaiming-uniform from
/// `seed`, `B` zeros) to the targeted projections of every layer. Fails if the model already has
/// adapters. The output of the returned model equals the input model's.
pub fn apply_lora<B: Backend>(model: Llama<B>, cfg: &LoraConfig, seed: u64) -> Result<Llama<B>> {
    if has_adapters(&model) {
        return Err(Error::Lora {
            message: "the model already has LoRA adapters".into(),
        });
    }
    let mut model = model.no_grad();
    for (i, layer) in model.layers.iter_mut().enumerate() {
        for &target in &cfg.targets {
            let Some(p) = proj_mut(layer, target) else {
                continue;
            };
            let [out, inp] = p.dims();
            let stream = seed ^ ((i as u64) << 32 | target_index(target) as u64);
            let a = kaiming_uniform(cfg.rank, inp, stream);
            let b = TensorData::new(vec![0.0f32; out * cfg.rank], [out, cfg.rank]);
            let device = p.weight.lazy_device();
            p.lora = Some(LoraAdapter::from_values(
                a,
                b,
                cfg.alpha,
                cfg.dropout,
                &device,
            ));
        }
    }
    Ok(model)
}

/// Whether any projection of `model` carries an adapter.
pub fn has_adapters<B: Backend>(model: &Llama<B>) -> bool {
    model.layers.iter().any(|l| {
        TARGETS
            .iter()
            .any(|(t, _)| proj(l, *t).is_some_and(|p| p.lora.is_some()))
    })
}

/// The LoRA settings of the adapters attached to `model` (`None` without adapters). Rank, alpha
/// and dropout are those of the first adapter; targets are all projections adapted in any layer.
pub fn lora_config<B: Backend>(model: &Llama<B>) -> Option<LoraConfig> {
    let mut first: Option<&LoraAdapter<B>> = None;
    let mut targets = Vec::new();
    for (target, _) in TARGETS {
        for layer in &model.layers {
            if let Some(adapter) = proj(layer, target).and_then(|p| p.lora.as_ref()) {
                first.get_or_insert(adapter);
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
        }
    }
    let adapter = first?;
    Some(LoraConfig {
        rank: adapter.rank(),
        alpha: adapter.alpha,
        dropout: adapter.dropout.prob,
        targets,
    })
}

/// Every adapter tensor of `model` with its PEFT name, layer by layer, `A` before `B`.
pub fn adapter_tensors<B: Backend>(model: &Llama<B>) -> Vec<(String, Tensor<B, 2>)> {
    let mut out = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        for (target, _) in TARGETS {
            if let Some(adapter) = proj(layer, target).and_then(|p| p.lora.as_ref()) {
                out.push((peft_name(i, target, LoraPart::A), adapter.lora_a.val()));
                out.push((peft_name(i, target, LoraPart::B), adapter.lora_b.val()));
            }
        }
    }
    out
}

/// Folds every adapter into its projection (`W ← W + scale·B·A`, in the weight's dtype) and
/// removes it. Weights keep their ids and `require_grad` settings.
pub fn merge_lora<B: Backend>(mut model: Llama<B>) -> Llama<B> {
    for layer in model.layers.iter_mut() {
        for (target, _) in TARGETS {
            let Some(p) = proj_mut(layer, target) else {
                continue;
            };
            let Some(adapter) = p.lora.take() else {
                continue;
            };
            let w = p.weight.val();
            let merged = (w.clone() + adapter.delta().cast(w.dtype())).detach();
            let id: ParamId = p.weight.id;
            p.weight = p.weight.clone().transform_for_load(merged, id);
        }
    }
    model
}

pub(crate) fn target_index(target: LayerParam) -> usize {
    TARGETS.iter().position(|(p, _)| *p == target).unwrap_or(0)
}

/// PEFT's `kaiming_uniform_(a=√5)` for a `[rows, fan_in]` matrix: uniform in `±1/√fan_in`, drawn
/// from a SplitMix64 stream so that the same seed gives the same adapter on every backend.
fn kaiming_uniform(rows: usize, fan_in: usize, seed: u64) -> TensorData {
    let bound = 1.0 / (fan_in as f64).sqrt();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let values: Vec<f32> = (0..rows * fan_in)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
            ((2.0 * unit - 1.0) * bound) as f32
        })
        .collect();
    TensorData::new(values, [rows, fan_in])
}
