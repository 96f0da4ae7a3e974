//! Autoregressive generation on token ids: greedy or temperature + nucleus (top-p) sampling with a
//! seeded ChaCha RNG, using the KV cache ([`Llama::forward_cached`]) or, for checking, a full
//! recomputation of the sequence at every step.
//!
//! Tokenization is the caller's business: [`generate`] takes prompt ids and reports every new id
//! through a callback as soon as it is chosen, so a CLI can stream decoded text.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::TokenIds;
use crate::error::Error;
use crate::model::{KvCache, Llama};

/// How the next token is chosen from the logits of the last position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token (the first one on ties, as `torch.argmax`).
    Greedy,
    /// Sample from `softmax(logits / temperature)` restricted to the smallest set of most likely
    /// tokens whose probabilities sum to at least `top_p` (nucleus sampling; `top_p = 1` keeps all).
    Sample { temperature: f32, top_p: f32 },
}

impl Sampling {
    /// `Greedy` for temperature 0 (HF's `do_sample=False`), else `Sample`.
    pub fn new(temperature: f32, top_p: f32) -> Self {
        if temperature == 0.0 {
            Sampling::Greedy
        } else {
            Sampling::Sample { temperature, top_p }
        }
    }
}

/// Settings of one [`generate`] call.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// Upper bound on the number of new tokens (EOS included in the count, not in the output).
    pub max_new_tokens: usize,
    /// Greedy or sampling.
    pub sampling: Sampling,
    /// Seed of the sampling RNG (unused when greedy).
    pub seed: u64,
    /// Generation stops when one of these is produced.
    pub eos_token_ids: Vec<u32>,
    /// Decode with the KV cache (one new position per step) rather than re-running the whole
    /// sequence each step. Both give the same tokens; the cache is much faster.
    pub use_cache: bool,
}

impl GenerateConfig {
    /// Greedy decoding of up to `max_new_tokens` with the KV cache, stopping at `eos_token_ids`.
    pub fn greedy(max_new_tokens: usize, eos_token_ids: Vec<u32>) -> Self {
        Self {
            max_new_tokens,
            sampling: Sampling::Greedy,
            seed: 0,
            eos_token_ids,
            use_cache: true,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced this end-of-sequence id.
    Eos(u32),
    /// `max_new_tokens` were generated.
    MaxNewTokens,
    /// The sequence reached the model's `max_position_embeddings`.
    MaxPositions,
}

/// The result of [`generate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// The new tokens, without the prompt and without the final EOS.
    pub tokens: Vec<u32>,
    /// Why it stopped.
    pub stop: StopReason,
}

/// Invalid arguments to [`generate`].
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Nothing to condition on.
    #[error("the prompt is empty\nHINT: give at least one token (usually BOS)")]
    EmptyPrompt,
    /// A prompt id the embedding table has no row for.
    #[error("prompt token {index} is {id}, outside the vocabulary (size {vocab})\nHINT: the tokenizer does not match the model")]
    TokenOutOfRange { index: usize, id: u32, vocab: usize },
    /// The prompt alone fills the model's context.
    #[error("the prompt has {len} tokens; the model's context holds {max}")]
    PromptTooLong { len: usize, max: usize },
    /// Temperature or top-p outside their ranges.
    #[error("invalid sampling settings: {0}")]
    Sampling(String),
}

/// Generates up to `config.max_new_tokens` tokens after `prompt`, calling `on_token` with each new
/// token (EOS excluded) as soon as it is chosen.
pub fn generate<B: crate::ops::FusedOps>(
    model: &Llama<B>,
    prompt: &[u32],
    config: &GenerateConfig,
    on_token: &mut dyn FnMut(u32),
) -> Result<Generation, GenerateError> {
    let c = model.config();
    check(prompt, config, c.vocab_size, c.max_position_embeddings)?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut cache = KvCache::new(c.num_hidden_layers);
    let mut sequence = prompt.to_vec();
    let mut logits = if config.use_cache {
        last_logits(model.forward_cached(ids_tensor(prompt, model), &mut cache))
    } else {
        last_logits(model.forward(ids_tensor(prompt, model)))
    };
    let mut tokens = Vec::new();
    for _ in 0..config.max_new_tokens {
        let next = sample_next(&logits, config.sampling, &mut rng);
        if config.eos_token_ids.contains(&next) {
            return Ok(Generation {
                tokens,
                stop: StopReason::Eos(next),
            });
        }
        on_token(next);
        tokens.push(next);
        sequence.push(next);
        if tokens.len() == config.max_new_tokens {
            break;
        }
        if sequence.len() >= c.max_position_embeddings {
            return Ok(Generation {
                tokens,
                stop: StopReason::MaxPositions,
            });
        }
        logits = if config.use_cache {
            last_logits(model.forward_cached(ids_tensor(&[next], model), &mut cache))
        } else {
            last_logits(model.forward(ids_tensor(&sequence, model)))
        };
    }
    Ok(Generation {
        tokens,
        stop: StopReason::MaxNewTokens,
    })
}

