//! FlashAttention-2 on the CPU backend: the same algorithm as [`super::flash`] (tiles of queries
//! and keys, an online softmax in forward, probabilities recomputed from the log-sum-exp in
//! backward), written on f32 slices with `gemm` for the tile products and rayon over tiles.
//!
//! The tensor-op version builds every tile out of Burn ops, and on the CPU their strided
//! element-by-element copies and the mask's broadcast add cost more than the matmuls. Here a
//! masked entry is never computed (each row's visible key range is known), q/k/v are read
//! through their strides (the projections' `[batch, seq, heads, head_dim]` layout, no transposed
//! copy), and outputs are written in that layout too, so that the `o_proj` input needs no copy.
//!
//! - Forward: one task per `(batch, kv head, query block)`; the group's `n_rep` query heads are
//!   stacked as rows, so each key tile is multiplied once per group (GQA without repeating).
//! - Backward: two passes, each free of write conflicts: `dK`, `dV` per `(batch, kv head, key
//!   block)`, then `dQ` per `(batch, kv head, query block)`. The second recomputes the scores
//!   and `dO·Vᵀ` (2 of the 7 tile products) instead of summing per-thread `dQ` copies, so the
//!   memory stays linear in `seq` and the result does not depend on the number of threads.
//!
//! Buffers per task: `n_rep·QUERY_BLOCK × tile` f32 (scores/probabilities and their gradient)
//! and the block's packed rows; nothing of size `seq × seq`.

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use super::cpu_ce::{exp, row_max};
use super::flash::FlashOptions;

/// Query rows per forward task and per `dQ` task (at most the tile).
const QUERY_BLOCK: usize = 64;
/// Key rows per `dK`/`dV` task (at most the tile).
const KEY_BLOCK: usize = 64;

/// Whether the CPU kernel takes these inputs (f32, rank 4); others take the tensor-op path.
pub(super) fn supports(tensors: &[&FlexTensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.layout().num_dims() == 4)
}

/// A rank-4 f32 tensor read through its strides, each `[.., .., .., head_dim]` row contiguous.
struct View<'a> {
    data: &'a [f32],
    offset: usize,
    strides: [usize; 3],
}

impl<'a> View<'a> {
    /// `t` as a view; a tensor whose last axis is not contiguous (or with negative strides) is
    /// copied to a contiguous one first, held in `keep`.
    fn new(t: &'a FlexTensor, keep: &'a mut Option<FlexTensor>) -> Self {
        let l = t.layout();
        let s = l.strides();
        let usable = s[3] == 1 && s.iter().all(|&x| x >= 0);
        let t = if usable {
            t
        } else {
            keep.insert(t.to_contiguous())
        };
        let s = t.layout().strides();
        Self {
            data: t.storage::<f32>(),
            offset: t.layout().start_offset(),
            strides: [s[0] as usize, s[1] as usize, s[2] as usize],
        }
    }

    /// Element offset of row `(b, h, i)`.
    fn at(&self, b: usize, h: usize, i: usize) -> usize {
        self.offset + b * self.strides[0] + h * self.strides[1] + i * self.strides[2]
    }

    fn row(&self, b: usize, h: usize, i: usize, d: usize) -> &[f32] {
        let at = self.at(b, h, i);
        &self.data[at..at + d]
    }

    /// Pointer to row `(b, h, i)` and the row stride along the sequence, for `gemm`.
    fn ptr(&self, b: usize, h: usize, i: usize) -> (*const f32, isize) {
        (
            self.data[self.at(b, h, i)..].as_ptr(),
            self.strides[2] as isize,
        )
    }
}

/// Shapes and visibility of one attention call.
#[derive(Clone, Copy)]
struct Dims {
    batch: usize,
    kv_heads: usize,
    n_rep: usize,
    seq: usize,
    d: usize,
    tile: usize,
    scale: f32,
    window: Option<usize>,
}

