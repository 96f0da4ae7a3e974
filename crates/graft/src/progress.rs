//! Terminal progress for long commands, and a log writer that keeps tracing lines from tearing it.
//!
//! The training bar counts tokens (so indicatif's rate is tokens/s and its ETA follows throughput)
//! and shows the step and the last logged loss. It is driven from outside the trainer: a
//! [`BatchSource`] wrapper advances it as micro-batches are taken, a [`ScalarLogger`] wrapper puts
//! `train/loss` in its message. When stderr is not a terminal the bar is hidden and the trainer's
//! plain `tracing` lines (every `log_every` steps) are the progress output.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

use graft_train::logging::ScalarLogger;
use graft_train::{BatchSource, TokenBatch};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// The bar currently drawn, if any; log lines are printed above it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn active() -> Option<ProgressBar> {
    ACTIVE.lock().ok().and_then(|a| a.clone())
}

/// A `tracing_subscriber` writer for stderr that suspends the active progress bar while writing.
pub struct StderrWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrWriter {
    type Writer = StderrWriter;
    fn make_writer(&'a self) -> Self::Writer {
        StderrWriter
    }
}

impl Write for StderrWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match active() {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The training progress bar: position in tokens, length = all tokens of the run.
pub struct TrainBar {
    bar: ProgressBar,
    tokens_per_step: u64,
}

impl TrainBar {
    /// A bar for `steps` optimizer steps of `tokens_per_step` tokens (hidden unless stderr is a terminal).
    pub fn new(steps: u64, tokens_per_step: u64) -> anyhow::Result<Self> {
        let tps = tokens_per_step.max(1);
        let style = ProgressStyle::with_template(
            "step {step}/{steps} [{bar:30}] {msg} {tok_s} tok/s, {elapsed_precise} elapsed, ETA {eta}",
        )?
        .with_key("step", move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}", s.pos().div_ceil(tps));
        })
        .with_key("steps", move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}", s.len().unwrap_or(0) / tps);
        })
        .with_key("tok_s", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}", s.per_sec());
        })
        .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(steps * tps), ProgressDrawTarget::stderr())
            .with_style(style);
        bar.set_message("loss -");
        if !bar.is_hidden() {
            if let Ok(mut a) = ACTIVE.lock() {
                *a = Some(bar.clone());
            }
        }
        Ok(Self {
            bar,
            tokens_per_step: tps,
        })
    }

    /// Continue from `step` (after a resume): jump there without counting it as throughput.
    pub fn start_at(&self, step: u64) {
        self.bar.set_position(step * self.tokens_per_step);
        self.bar.reset_eta();
    }

    /// A handle to the bar.
    pub fn bar(&self) -> ProgressBar {
        self.bar.clone()
    }
}

impl Drop for TrainBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        if let Ok(mut a) = ACTIVE.lock() {
            *a = None;
        }
    }
}

/// A [`BatchSource`] that advances a bar by the tokens of every micro-batch it hands out.
pub struct CountingSource<'a> {
    /// The real source.
    pub inner: &'a mut dyn BatchSource,
    /// The bar to advance.
    pub bar: ProgressBar,
    /// Data-parallel peers taking a batch of the same size at the same time (1 on one device):
    /// the bar counts all their tokens.
    pub peers: u64,
}

impl BatchSource for CountingSource<'_> {
    fn next_batch(&mut self) -> graft_train::Result<TokenBatch> {
        let batch = self.inner.next_batch()?;
        self.bar.inc(batch.tokens.len() as u64 * self.peers);
        Ok(batch)
    }
    fn cursor(&self) -> graft_train::Result<serde_json::Value> {
        self.inner.cursor()
    }
    fn restore(&mut self, cursor: &serde_json::Value) -> graft_train::Result<()> {
        self.inner.restore(cursor)
    }
    fn tokens_per_source(&self) -> BTreeMap<String, u64> {
        self.inner.tokens_per_source()
    }
    fn epochs_per_source(&self) -> BTreeMap<String, f64> {
        self.inner.epochs_per_source()
    }
}

/// A [`ScalarLogger`] that forwards everything and shows the last `train/loss` on the bar.
pub struct BarLogger {
    /// The real logger.
    pub inner: Box<dyn ScalarLogger>,
    /// The bar whose message shows the loss.
    pub bar: ProgressBar,
}

impl ScalarLogger for BarLogger {
    fn scalar(&mut self, tag: &str, value: f64, step: u64) -> graft_train::Result<()> {
        if tag == "train/loss" {
            self.bar.set_message(format!("loss {value:.4}"));
        }
        self.inner.scalar(tag, value, step)
    }
    fn flush(&mut self) -> graft_train::Result<()> {
        self.inner.flush()
    }
}
