//! Terminal progress for long commands, and a log writer that keeps tracing lines from tearing it.
//!
//! The training bar counts tokens (so indicatif's rate is tokens/s and its ETA follows throughput)
//! and shows the step and the last logged loss. It is driven by the run's events
//! ([`TerminalObserver`]: tokens handed out, `train/loss` logged). When stderr is not a terminal
//! the bar is hidden and the trainer's plain `tracing` lines (every `log_every` steps) are the
//! progress output.

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
    fn scalar(&self, tag: &str, value: f64, _step: u64) {
        if tag == "train/loss" {
            self.with_bar(|bar| bar.bar.set_message(format!("loss {value:.4}")));
        }
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
