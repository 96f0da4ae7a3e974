//! Multiple-choice evaluation scored as lm-eval-harness scores `multiple_choice` tasks.
//!
//! A task row is `{"context": "...", "choices": ["...", ...], "gold": i}`, or with token ids
//! `{"context_ids": [...], "choices_ids": [[...], ...], "gold": i}` (ids used exactly as given: no
//! BOS is added, no delimiter inserted).
//!
//! For text rows each choice's continuation is `target_delimiter + choice` (lm-eval's default
//! delimiter is one space) and is tokenized as lm-eval's `_encode_pair` does: trailing whitespace of
//! the context moves to the front of the continuation; `whole = encode(context + continuation)`,
//! `ctx = encode(context)`, continuation tokens = `whole[len(ctx)..]`. Encoding never adds the
//! tokenizer's special tokens; the model's BOS is put before the context (lm-eval with
//! `add_bos_token=True`). The input is left-truncated to `max_length` tokens, as lm-eval does.
//!
//! A choice's score is the summed log-likelihood of its continuation tokens. `acc` takes the argmax
//! of the sums, `acc_norm` the argmax of sum / length, where length is the choice's UTF-8 byte
//! count (the delimiter not included; equal to lm-eval's character count for ASCII) or, for id rows,
//! its token count. Ties go to the first choice, as `numpy.argmax`.

use std::path::{Path, PathBuf};

use graft_data::TextTokenizer;
use graft_llama::Llama;
use serde::{Deserialize, Serialize};

use crate::eval::error::{EvalError, Result};
use crate::eval::rows::{check_ids, encode, need_tokenizer, read_jsonl};
use crate::eval::score::{score_requests, ScoreRequest};

/// The context and choices of a row, as text or as token ids.
#[derive(Debug, Clone, PartialEq)]
pub enum ChoiceInput {
    Text {
        context: String,
        choices: Vec<String>,
    },
    Ids {
        context: Vec<u32>,
        choices: Vec<Vec<u32>>,
    },
}

/// One multiple-choice question.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceRow {
    /// The file the row came from and its 1-based line, for error messages.
    pub path: PathBuf,
    pub line: usize,
    pub input: ChoiceInput,
    /// Index of the correct choice.
    pub gold: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    context: Option<String>,
    choices: Option<Vec<String>>,
    context_ids: Option<Vec<u32>>,
    choices_ids: Option<Vec<Vec<u32>>>,
    gold: Option<usize>,
}

/// Settings of [`score_choice_task`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceOptions {
    /// Put between context and choice in text rows (lm-eval's `target_delimiter`, default " ").
    pub target_delimiter: String,
    /// Longest model input; longer inputs lose tokens on the left.
    pub max_length: usize,
    /// Score requests (one per choice) per forward pass.
    pub batch_size: usize,
}

impl ChoiceOptions {
    /// lm-eval defaults with the model's context length as `max_length`.
    pub fn new(max_length: usize, batch_size: usize) -> Self {
        Self {
            target_delimiter: " ".into(),
            max_length,
            batch_size,
        }
    }
}

/// Scores of one row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowScore {
    /// Summed log-likelihood of each choice's continuation.
    pub loglik: Vec<f64>,
    /// Length used for `acc_norm` (bytes of the choice text, or tokens for id rows).
    pub lengths: Vec<usize>,
    pub gold: usize,
    /// argmax of `loglik`.
    pub pred: usize,
    /// argmax of `loglik / lengths`.
    pub pred_norm: usize,
}

/// Accuracy over a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChoiceResult {
    /// Rows scored.
    pub n: usize,
    pub acc: f64,
    pub acc_norm: f64,
    /// Standard error of the mean (sample standard deviation / √n, as lm-eval); `None` when n < 2.
    pub acc_stderr: Option<f64>,
    pub acc_norm_stderr: Option<f64>,
    pub per_row: Vec<RowScore>,
}

