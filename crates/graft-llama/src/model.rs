//! The Llama decoder: embeddings, decoder layers, final norm and LM head.

use burn::module::{Initializer, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::module::{embedding, linear};
use burn::tensor::{Int, Tensor};

use crate::attention::{Attention, AttentionConfig, LayerCache, Positions};
use crate::config::LlamaConfig;
use crate::mlp::{Mlp, MlpConfig};
use crate::norm::{RmsNorm, RmsNormConfig};
use crate::ops::FusedOps;
use crate::proj::{Proj, ProjConfig};
use crate::rope::Rope;

/// One decoder layer: pre-norm attention and pre-norm MLP, each with a residual connection.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    pub self_attn: Attention<B>,
    pub mlp: Mlp<B>,
    pub input_layernorm: RmsNorm<B>,
    pub post_attention_layernorm: RmsNorm<B>,
}

/// A Llama causal language model (HF `LlamaForCausalLM`). Field names follow the HF parameter
/// names; [`crate::keymap`] maps between the two.
#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    /// `[vocab, hidden]`.
    pub embed_tokens: Param<Tensor<B, 2>>,
    pub layers: Vec<DecoderLayer<B>>,
    pub norm: RmsNorm<B>,
    /// `None` when the head is tied to `embed_tokens`.
    pub lm_head: Option<Proj<B>>,
    #[module(skip)]
    pub rope: Rope,
    #[module(skip)]
    pub config: LlamaConfig,
}

/// Per-layer key/value cache for incremental decoding; empty at the start of a sequence.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<LayerCache<B>>>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a model with `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
        }
    }

    /// Number of positions already cached.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |l| l.k.dims()[2])
    }

    /// True when nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The per-layer caches (`None` for a layer not run yet).
    pub fn into_layers(self) -> Vec<Option<LayerCache<B>>> {
        self.layers
    }
}

/// Touches every parameter so that lazily initialised ones are drawn now.
struct Materialize;

impl<B: Backend> burn::module::ModuleVisitor<B> for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<burn::tensor::Tensor<B, D>>) {
        let _ = param.val();
    }
}

impl<B: Backend> Llama<B> {
    /// Draws every lazily initialised weight now, in module order, from the backend RNG as it is
    /// seeded at this moment. Without this each weight is drawn at its first use, from whatever
    /// state the (process-wide) RNG has reached by then.
    pub fn materialize(self) -> Self {
        self.visit(&mut Materialize);
        self
    }
}

impl LlamaConfig {
    /// Builds a model with lazily initialized random weights (HF init: normal(0, 0.02), norms 1).
    /// Loading replaces every weight before any is materialized; [`Llama::materialize`] draws
    /// them at once (a new model trained from a seed).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Llama<B> {
        let embed_tokens = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        }
        .init_with(
            [self.vocab_size, self.hidden_size],
            Some(self.hidden_size),
            Some(self.vocab_size),
            device,
        );
        let layers = (0..self.num_hidden_layers)
            .map(|_| self.init_layer(device))
            .collect();
        let lm_head = (!self.tie_word_embeddings)
            .then(|| ProjConfig::new(self.hidden_size, self.vocab_size).init(device));
        Llama {
            embed_tokens,
            layers,
            norm: self.init_norm(device),
            lm_head,
            rope: Rope::new(self.head_dim, self.rope_theta, self.rope_scaling.as_ref()),
            config: self.clone(),
        }
    }

    fn init_norm<B: Backend>(&self, device: &B::Device) -> RmsNorm<B> {
        RmsNormConfig::new(self.hidden_size)
            .with_eps(self.rms_norm_eps)
            .init(device)
    }

    fn init_layer<B: Backend>(&self, device: &B::Device) -> DecoderLayer<B> {
        DecoderLayer {
            self_attn: AttentionConfig::new(
                self.hidden_size,
                self.num_attention_heads,
                self.num_key_value_heads,
                self.head_dim,
            )
            .init(device),
            mlp: MlpConfig::new(self.hidden_size, self.intermediate_size).init(device),
            input_layernorm: self.init_norm(device),
            post_attention_layernorm: self.init_norm(device),
        }
    }
}

impl<B: FusedOps> DecoderLayer<B> {
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        pos: &Positions<B>,
        cache: Option<&mut Option<LayerCache<B>>>,
    ) -> Tensor<B, 3> {
        let normed = self.input_layernorm.forward(x.clone());
        let h = x + self.self_attn.forward(normed, pos, cache);
        h.clone() + self.mlp.forward(self.post_attention_layernorm.forward(h))
    }
}

impl<B: Backend> Llama<B> {
    /// The model's configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }
}

impl<B: FusedOps> Llama<B> {
    /// Logits for every position of `tokens` (a full causal pass from position 0).
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq]`
    /// - output: `[batch, seq, vocab]`
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let hidden = self.hidden_states(tokens, None);
        self.head(hidden)
    }

    /// Logits for `tokens` continuing the sequence held in `cache` (positions
    /// `cache.len()..cache.len() + seq`); appends their keys and values to `cache`.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq]`
    /// - output: `[batch, seq, vocab]`
    pub fn forward_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
    ) -> Tensor<B, 3> {
        let hidden = self.hidden_states(tokens, Some(cache));
        self.head(hidden)
    }

    /// Final hidden states (after the last norm), before the LM head; continues the sequence in
    /// `cache` (and extends it) when one is given.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn hidden_states(
        &self,
        tokens: Tensor<B, 2, Int>,
        mut cache: Option<&mut KvCache<B>>,
    ) -> Tensor<B, 3> {
        let [_, seq] = tokens.dims();
        let device = tokens.device();
        let offset = cache.as_deref().map_or(0, KvCache::len);
        if let Some(c) = cache.as_deref_mut() {
            c.layers.resize(self.layers.len(), None);
        }
        let heads = [
            self.config.num_attention_heads,
            self.config.num_key_value_heads,
        ];
        let window = self.config.sliding_window;
        let pos = Positions::new(
            &self.rope,
            offset,
            seq,
            heads,
            cache.is_some(),
            window,
            &device,
        );
        let mut x = embedding(self.embed_tokens.val(), tokens);
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = layer.forward(x, &pos, slot);
        }
        self.norm.forward(x)
    }

    /// Projects hidden states to vocabulary logits (`lm_head`, or `embed_tokens` when tied).
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`
    /// - output: `[batch, seq, vocab]`
    pub fn head(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        // A 2-D matmul: its weight gradient needs no reduction over a batch axis.
        let [batch, seq, width] = hidden.dims();
        let hidden = hidden.reshape([batch * seq, width]);
        let logits = match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => linear(hidden, self.embed_tokens.val().transpose(), None),
        };
        let [_, vocab] = logits.dims();
        logits.reshape([batch, seq, vocab])
    }
}
