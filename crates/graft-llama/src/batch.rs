//! Batched greedy generation: many prompts at once, a key/value cache per sequence, each
//! sequence stopping on its own at EOS, `max_new_tokens` or the context length.
//!
//! Static batching with right padding: the prompts are padded at the end to the longest one and
//! run through one causal pass ([`Llama::hidden_states`]); causality alone keeps a real position
//! from seeing the padding, so every row's prompt is computed exactly as it would be alone.
//! Decoding then feeds one token per row per step. Row `b` (prompt length `n_b`) keeps its
//! prompt's keys in cache slots `0..n_b` and its new tokens in slots `L..` (L = the longest
//! prompt); its step-`s` query sits at position `n_b + s`, which sets its RoPE angle and, with
//! Mistral's sliding window, which of its keys it may see. Finished rows leave the batch.

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::module::embedding;
use burn::tensor::{DType, Int, Tensor, TensorData};

use crate::attention::{LayerCache, RotaryRows};
use crate::generate::{argmax, check, GenerateConfig, GenerateError, Generation, StopReason};
use crate::model::{DecoderLayer, KvCache, Llama};
use crate::rope::{apply_rotary_rows, rotate_half_matrix};

/// Settings of [`generate_greedy_batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct BatchConfig {
    /// Most new tokens per sequence (EOS counted, not returned).
    pub max_new_tokens: usize,
    /// A sequence stops when it produces one of these.
    pub eos_token_ids: Vec<u32>,
    /// Prompt plus new tokens never exceed this (at most the model's `max_position_embeddings`).
    pub max_len: usize,
}

/// One sequence being decoded.
struct Row {
    /// Index into the caller's prompts.
    index: usize,
    prompt_len: usize,
    tokens: Vec<u32>,
}

/// Greedy continuations of every prompt (in the order given), equal to running
/// [`crate::generate::generate`] on each alone. `on_step` is called after every decoding step with
/// the number of tokens that step produced.
pub fn generate_greedy_batch<B: crate::ops::FusedOps>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
    config: &BatchConfig,
    on_step: &mut dyn FnMut(usize),
) -> Result<Vec<Generation>, GenerateError> {
    let c = model.config();
    let max_len = config.max_len.min(c.max_position_embeddings);
    let single = GenerateConfig::greedy(config.max_new_tokens, config.eos_token_ids.clone());
    for p in prompts {
        check(p, &single, c.vocab_size, max_len)?;
    }
    let mut results: Vec<Option<Generation>> = vec![None; prompts.len()];
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let (mut logits, mut layers, longest) = prefill(model, prompts);
    let mut rows: Vec<Row> = (0..prompts.len())
        .map(|index| Row {
            index,
            prompt_len: prompts[index].len(),
            tokens: Vec::new(),
        })
        .collect();
    let vocab = c.vocab_size;
    while !rows.is_empty() {
        let mut keep = Vec::with_capacity(rows.len());
        let mut produced = 0;
        for (b, row) in rows.iter_mut().enumerate() {
            let next = argmax(&logits[b * vocab..(b + 1) * vocab]);
            let stop = if config.eos_token_ids.contains(&next) {
                Some(StopReason::Eos(next))
            } else {
                row.tokens.push(next);
                produced += 1;
                if row.tokens.len() >= config.max_new_tokens {
                    Some(StopReason::MaxNewTokens)
                } else if row.prompt_len + row.tokens.len() >= max_len {
                    Some(StopReason::MaxPositions)
                } else {
                    None
                }
            };
            match stop {
                Some(stop) => {
                    results[row.index] = Some(Generation {
                        tokens: std::mem::take(&mut row.tokens),
                        stop,
                    })
                }
                None => keep.push(b),
            }
        }
        on_step(produced);
        if keep.len() < rows.len() {
            rows = retain(rows, &keep);
            if rows.is_empty() {
                break;
            }
            layers = select_rows(layers, &keep);
        }
        logits = decode_step(model, &rows, longest, &mut layers);
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every row stops"))
        .collect())
}

