//! Causal self-attention with grouped-query heads and RoPE, as HF Llama's eager attention.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, DType, Tensor, TensorData};

use crate::proj::{Proj, ProjConfig};
use crate::rope::apply_rotary;

/// Configuration of an [`Attention`] block.
#[derive(Config, Debug)]
pub struct AttentionConfig {
    pub hidden_size: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

/// `q_proj`, `k_proj`, `v_proj`, `o_proj` (no biases).
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub q_proj: Proj<B>,
    pub k_proj: Proj<B>,
    pub v_proj: Proj<B>,
    pub o_proj: Proj<B>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

/// Keys and values of earlier positions of one layer, for incremental decoding.
///
/// # Shapes
/// - `k`, `v`: `[batch, kv_heads, cached_seq, head_dim]` (after RoPE for `k`)
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    pub k: Tensor<B, 4>,
    pub v: Tensor<B, 4>,
}

impl AttentionConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Attention<B> {
        let q_out = self.num_heads * self.head_dim;
        let kv_out = self.num_kv_heads * self.head_dim;
        Attention {
            q_proj: ProjConfig::new(self.hidden_size, q_out).init(device),
            k_proj: ProjConfig::new(self.hidden_size, kv_out).init(device),
            v_proj: ProjConfig::new(self.hidden_size, kv_out).init(device),
            o_proj: ProjConfig::new(q_out, self.hidden_size).init(device),
            num_heads: self.num_heads,
            num_kv_heads: self.num_kv_heads,
            head_dim: self.head_dim,
        }
    }
}

impl<B: Backend> Attention<B> {
    /// Attends from `x` (positions `offset..offset+seq`) to the cached keys/values plus `x`'s own.
    /// With `cache = None` this is plain causal self-attention starting at position `offset`.
    /// The updated cache is written back when one is given.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`
    /// - `cos`, `sin`: `[seq, head_dim]` for positions `offset..offset+seq`
    /// - output: `[batch, seq, hidden]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 2>,
        sin: &Tensor<B, 2>,
        cache: Option<&mut Option<LayerCache<B>>>,
    ) -> Tensor<B, 3> {
        let [batch, seq, _] = x.dims();
        let heads =
            |t: Tensor<B, 3>, n: usize| t.reshape([batch, seq, n, self.head_dim]).swap_dims(1, 2);
        let q = heads(self.q_proj.forward(x.clone()), self.num_heads);
        let k = heads(self.k_proj.forward(x.clone()), self.num_kv_heads);
        let v = heads(self.v_proj.forward(x), self.num_kv_heads);
        let q = apply_rotary(q, cos, sin);
        let mut k = apply_rotary(k, cos, sin);
        let mut v = v;
        let mut offset = 0;
        if let Some(slot) = cache {
            if let Some(prev) = slot.take() {
                offset = prev.k.dims()[2];
                k = Tensor::cat(vec![prev.k, k], 2);
                v = Tensor::cat(vec![prev.v, v], 2);
            }
            *slot = Some(LayerCache {
                k: k.clone(),
                v: v.clone(),
            });
        }
        let out = grouped_attention(q, k, v, offset);
        let out = out
            .swap_dims(1, 2)
            .reshape([batch, seq, self.num_heads * self.head_dim]);
        self.o_proj.forward(out)
    }
}

/// `softmax(q·kᵀ / sqrt(d) + causal mask) · v` with GQA: query head `h` uses key/value head
/// `h / n_rep`, as HF's `repeat_kv`, without materializing repeated keys and values. Query `i`
/// sits at absolute position `offset + i` and sees keys `0..=offset + i`. Softmax runs in f32.
///
/// # Shapes
/// - `q`: `[batch, heads, seq, head_dim]`
/// - `k`, `v`: `[batch, kv_heads, seq_k, head_dim]`
/// - output: `[batch, heads, seq, head_dim]`
pub fn grouped_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    offset: usize,
) -> Tensor<B, 4> {
    let [batch, heads, seq, head_dim] = q.dims();
    let [_, kv_heads, seq_k, _] = k.dims();
    let n_rep = heads / kv_heads;
    let dtype = q.dtype();
    // Heads h = kv·n_rep + r are consecutive, so the group's queries stack along the seq axis.
    let q = q.reshape([batch, kv_heads, n_rep * seq, head_dim]);
    let scale = (head_dim as f64).powf(-0.5);
    let scores = q.matmul(k.swap_dims(2, 3)) * scale;
    let mask = causal_mask::<B>(n_rep, seq, seq_k, offset, &scores.device())
        .unsqueeze::<4>()
        .expand([batch, kv_heads, n_rep * seq, seq_k]);
    let scores = scores.cast(DType::F32).mask_fill(mask, f32::NEG_INFINITY);
    let probs = softmax(scores, 3).cast(dtype);
    probs.matmul(v).reshape([batch, heads, seq, head_dim])
}

/// `true` where query row `r·seq + i` must not see key `j`, i.e. `j > offset + i`.
///
/// # Shapes
/// - output: `[n_rep * seq, seq_k]`
fn causal_mask<B: Backend>(
    n_rep: usize,
    seq: usize,
    seq_k: usize,
    offset: usize,
    device: &B::Device,
) -> Tensor<B, 2, Bool> {
    let mut mask = Vec::with_capacity(n_rep * seq * seq_k);
    for _ in 0..n_rep {
        for i in 0..seq {
            mask.extend((0..seq_k).map(|j| j > offset + i));
        }
    }
    Tensor::from_data(TensorData::new(mask, [n_rep * seq, seq_k]), device)
}