impl Dims {
    fn new(q: &FlexTensor, k: &FlexTensor, options: &FlashOptions) -> Self {
        let qs = q.layout().shape();
        let ks = k.layout().shape();
        assert_eq!(
            qs[2], ks[2],
            "flash attention: queries and keys of one sequence"
        );
        assert_eq!(qs[1] % ks[1], 0, "flash attention: heads % kv_heads");
        Self {
            batch: qs[0],
            kv_heads: ks[1],
            n_rep: qs[1] / ks[1],
            seq: qs[2],
            d: qs[3],
            tile: options.tile.clamp(1, qs[2].max(1)),
            scale: options.scale as f32,
            window: options.window,
        }
    }

    fn heads(&self) -> usize {
        self.kv_heads * self.n_rep
    }

    /// Keys visible from query `i`: `lo..=i`.
    fn keys_of(&self, i: usize) -> std::ops::Range<usize> {
        let lo = self.window.map_or(0, |w| (i + 1).saturating_sub(w));
        lo..i + 1
    }

    /// Queries that see key `j`: `j..hi`.
    fn queries_of(&self, j: usize) -> std::ops::Range<usize> {
        let hi = self.window.map_or(self.seq, |w| (j + w).min(self.seq));
        j..hi
    }

    /// `(batch, kv head, block start)` for blocks of `block` rows.
    fn tasks(&self, block: usize) -> Vec<(usize, usize, usize)> {
        let mut tasks = Vec::new();
        for b in 0..self.batch {
            for g in 0..self.kv_heads {
                tasks.extend((0..self.seq).step_by(block.max(1)).map(|i| (b, g, i)));
            }
        }
        tasks
    }
}