pub(crate) fn check(
    prompt: &[u32],
    config: &GenerateConfig,
    vocab: usize,
    max_positions: usize,
) -> Result<(), GenerateError> {
    if prompt.is_empty() {
        return Err(GenerateError::EmptyPrompt);
    }
    if let Some((index, &id)) = prompt
        .iter()
        .enumerate()
        .find(|(_, &id)| id as usize >= vocab)
    {
        return Err(GenerateError::TokenOutOfRange { index, id, vocab });
    }
    if prompt.len() >= max_positions {
        return Err(GenerateError::PromptTooLong {
            len: prompt.len(),
            max: max_positions,
        });
    }
    if let Sampling::Sample { temperature, top_p } = config.sampling {
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(GenerateError::Sampling(format!(
                "temperature must be > 0 (0 means greedy), got {temperature}"
            )));
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(GenerateError::Sampling(format!(
                "top_p must be in (0, 1], got {top_p}"
            )));
        }
    }
    Ok(())
}

/// A `[1, len]` int tensor of `ids` on the model's device.
fn ids_tensor<B: Backend>(ids: &[u32], model: &Llama<B>) -> Tensor<B, 2, Int> {
    let values: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    let device = model.embed_tokens.lazy_device();
    Tensor::from_data(TensorData::new(values, [1, ids.len()]), &device)
}

/// The logits of the last position, on the host as f32.
///
/// # Shapes
/// - `logits`: `[1, seq, vocab]`
/// - output: `vocab` values
fn last_logits<B: Backend>(logits: Tensor<B, 3>) -> Vec<f32> {
    let [_, seq, vocab] = logits.dims();
    logits
        .narrow(1, seq - 1, 1)
        .reshape([vocab])
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("data converted to f32 reads back as f32")
}

/// Chooses the next token from one position's logits.
pub fn sample_next(logits: &[f32], sampling: Sampling, rng: &mut ChaCha8Rng) -> u32 {
    match sampling {
        Sampling::Greedy => argmax(logits),
        Sampling::Sample { temperature, top_p } => {
            let nucleus = nucleus(logits, temperature, top_p);
            let total: f64 = nucleus.iter().map(|&(_, p)| p).sum();
            // 53 random bits → uniform in [0, 1).
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
            let mut acc = 0.0;
            for &(id, p) in &nucleus {
                acc += p;
                if u < acc {
                    return id;
                }
            }
            nucleus.last().map_or(0, |&(id, _)| id)
        }
    }
}

/// Index of the largest value (the first on ties; NaN never wins).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] || values[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

/// `(id, probability)` of the smallest set of most likely tokens under `softmax(logits / t)`
/// whose probabilities sum to at least `top_p`, most likely first (probabilities not renormalized).
pub fn nucleus(logits: &[f32], temperature: f32, top_p: f32) -> Vec<(u32, f64)> {
    let t = temperature as f64;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, ((l as f64 - max) / t).exp()))
        .filter(|(_, p)| p.is_finite())
        .collect();
    let sum: f64 = probs.iter().map(|&(_, p)| p).sum();
    probs.iter_mut().for_each(|(_, p)| *p /= sum);
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut acc = 0.0;
    let keep = probs
        .iter()
        .position(|&(_, p)| {
            acc += p;
            acc >= top_p as f64
        })
        .map_or(probs.len(), |i| i + 1);
    probs.truncate(keep.max(1));
    probs
}

/// End-of-sequence ids of a checkpoint directory: those of `config.json` (passed in as
/// `config_eos`) plus those of `generation_config.json` when the file exists.
pub fn eos_token_ids(dir: &Path, config_eos: &[u32]) -> crate::Result<Vec<u32>> {
    let mut ids = config_eos.to_vec();
    let path = dir.join("generation_config.json");
    if path.is_file() {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        #[derive(serde::Deserialize)]
        struct GenerationConfig {
            eos_token_id: Option<TokenIds>,
        }
        let parsed: GenerationConfig = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: path.clone(),
            message: e.to_string(),
        })?;
        for id in parsed.eos_token_id.map(|t| t.to_vec()).unwrap_or_default() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}
