//! The one map between HuggingFace parameter names and the model's parameters, used both ways:
//! loading sets parameters by HF name, export and optimizer checkpoints read them by HF name.
//! Weights keep HF layout (`[out, in]`, rotate-half RoPE), so no tensor is permuted or transposed.

use burn::module::{Param, ParamId};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use crate::model::Llama;

/// A parameter of one decoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerParam {
    QProj,
    KProj,
    VProj,
    OProj,
    GateProj,
    UpProj,
    DownProj,
    InputLayernorm,
    PostAttentionLayernorm,
}

impl LayerParam {
    /// All of them, in HF's order within a layer.
    pub const ALL: [LayerParam; 9] = [
        LayerParam::QProj,
        LayerParam::KProj,
        LayerParam::VProj,
        LayerParam::OProj,
        LayerParam::GateProj,
        LayerParam::UpProj,
        LayerParam::DownProj,
        LayerParam::InputLayernorm,
        LayerParam::PostAttentionLayernorm,
    ];

    /// The name after `model.layers.{i}.`.
    pub fn suffix(self) -> &'static str {
        match self {
            LayerParam::QProj => "self_attn.q_proj.weight",
            LayerParam::KProj => "self_attn.k_proj.weight",
            LayerParam::VProj => "self_attn.v_proj.weight",
            LayerParam::OProj => "self_attn.o_proj.weight",
            LayerParam::GateProj => "mlp.gate_proj.weight",
            LayerParam::UpProj => "mlp.up_proj.weight",
            LayerParam::DownProj => "mlp.down_proj.weight",
            LayerParam::InputLayernorm => "input_layernorm.weight",
            LayerParam::PostAttentionLayernorm => "post_attention_layernorm.weight",
        }
    }
}

/// What a parameter is, for size reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    Embedding,
    Attention,
    Mlp,
    Norm,
    LmHead,
}

/// A model parameter, named independently of any file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKey {
    EmbedTokens,
    Layer(usize, LayerParam),
    Norm,
    LmHead,
}

impl ParamKey {
    /// The HF tensor name, e.g. `model.layers.3.self_attn.q_proj.weight`.
    pub fn hf_name(&self) -> String {
        match self {
            ParamKey::EmbedTokens => "model.embed_tokens.weight".into(),
            ParamKey::Layer(i, p) => format!("model.layers.{i}.{}", p.suffix()),
            ParamKey::Norm => "model.norm.weight".into(),
            ParamKey::LmHead => "lm_head.weight".into(),
        }
    }

    /// The key of an HF tensor name, if it names a Llama parameter (layer index not checked).
    pub fn parse(name: &str) -> Option<ParamKey> {
        match name {
            "model.embed_tokens.weight" => return Some(ParamKey::EmbedTokens),
            "model.norm.weight" => return Some(ParamKey::Norm),
            "lm_head.weight" => return Some(ParamKey::LmHead),
            _ => {}
        }
        let rest = name.strip_prefix("model.layers.")?;
        let (index, suffix) = rest.split_once('.')?;
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let layer = index.parse().ok()?;
        let param = LayerParam::ALL.into_iter().find(|p| p.suffix() == suffix)?;
        Some(ParamKey::Layer(layer, param))
    }

    /// The key of the Burn module path of a [`Llama`] parameter (`embed_tokens`,
    /// `layers.3.self_attn.q_proj.weight`, `norm.weight`, `lm_head.weight`): the names graft's
    /// optimizer checkpoints used before they took HF names.
    pub fn from_module_path(path: &str) -> Option<ParamKey> {
        match path {
            "embed_tokens" => Some(ParamKey::EmbedTokens),
            "norm.weight" => Some(ParamKey::Norm),
            "lm_head.weight" => Some(ParamKey::LmHead),
            _ => match ParamKey::parse(&format!("model.{path}"))? {
                key @ ParamKey::Layer(..) => Some(key),
                _ => None,
            },
        }
    }

    /// The key of an HF name that exists in a model of `config` (lm_head only when untied).
    pub fn lookup(name: &str, config: &LlamaConfig) -> Result<ParamKey> {
        match ParamKey::parse(name) {
            Some(key) if key.exists_in(config) => Ok(key),
            _ => Err(Error::UnknownParam {
                name: name.to_string(),
                layers: config.num_hidden_layers,
            }),
        }
    }

