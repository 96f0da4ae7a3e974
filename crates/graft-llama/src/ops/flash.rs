//! FlashAttention-2 with tensor ops: the forward and backward passes over `tile × tile` blocks of
//! queries and keys, for any Burn backend.
//!
//! Query head `h = g·n_rep + r` reads key/value head `g`, so a group's `n_rep` query heads are
//! stacked along the row axis of one `[batch, kv_heads, n_rep·tile, head_dim]` block and multiply
//! the group's keys once: GQA without repeating keys and values, and the key/value gradients sum
//! over the group inside the matmul.
//!
//! Scores, probabilities, the log-sum-exp and all accumulators are f32; the matmuls run in the
//! inputs' dtype (bf16 on GPU), as FlashAttention does.

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Int, Tensor};

use super::float;

/// Rows of queries and keys per tile unless set: a `[batch, heads, 512, 512]` f32 buffer is 32 MiB
/// for Llama-3-8B's 32 heads.
pub const DEFAULT_TILE: usize = 512;

/// How [`forward`] and [`backward`] attend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlashOptions {
    /// Multiplies `q·kᵀ` (usually `head_dim^-0.5`).
    pub scale: f64,
    /// Sliding window: query `i` attends to keys `j` with `i − window < j ≤ i` (Mistral); `None`
    /// is plain causal attention.
    pub window: Option<usize>,
    /// Rows of queries and keys per tile. The largest buffer is
    /// `[batch, heads, tile, tile]` f32.
    pub tile: usize,
}

impl FlashOptions {
    /// Causal attention with [`DEFAULT_TILE`] and `scale = head_dim^-0.5`.
    pub fn causal(head_dim: usize) -> Self {
        Self {
            scale: (head_dim as f64).powf(-0.5),
            window: None,
            tile: DEFAULT_TILE,
        }
    }

    /// With a sliding window (`None` for none).
    pub fn with_window(self, window: Option<usize>) -> Self {
        Self { window, ..self }
    }

    /// With `tile` rows per tile (at least 1).
    pub fn with_tile(self, tile: usize) -> Self {
        Self {
            tile: tile.max(1),
            ..self
        }
    }
}

/// The blocks of one attention call: shapes, and which key tiles each query tile reads.
pub(crate) struct Tiling {
    batch: usize,
    kv_heads: usize,
    n_rep: usize,
    seq: usize,
    head_dim: usize,
    tile: usize,
    window: Option<usize>,
}

impl Tiling {
    fn new<B: Backend>(q: &Tensor<B, 4>, k: &Tensor<B, 4>, options: &FlashOptions) -> Self {
        let [batch, heads, seq, head_dim] = q.dims();
        let [_, kv_heads, seq_k, _] = k.dims();
        assert_eq!(
            seq, seq_k,
            "flash attention: queries and keys of one sequence"
        );
        assert_eq!(heads % kv_heads, 0, "flash attention: heads % kv_heads");
        Self {
            batch,
            kv_heads,
            n_rep: heads / kv_heads,
            seq,
            head_dim,
            tile: options.tile.clamp(1, seq.max(1)),
            window: options.window,
        }
    }

    fn tiles(&self) -> usize {
        self.seq.div_ceil(self.tile)
    }

    fn range(&self, t: usize) -> std::ops::Range<usize> {
        t * self.tile..((t + 1) * self.tile).min(self.seq)
    }

    /// Key tiles that query tile `i` attends to, its own (diagonal) tile first so that every row
    /// has a finite running maximum after the first tile.
    fn key_tiles(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let q0 = self.range(i).start;
        let first = match self.window {
            // the oldest key any row of this tile sees is q0 − window + 1
            Some(w) => (q0 + 1).saturating_sub(w) / self.tile,
            None => 0,
        };
        std::iter::once(i).chain((first..i).rev())
    }

    /// `[batch, kv_heads, n_rep, seq, x]` → the rows of query tile `t`,
    /// `[batch, kv_heads, n_rep·rows, x]`.
    fn q_block<B: Backend>(&self, q5: &Tensor<B, 5>, t: usize) -> Tensor<B, 4> {
        let r = self.range(t);
        let [b, g, n, _, x] = q5.dims();
        q5.clone()
            .narrow(3, r.start, r.len())
            .reshape([b, g, n * r.len(), x])
    }

    /// `[batch, kv_heads, n_rep·rows, x]` → `[batch, kv_heads, n_rep, rows, x]`.
    fn unstack<B: Backend>(&self, block: Tensor<B, 4>, rows: usize) -> Tensor<B, 5> {
        let [b, g, _, x] = block.dims();
        block.reshape([b, g, self.n_rep, rows, x])
    }