/// Reads a task file; `limit` keeps only the first rows.
pub fn read_choice_rows(path: &Path, limit: Option<usize>) -> Result<Vec<ChoiceRow>> {
    let mut raw: Vec<(usize, RawRow)> = read_jsonl(path)?;
    if let Some(limit) = limit {
        raw.truncate(limit);
    }
    raw.into_iter()
        .map(|(line, r)| parse_row(path, line, r))
        .collect()
}

fn parse_row(path: &Path, line: usize, r: RawRow) -> Result<ChoiceRow> {
    let err = |m: String| EvalError::row(path, line, m);
    let input = match (r.context, r.choices, r.context_ids, r.choices_ids) {
        (Some(context), Some(choices), None, None) => ChoiceInput::Text { context, choices },
        (None, None, Some(context), Some(choices)) => ChoiceInput::Ids { context, choices },
        _ => {
            return Err(err(
                "row needs \"context\" + \"choices\" (text) or \"context_ids\" + \"choices_ids\" (ids), and \"gold\"".into(),
            ))
        }
    };
    let n = match &input {
        ChoiceInput::Text { choices, .. } => choices.len(),
        ChoiceInput::Ids { choices, .. } => choices.len(),
    };
    let gold = r
        .gold
        .ok_or_else(|| err("row has no \"gold\" index".into()))?;
    if n < 2 {
        return Err(err(format!(
            "row has {n} choices; a multiple-choice row needs at least 2"
        )));
    }
    if gold >= n {
        return Err(err(format!(
            "gold = {gold} but the row has only {n} choices (gold is 0-based)"
        )));
    }
    Ok(ChoiceRow {
        path: path.to_path_buf(),
        line,
        input,
        gold,
    })
}

/// lm-eval's `_encode_pair`: `(context tokens with BOS, continuation tokens)`.
pub fn encode_pair(
    tok: &TextTokenizer,
    bos: Option<u32>,
    context: &str,
    continuation: &str,
    path: &Path,
    line: usize,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let trimmed = context.trim_end();
    let (context, continuation) = (
        trimmed,
        format!("{}{continuation}", &context[trimmed.len()..]),
    );
    let whole = encode(tok, &format!("{context}{continuation}"), path, line)?;
    let ctx = encode(tok, context, path, line)?;
    let cont = whole.get(ctx.len()..).unwrap_or_default().to_vec();
    let mut with_bos: Vec<u32> = bos.into_iter().collect();
    with_bos.extend(ctx);
    Ok((with_bos, cont))
}

/// The score request of one (context, continuation) pair: `(context + continuation)` without its
/// last token, left-truncated to `max_length`, predicting the continuation.
fn request(ctx: &[u32], cont: &[u32], max_length: usize, row: &ChoiceRow) -> Result<ScoreRequest> {
    if cont.is_empty() {
        return Err(EvalError::row(
            &row.path,
            row.line,
            "a choice encodes to no tokens",
        ));
    }
    if ctx.is_empty() {
        return Err(EvalError::row(
            &row.path,
            row.line,
            "empty context and no BOS id to start from",
        ));
    }
    if cont.len() > max_length {
        return Err(EvalError::row(
            &row.path,
            row.line,
            format!(
                "a choice has {} tokens, more than max_length ({max_length})",
                cont.len()
            ),
        ));
    }
    let whole: Vec<u32> = ctx.iter().chain(cont).copied().collect();
    let input = &whole[whole.len().saturating_sub(max_length + 1)..whole.len() - 1];
    Ok(ScoreRequest {
        input: input.to_vec(),
        targets: cont.to_vec(),
    })
}