/// A pointer that tasks write disjoint rows through.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: every task writes rows no other task writes (see the callers).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// `dst[m × n] (= or +=) lhs[m × k] · rhs[k × n]`, each given by pointer, row and column stride.
unsafe fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: (*mut f32, isize, isize),
    accumulate: bool,
    lhs: (*const f32, isize, isize),
    rhs: (*const f32, isize, isize),
) {
    gemm::gemm(
        m,
        n,
        k,
        dst.0,
        dst.2,
        dst.1,
        accumulate,
        lhs.0,
        lhs.2,
        lhs.1,
        rhs.0,
        rhs.2,
        rhs.1,
        1.0f32,
        1.0f32,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// The rows `i0..i0 + rows` of the group's `n_rep` heads of `view`, stacked: `[n_rep·rows, d]`.
fn pack(view: &View, dims: &Dims, (b, g): (usize, usize), i0: usize, rows: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(dims.n_rep * rows * dims.d);
    for r in 0..dims.n_rep {
        for i in i0..i0 + rows {
            out.extend_from_slice(view.row(b, g * dims.n_rep + r, i, dims.d));
        }
    }
    out
}

/// A zeroed `[batch, seq, heads, d]` f32 buffer that tasks fill through an [`Out`] pointer.
struct SeqMajor {
    data: Vec<f32>,
    heads: usize,
}

impl SeqMajor {
    fn new(dims: &Dims, heads: usize) -> Self {
        Self {
            data: vec![0f32; dims.batch * dims.seq * heads * dims.d],
            heads,
        }
    }

    fn ptr(&mut self) -> Out {
        Out(self.data.as_mut_ptr())
    }

    /// The buffer as a `[batch, heads, seq, d]` tensor (a transposed view).
    fn into_tensor(self, dims: &Dims) -> FlexTensor {
        let shape = [dims.batch, dims.seq, self.heads, dims.d];
        FlexTensor::from_data(TensorData::new(self.data, shape)).transpose(1, 2)
    }
}

/// Offset of row `(b, h, i)` in a `[batch, seq, heads, d]` buffer.
fn seq_major_at(dims: &Dims, heads: usize, (b, h, i): (usize, usize, usize)) -> usize {
    ((b * dims.seq + i) * heads + h) * dims.d
}

/// Forward: the output (`[batch, heads, seq, d]`, a view of a `[batch, seq, heads, d]` buffer)
/// and the per-row log-sum-exp of the scaled scores (`[batch, kv_heads, n_rep, seq]`).
pub(super) fn forward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    options: &FlashOptions,
) -> (FlexTensor, FlexTensor) {
    let dims = Dims::new(q, k, options);
    let (mut kq, mut kk, mut kv) = (None, None, None);
    let (qv, kvw, vv) = (
        View::new(q, &mut kq),
        View::new(k, &mut kk),
        View::new(v, &mut kv),
    );
    let mut out = SeqMajor::new(&dims, dims.heads());
    let out_ptr = out.ptr();
    let mut lse = vec![0f32; dims.batch * dims.heads() * dims.seq];
    let lse_ptr = Out(lse.as_mut_ptr());
    let block = QUERY_BLOCK.min(dims.tile);
    dims.tasks(block).into_par_iter().for_each(|(b, g, i0)| {
        let rows = block.min(dims.seq - i0);
        forward_block(&dims, [&qv, &kvw, &vv], (b, g, i0, rows), out_ptr, lse_ptr);
    });
    let lse = TensorData::new(lse, [dims.batch, dims.kv_heads, dims.n_rep, dims.seq]);
    (out.into_tensor(&dims), FlexTensor::from_data(lse))
}

/// One query block of one group: online softmax over key tiles.
fn forward_block(
    dims: &Dims,
    [q, k, v]: [&View; 3],
    (b, g, i0, rows): (usize, usize, usize, usize),
    out: Out,
    lse: Out,
) {
    let (d, m) = (dims.d, dims.n_rep * rows);
    let qs = pack(q, dims, (b, g), i0, rows);
    let mut acc = vec![0f32; m * d];
    let mut max = vec![f32::NEG_INFINITY; m];
    let mut sum = vec![0f64; m];
    let keys = dims.keys_of(i0).start..i0 + rows;
    let mut s = vec![0f32; m * dims.tile.min(keys.len())];
    for j0 in keys.clone().step_by(dims.tile) {
        let cols = dims.tile.min(keys.end - j0);
        let (kp, ks) = k.ptr(b, g, j0);
        // S = Q · Kᵀ: [m, cols]
        unsafe {
            gemm(
                (m, cols, d),
                (s.as_mut_ptr(), cols as isize, 1),
                false,
                (qs.as_ptr(), d as isize, 1),
                (kp, 1, ks),
            )
        };
        for r in 0..m {
            let i = i0 + r % rows;
            let row = &mut s[r * cols..(r + 1) * cols];
            let Some(vis) = visible(dims.keys_of(i), j0, cols) else {
                row.fill(0.0);
                continue;
            };
            let new_max = max[r].max(row_max(&row[vis.clone()]) * dims.scale);
            let decay = exp(max[r] - new_max);
            row[..vis.start].fill(0.0);
            let tile_sum = exp_sum(&mut row[vis.clone()], dims.scale, new_max);
            row[vis.end..].fill(0.0);
            if max[r] != new_max {
                sum[r] *= f64::from(decay);
                acc[r * d..(r + 1) * d].iter_mut().for_each(|a| *a *= decay);
            }
            sum[r] += f64::from(tile_sum);
            max[r] = new_max;
        }
        let (vp, vs) = v.ptr(b, g, j0);
        // O += P · V: [m, d]
        unsafe {
            gemm(
                (m, d, cols),
                (acc.as_mut_ptr(), d as isize, 1),
                true,
                (s.as_ptr(), cols as isize, 1),
                (vp, vs, 1),
            )
        };
    }
    for r in 0..m {
        let (h, i) = (g * dims.n_rep + r / rows, i0 + r % rows);
        let inv = (1.0 / sum[r]) as f32;
        let at = seq_major_at(dims, dims.heads(), (b, h, i));
        // SAFETY: row (b, h, i) of the output and of the lse belong to this task alone.
        unsafe {
            let dst = std::slice::from_raw_parts_mut(out.0.add(at), d);
            for (o, a) in dst.iter_mut().zip(&acc[r * d..(r + 1) * d]) {
                *o = a * inv;
            }
            *lse.0.add((b * dims.heads() + h) * dims.seq + i) = max[r] + sum[r].ln() as f32;
        }
    }
}

/// `x ← exp(x·scale − shift)` over `row`; returns the sum (16 f32 lanes, so that it vectorises).
fn exp_sum(row: &mut [f32], scale: f32, shift: f32) -> f32 {
    const LANES: usize = 16;
    let mut lanes = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (s, x) in lanes.iter_mut().zip(c.iter_mut()) {
            *x = exp(*x * scale - shift);
            *s += *x;
        }
    }
    let mut rest = 0f32;
    for x in chunks.into_remainder() {
        *x = exp(*x * scale - shift);
        rest += *x;
    }
    lanes.iter().sum::<f32>() + rest
}

