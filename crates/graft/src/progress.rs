//! Terminal progress for long commands, and a log writer that keeps tracing lines from tearing it.
//!
//! The training bar counts tokens (so its ETA follows throughput) and shows where the run is: the
//! step, elapsed time and ETA. The figures (loss, lr, grad norm, tok/s, memory, MFU) are in the
//! trainer's one line per logged step, printed above the bar (the log writer suspends it), so the
//! two never repeat each other and the lines stay in the terminal's scroll-back as a history.
//! The bar is driven from outside the trainer: a [`BatchSource`] wrapper advances it as
//! micro-batches are taken. When stderr is not a terminal the bar is hidden and the lines alone
//! are the progress output.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

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
            "[{bar:30}] step {step}/{steps}  {elapsed_precise} elapsed, ETA {eta}",
        )?
        .with_key(
            "step",
            move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", s.pos().div_ceil(tps));
            },
        )
        .with_key(
            "steps",
            move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", s.len().unwrap_or(0) / tps);
            },
        )
        .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(steps * tps), ProgressDrawTarget::stderr())
            .with_style(style);
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

/// The log format without `-v`: the message and its fields, `WARN: `/`ERROR: ` in front of
/// warnings and errors; no timestamp, level or module path.
pub struct PlainFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for PlainFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = *event.metadata().level();
        if level <= tracing::Level::WARN {
            write!(writer, "{level}: ")?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