fn retain(rows: Vec<Row>, keep: &[usize]) -> Vec<Row> {
    let mut rows: Vec<Option<Row>> = rows.into_iter().map(Some).collect();
    keep.iter().filter_map(|&b| rows[b].take()).collect()
}

/// Keeps the cache rows `keep` of every layer.
fn select_rows<B: Backend>(layers: Vec<LayerCache<B>>, keep: &[usize]) -> Vec<LayerCache<B>> {
    let Some(first) = layers.first() else {
        return layers;
    };
    let device = first.k.device();
    let idx: Vec<i64> = keep.iter().map(|&b| b as i64).collect();
    let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [keep.len()]), &device);
    layers
        .into_iter()
        .map(|l| LayerCache {
            k: l.k.select(0, idx.clone()),
            v: l.v.select(0, idx.clone()),
        })
        .collect()
}

/// Runs the right-padded prompts through the model: the logits of each prompt's last position
/// (row-major `[batch, vocab]` on the host), the caches, and the padded length.
fn prefill<B: crate::ops::FusedOps>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
) -> (Vec<f32>, Vec<LayerCache<B>>, usize) {
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let batch = prompts.len();
    let mut ids = vec![0i64; batch * longest];
    for (b, p) in prompts.iter().enumerate() {
        for (t, &id) in p.iter().enumerate() {
            ids[b * longest + t] = id as i64;
        }
    }
    let device = model.embed_tokens.lazy_device();
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, longest]), &device);
    let mut cache = KvCache::new(model.layers.len());
    let hidden = model.hidden_states(tokens, Some(&mut cache));
    let width = hidden.dims()[2];
    let last: Vec<i64> = prompts
        .iter()
        .enumerate()
        .map(|(b, p)| (b * longest + p.len() - 1) as i64)
        .collect();
    let last = Tensor::<B, 1, Int>::from_data(TensorData::new(last, [batch]), &device);
    let hidden = hidden.reshape([batch * longest, width]).select(0, last);
    let logits = host_logits(model.head(hidden.unsqueeze_dim::<3>(1)));
    let layers = cache
        .into_layers()
        .into_iter()
        .map(|l| l.expect("every layer ran"))
        .collect();
    (logits, layers, longest)
}

/// The logits on the host as f32, row-major.
fn host_logits<B: Backend>(logits: Tensor<B, 3>) -> Vec<f32> {
    logits
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("data converted to f32 reads back as f32")
}

/// Feeds each row's last token; returns the next logits `[rows, vocab]` on the host.
fn decode_step<B: crate::ops::FusedOps>(
    model: &Llama<B>,
    rows: &[Row],
    longest: usize,
    layers: &mut [LayerCache<B>],
) -> Vec<f32> {
    let device = model.embed_tokens.lazy_device();
    let n = rows.len();
    let ids: Vec<i64> = rows
        .iter()
        .map(|r| *r.tokens.last().unwrap() as i64)
        .collect();
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [n, 1]), &device);
    let step = Step::new(model, rows, longest, layers[0].k.dims()[2] + 1, &device);
    let mut x = embedding(model.embed_tokens.val(), tokens);
    for (layer, cache) in model.layers.iter().zip(layers.iter_mut()) {
        x = decode_layer(layer, x, &step, cache);
    }
    host_logits(model.head(model.norm.forward(x)))
}

/// Per-step tables shared by all layers.
struct Step<B: Backend> {
    q: RotaryRows<B>,
    kv: RotaryRows<B>,
    rot: Tensor<B, 2>,
    /// Additive mask `[rows, heads · keys]` (f32).
    bias: Tensor<B, 2>,
}