/// The columns of a tile starting at key `j0` (`cols` wide) that `keys` covers, if any.
fn visible(keys: std::ops::Range<usize>, j0: usize, cols: usize) -> Option<std::ops::Range<usize>> {
    let lo = keys.start.max(j0);
    let hi = keys.end.min(j0 + cols);
    (lo < hi).then(|| lo - j0..hi - j0)
}

/// Backward: `[dq, dk, dv]`, each a `[batch, heads, seq, d]` view of a `[batch, seq, heads, d]`
/// buffer, from the saved inputs, output and log-sum-exp and the output's gradient.
pub(super) fn backward(
    [q, k, v]: [&FlexTensor; 3],
    out: &FlexTensor,
    lse: &FlexTensor,
    grad: &FlexTensor,
    options: &FlashOptions,
) -> [FlexTensor; 3] {
    let dims = Dims::new(q, k, options);
    let mut keep: [Option<FlexTensor>; 5] = Default::default();
    let [kq, kk, kv, ko, kg] = &mut keep;
    let views = [
        View::new(q, kq),
        View::new(k, kk),
        View::new(v, kv),
        View::new(out, ko),
        View::new(grad, kg),
    ];
    let lse = lse.to_contiguous();
    let lse = lse.storage::<f32>();
    let delta = row_dots(&dims, &views[4], &views[3]);
    let (mut dk, mut dv) = (
        SeqMajor::new(&dims, dims.kv_heads),
        SeqMajor::new(&dims, dims.kv_heads),
    );
    let mut dq = SeqMajor::new(&dims, dims.heads());
    let (dk_ptr, dv_ptr, dq_ptr) = (dk.ptr(), dv.ptr(), dq.ptr());
    let stats = Stats { lse, delta: &delta };
    let key_block = KEY_BLOCK.min(dims.tile);
    dims.tasks(key_block)
        .into_par_iter()
        .for_each(|(b, g, j0)| {
            let cols = key_block.min(dims.seq - j0);
            key_block_grads(&dims, &views, &stats, (b, g, j0, cols), [dk_ptr, dv_ptr]);
        });
    let query_block = QUERY_BLOCK.min(dims.tile);
    dims.tasks(query_block)
        .into_par_iter()
        .for_each(|(b, g, i0)| {
            let rows = query_block.min(dims.seq - i0);
            query_block_grads(&dims, &views, &stats, (b, g, i0, rows), dq_ptr);
        });
    [dq, dk, dv].map(|t| t.into_tensor(&dims))
}

/// Per query row: the log-sum-exp and `D = rowsum(dO ∘ O)`, indexed `(b·heads + h)·seq + i`.
struct Stats<'a> {
    lse: &'a [f32],
    delta: &'a [f32],
}

impl Stats<'_> {
    fn at(&self, dims: &Dims, b: usize, h: usize, i: usize) -> usize {
        (b * dims.heads() + h) * dims.seq + i
    }
}