    /// The keys (or values) of tile `t`, `[batch, kv_heads, rows, head_dim]`.
    fn kv_block<B: Backend>(&self, kv: &Tensor<B, 4>, t: usize) -> Tensor<B, 4> {
        kv.clone()
            .narrow(2, self.range(t).start, self.range(t).len())
    }

    /// `q_i·k_jᵀ·scale` in f32, masked (−∞) where key `j` is in the future of query `i` or out of
    /// its window. `[batch, kv_heads, n_rep·rows_i, rows_j]`.
    fn scores<B: Backend>(
        &self,
        q: &Tensor<B, 4>,
        k: &Tensor<B, 4>,
        (i, j): (usize, usize),
        scale: f64,
    ) -> Tensor<B, 4> {
        let s = q.clone().matmul(k.clone().swap_dims(2, 3)).cast(DType::F32) * scale;
        let (qr, kr) = (self.range(i), self.range(j));
        let q_last = qr.end - 1;
        let out_of_window = self.window.is_some_and(|w| kr.start + w <= q_last);
        if i != j && !out_of_window {
            return s;
        }
        let [b, g, rows, cols] = s.dims();
        let bias = self.bias::<B>(qr, kr, &s.device());
        (s.reshape([b * g * self.n_rep, rows / self.n_rep, cols]) + bias.unsqueeze::<3>())
            .reshape([b, g, rows, cols])
    }

    /// Additive mask of queries `qr` over keys `kr`: 0 where allowed, −∞ elsewhere.
    fn bias<B: Backend>(
        &self,
        qr: std::ops::Range<usize>,
        kr: std::ops::Range<usize>,
        device: &B::Device,
    ) -> Tensor<B, 2> {
        let (rows, cols) = (qr.len(), kr.len());
        let qpos = Tensor::<B, 1, Int>::arange(qr.start as i64..qr.end as i64, device)
            .reshape([rows, 1])
            .expand([rows, cols]);
        let kpos = Tensor::<B, 1, Int>::arange(kr.start as i64..kr.end as i64, device)
            .reshape([1, cols])
            .expand([rows, cols]);
        let mut masked = kpos.clone().greater(qpos.clone());
        if let Some(w) = self.window {
            masked = masked.bool_or((qpos - kpos).greater_equal_elem(w as i64));
        }
        Tensor::<B, 2>::zeros([rows, cols], device)
            .cast(DType::F32)
            .mask_fill(masked, f32::NEG_INFINITY)
    }
}

/// The output and the per-row log-sum-exp of the scores (f32, what [`backward`] needs). The
/// output is a `[batch, heads, seq, head_dim]` view of a `[batch, seq, heads, head_dim]` buffer.
///
/// # Shapes
/// - `q`: `[batch, heads, seq, head_dim]`; `k`, `v`: `[batch, kv_heads, seq, head_dim]`
/// - output: `([batch, heads, seq, head_dim], [batch, kv_heads, n_rep, seq])`
pub fn forward<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    options: &FlashOptions,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let t = Tiling::new(&q, &k, options);
    let dtype = q.dtype();
    let q5 = q.reshape([t.batch, t.kv_heads, t.n_rep, t.seq, t.head_dim]);
    let (mut outs, mut lses) = (Vec::new(), Vec::new());
    for i in 0..t.tiles() {
        let rows = t.range(i).len();
        let qi = t.q_block(&q5, i);
        let (mut max, mut sum, mut acc): (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>);
        let mut tiles = t.key_tiles(i);
        let first = tiles.next().expect("the diagonal tile");
        let s = t.scores(&qi, &t.kv_block(&k, first), (i, first), options.scale);
        max = s.clone().max_dim(3);
        let p = (s - max.clone()).exp();
        sum = p.clone().sum_dim(3);
        acc = p.cast(dtype).matmul(t.kv_block(&v, first)).cast(DType::F32);
        for j in tiles {
            let s = t.scores(&qi, &t.kv_block(&k, j), (i, j), options.scale);
            let new_max = max.clone().max_pair(s.clone().max_dim(3));
            let p = (s - new_max.clone()).exp();
            let decay = (max - new_max.clone()).exp();
            sum = sum * decay.clone() + p.clone().sum_dim(3);
            acc = acc * decay + p.cast(dtype).matmul(t.kv_block(&v, j)).cast(DType::F32);
            max = new_max;
        }
        // seq-major, `[batch, rows, kv_heads, n_rep, head_dim]`: the caller's `o_proj` input
        // (`[batch · seq, heads · head_dim]`) is then a view of the output, not a copy
        let out_i = t.unstack((acc / sum.clone()).cast(dtype), rows);
        outs.push(out_i.permute([0, 3, 1, 2, 4]));
        lses.push(t.unstack(max + sum.log(), rows));
    }
    let heads = t.kv_heads * t.n_rep;
    let out = Tensor::cat(outs, 1)
        .reshape([t.batch, t.seq, heads, t.head_dim])
        .swap_dims(1, 2);
    let lse = Tensor::cat(lses, 3).reshape([t.batch, t.kv_heads, t.n_rep, t.seq]);
    (out, lse)
}

