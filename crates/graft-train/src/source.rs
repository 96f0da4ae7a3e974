//! Where training batches come from: a small trait, implemented for graft-data's stream and for
//! fixed in-memory batches (tests, golden runs).

use std::collections::BTreeMap;

use crate::error::{Result, TrainError};

/// One micro-batch of token ids, row-major `[batch_size, seq_len]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Token ids.
    pub tokens: Vec<i64>,
    /// Rows.
    pub batch_size: usize,
    /// Columns.
    pub seq_len: usize,
}

/// A resumable stream of training micro-batches.
pub trait BatchSource {
    /// The next micro-batch.
    fn next_batch(&mut self) -> Result<TokenBatch>;
    /// The stream's position, saved in checkpoints.
    fn cursor(&self) -> Result<serde_json::Value>;
    /// Continue from a position returned by [`BatchSource::cursor`].
    fn restore(&mut self, cursor: &serde_json::Value) -> Result<()>;
    /// Tokens taken so far from each named source (for `train/tokens_seen/<source>`).
    fn tokens_per_source(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
    /// Passes over each named source's training split so far, fractional (for
    /// `train/epochs/<source>`: sources smaller than their share repeat).
    fn epochs_per_source(&self) -> BTreeMap<String, f64> {
        BTreeMap::new()
    }
}

/// Fixed batches served in order; the cursor is the index of the next one.
#[derive(Debug, Clone)]
pub struct VecSource {
    batches: Vec<TokenBatch>,
    next: usize,
}

impl VecSource {
    /// Serve `batches` in order.
    pub fn new(batches: Vec<TokenBatch>) -> Self {
        Self { batches, next: 0 }
    }
}

impl BatchSource for VecSource {
    fn next_batch(&mut self) -> Result<TokenBatch> {
        let b =
            self.batches.get(self.next).cloned().ok_or_else(|| {
                TrainError::Data(format!("ran out of batches after {}", self.next))
            })?;
        self.next += 1;
        Ok(b)
    }

    fn cursor(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({ "next": self.next }))
    }

    fn restore(&mut self, cursor: &serde_json::Value) -> Result<()> {
        let next = cursor["next"]
            .as_u64()
            .ok_or_else(|| TrainError::Data(format!("bad cursor {cursor}")))?;
        self.next = next as usize;
        Ok(())
    }
}

impl BatchSource for graft_data::TrainStream {
    fn next_batch(&mut self) -> Result<TokenBatch> {
        let b = graft_data::TrainStream::next_batch(self);
        Ok(TokenBatch {
            tokens: b.tokens.iter().map(|&t| t as i64).collect(),
            batch_size: b.batch_size,
            seq_len: b.seq_len,
        })
    }

    fn cursor(&self) -> Result<serde_json::Value> {
        serde_json::to_value(graft_data::TrainStream::cursor(self))
            .map_err(|e| TrainError::Data(e.to_string()))
    }

    fn restore(&mut self, cursor: &serde_json::Value) -> Result<()> {
        let c: graft_data::Cursor = serde_json::from_value(cursor.clone()).map_err(|e| {
            TrainError::Data(format!(
                "checkpoint data cursor does not match this data pipeline: {e}"
            ))
        })?;
        graft_data::TrainStream::restore(self, &c).map_err(|e| TrainError::Data(e.to_string()))
    }

    fn tokens_per_source(&self) -> BTreeMap<String, u64> {
        self.stats()
            .into_iter()
            .map(|s| (s.name, s.tokens))
            .collect()
    }

    fn epochs_per_source(&self) -> BTreeMap<String, f64> {
        self.stats()
            .into_iter()
            .map(|s| (s.name, s.epochs))
            .collect()
    }
}