    /// Whether a model of `config` has this parameter.
    pub fn exists_in(&self, config: &LlamaConfig) -> bool {
        match self {
            ParamKey::Layer(i, _) => *i < config.num_hidden_layers,
            ParamKey::LmHead => !config.tie_word_embeddings,
            _ => true,
        }
    }

    /// The HF shape of the parameter (`[out, in]` for projections).
    pub fn shape(&self, c: &LlamaConfig) -> Vec<usize> {
        let q = c.num_attention_heads * c.head_dim;
        let kv = c.num_key_value_heads * c.head_dim;
        match self {
            ParamKey::EmbedTokens | ParamKey::LmHead => vec![c.vocab_size, c.hidden_size],
            ParamKey::Norm => vec![c.hidden_size],
            ParamKey::Layer(_, p) => match p {
                LayerParam::QProj => vec![q, c.hidden_size],
                LayerParam::KProj | LayerParam::VProj => vec![kv, c.hidden_size],
                LayerParam::OProj => vec![c.hidden_size, q],
                LayerParam::GateProj | LayerParam::UpProj => {
                    vec![c.intermediate_size, c.hidden_size]
                }
                LayerParam::DownProj => vec![c.hidden_size, c.intermediate_size],
                LayerParam::InputLayernorm | LayerParam::PostAttentionLayernorm => {
                    vec![c.hidden_size]
                }
            },
        }
    }

    /// What the parameter is, for size reports.
    pub fn kind(&self) -> ParamKind {
        match self {
            ParamKey::EmbedTokens => ParamKind::Embedding,
            ParamKey::Norm => ParamKind::Norm,
            ParamKey::LmHead => ParamKind::LmHead,
            ParamKey::Layer(_, p) => match p {
                LayerParam::QProj | LayerParam::KProj | LayerParam::VProj | LayerParam::OProj => {
                    ParamKind::Attention
                }
                LayerParam::GateProj | LayerParam::UpProj | LayerParam::DownProj => ParamKind::Mlp,
                _ => ParamKind::Norm,
            },
        }
    }
}

/// Every parameter of a model of `config`, in HF order (embeddings, layers, final norm, head).
pub fn param_keys(config: &LlamaConfig) -> Vec<ParamKey> {
    let mut keys = vec![ParamKey::EmbedTokens];
    for i in 0..config.num_hidden_layers {
        keys.extend(LayerParam::ALL.iter().map(|p| ParamKey::Layer(i, *p)));
    }
    keys.push(ParamKey::Norm);
    if !config.tie_word_embeddings {
        keys.push(ParamKey::LmHead);
    }
    keys
}

/// The checkpoint name of the [`Llama`] parameter at Burn module path `path`: its HF name
/// (`model.layers.0.self_attn.q_proj.weight`), or for a LoRA adapter matrix
/// (`layers.0.self_attn.q_proj.lora.lora_a`) its PEFT name
/// (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`), as `model.safetensors` and
/// `adapter_model.safetensors` name them. `None` when `path` is not a Llama parameter's.
pub fn checkpoint_name(path: &str) -> Option<String> {
    use crate::lora::{peft_name, LoraPart};
    let adapter = [(".lora.lora_a", LoraPart::A), (".lora.lora_b", LoraPart::B)]
        .into_iter()
        .find_map(|(suffix, part)| Some((path.strip_suffix(suffix)?, part)));
    match adapter {
        Some((proj, part)) => match ParamKey::from_module_path(&format!("{proj}.weight"))? {
            ParamKey::Layer(i, p) if !crate::lora::target_name(p).is_empty() => {
                Some(peft_name(i, p, part))
            }
            _ => None,
        },
        None => ParamKey::from_module_path(path).map(|k| k.hf_name()),
    }
}

/// `(hf_name, expected_shape)` of every parameter of a model of `config`, in HF order.
pub fn hf_params(config: &LlamaConfig) -> Vec<(String, Vec<usize>)> {
    param_keys(config)
        .into_iter()
        .map(|k| (k.hf_name(), k.shape(config)))
        .collect()
}

