//! Causal self-attention with grouped-query heads and RoPE, as HF Llama's eager attention.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor};

use crate::ops::{flash_attention, FlashOptions, FusedOps};
use crate::proj::{Proj, ProjConfig};
use crate::rope::{apply_rotary_rows, rotate_half_matrix, Rope};

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

/// What attention needs to know about the positions of one forward pass, built once per pass
/// and shared by all layers.
#[derive(Debug, Clone)]
pub struct Positions<B: Backend> {
    /// RoPE cosines, `[seq, head_dim]`.
    pub cos: Tensor<B, 2>,
    /// RoPE sines, `[seq, head_dim]`.
    pub sin: Tensor<B, 2>,
    /// Additive causal mask, `[seq, offset + seq]` (f32), for incremental decoding only: a pass
    /// without a KV cache attends through [`flash_attention`], which masks tile by tile.
    pub bias: Option<Tensor<B, 2>>,
    /// Sliding window (Mistral): query `i` sees keys `j` with `i − window < j ≤ i`.
    pub window: Option<usize>,
    /// `rotate_half` as a matrix, `[head_dim, head_dim]` (see [`rotate_half_matrix`]).
    pub rot: Tensor<B, 2>,
    /// `cos`/`sin` laid out for the query heads.
    pub q: RotaryRows<B>,
    /// `cos`/`sin` laid out for the key heads.
    pub kv: RotaryRows<B>,
}

/// RoPE tables repeated over `heads` heads and flattened, so that they multiply a
/// `[batch, seq · heads · head_dim]` view of the projections as one broadcast row.
///
/// # Shapes
/// - `cos`, `sin`: `[1, seq · heads · head_dim]`
#[derive(Debug, Clone)]
pub struct RotaryRows<B: Backend> {
    pub cos: Tensor<B, 2>,
    pub sin: Tensor<B, 2>,
}

impl<B: Backend> RotaryRows<B> {
    fn new(cos: &Tensor<B, 2>, sin: &Tensor<B, 2>, heads: usize) -> Self {
        let rows = |t: &Tensor<B, 2>| {
            let [seq, d] = t.dims();
            let repeated = t.clone().unsqueeze_dim::<3>(1).repeat_dim(1, heads);
            repeated.reshape([1, seq * heads * d])
        };
        Self {
            cos: rows(cos),
            sin: rows(sin),
        }
    }
}

impl<B: Backend> Positions<B> {
    /// Tables for queries at positions `offset..offset + seq`, for `heads` query heads and
    /// `kv_heads` key/value heads; with `cached`, also the causal mask over the cached keys;
    /// `window`: Mistral's sliding window (see [`causal_bias`]).
    pub fn new(
        rope: &Rope,
        offset: usize,
        seq: usize,
        [heads, kv_heads]: [usize; 2],
        cached: bool,
        window: Option<usize>,
        device: &B::Device,
    ) -> Self {
        let (cos, sin) = rope.tables::<B>(offset, seq, device);
        let [_, head_dim] = cos.dims();
        Self {
            q: RotaryRows::new(&cos, &sin, heads),
            kv: RotaryRows::new(&cos, &sin, kv_heads),
            rot: rotate_half_matrix(head_dim, device),
            cos,
            sin,
            bias: cached.then(|| causal_bias(offset, seq, window, device)),
            window,
        }
    }
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

impl<B: FusedOps> Attention<B> {
    /// Attends from `x` (positions `offset..offset+seq`, `offset` = cached length) to the cached
    /// keys/values plus `x`'s own, and appends `x`'s to the cache when one is given. With
    /// `cache = None` this is plain causal self-attention (`offset` = 0) through
    /// [`flash_attention`]: no `seq × seq` tensor is kept for backward.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`
    /// - `pos`: tables for positions `offset..offset+seq`
    /// - output: `[batch, seq, hidden]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        pos: &Positions<B>,
        cache: Option<&mut Option<LayerCache<B>>>,
    ) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        // Projections on `[batch · seq, hidden]`: 2-D matmuls, whose weight gradients need no
        // reduction over a batch axis. RoPE runs before the heads are moved to axis 1.
        let x = x.reshape([batch * seq, hidden]);
        let heads = |t: Tensor<B, 2>, n: usize| t.reshape([batch, seq, n, self.head_dim]);
        let q = heads(self.q_proj.forward(x.clone()), self.num_heads);
        let k = heads(self.k_proj.forward(x.clone()), self.num_kv_heads);
        let mut v = heads(self.v_proj.forward(x), self.num_kv_heads).swap_dims(1, 2);
        let q = apply_rotary_rows(q, &pos.q, &pos.rot).swap_dims(1, 2);
        let mut k = apply_rotary_rows(k, &pos.kv, &pos.rot).swap_dims(1, 2);
        let out = match cache {
            Some(slot) => {
                if let Some(prev) = slot.take() {
                    k = Tensor::cat(vec![prev.k, k], 2);
                    v = Tensor::cat(vec![prev.v, v], 2);
                }
                *slot = Some(LayerCache {
                    k: k.clone(),
                    v: v.clone(),
                });
                let offset = k.dims()[2] - seq;
                let bias = match &pos.bias {
                    Some(bias) => bias.clone(),
                    None => causal_bias(offset, seq, pos.window, &k.device()),
                };
                grouped_attention(q, k, v, &bias)
            }
            None => flash_attention(
                q,
                k,
                v,
                FlashOptions::causal(self.head_dim).with_window(pos.window),
            ),
        };
        let out = out
            .swap_dims(1, 2)
            .reshape([batch * seq, self.num_heads * self.head_dim]);
        self.o_proj.forward(out).reshape([batch, seq, hidden])
    }
}

