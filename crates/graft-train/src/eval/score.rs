//! The scoring primitive shared by perplexity and multiple-choice evaluation: per-token
//! log-probabilities of target tokens, computed in right-padded batches.
//!
//! Right padding is exact for a causal model without an attention mask: a position only attends to
//! itself and earlier positions, so the padding after a sequence cannot change its logits.

use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Int, Tensor, TensorData};
use graft_llama::Llama;

use crate::eval::error::{EvalError, Result};

/// One forward input and the tokens whose log-probabilities are wanted: position
/// `input.len() - targets.len() + j` of `input` predicts `targets[j]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreRequest {
    /// Token ids fed to the model (at least one).
    pub input: Vec<u32>,
    /// The next tokens of the last `targets.len()` input positions.
    pub targets: Vec<u32>,
}

impl ScoreRequest {
    /// First input position that predicts a target.
    fn first_scored(&self) -> usize {
        self.input.len() - self.targets.len()
    }
}

/// Natural-log probabilities of every target of every request, in request order.
///
/// Requests are sorted by length (longest first, as lm-eval-harness does) and run `batch_size` at
/// a time; `progress(done, total)` counts requests. Only the positions that predict a target go
/// through the LM head.
pub fn score_requests<B: graft_llama::FusedOps>(
    model: &Llama<B>,
    requests: &[ScoreRequest],
    batch_size: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<Vec<f32>>> {
    if batch_size == 0 {
        return Err(EvalError::Setting("batch size must be at least 1".into()));
    }
    if let Some(bad) = requests
        .iter()
        .position(|r| r.input.is_empty() || r.targets.len() > r.input.len())
    {
        return Err(EvalError::Setting(format!(
            "score request {bad} has {} input tokens for {} targets",
            requests[bad].input.len(),
            requests[bad].targets.len()
        )));
    }
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(requests[i].input.len()));
    let mut out = vec![Vec::new(); requests.len()];
    let total = requests.len() as u64;
    for (done, chunk) in order.chunks(batch_size).enumerate() {
        let batch: Vec<&ScoreRequest> = chunk.iter().map(|&i| &requests[i]).collect();
        for (&i, scores) in chunk.iter().zip(score_batch(model, &batch)) {
            out[i] = scores;
        }
        progress(((done * batch_size + chunk.len()) as u64).min(total), total);
    }
    Ok(out)
}

/// Scores one right-padded batch.
///
/// # Shapes
/// Runs the model on `[batch, max_len]` and the head on `[batch, max_len - lo, vocab]`, where `lo`
/// is the first position any request scores.
fn score_batch<B: graft_llama::FusedOps>(
    model: &Llama<B>,
    batch: &[&ScoreRequest],
) -> Vec<Vec<f32>> {
    let len = batch.iter().map(|r| r.input.len()).max().unwrap_or(1);
    let lo = batch.iter().map(|r| r.first_scored()).min().unwrap_or(0);
    let width = len - lo;
    let device = model.embed_tokens.lazy_device();
    let mut ids = vec![0i64; batch.len() * len];
    let mut targets = vec![0i64; batch.len() * width];
    for (b, r) in batch.iter().enumerate() {
        for (t, &id) in r.input.iter().enumerate() {
            ids[b * len + t] = id as i64;
        }
        for (j, &id) in r.targets.iter().enumerate() {
            targets[b * width + r.first_scored() - lo + j] = id as i64;
        }
    }
    let ids: Tensor<B, 2, Int> =
        Tensor::from_data(TensorData::new(ids, [batch.len(), len]), &device);
    let targets: Tensor<B, 3, Int> =
        Tensor::from_data(TensorData::new(targets, [batch.len(), width, 1]), &device);
    let hidden = model.hidden_states(ids, None).narrow(1, lo, width);
    let log_probs = log_softmax(model.head(hidden).cast(DType::F32), 2);
    let picked: Vec<f32> = log_probs
        .gather(2, targets)
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("data converted to f32 reads back as f32");
    batch
        .iter()
        .enumerate()
        .map(|(b, r)| {
            let start = b * width + r.first_scored() - lo;
            picked[start..start + r.targets.len()].to_vec()
        })
        .collect()
}
