//! Held-out evaluation: each source's validation documents, in order, packed into fixed-length
//! sequences (the incomplete tail is dropped, never padded), batched, optionally sliced over ranks.

use std::sync::Arc;

use crate::error::Result;
use crate::prepared::PreparedData;
use crate::stream::Batch;

/// Iterator over one source's held-out `[≤batch_size, seq_len]` batches (the last may be shorter).
pub struct EvalIter {
    data: Arc<PreparedData>,
    source: usize,
    batch_size: usize,
    rank: usize,
    world_size: usize,
    /// Next global sequence index.
    next: usize,
    total: usize,
    /// Position in the concatenated validation tokens: (doc index, offset).
    pos: (usize, usize),
}

impl PreparedData {
    /// The held-out batches of `source`. Rank `r` of `world_size` gets sequences `r, r+W, r+2W, …`.
    pub fn eval_iter(
        self: &Arc<Self>,
        source: &str,
        batch_size: usize,
        rank: usize,
        world_size: usize,
    ) -> Result<EvalIter> {
        let si = self.source_index(source)?;
        if batch_size == 0 || world_size == 0 || rank >= world_size {
            return Err(crate::DataError::Invalid(format!(
                "eval batch_size {batch_size}, rank {rank}, world_size {world_size}"
            )));
        }
        let total = self.eval_sequences(source)?;
        if total == 0 {
            tracing::warn!("source `{source}`: fewer held-out tokens than seq_len; no eval sequences (raise val_fraction)");
        }
        Ok(EvalIter {
            data: Arc::clone(self),
            source: si,
            batch_size,
            rank,
            world_size,
            next: 0,
            total,
            pos: (0, 0),
        })
    }

    /// Number of full held-out sequences of `source` (all ranks together).
    pub fn eval_sequences(&self, source: &str) -> Result<usize> {
        Ok((self.val_tokens(source)? / self.config.seq_len as u64) as usize)
    }
}

impl EvalIter {
    /// Copies the next global held-out sequence into `out`, or skips it when `out` is `None`.
    fn fill(&mut self, mut out: Option<&mut [u32]>) {
        let src = &self.data.sources[self.source];
        let mut filled = 0;
        let len = self.data.config.seq_len;
        while filled < len {
            let doc = src.doc(src.val[self.pos.0]);
            let take = (doc.len() - self.pos.1).min(len - filled);
            if let Some(out) = out.as_deref_mut() {
                out[filled..filled + take].copy_from_slice(&doc[self.pos.1..self.pos.1 + take]);
            }
            filled += take;
            self.pos.1 += take;
            if self.pos.1 == doc.len() {
                self.pos = (self.pos.0 + 1, 0);
            }
        }
        self.next += 1;
    }
}

impl Iterator for EvalIter {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let seq_len = self.data.config.seq_len;
        let mut tokens = Vec::with_capacity(self.batch_size * seq_len);
        let mut rows = 0;
        while rows < self.batch_size && self.next < self.total {
            if self.next % self.world_size == self.rank {
                tokens.resize((rows + 1) * seq_len, 0);
                self.fill(Some(&mut tokens[rows * seq_len..]));
                rows += 1;
            } else {
                self.fill(None);
            }
        }
        (rows > 0).then_some(Batch {
            tokens,
            batch_size: rows,
            seq_len,
        })
    }
}