/// A parameter's value: norms are rank 1, everything else rank 2.
#[derive(Debug, Clone)]
pub enum ParamTensor<B: Backend> {
    D1(Tensor<B, 1>),
    D2(Tensor<B, 2>),
}

impl<B: Backend> ParamTensor<B> {
    /// The tensor's shape.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            ParamTensor::D1(t) => t.dims().to_vec(),
            ParamTensor::D2(t) => t.dims().to_vec(),
        }
    }

    /// Copies the values to host memory.
    pub fn into_data(self) -> TensorData {
        match self {
            ParamTensor::D1(t) => t.into_data(),
            ParamTensor::D2(t) => t.into_data(),
        }
    }
}

/// Borrowed parameter of either rank.
enum ParamRef<'a, B: Backend> {
    D1(&'a Param<Tensor<B, 1>>),
    D2(&'a Param<Tensor<B, 2>>),
}

/// Mutably borrowed parameter of either rank.
enum ParamMut<'a, B: Backend> {
    D1(&'a mut Param<Tensor<B, 1>>),
    D2(&'a mut Param<Tensor<B, 2>>),
}

/// The field `key` names: this and [`param_mut`] are the whole HF name → field map.
fn param_ref<B: Backend>(model: &Llama<B>, key: ParamKey) -> Option<ParamRef<'_, B>> {
    use LayerParam as L;
    let layer = match key {
        ParamKey::EmbedTokens => return Some(ParamRef::D2(&model.embed_tokens)),
        ParamKey::Norm => return Some(ParamRef::D1(&model.norm.weight)),
        ParamKey::LmHead => return model.lm_head.as_ref().map(|h| ParamRef::D2(&h.weight)),
        ParamKey::Layer(i, p) => (model.layers.get(i)?, p),
    };
    let (l, p) = layer;
    Some(match p {
        L::QProj => ParamRef::D2(&l.self_attn.q_proj.weight),
        L::KProj => ParamRef::D2(&l.self_attn.k_proj.weight),
        L::VProj => ParamRef::D2(&l.self_attn.v_proj.weight),
        L::OProj => ParamRef::D2(&l.self_attn.o_proj.weight),
        L::GateProj => ParamRef::D2(&l.mlp.gate_proj.weight),
        L::UpProj => ParamRef::D2(&l.mlp.up_proj.weight),
        L::DownProj => ParamRef::D2(&l.mlp.down_proj.weight),
        L::InputLayernorm => ParamRef::D1(&l.input_layernorm.weight),
        L::PostAttentionLayernorm => ParamRef::D1(&l.post_attention_layernorm.weight),
    })
}

/// Mutable twin of [`param_ref`]; keep the two in step.
fn param_mut<B: Backend>(model: &mut Llama<B>, key: ParamKey) -> Option<ParamMut<'_, B>> {
    use LayerParam as L;
    let layer = match key {
        ParamKey::EmbedTokens => return Some(ParamMut::D2(&mut model.embed_tokens)),
        ParamKey::Norm => return Some(ParamMut::D1(&mut model.norm.weight)),
        ParamKey::LmHead => return model.lm_head.as_mut().map(|h| ParamMut::D2(&mut h.weight)),
        ParamKey::Layer(i, p) => (model.layers.get_mut(i)?, p),
    };
    let (l, p) = layer;
    Some(match p {
        L::QProj => ParamMut::D2(&mut l.self_attn.q_proj.weight),
        L::KProj => ParamMut::D2(&mut l.self_attn.k_proj.weight),
        L::VProj => ParamMut::D2(&mut l.self_attn.v_proj.weight),
        L::OProj => ParamMut::D2(&mut l.self_attn.o_proj.weight),
        L::GateProj => ParamMut::D2(&mut l.mlp.gate_proj.weight),
        L::UpProj => ParamMut::D2(&mut l.mlp.up_proj.weight),
        L::DownProj => ParamMut::D2(&mut l.mlp.down_proj.weight),
        L::InputLayernorm => ParamMut::D1(&mut l.input_layernorm.weight),
        L::PostAttentionLayernorm => ParamMut::D1(&mut l.post_attention_layernorm.weight),
    })
}