/// `rowsum(a ∘ b)` for every `(batch, head, row)`, in f32.
fn row_dots(dims: &Dims, a: &View, b: &View) -> Vec<f32> {
    let mut out = vec![0f32; dims.batch * dims.heads() * dims.seq];
    out.par_chunks_mut(dims.seq)
        .enumerate()
        .for_each(|(bh, chunk)| {
            let (bi, h) = (bh / dims.heads(), bh % dims.heads());
            for (i, o) in chunk.iter_mut().enumerate() {
                let (x, y) = (a.row(bi, h, i, dims.d), b.row(bi, h, i, dims.d));
                *o = x.iter().zip(y).map(|(x, y)| x * y).sum();
            }
        });
    out
}

/// The scores' probabilities `P = exp(S·scale − lse)` of a `[m, cols]` tile in place (zero where
/// masked), and in `dp`, `dS = P ∘ (dP − D) · scale`. Row `r` is query `i0 + r % rows` of head
/// `g·n_rep + r / rows`; the tile's keys start at `j0`.
#[allow(clippy::too_many_arguments)]
fn probs_and_dscores(
    dims: &Dims,
    stats: &Stats,
    (b, g): (usize, usize),
    (i0, rows): (usize, usize),
    (j0, cols): (usize, usize),
    p: &mut [f32],
    dp: &mut [f32],
) {
    for r in 0..dims.n_rep * rows {
        let (h, i) = (g * dims.n_rep + r / rows, i0 + r % rows);
        let at = stats.at(dims, b, h, i);
        let (lse, delta) = (stats.lse[at], stats.delta[at]);
        let (prow, dprow) = (
            &mut p[r * cols..(r + 1) * cols],
            &mut dp[r * cols..(r + 1) * cols],
        );
        match visible(dims.keys_of(i), j0, cols) {
            Some(vis) => {
                prow[..vis.start].fill(0.0);
                dprow[..vis.start].fill(0.0);
                for (x, y) in prow[vis.clone()].iter_mut().zip(&mut dprow[vis.clone()]) {
                    *x = exp(*x * dims.scale - lse);
                    *y = *x * (*y - delta) * dims.scale;
                }
                prow[vis.end..].fill(0.0);
                dprow[vis.end..].fill(0.0);
            }
            None => {
                prow.fill(0.0);
                dprow.fill(0.0);
            }
        }
    }
}

/// Recomputes one tile: `P` (in `p`) and `dS` (in `dp`), `[m, cols]`, for the packed queries `qs`
/// and output gradients `gs` (`[m, d]`: rows `i0..i0 + rows` of the group's heads) against the
/// keys and values `j0..j0 + cols` of kv head `g`.
#[allow(clippy::too_many_arguments)]
fn recompute_tile(
    dims: &Dims,
    [k, v]: [&View; 2],
    stats: &Stats,
    (b, g): (usize, usize),
    [qs, gs]: [&[f32]; 2],
    (i0, rows): (usize, usize),
    (j0, cols): (usize, usize),
    [p, dp]: [&mut [f32]; 2],
) {
    let (d, m) = (dims.d, dims.n_rep * rows);
    let (kp, ks) = k.ptr(b, g, j0);
    let (vp, vs) = v.ptr(b, g, j0);
    // SAFETY: `p`, `dp` hold `m × cols`, `qs`, `gs` hold `m × d`; k/v rows j0..j0 + cols exist.
    unsafe {
        // S = Q · Kᵀ, dP = dO · Vᵀ: [m, cols]
        gemm(
            (m, cols, d),
            (p.as_mut_ptr(), cols as isize, 1),
            false,
            (qs.as_ptr(), d as isize, 1),
            (kp, 1, ks),
        );
        gemm(
            (m, cols, d),
            (dp.as_mut_ptr(), cols as isize, 1),
            false,
            (gs.as_ptr(), d as isize, 1),
            (vp, 1, vs),
        );
    }
    probs_and_dscores(dims, stats, (b, g), (i0, rows), (j0, cols), p, dp);
}