/// The requests and acc_norm lengths of one row.
fn row_requests(
    row: &ChoiceRow,
    tok: Option<&TextTokenizer>,
    bos: Option<u32>,
    vocab: usize,
    options: &ChoiceOptions,
) -> Result<(Vec<ScoreRequest>, Vec<usize>)> {
    let (path, line) = (row.path.as_path(), row.line);
    let mut requests = Vec::new();
    let mut lengths = Vec::new();
    match &row.input {
        ChoiceInput::Text { context, choices } => {
            let tok = need_tokenizer(tok, path, line)?;
            for choice in choices {
                let cont = format!("{}{choice}", options.target_delimiter);
                let (ctx, cont) = encode_pair(tok, bos, context, &cont, path, line)?;
                check_ids(&ctx, vocab, path, line, "encoded context")?;
                check_ids(&cont, vocab, path, line, "encoded choice")?;
                requests.push(request(&ctx, &cont, options.max_length, row)?);
                lengths.push(choice.len());
            }
        }
        ChoiceInput::Ids { context, choices } => {
            check_ids(context, vocab, path, line, "context_ids")?;
            for (i, cont) in choices.iter().enumerate() {
                check_ids(cont, vocab, path, line, &format!("choices_ids[{i}]"))?;
                requests.push(request(context, cont, options.max_length, row)?);
                lengths.push(cont.len());
            }
        }
    }
    Ok((requests, lengths))
}

/// Scores a multiple-choice task: every choice of every row in batches of
/// `options.batch_size`; `progress(done, total)` counts choices. Text rows need `tokenizer`;
/// `bos` is the model's BOS id.
pub fn score_choice_task<B: graft_llama::FusedOps>(
    model: &Llama<B>,
    tokenizer: Option<&TextTokenizer>,
    bos: Option<u32>,
    rows: &[ChoiceRow],
    options: &ChoiceOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ChoiceResult> {
    if rows.is_empty() {
        return Err(EvalError::Setting("the task has no rows".into()));
    }
    let vocab = model.config().vocab_size;
    let mut requests = Vec::new();
    let mut shapes = Vec::with_capacity(rows.len());
    for row in rows {
        let (reqs, lengths) = row_requests(row, tokenizer, bos, vocab, options)?;
        requests.extend(reqs);
        shapes.push(lengths);
    }
    let scores = score_requests(model, &requests, options.batch_size, progress)?;
    let mut sums = scores
        .iter()
        .map(|s| s.iter().map(|&lp| lp as f64).sum::<f64>());
    let per_row: Vec<RowScore> = rows
        .iter()
        .zip(shapes)
        .map(|(row, lengths)| {
            let loglik: Vec<f64> = sums.by_ref().take(lengths.len()).collect();
            let normed: Vec<f64> = loglik
                .iter()
                .zip(&lengths)
                .map(|(&ll, &len)| ll / len.max(1) as f64)
                .collect();
            RowScore {
                pred: argmax(&loglik),
                pred_norm: argmax(&normed),
                loglik,
                lengths,
                gold: row.gold,
            }
        })
        .collect();
    Ok(summarize(per_row))
}

/// Index of the largest value, the first on ties (as `numpy.argmax`).
fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Mean and standard error (sample standard deviation / √n) of 0/1 outcomes.
fn mean_stderr(hits: &[bool]) -> (f64, Option<f64>) {
    let n = hits.len() as f64;
    let mean = hits.iter().filter(|&&h| h).count() as f64 / n;
    let stderr = (hits.len() >= 2).then(|| {
        let var = hits
            .iter()
            .map(|&h| (h as u8 as f64 - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        (var / n).sqrt()
    });
    (mean, stderr)
}

fn summarize(per_row: Vec<RowScore>) -> ChoiceResult {
    let hits: Vec<bool> = per_row.iter().map(|r| r.pred == r.gold).collect();
    let hits_norm: Vec<bool> = per_row.iter().map(|r| r.pred_norm == r.gold).collect();
    let (acc, acc_stderr) = mean_stderr(&hits);
    let (acc_norm, acc_norm_stderr) = mean_stderr(&hits_norm);
    ChoiceResult {
        n: per_row.len(),
        acc,
        acc_norm,
        acc_stderr,
        acc_norm_stderr,
        per_row,
    }
}
