//! Rotary position embedding exactly as HuggingFace Llama computes it: rotate-half convention,
//! `inv_freq` with Llama-3.1 frequency scaling (`_compute_llama3_parameters`), f32 tables.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::attention::RotaryRows;
use serde::{Deserialize, Serialize};

/// Llama-3.1 RoPE frequency scaling (`rope_type: "llama3"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: usize,
}

/// Inverse frequencies `1 / theta^(2i/d)` for `i in 0..d/2`, scaled as Llama-3.1 does when
/// `scaling` is given. Computed in f32 in the same order of operations as HF.
pub fn inv_freq(head_dim: usize, theta: f64, scaling: Option<&Llama3Scaling>) -> Vec<f32> {
    let base = theta as f32;
    let plain: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
        .collect();
    match scaling {
        None => plain,
        Some(s) => plain.into_iter().map(|f| llama3_scale(f, s)).collect(),
    }
}

/// One frequency through HF's `_compute_llama3_parameters`.
fn llama3_scale(inv_freq: f32, s: &Llama3Scaling) -> f32 {
    let factor = s.factor as f32;
    let low = s.low_freq_factor as f32;
    let high = s.high_freq_factor as f32;
    let old_ctx = s.original_max_position_embeddings as f32;
    let low_freq_wavelen = old_ctx / low;
    let high_freq_wavelen = old_ctx / high;
    let wavelen = 2.0 * std::f32::consts::PI / inv_freq;
    let scaled = if wavelen > low_freq_wavelen {
        inv_freq / factor
    } else {
        inv_freq
    };
    // HF: ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    let is_medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
    if is_medium {
        let smooth = (old_ctx / wavelen - low) / (high - low);
        (1.0 - smooth) * scaled / factor + smooth * scaled
    } else {
        scaled
    }
}

/// The RoPE frequencies of a model; builds cos/sin tables for any range of positions on demand
/// (no table of `max_position_embeddings` rows is kept).
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
}

impl Rope {
    pub fn new(head_dim: usize, theta: f64, scaling: Option<&Llama3Scaling>) -> Self {
        Self {
            inv_freq: inv_freq(head_dim, theta, scaling),
        }
    }

    /// The inverse frequencies, `head_dim / 2` of them.
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// `(cos, sin)` tables for positions `offset..offset + seq`, each duplicated over both halves
    /// as HF's `torch.cat((freqs, freqs), -1)` does.
    ///
    /// # Shapes
    /// - output: two tensors `[seq, head_dim]`
    pub fn tables<B: Backend>(
        &self,
        offset: usize,
        seq: usize,
        device: &B::Device,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(seq * half * 2);
        let mut sin = Vec::with_capacity(seq * half * 2);
        for pos in offset..offset + seq {
            let freqs: Vec<f32> = self.inv_freq.iter().map(|f| pos as f32 * f).collect();
            for _ in 0..2 {
                cos.extend(freqs.iter().map(|x| x.cos()));
                sin.extend(freqs.iter().map(|x| x.sin()));
            }
        }
        let shape = [seq, half * 2];
        (
            Tensor::from_data(TensorData::new(cos, shape), device),
            Tensor::from_data(TensorData::new(sin, shape), device),
        )
    }
}

/// Applies RoPE with HF's rotate-half convention: `x * cos + rotate_half(x) * sin`, where
/// `rotate_half([x1, x2]) = [-x2, x1]` over the two halves of the head dimension.
///
/// # Shapes
/// - `x`: `[batch, heads, seq, head_dim]`
/// - `cos`, `sin`: `[seq, head_dim]`
/// - output: `[batch, heads, seq, head_dim]`
pub fn apply_rotary<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 2>,
    sin: &Tensor<B, 2>,
) -> Tensor<B, 4> {
    let [_, _, _, d] = x.dims();
    let half = d / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    let cos = cos.clone().unsqueeze::<4>();
    let sin = sin.clone().unsqueeze::<4>();
    x * cos + rotated * sin
}

/// `rotate_half` as a `[head_dim, head_dim]` matrix `R`, so that `rotate_half(x) = x · R`. Each
/// output is one input times ±1 plus exact zeros, so the product is bit-identical to the
/// slice-and-concatenate form, and runs as one contiguous matmul (forward and backward).
///
/// # Shapes
/// - output: `[head_dim, head_dim]`
pub fn rotate_half_matrix<B: Backend>(head_dim: usize, device: &B::Device) -> Tensor<B, 2> {
    let half = head_dim / 2;
    let mut r = vec![0.0f32; head_dim * head_dim];
    for j in 0..half {
        r[(j + half) * head_dim + j] = -1.0;
        r[j * head_dim + j + half] = 1.0;
    }
    Tensor::from_data(TensorData::new(r, [head_dim, head_dim]), device)
}

/// Applies RoPE to heads in projection layout, `x * cos + (x · R) * sin` (the same arithmetic as
/// [`apply_rotary`]), with tables from [`RotaryRows`]. Every operand is contiguous, so the CPU
/// backend takes its vectorized paths.
///
/// # Shapes
/// - `x`: `[batch, seq, heads, head_dim]` (contiguous: a reshaped projection output)
/// - `rows`: tables for `heads` heads of `seq` positions
/// - `rot`: `[head_dim, head_dim]` from [`rotate_half_matrix`]
/// - output: `[batch, seq, heads, head_dim]`
pub fn apply_rotary_rows<B: Backend>(
    x: Tensor<B, 4>,
    rows: &RotaryRows<B>,
    rot: &Tensor<B, 2>,
) -> Tensor<B, 4> {
    let [batch, seq, heads, d] = x.dims();
    let rotated = x
        .clone()
        .reshape([batch * seq * heads, d])
        .matmul(rot.clone())
        .reshape([batch, seq * heads * d]);
    let x = x.reshape([batch, seq * heads * d]);
    (x * rows.cos.clone() + rotated * rows.sin.clone()).reshape([batch, seq, heads, d])
}
