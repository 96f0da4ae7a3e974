//! Perplexity of a model on JSONL rows, each row scored on its own.
//!
//! A row is `{"text": "..."}` (encoded without the tokenizer's special tokens, with the model's BOS
//! prepended) or `{"input_ids": [...]}` (used exactly as given, so include BOS yourself).
//!
//! # Windows
//! A row of `n` tokens has `n - 1` targets (every token after the first). Rows longer than the
//! window are cut into non-overlapping windows of `seq_len` *input* tokens: window `k` feeds tokens
//! `[k·L, k·L + L)` and predicts tokens `[k·L + 1, k·L + L + 1)`. So every target is scored exactly
//! once, and each window starts afresh (the first target of a window sees only one token of
//! context from the previous one — the price of not re-scoring overlaps). With `seq_len ≥ n - 1`
//! this is exactly the mean cross-entropy of HF's `LlamaForCausalLM(labels=input_ids)`.

use std::path::Path;

use graft_data::TextTokenizer;
use graft_llama::Llama;
use serde::{Deserialize, Serialize};

use crate::eval::error::{EvalError, Result};
use crate::eval::rows::{check_ids, encode, need_tokenizer, read_jsonl};
use crate::eval::score::{score_requests, ScoreRequest};

/// One perplexity row as written in the JSONL file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    text: Option<String>,
    input_ids: Option<Vec<u32>>,
}

/// Mean next-token negative log-likelihood over all scored targets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PerplexityResult {
    /// Number of scored targets.
    pub tokens: u64,
    /// Mean NLL in nats per token.
    pub nll: f64,
    /// `exp(nll)`.
    pub ppl: f64,
}

/// Reads perplexity rows from `path` into token ids. Text rows need `tokenizer`; `bos` is prepended
/// to them. Ids (given or encoded) must be below `vocab`.
pub fn read_perplexity_rows(
    path: &Path,
    tokenizer: Option<&TextTokenizer>,
    bos: Option<u32>,
    vocab: usize,
) -> Result<Vec<Vec<u32>>> {
    let rows: Vec<(usize, RawRow)> = read_jsonl(path)?;
    let mut out = Vec::with_capacity(rows.len());
    for (line, row) in rows {
        let ids = match (row.text, row.input_ids) {
            (Some(text), None) => {
                let tok = need_tokenizer(tokenizer, path, line)?;
                let mut ids: Vec<u32> = bos.into_iter().collect();
                ids.extend(encode(tok, &text, path, line)?);
                check_ids(&ids, vocab, path, line, "encoded text")?;
                ids
            }
            (None, Some(ids)) => {
                check_ids(&ids, vocab, path, line, "input_ids")?;
                ids
            }
            (Some(_), Some(_)) => {
                return Err(EvalError::row(
                    path,
                    line,
                    "give either \"text\" or \"input_ids\", not both",
                ))
            }
            (None, None) => {
                return Err(EvalError::row(
                    path,
                    line,
                    "row needs a \"text\" or an \"input_ids\" field",
                ))
            }
        };
        if ids.len() < 2 {
            tracing::warn!(file = %path.display(), line, "row has fewer than 2 tokens: nothing to score");
        }
        out.push(ids);
    }
    Ok(out)
}

/// The score requests of one row: non-overlapping windows of at most `seq_len` input tokens whose
/// targets cover `row[1..]` exactly once (see the module docs).
pub fn windows(row: &[u32], seq_len: usize) -> Vec<ScoreRequest> {
    let targets = row.len().saturating_sub(1);
    (0..targets)
        .step_by(seq_len.max(1))
        .map(|start| {
            let end = (start + seq_len).min(targets);
            ScoreRequest {
                input: row[start..end].to_vec(),
                targets: row[start + 1..end + 1].to_vec(),
            }
        })
        .collect()
}

/// Perplexity of `model` on `rows` (token ids), windows of `seq_len` input tokens run
/// `batch_size` at a time; `progress(done, total)` counts windows. `path` names the data in errors.
pub fn perplexity<B: graft_llama::FusedOps>(
    model: &Llama<B>,
    rows: &[Vec<u32>],
    seq_len: usize,
    batch_size: usize,
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PerplexityResult> {
    if seq_len == 0 {
        return Err(EvalError::Setting("seq_len must be at least 1".into()));
    }
    let max = model.config().max_position_embeddings;
    if seq_len > max {
        return Err(EvalError::Setting(format!(
            "seq_len {seq_len} exceeds the model's max_position_embeddings ({max})"
        )));
    }
    let requests: Vec<ScoreRequest> = rows.iter().flat_map(|r| windows(r, seq_len)).collect();
    let scores = score_requests(model, &requests, batch_size, progress)?;
    let tokens: u64 = scores.iter().map(|s| s.len() as u64).sum();
    if tokens == 0 {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
        });
    }
    let total: f64 = scores.iter().flatten().map(|&lp| -(lp as f64)).sum();
    let nll = total / tokens as f64;
    Ok(PerplexityResult {
        tokens,
        nll,
        ppl: nll.exp(),
    })
}
