//! What a [`Run`](super::Run) tells its caller while it works: data prepared, training started,
//! tokens consumed, scalars logged, training ended. The `graft` CLI draws its progress bar from
//! these events; a program can log them, count them or ignore them ([`NoObserver`]).
//!
//! Only rank 0 (the first device of node 0) reports training events. Observers are shared between
//! the data source and the logger of that peer, so their methods take `&self`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use graft_data::synthesis::SynthSummary;
use graft_data::Manifest;

use crate::logging::ScalarLogger;
use crate::{BatchSource, TokenBatch};

/// Training is about to start (rank 0, after the model is built and before any resume).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainStart {
    /// Optimizer steps of the whole run (the schedule's length).
    pub total_steps: u64,
    /// The step training stops at (lower than `total_steps` with a stop-after).
    pub stop_step: u64,
    /// Tokens of one optimizer step, over all data-parallel peers.
    pub tokens_per_step: u64,
}

/// Events of a run. Every method has an empty default: implement the ones you need.
pub trait Observer: Send + Sync {
    /// The instruction synthesizer finished (or found finished) a raw source.
    fn synthesized(&self, _source: &str, _summary: &SynthSummary) {}
    /// The data of the recipe at `recipe` is tokenized into `dir` (files unchanged since the last
    /// run were reused).
    fn prepared(&self, _recipe: &Path, _dir: &Path, _manifest: &Manifest) {}
    /// Training starts.
    fn train_started(&self, _start: &TrainStart) {}
    /// Training continues from the checkpoint of `step`.
    fn resumed(&self, _step: u64) {}
    /// `tokens` more tokens were handed to the peers (one micro-batch on every peer).
    fn tokens(&self, _tokens: u64) {}
    /// A scalar was logged (`train/loss`, `eval/<source>/ppl`, …) at optimizer step `step`.
    fn scalar(&self, _tag: &str, _value: f64, _step: u64) {}
    /// Training ended, finished or not (called on errors too).
    fn train_ended(&self) {}
}

/// An observer that ignores everything.
pub struct NoObserver;

impl Observer for NoObserver {}

/// A [`BatchSource`] that reports the tokens of every micro-batch it hands out.
pub(crate) struct CountingSource<'a> {
    /// The real source.
    pub inner: &'a mut dyn BatchSource,
    /// Told about the tokens.
    pub observer: Arc<dyn Observer>,
    /// Data-parallel peers taking a batch of the same size at the same time (1 on one device):
    /// the count covers all their tokens.
    pub peers: u64,
}

impl BatchSource for CountingSource<'_> {
    fn next_batch(&mut self) -> crate::Result<TokenBatch> {
        let batch = self.inner.next_batch()?;
        self.observer.tokens(batch.tokens.len() as u64 * self.peers);
        Ok(batch)
    }
    fn cursor(&self) -> crate::Result<serde_json::Value> {
        self.inner.cursor()
    }
    fn restore(&mut self, cursor: &serde_json::Value) -> crate::Result<()> {
        self.inner.restore(cursor)
    }
    fn tokens_per_source(&self) -> BTreeMap<String, u64> {
        self.inner.tokens_per_source()
    }
    fn epochs_per_source(&self) -> BTreeMap<String, f64> {
        self.inner.epochs_per_source()
    }
}

/// A [`ScalarLogger`] that forwards everything and reports every scalar to the observer.
pub(crate) struct ObservedLogger {
    /// The real logger.
    pub inner: Box<dyn ScalarLogger>,
    /// Told about every scalar.
    pub observer: Arc<dyn Observer>,
}

impl ScalarLogger for ObservedLogger {
    fn scalar(&mut self, tag: &str, value: f64, step: u64) -> crate::Result<()> {
        self.observer.scalar(tag, value, step);
        self.inner.scalar(tag, value, step)
    }
    fn flush(&mut self) -> crate::Result<()> {
        self.inner.flush()
    }
}