impl<B: Backend> Step<B> {
    /// Tables for one new token per row, attending over `keys` cache slots (the new one included).
    fn new(
        model: &Llama<B>,
        rows: &[Row],
        longest: usize,
        keys: usize,
        device: &B::Device,
    ) -> Self {
        let c = model.config();
        let (heads, kv_heads, d) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let inv_freq = model.rope.inv_freq();
        let n = rows.len();
        let positions: Vec<usize> = rows
            .iter()
            .map(|r| r.prompt_len + r.tokens.len() - 1)
            .collect();
        let table = |per_row: usize, f: fn(f32) -> f32| {
            let mut out = Vec::with_capacity(n * per_row * d);
            for &p in &positions {
                let half: Vec<f32> = inv_freq.iter().map(|&w| f(p as f32 * w)).collect();
                for _ in 0..per_row {
                    out.extend_from_slice(&half);
                    out.extend_from_slice(&half);
                }
            }
            Tensor::<B, 2>::from_data(TensorData::new(out, [n, per_row * d]), device)
        };
        let mut bias = Vec::with_capacity(n * heads * keys);
        for (row, &p) in rows.iter().zip(&positions) {
            let one: Vec<f32> = (0..keys)
                .map(|j| {
                    let pos = if j < longest {
                        (j < row.prompt_len).then_some(j)
                    } else {
                        Some(row.prompt_len + j - longest)
                    };
                    let seen = pos.is_some_and(|q| c.sliding_window.is_none_or(|w| p - q < w));
                    if seen {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
                .collect();
            for _ in 0..heads {
                bias.extend_from_slice(&one);
            }
        }
        Self {
            q: RotaryRows {
                cos: table(heads, f32::cos),
                sin: table(heads, f32::sin),
            },
            kv: RotaryRows {
                cos: table(kv_heads, f32::cos),
                sin: table(kv_heads, f32::sin),
            },
            rot: rotate_half_matrix(d, device),
            bias: Tensor::from_data(TensorData::new(bias, [n, heads * keys]), device),
        }
    }
}

/// One decoder layer for one new token per row; appends the row's key and value to `cache`.
///
/// # Shapes
/// - `x`: `[rows, 1, hidden]`; output: the same
fn decode_layer<B: crate::ops::FusedOps>(
    layer: &DecoderLayer<B>,
    x: Tensor<B, 3>,
    step: &Step<B>,
    cache: &mut LayerCache<B>,
) -> Tensor<B, 3> {
    let attn = &layer.self_attn;
    let [n, _, hidden] = x.dims();
    let (heads, kv_heads, d) = (attn.num_heads, attn.num_kv_heads, attn.head_dim);
    let h = layer
        .input_layernorm
        .forward(x.clone())
        .reshape([n, hidden]);
    let split = |t: Tensor<B, 2>, k: usize| t.reshape([n, 1, k, d]);
    let q = split(attn.q_proj.forward(h.clone()), heads);
    let k = split(attn.k_proj.forward(h.clone()), kv_heads);
    let v = split(attn.v_proj.forward(h), kv_heads).swap_dims(1, 2);
    let dtype = q.dtype();
    let rot = step.rot.clone().cast(dtype);
    let q = apply_rotary_rows(q, &cast_rows(&step.q, dtype), &rot);
    let k = apply_rotary_rows(k, &cast_rows(&step.kv, dtype), &rot);
    cache.k = Tensor::cat(vec![cache.k.clone(), k.swap_dims(1, 2)], 2);
    cache.v = Tensor::cat(vec![cache.v.clone(), v], 2);
    let keys = cache.k.dims()[2];
    let q = q.reshape([n, kv_heads, heads / kv_heads, d]);
    let scores = q.matmul(cache.k.clone().swap_dims(2, 3)) * (d as f64).powf(-0.5);
    let scores = scores.cast(DType::F32).reshape([n, heads * keys]) + step.bias.clone();
    let probs = softmax(scores.reshape([n * heads, keys]), 1).cast(dtype);
    let out = probs
        .reshape([n, kv_heads, heads / kv_heads, keys])
        .matmul(cache.v.clone())
        .reshape([n, heads * d]);
    let h = x + attn.o_proj.forward(out).reshape([n, 1, hidden]);
    h.clone() + layer.mlp.forward(layer.post_attention_layernorm.forward(h))
}

fn cast_rows<B: Backend>(rows: &RotaryRows<B>, dtype: DType) -> RotaryRows<B> {
    RotaryRows {
        cos: rows.cos.clone().cast(dtype),
        sin: rows.sin.clone().cast(dtype),
    }
}
