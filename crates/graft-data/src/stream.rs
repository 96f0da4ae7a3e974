//! The training stream: documents of all sources mixed by token ratio, packed end to end into
//! `[batch, seq_len]` batches; deterministic, resumable from a small cursor, sharded over ranks.
//!
//! Mixing: before every chunk, the source with the smallest `tokens_taken / weight` is picked and
//! gives as many tokens of its current document as fit in the current sequence, so each source's
//! share stays within one sequence length of its target. Each source walks its training documents
//! in a seeded permutation per epoch and starts a new epoch (new permutation) when it runs out.
//!
//! Ranks: the global stream is a sequence of sequences; global sequence `g` belongs to rank
//! `g % world_size`. Each `next_batch` advances the global stream by `batch_size * world_size`
//! sequences (skipped ones are only counted, not copied), so every rank's cursor is the same.

use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::prepared::PreparedData;

/// A batch of packed token sequences, row-major `[batch_size, seq_len]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    pub tokens: Vec<u32>,
    pub batch_size: usize,
    pub seq_len: usize,
}

impl Batch {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[u32] {
        &self.tokens[i * self.seq_len..(i + 1) * self.seq_len]
    }
}

/// Batch size and this process's data-parallel rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Sequences per batch on this rank.
    pub batch_size: usize,
    pub rank: usize,
    pub world_size: usize,
}

/// Where the stream is; serialize it into a checkpoint and pass it to [`TrainStream::restore`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Identifies the stream (seed, seq_len, sources, weights, document counts).
    pub stream_id: String,
    /// Global sequences produced so far (all ranks).
    pub sequences: u64,
    pub sources: Vec<SourceCursor>,
}

/// Per-source position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCursor {
    pub name: String,
    /// Epoch (0-based) the source is in.
    pub epoch: u64,
    /// Position in this epoch's document permutation.
    pub doc: u64,
    /// Tokens of the current document already taken.
    pub offset: u64,
    /// Tokens taken from this source so far (whole stream, all ranks).
    pub tokens: u64,
}

/// Tokens seen per source, for logging.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceStats {
    pub name: String,
    /// Tokens taken from the source by the whole (all-rank) stream.
    pub tokens: u64,
    /// Epochs over the source's training tokens, fractional (> 1 means it has been repeated).
    pub epochs: f64,
    /// Share of all tokens so far.
    pub share: f64,
}

struct SourceState {
    perm: Vec<u32>,
    epoch: u64,
    doc: usize,
    offset: usize,
    tokens: u64,
}

/// The mixed, packed training stream of one rank.
pub struct TrainStream {
    data: Arc<PreparedData>,
    opts: StreamOptions,
    sequences: u64,
    states: Vec<SourceState>,
    stream_id: String,
}

impl TrainStream {
    /// A stream at the start.
    pub fn new(data: Arc<PreparedData>, opts: StreamOptions) -> Result<TrainStream> {
        if opts.batch_size == 0 || opts.world_size == 0 || opts.rank >= opts.world_size {
            return Err(DataError::Invalid(format!(
                "batch_size {} / rank {} / world_size {}: need batch_size >= 1 and rank < world_size",
                opts.batch_size, opts.rank, opts.world_size
            )));
        }
        let stream_id = stream_id(&data);
        let mut stream = TrainStream {
            data,
            opts,
            sequences: 0,
            states: Vec::new(),
            stream_id,
        };
        stream.states = (0..stream.data.sources.len())
            .map(|i| stream.fresh_state(i, 0))
            .collect();
        Ok(stream)
    }

    fn fresh_state(&self, source: usize, epoch: u64) -> SourceState {
        SourceState {
            perm: self.permutation(source, epoch),
            epoch,
            doc: 0,
            offset: 0,
            tokens: 0,
        }
    }

    fn permutation(&self, source: usize, epoch: u64) -> Vec<u32> {
        let n = self.data.sources[source].train.len() as u32;
        let mut perm: Vec<u32> = (0..n).collect();
        let seed = self.data.config.seed
            ^ (source as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03);
        perm.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        perm
    }

    /// The next `[batch_size, seq_len]` batch of this rank.
    pub fn next_batch(&mut self) -> Batch {
        let mut batch = Batch::default();
        self.next_batch_into(&mut batch);
        batch
    }

    /// Like [`next_batch`](Self::next_batch), reusing `batch`'s buffer.
    pub fn next_batch_into(&mut self, batch: &mut Batch) {
        let (b, seq_len) = (self.opts.batch_size, self.data.config.seq_len);
        batch.batch_size = b;
        batch.seq_len = seq_len;
        batch.tokens.resize(b * seq_len, 0);
        let world = self.opts.world_size as u64;
        for i in 0..(b as u64 * world) {
            let g = self.sequences + i;
            if g % world == self.opts.rank as u64 {
                let row = (i / world) as usize;
                self.fill(Some(&mut batch.tokens[row * seq_len..(row + 1) * seq_len]));
            } else {
                self.fill(None);
            }
        }
        self.sequences += b as u64 * world;
    }

