//! RMSNorm and SwiGLU ([`super::rows`]) on the CPU backend: one pass per row over f32 slices,
//! blocks of rows on rayon's threads. The tensor-op versions run each elementwise step as its
//! own pass (single-threaded for most Flex ops), with a fresh tensor each.
//!
//! Row blocks are fixed by the shape, not the thread count, so the weight gradient's sum over
//! blocks has one order on every machine.

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use super::cpu_ce::exp;

/// Rows per parallel block.
const BLOCK_ROWS: usize = 32;
/// Elements per parallel block of the elementwise SwiGLU.
const BLOCK_ELEMS: usize = 1 << 14;
const LANES: usize = 16;

/// Whether the kernels take these tensors (all f32).
pub(super) fn supports(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

fn tensor(data: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

fn shape(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().iter().copied().collect()
}

/// `Σ x²` of a row (f32 lanes, so that it vectorises).
fn sum_squares(row: &[f32]) -> f32 {
    dot(row, row)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((s, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// [`super::rows::rms_norm_forward`]: `(y, rstd)`, `rstd` shaped `[rows, 1]`.
pub(super) fn rms_norm_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    eps: f64,
) -> (FlexTensor, FlexTensor) {
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    let (xs, w) = (x.storage::<f32>(), weight.storage::<f32>());
    let d = w.len().max(1);
    let rows = xs.len() / d;
    let mut y = vec![0f32; xs.len()];
    let mut rstd = vec![0f32; rows];
    y.par_chunks_mut(d * BLOCK_ROWS)
        .zip(rstd.par_chunks_mut(BLOCK_ROWS))
        .zip(xs.par_chunks(d * BLOCK_ROWS))
        .for_each(|((y, rstd), x)| {
            for ((y, r), x) in y.chunks_mut(d).zip(rstd.iter_mut()).zip(x.chunks(d)) {
                let mean = sum_squares(x) / d as f32;
                *r = 1.0 / (mean + eps as f32).sqrt();
                for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
                    *y = (x * *r) * w;
                }
            }
        });
    (tensor(y, shape(&x)), tensor(rstd, vec![rows, 1]))
}

/// [`super::rows::rms_norm_backward`]: `(dx, dweight)`.
pub(super) fn rms_norm_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    rstd: &FlexTensor,
    dy: &FlexTensor,
) -> (FlexTensor, FlexTensor) {
    let (x, weight, rstd, dy) = (
        x.to_contiguous(),
        weight.to_contiguous(),
        rstd.to_contiguous(),
        dy.to_contiguous(),
    );
    let (xs, w, rs, dys) = (
        x.storage::<f32>(),
        weight.storage::<f32>(),
        rstd.storage::<f32>(),
        dy.storage::<f32>(),
    );
    let d = w.len().max(1);
    let mut dx = vec![0f32; xs.len()];
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(d * BLOCK_ROWS)
        .zip(xs.par_chunks(d * BLOCK_ROWS))
        .zip(dys.par_chunks(d * BLOCK_ROWS))
        .zip(rs.par_chunks(BLOCK_ROWS))
        .map(|(((dx, x), dy), rs)| {
            let mut dw = vec![0f32; d];
            let mut g = vec![0f32; d];
            let mut normed = vec![0f32; d];
            for (((dx, x), dy), &r) in dx.chunks_mut(d).zip(x.chunks(d)).zip(dy.chunks(d)).zip(rs) {
                for (((n, g), x), (dy, w)) in normed
                    .iter_mut()
                    .zip(g.iter_mut())
                    .zip(x)
                    .zip(dy.iter().zip(w))
                {
                    *n = x * r;
                    *g = dy * w;
                }
                let c = dot(&g, &normed) / d as f32;
                for ((dx, g), n) in dx.iter_mut().zip(&g).zip(&normed) {
                    *dx = (g - n * c) * r;
                }
                for ((dw, dy), n) in dw.iter_mut().zip(dy).zip(&normed) {
                    *dw += dy * n;
                }
            }
            dw
        })
        .collect();
    let mut dw = vec![0f32; w.len()];
    for p in &partials {
        dw.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    (tensor(dx, shape(&x)), tensor(dw, vec![w.len()]))
}

/// `sigmoid(x)` through [`exp`] of a non-positive argument (no overflow), branch-free.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    let e = exp(-x.abs());
    let inv = 1.0 / (1.0 + e);
    if x >= 0.0 {
        inv
    } else {
        e * inv
    }
}

/// [`super::rows::swiglu_forward`].
pub(super) fn swiglu_forward(gate: &FlexTensor, up: &FlexTensor) -> FlexTensor {
    let (gate, up) = (gate.to_contiguous(), up.to_contiguous());
    let (g, u) = (gate.storage::<f32>(), up.storage::<f32>());
    let mut h = vec![0f32; g.len()];
    h.par_chunks_mut(BLOCK_ELEMS)
        .zip(g.par_chunks(BLOCK_ELEMS))
        .zip(u.par_chunks(BLOCK_ELEMS))
        .for_each(|((h, g), u)| {
            for ((h, &g), &u) in h.iter_mut().zip(g).zip(u) {
                *h = g * sigmoid(g) * u;
            }
        });
    tensor(h, shape(&gate))
}

/// [`super::rows::swiglu_backward`]: `(d gate, d up)`.
pub(super) fn swiglu_backward(
    gate: &FlexTensor,
    up: &FlexTensor,
    dh: &FlexTensor,
) -> (FlexTensor, FlexTensor) {
    let (gate, up, dh) = (gate.to_contiguous(), up.to_contiguous(), dh.to_contiguous());
    let (g, u, dhs) = (
        gate.storage::<f32>(),
        up.storage::<f32>(),
        dh.storage::<f32>(),
    );
    let mut dg = vec![0f32; g.len()];
    let mut du = vec![0f32; g.len()];
    dg.par_chunks_mut(BLOCK_ELEMS)
        .zip(du.par_chunks_mut(BLOCK_ELEMS))
        .zip(g.par_chunks(BLOCK_ELEMS).zip(u.par_chunks(BLOCK_ELEMS)))
        .zip(dhs.par_chunks(BLOCK_ELEMS))
        .for_each(|(((dg, du), (g, u)), dh)| {
            for ((((dg, du), &g), &u), &dh) in
                dg.iter_mut().zip(du.iter_mut()).zip(g).zip(u).zip(dh)
            {
                let s = sigmoid(g);
                *du = dh * (g * s);
                *dg = dh * u * s * (1.0 + g * (1.0 - s));
            }
        });
    let shape = shape(&gate);
    (tensor(dg, shape.clone()), tensor(du, shape))
}
