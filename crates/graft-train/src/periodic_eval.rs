//! Evaluation during training, every `train.eval_every` steps and at the end of the run.
//!
//! The trainer calls an [`Evaluator`] with the current weights (no autodiff graph) and logs the
//! scalars it returns. [`PeriodicEval`] is graft's evaluator:
//! - held-out loss on each source's validation split (graft-data's [`EvalIter`](graft_data::EvalIter),
//!   at most `max_batches` batches per source): `eval/<source>/loss` (mean next-token
//!   cross-entropy over all scored tokens) and `eval/<source>/ppl` = exp(loss);
//! - multiple-choice tasks (the recipe's `[eval] tasks`, scored like lm-eval-harness by
//!   [`crate::eval::score_choice_task`]): `eval/<task>/acc` and `eval/<task>/acc_norm`, where
//!   `<task>` is the file stem.

use std::path::Path;
use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use graft_data::{PreparedData, TextTokenizer};
use graft_llama::Llama;

use crate::error::{Result, TrainError};
use crate::eval::{read_choice_rows, score_choice_task, ChoiceOptions, ChoiceRow};
use crate::scalar::scalar;

/// Something that evaluates the model being trained.
pub trait Evaluator<B: Backend> {
    /// Evaluate `model`; returns `(tag, value)` scalars such as `("eval/finance/loss", 2.31)`.
    fn evaluate(&mut self, model: &Llama<B>) -> Result<Vec<(String, f64)>>;
}

/// One multiple-choice task: its name (file stem) and rows.
struct ChoiceTask {
    name: String,
    rows: Vec<ChoiceRow>,
}

/// Held-out loss per source, plus multiple-choice accuracy per task.
pub struct PeriodicEval<B: Backend> {
    data: Arc<PreparedData>,
    batch_size: usize,
    max_batches: usize,
    tasks: Vec<ChoiceTask>,
    tokenizer: Option<TextTokenizer>,
    device: B::Device,
}

impl<B: graft_llama::FusedOps> PeriodicEval<B> {
    /// Held-out loss on every source of `data`, `batch_size` sequences per forward pass and at most
    /// `max_batches` batches per source (0: all).
    pub fn new(
        data: Arc<PreparedData>,
        batch_size: usize,
        max_batches: usize,
        device: B::Device,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(TrainError::Config(
                "evaluation batch size must be > 0".into(),
            ));
        }
        Ok(Self {
            data,
            batch_size,
            max_batches,
            tasks: Vec::new(),
            tokenizer: None,
            device,
        })
    }

    /// Also score the multiple-choice task files `paths` (text rows are encoded with `tokenizer`).
    pub fn with_tasks(
        mut self,
        paths: &[impl AsRef<Path>],
        tokenizer: TextTokenizer,
    ) -> Result<Self> {
        for path in paths {
            let path = path.as_ref();
            let rows = read_choice_rows(path, None)
                .map_err(|e| TrainError::Data(format!("eval task: {e}")))?;
            if rows.is_empty() {
                return Err(TrainError::Data(format!(
                    "eval task {} has no rows",
                    path.display()
                )));
            }
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "task".into());
            self.tasks.push(ChoiceTask { name, rows });
        }
        self.tokenizer = Some(tokenizer);
        Ok(self)
    }

    /// Mean loss over the held-out tokens of `source`, and the number of tokens scored.
    fn held_out_loss(&self, model: &Llama<B>, source: &str) -> Result<(f64, u64)> {
        let batches = self
            .data
            .eval_iter(source, self.batch_size, 0, 1)
            .map_err(|e| TrainError::Data(e.to_string()))?;
        let limit = if self.max_batches == 0 {
            usize::MAX
        } else {
            self.max_batches
        };
        let (mut sum, mut count) = (0.0, 0.0);
        for batch in batches.take(limit) {
            let ids: Vec<i64> = batch.tokens.iter().map(|&t| t as i64).collect();
            let tokens = Tensor::<B, 2, Int>::from_data(
                TensorData::new(ids, [batch.batch_size, batch.seq_len]),
                &self.device,
            );
            let (s, c) = model.loss_sum(tokens.clone(), tokens, graft_llama::IGNORE_INDEX);
            sum += scalar(s);
            count += scalar(c);
        }
        Ok((
            if count > 0.0 { sum / count } else { f64::NAN },
            count as u64,
        ))
    }
}

impl<B: graft_llama::FusedOps> Evaluator<B> for PeriodicEval<B> {
    fn evaluate(&mut self, model: &Llama<B>) -> Result<Vec<(String, f64)>> {
        let mut out = Vec::new();
        for source in self.data.source_names() {
            let (loss, tokens) = self.held_out_loss(model, &source)?;
            if tokens == 0 {
                continue; // no held-out sequence (graft-data warned when opening the iterator)
            }
            out.push((format!("eval/{source}/loss"), loss));
            out.push((format!("eval/{source}/ppl"), loss.exp()));
        }
        let bos = self.tokenizer.as_ref().and_then(|t| t.bos_id);
        let options = ChoiceOptions::new(model.config().max_position_embeddings, self.batch_size);
        for task in &self.tasks {
            let result = score_choice_task(
                model,
                self.tokenizer.as_ref(),
                bos,
                &task.rows,
                &options,
                &mut |_, _| {},
            )
            .map_err(|e| TrainError::Data(format!("eval task `{}`: {e}", task.name)))?;
            out.push((format!("eval/{}/acc", task.name), result.acc));
            out.push((format!("eval/{}/acc_norm", task.name), result.acc_norm));
        }
        Ok(out)
    }
}