    /// Produces one global sequence, copying it into `out` if given.
    fn fill(&mut self, mut out: Option<&mut [u32]>) {
        let seq_len = self.data.config.seq_len;
        let mut filled = 0;
        while filled < seq_len {
            let s = self.pick();
            let src = &self.data.sources[s];
            let st = &mut self.states[s];
            let doc = src.doc(src.train[st.perm[st.doc] as usize]);
            let take = (doc.len() - st.offset).min(seq_len - filled);
            if let Some(out) = out.as_deref_mut() {
                out[filled..filled + take].copy_from_slice(&doc[st.offset..st.offset + take]);
            }
            st.offset += take;
            st.tokens += take as u64;
            filled += take;
            if st.offset == doc.len() {
                st.offset = 0;
                st.doc += 1;
                if st.doc == st.perm.len() {
                    let epoch = st.epoch + 1;
                    let tokens = st.tokens;
                    self.states[s] = SourceState {
                        tokens,
                        ..self.fresh_state(s, epoch)
                    };
                }
            }
        }
    }

    /// The source furthest below its share: smallest `tokens / weight`, ties to the first.
    fn pick(&self) -> usize {
        let mut best = 0;
        let mut best_key = f64::INFINITY;
        for (i, (st, src)) in self.states.iter().zip(&self.data.sources).enumerate() {
            let key = st.tokens as f64 / src.weight;
            if key < best_key {
                best = i;
                best_key = key;
            }
        }
        best
    }

    /// The current position (same on every rank after the same number of batches).
    pub fn cursor(&self) -> Cursor {
        let sources = self
            .states
            .iter()
            .zip(&self.data.sources)
            .map(|(st, src)| SourceCursor {
                name: src.name.clone(),
                epoch: st.epoch,
                doc: st.doc as u64,
                offset: st.offset as u64,
                tokens: st.tokens,
            })
            .collect();
        Cursor {
            stream_id: self.stream_id.clone(),
            sequences: self.sequences,
            sources,
        }
    }

    /// Moves the stream to `cursor`; the batches that follow are those an uninterrupted run would give.
    pub fn restore(&mut self, cursor: &Cursor) -> Result<()> {
        if cursor.stream_id != self.stream_id {
            return Err(DataError::BadCursor(
                "it was saved for different data (seed, seq_len, sources, weights or documents changed)".into(),
            ));
        }
        let world = self.opts.world_size as u64;
        if !cursor.sequences.is_multiple_of(world) {
            return Err(DataError::BadCursor(format!(
                "{} sequences is not a multiple of world_size {world}",
                cursor.sequences
            )));
        }
        let mut states = Vec::with_capacity(self.states.len());
        for (i, (c, src)) in cursor.sources.iter().zip(&self.data.sources).enumerate() {
            let perm = self.permutation(i, c.epoch);
            let doc_len = perm
                .get(c.doc as usize)
                .map(|&d| src.doc(src.train[d as usize]).len());
            if c.name != src.name || doc_len.is_none_or(|len| c.offset as usize > len) {
                return Err(DataError::BadCursor(format!(
                    "source `{}`: position out of range",
                    c.name
                )));
            }
            states.push(SourceState {
                perm,
                epoch: c.epoch,
                doc: c.doc as usize,
                offset: c.offset as usize,
                tokens: c.tokens,
            });
        }
        if states.len() != self.states.len() {
            return Err(DataError::BadCursor("number of sources differs".into()));
        }
        self.states = states;
        self.sequences = cursor.sequences;
        Ok(())
    }

    /// Tokens seen per source so far.
    pub fn stats(&self) -> Vec<SourceStats> {
        let total: u64 = self.states.iter().map(|s| s.tokens).sum::<u64>().max(1);
        self.states
            .iter()
            .zip(&self.data.sources)
            .map(|(st, src)| SourceStats {
                name: src.name.clone(),
                tokens: st.tokens,
                epochs: st.tokens as f64 / src.train_tokens as f64,
                share: st.tokens as f64 / total as f64,
            })
            .collect()
    }

    /// The options this stream was opened with.
    pub fn options(&self) -> StreamOptions {
        self.opts
    }
}

fn stream_id(data: &PreparedData) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(data.config.seed.to_le_bytes());
    h.update((data.config.seq_len as u64).to_le_bytes());
    for s in &data.sources {
        h.update(s.name.as_bytes());
        h.update(s.weight.to_le_bytes());
        h.update((s.train.len() as u64).to_le_bytes());
        h.update(s.train_tokens.to_le_bytes());
    }
    crate::tokenize::hex(&h.finalize()[..8])
}
