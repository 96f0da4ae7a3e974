//! Terminal progress for long commands, and a log writer that keeps tracing lines from tearing it.
//!
//! The training bar counts tokens (so its ETA follows throughput) and shows where the run is: the
//! step, elapsed time and ETA. It is driven by the run's events ([`TerminalObserver`]: tokens
//! handed out, resumption). The figures (loss, lr, grad norm, tok/s, memory, MFU) are in the
//! trainer's one line per logged step, printed above the bar (the log writer suspends it), so the
//! two never repeat each other and the lines stay in the terminal's scroll-back as a history.
//! When stderr is not a terminal the bar is hidden and the lines alone are the progress output.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use graft_data::synthesis::SynthSummary;
use graft_data::Manifest;
use graft_train::run::{Observer, TrainStart};
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
}

impl Drop for TrainBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        if let Ok(mut a) = ACTIVE.lock() {
            *a = None;
        }
    }
}

/// The terminal face of a [`graft_train::Run`]: a [`TrainBar`] while training (its message shows
/// the last `train/loss`), and the data-preparation summaries on stderr.
#[derive(Default)]
pub struct TerminalObserver {
    bar: Mutex<Option<TrainBar>>,
}

impl TerminalObserver {
    fn with_bar(&self, f: impl FnOnce(&TrainBar)) {
        if let Some(bar) = self.bar.lock().ok().as_ref().and_then(|b| b.as_ref()) {
            f(bar);
        }
    }
}

impl Observer for TerminalObserver {
    fn synthesized(&self, source: &str, s: &SynthSummary) {
        eprintln!(
            "synthesized `{source}`: {} texts ({} already done), {} pairs, {} texts truncated for length",
            s.texts, s.resumed, s.pairs, s.truncated
        );
    }
    fn prepared(&self, recipe: &Path, dir: &Path, manifest: &Manifest) {
        print_manifest(recipe, dir, manifest);
    }
    fn train_started(&self, start: &TrainStart) {
        match TrainBar::new(start.total_steps, start.tokens_per_step) {
            Ok(bar) => {
                if let Ok(mut b) = self.bar.lock() {
                    *b = Some(bar);
                }
            }
            Err(e) => tracing::debug!(error = %e, "no progress bar"),
        }
    }
    fn resumed(&self, step: u64) {
        self.with_bar(|bar| bar.start_at(step));
    }
    fn tokens(&self, tokens: u64) {
        self.with_bar(|bar| bar.bar.inc(tokens));
    }
    fn train_ended(&self) {
        if let Ok(mut b) = self.bar.lock() {
            b.take(); // clears the bar
        }
    }
}

/// Print what data preparation did, one line per source (to stderr).
pub fn print_manifest(recipe: &Path, dir: &Path, manifest: &Manifest) {
    eprintln!(
        "prepared {} in {} ({} file(s) tokenized, {} unchanged)",
        recipe.display(),
        dir.display(),
        manifest.run.written,
        manifest.run.reused
    );
    for s in &manifest.sources {
        eprintln!(
            "  {:<16} {:>8} docs {:>12} tokens  bad records {}  dropped pairs {}",
            s.name, s.documents, s.tokens, s.bad_records, s.dropped_pairs
        );
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