/// `softmax(q·kᵀ / sqrt(d) + bias) · v` with GQA: query head `h` uses key/value head
/// `h / n_rep`, as HF's `repeat_kv`, without materializing repeated keys and values. `bias` is
/// the additive causal mask from [`causal_bias`]. Scores are taken to f32 for the softmax.
///
/// # Shapes
/// - `q`: `[batch, heads, seq, head_dim]`
/// - `k`, `v`: `[batch, kv_heads, seq_k, head_dim]`
/// - `bias`: `[seq, seq_k]` (f32)
/// - output: `[batch, heads, seq, head_dim]`
pub fn grouped_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    bias: &Tensor<B, 2>,
) -> Tensor<B, 4> {
    let [batch, heads, seq, head_dim] = q.dims();
    let [_, kv_heads, seq_k, _] = k.dims();
    let n_rep = heads / kv_heads;
    let dtype = q.dtype();
    // Heads h = kv·n_rep + r are consecutive, so a group's queries stack along the seq axis.
    let q = q.reshape([batch, kv_heads, n_rep * seq, head_dim]);
    let scale = (head_dim as f64).powf(-0.5);
    let scores = q.matmul(k.swap_dims(2, 3)) * scale;
    // The mask is added as one broadcast row over `[batch · heads, seq · seq_k]`, which the CPU
    // backend vectorizes (a `[seq, seq_k]` broadcast over 5 axes takes its scalar path).
    let scores = scores
        .cast(DType::F32)
        .reshape([batch * heads, seq * seq_k])
        + bias.clone().reshape([1, seq * seq_k]);
    let probs = softmax(scores.reshape([batch * heads * seq, seq_k]), 1).cast(dtype);
    let probs = probs.reshape([batch, kv_heads, n_rep * seq, seq_k]);
    probs.matmul(v).reshape([batch, heads, seq, head_dim])
}

/// Additive causal mask for queries at positions `offset..offset + seq` over keys
/// `0..offset + seq`: 0 where key `j ≤ offset + i`, −∞ elsewhere. With a sliding `window` W
/// (Mistral) also −∞ where `j ≤ offset + i − W`: a query sees W keys, itself included, by
/// absolute position (cached keys too). Built on the device, once per forward pass.
///
/// # Shapes
/// - output: `[seq, offset + seq]` (f32)
pub fn causal_bias<B: Backend>(
    offset: usize,
    seq: usize,
    window: Option<usize>,
    device: &B::Device,
) -> Tensor<B, 2> {
    let seq_k = offset + seq;
    let rows = Tensor::<B, 1, Int>::arange(offset as i64..seq_k as i64, device)
        .reshape([seq, 1])
        .expand([seq, seq_k]);
    let cols = Tensor::<B, 1, Int>::arange(0..seq_k as i64, device)
        .reshape([1, seq_k])
        .expand([seq, seq_k]);
    let mut masked = cols.clone().greater(rows.clone());
    if let Some(w) = window {
        masked = masked.bool_or(cols.add_scalar(w as i64).lower_equal(rows));
    }
    Tensor::<B, 2>::zeros([seq, seq_k], device)
        .cast(DType::F32)
        .mask_fill(masked, f32::NEG_INFINITY)
}