/// `dK`, `dV` of keys `j0..j0 + cols` of kv head `g`, over every query (of the group's heads)
/// that sees them.
fn key_block_grads(
    dims: &Dims,
    [q, k, v, _, grad]: &[View; 5],
    stats: &Stats,
    (b, g, j0, cols): (usize, usize, usize, usize),
    [dk_out, dv_out]: [Out; 2],
) {
    let d = dims.d;
    let mut dk = vec![0f32; cols * d];
    let mut dv = vec![0f32; cols * d];
    let queries = dims.queries_of(j0).start..dims.queries_of(j0 + cols - 1).end;
    let block = QUERY_BLOCK.min(dims.tile);
    let mut p = vec![0f32; dims.n_rep * block * cols];
    let mut dp = vec![0f32; dims.n_rep * block * cols];
    for i0 in queries.clone().step_by(block) {
        let rows = block.min(queries.end - i0);
        let m = dims.n_rep * rows;
        let qs = pack(q, dims, (b, g), i0, rows);
        let gs = pack(grad, dims, (b, g), i0, rows);
        let tile = [&mut p[..m * cols], &mut dp[..m * cols]];
        recompute_tile(
            dims,
            [k, v],
            stats,
            (b, g),
            [&qs, &gs],
            (i0, rows),
            (j0, cols),
            tile,
        );
        unsafe {
            // dV += Pᵀ · dO, dK += dSᵀ · Q: [cols, d]
            gemm(
                (cols, d, m),
                (dv.as_mut_ptr(), d as isize, 1),
                true,
                (p.as_ptr(), 1, cols as isize),
                (gs.as_ptr(), d as isize, 1),
            );
            gemm(
                (cols, d, m),
                (dk.as_mut_ptr(), d as isize, 1),
                true,
                (dp.as_ptr(), 1, cols as isize),
                (qs.as_ptr(), d as isize, 1),
            );
        }
    }
    for c in 0..cols {
        let at = seq_major_at(dims, dims.kv_heads, (b, g, j0 + c));
        // SAFETY: rows (b, g, j0..j0 + cols) of dK and dV belong to this task alone.
        unsafe {
            std::ptr::copy_nonoverlapping(dk[c * d..].as_ptr(), dk_out.0.add(at), d);
            std::ptr::copy_nonoverlapping(dv[c * d..].as_ptr(), dv_out.0.add(at), d);
        }
    }
}

/// `dQ` of queries `i0..i0 + rows` of the group's heads, over every key they see.
fn query_block_grads(
    dims: &Dims,
    [q, k, v, _, grad]: &[View; 5],
    stats: &Stats,
    (b, g, i0, rows): (usize, usize, usize, usize),
    dq_out: Out,
) {
    let (d, m) = (dims.d, dims.n_rep * rows);
    let qs = pack(q, dims, (b, g), i0, rows);
    let gs = pack(grad, dims, (b, g), i0, rows);
    let mut dq = vec![0f32; m * d];
    let keys = dims.keys_of(i0).start..i0 + rows;
    let width = dims.tile.min(keys.len());
    let mut p = vec![0f32; m * width];
    let mut dp = vec![0f32; m * width];
    for j0 in keys.clone().step_by(dims.tile) {
        let cols = dims.tile.min(keys.end - j0);
        let tile = [&mut p[..m * cols], &mut dp[..m * cols]];
        recompute_tile(
            dims,
            [k, v],
            stats,
            (b, g),
            [&qs, &gs],
            (i0, rows),
            (j0, cols),
            tile,
        );
        let (kp, ks) = k.ptr(b, g, j0);
        // dQ += dS · K: [m, d]
        unsafe {
            gemm(
                (m, d, cols),
                (dq.as_mut_ptr(), d as isize, 1),
                true,
                (dp.as_ptr(), cols as isize, 1),
                (kp, ks, 1),
            );
        }
    }
    for r in 0..m {
        let (h, i) = (g * dims.n_rep + r / rows, i0 + r % rows);
        let at = seq_major_at(dims, dims.heads(), (b, h, i));
        // SAFETY: rows (b, h, i0..i0 + rows) of the group's heads of dQ belong to this task alone.
        unsafe { std::ptr::copy_nonoverlapping(dq[r * d..].as_ptr(), dq_out.0.add(at), d) };
    }
}