/// Replaces a parameter's value, keeping its id, device placement and `require_grad` setting.
fn replace<B: Backend, const D: usize>(param: &mut Param<Tensor<B, D>>, value: Tensor<B, D>) {
    let id = param.id;
    *param = param.clone().transform_for_load(value, id);
}

impl<B: Backend> Llama<B> {
    fn unknown(&self, key: ParamKey) -> Error {
        Error::UnknownParam {
            name: key.hf_name(),
            layers: self.layers.len(),
        }
    }

    /// The value of the parameter `key` (`Err` when the model has no such parameter, e.g.
    /// `lm_head` of a tied model).
    pub fn param(&self, key: ParamKey) -> Result<ParamTensor<B>> {
        match param_ref(self, key).ok_or_else(|| self.unknown(key))? {
            ParamRef::D1(p) => Ok(ParamTensor::D1(p.val())),
            ParamRef::D2(p) => Ok(ParamTensor::D2(p.val())),
        }
    }

    /// The value of the parameter with HF name `name`.
    pub fn param_by_name(&self, name: &str) -> Result<ParamTensor<B>> {
        self.param(ParamKey::lookup(name, self.config())?)
    }

    /// The burn [`ParamId`] of `key` (what burn optimizers key their state by).
    pub fn param_id(&self, key: ParamKey) -> Result<ParamId> {
        match param_ref(self, key).ok_or_else(|| self.unknown(key))? {
            ParamRef::D1(p) => Ok(p.id),
            ParamRef::D2(p) => Ok(p.id),
        }
    }

    /// Every parameter with its HF name, in HF order.
    pub fn named_params(&self) -> Vec<(String, ParamTensor<B>)> {
        param_keys(self.config())
            .into_iter()
            .filter_map(|k| self.param(k).ok().map(|t| (k.hf_name(), t)))
            .collect()
    }

    /// Sets parameter `key` from host data (any float dtype; converted to the device's float
    /// dtype). The shape must be the HF shape; the parameter keeps its id and `require_grad`.
    pub fn set_param_data(&mut self, key: ParamKey, data: TensorData) -> Result<()> {
        let expected = key.shape(self.config());
        let actual = data.shape.to_vec();
        if actual != expected {
            return Err(Error::ParamShape {
                name: key.hf_name(),
                expected,
                actual,
            });
        }
        let unknown = self.unknown(key);
        match param_mut(self, key).ok_or(unknown)? {
            ParamMut::D1(p) => {
                let device = p.lazy_device();
                replace(p, Tensor::from_data(data, &device));
            }
            ParamMut::D2(p) => {
                let device = p.lazy_device();
                replace(p, Tensor::from_data(data, &device));
            }
        }
        Ok(())
    }

    /// Sets parameter `key` from a tensor of the right rank and HF shape.
    pub fn set_param(&mut self, key: ParamKey, value: ParamTensor<B>) -> Result<()> {
        let expected = key.shape(self.config());
        let actual = value.shape();
        if actual != expected {
            return Err(Error::ParamShape {
                name: key.hf_name(),
                expected,
                actual,
            });
        }
        let unknown = self.unknown(key);
        match (param_mut(self, key).ok_or(unknown)?, value) {
            (ParamMut::D1(p), ParamTensor::D1(t)) => replace(p, t),
            (ParamMut::D2(p), ParamTensor::D2(t)) => replace(p, t),
            // Same shape implies same rank, so this arm is never taken.
            _ => {
                return Err(Error::ParamShape {
                    name: key.hf_name(),
                    expected: key.shape(self.config()),
                    actual: vec![],
                })
            }
        }
        Ok(())
    }
}

impl<B: AutodiffBackend> Llama<B> {
    /// The gradient of parameter `key` in `grads` (`None` if it did not take part or is frozen).
    pub fn grad(
        &self,
        key: ParamKey,
        grads: &B::Gradients,
    ) -> Option<ParamTensor<B::InnerBackend>> {
        match param_ref(self, key)? {
            ParamRef::D1(p) => p.val().grad(grads).map(ParamTensor::D1),
            ParamRef::D2(p) => p.val().grad(grads).map(ParamTensor::D2),
        }
    }
}