/// [`forward`] on primitives (the default of [`super::FusedOps::flash_attention_with_lse`]).
pub(crate) fn forward_primitive<B: Backend>(
    qkv: [FloatTensor<B>; 3],
    options: &FlashOptions,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let [q, k, v] = qkv.map(float::<B, 4>);
    let (out, lse) = forward(q, k, v, options);
    (out.into_primitive().tensor(), lse.into_primitive().tensor())
}

/// [`backward`] on primitives (the default of [`super::FusedOps::flash_attention_backward`]).
pub(crate) fn backward_primitive<B: Backend>(
    qkv: [FloatTensor<B>; 3],
    out: FloatTensor<B>,
    lse: FloatTensor<B>,
    grad: FloatTensor<B>,
    options: &FlashOptions,
) -> [FloatTensor<B>; 3] {
    let grads = backward::<B>(qkv.map(float), float(out), float(lse), float(grad), options);
    grads.map(|g| g.into_primitive().tensor())
}

/// Gradients of `q`, `k`, `v` from the output gradient, recomputing each tile's probabilities
/// from the log-sum-exp of [`forward`] (FlashAttention-2's backward).
///
/// # Shapes
/// - `q`, `out`, `grad`: `[batch, heads, seq, head_dim]`; `k`, `v`: `[batch, kv_heads, seq, head_dim]`
/// - `lse`: `[batch, kv_heads, n_rep, seq]` (f32)
/// - output: gradients shaped as `q`, `k`, `v`
pub fn backward<B: Backend>(
    [q, k, v]: [Tensor<B, 4>; 3],
    out: Tensor<B, 4>,
    lse: Tensor<B, 4>,
    grad: Tensor<B, 4>,
    options: &FlashOptions,
) -> [Tensor<B, 4>; 3] {
    let t = Tiling::new(&q, &k, options);
    let (dtype, kv_dtype) = (q.dtype(), k.dtype());
    let shape5 = [t.batch, t.kv_heads, t.n_rep, t.seq, t.head_dim];
    let q5 = q.reshape(shape5);
    let g5 = grad.reshape(shape5);
    // D_i = rowsum(dO ∘ O), f32
    let delta = (g5.clone().cast(DType::F32) * out.reshape(shape5).cast(DType::F32)).sum_dim(4);
    let lse = lse.unsqueeze_dim::<5>(4);
    let mut dk: Vec<Option<Tensor<B, 4>>> = vec![None; t.tiles()];
    let mut dv: Vec<Option<Tensor<B, 4>>> = vec![None; t.tiles()];
    let mut dq = Vec::new();
    let add = |slot: &mut Option<Tensor<B, 4>>, x: Tensor<B, 4>| {
        *slot = Some(match slot.take() {
            Some(acc) => acc + x,
            None => x,
        })
    };
    for i in 0..t.tiles() {
        let rows = t.range(i).len();
        let qi = t.q_block(&q5, i);
        let gi = t.q_block(&g5, i);
        let (lse_i, delta_i) = (t.q_block(&lse, i), t.q_block(&delta, i));
        let mut dqi: Option<Tensor<B, 4>> = None;
        for j in t.key_tiles(i) {
            let (kj, vj) = (t.kv_block(&k, j), t.kv_block(&v, j));
            let p = (t.scores(&qi, &kj, (i, j), options.scale) - lse_i.clone()).exp();
            let pt = p.clone().cast(dtype).swap_dims(2, 3);
            add(&mut dv[j], pt.matmul(gi.clone()).cast(DType::F32));
            let dp = gi.clone().matmul(vj.swap_dims(2, 3)).cast(DType::F32);
            let ds = (p * (dp - delta_i.clone()) * options.scale).cast(dtype);
            add(&mut dqi, ds.clone().matmul(kj).cast(DType::F32));
            add(
                &mut dk[j],
                ds.swap_dims(2, 3).matmul(qi.clone()).cast(DType::F32),
            );
        }
        dq.push(t.unstack(dqi.expect("the diagonal tile").cast(dtype), rows));
    }
    let heads = t.kv_heads * t.n_rep;
    let dq = Tensor::cat(dq, 3).reshape([t.batch, heads, t.seq, t.head_dim]);
    let gather = |parts: Vec<Option<Tensor<B, 4>>>| {
        let parts = parts
            .into_iter()
            .map(|p| p.expect("every key tile is read by its diagonal query tile"))
            .collect();
        Tensor::cat(parts, 2).cast(kv_dtype)
    };
    [dq, gather(dk), gather(dv)]
}
