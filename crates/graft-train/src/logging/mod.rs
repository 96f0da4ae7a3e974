//! Scalar logging: TensorBoard event files and a plain-text log; what a person reads.
//!
//! - [`console`]: the rounded step line and the evaluation table the loop logs through `tracing`;
//! - [`meter`]: memory and MFU figures for those lines;
//! - [`curves`]: the run's loss and evaluation curves as a PNG.
//!
//! burn-train's `MetricLogger` is organised around epochs and metric registries, which a
//! step-based pre-training loop does not have, so graft's loop uses a small [`ScalarLogger`]
//! trait; [`BurnMetricLogger`] implements burn-train's `MetricLogger` over it, so burn-train's
//! metrics write into the same TensorBoard files.
//! Tags: `train/loss`, `train/lr`, `train/grad_norm`, `train/tokens_per_s`,
//! `train/tokens_seen/<source>`, `train/epochs/<source>`, `eval/<source>/loss`, `eval/<source>/ppl`.
//!
//! The TensorBoard writer frames records with `tensorboard-rs`'s `RecordWriter` (length, masked
//! CRC32C) but writes the file itself, so I/O failures are errors rather than panics in a
//! background thread.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tensorboard_rs::record_writer::RecordWriter;

use crate::error::{Result, TrainError};

/// Something that records scalars by tag and step.
pub trait ScalarLogger {
    /// Record `value` under `tag` at optimizer step `step`.
    fn scalar(&mut self, tag: &str, value: f64, step: u64) -> Result<()>;
    /// Make everything recorded so far durable (called after each logging round).
    fn flush(&mut self) -> Result<()>;
}

/// Writes TensorBoard `events.out.tfevents.*` files.
pub struct TensorBoardLogger {
    path: PathBuf,
    writer: RecordWriter<BufWriter<File>>,
}

impl TensorBoardLogger {
    /// Create `dir` and a new event file in it.
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io("creating", dir, e))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        let name = format!(
            "events.out.tfevents.{:010}.{host}.{}.0",
            now.as_secs(),
            std::process::id()
        );
        let path = dir.join(name);
        let file = File::create(&path).map_err(|e| TrainError::io("creating", &path, e))?;
        let mut logger = Self {
            path,
            writer: RecordWriter::new(BufWriter::new(file)),
        };
        let header = encode_event(wall_time(), 0, Payload::FileVersion("brain.Event:2"));
        logger.write(&header)?;
        logger.flush()?;
        Ok(logger)
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer
            .write(bytes)
            .map_err(|e| TrainError::io("writing", &self.path, e))
    }
}

impl ScalarLogger for TensorBoardLogger {
    fn scalar(&mut self, tag: &str, value: f64, step: u64) -> Result<()> {
        let event = encode_event(wall_time(), step as i64, Payload::Scalar(tag, value as f32));
        self.write(&event)
    }

    fn flush(&mut self) -> Result<()> {
        self.writer
            .flush()
            .map_err(|e| TrainError::io("flushing", &self.path, e))
    }
}

/// Appends `step<TAB>tag<TAB>value` lines to a text file.
pub struct TextLogger {
    path: PathBuf,
    out: BufWriter<File>,
}

impl TextLogger {
    /// Open (append to) `path` ([`graft_fs::open_append`]: a line torn by a crash is cut off).
    pub fn new(path: &Path) -> Result<Self> {
        let file =
            graft_fs::open_append(path).map_err(|e| TrainError::io("opening", e.path, e.source))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        })
    }
}

impl ScalarLogger for TextLogger {
    fn scalar(&mut self, tag: &str, value: f64, step: u64) -> Result<()> {
        writeln!(self.out, "{step}\t{tag}\t{value}")
            .map_err(|e| TrainError::io("writing", &self.path, e))
    }

    fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .map_err(|e| TrainError::io("flushing", &self.path, e))
    }
}

/// Sends every scalar to several loggers.
#[derive(Default)]
pub struct MultiLogger(pub Vec<Box<dyn ScalarLogger + Send>>);

impl ScalarLogger for MultiLogger {
    fn scalar(&mut self, tag: &str, value: f64, step: u64) -> Result<()> {
        self.0
            .iter_mut()
            .try_for_each(|l| l.scalar(tag, value, step))
    }

    fn flush(&mut self) -> Result<()> {
        self.0.iter_mut().try_for_each(|l| l.flush())
    }
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

enum Payload<'a> {
    FileVersion(&'a str),
    Scalar(&'a str, f32),
}

/// Encode a `tensorflow.Event` protobuf: wall_time (1, double), step (2, int64) and either
/// file_version (3, string) or summary (5) { value (1) { tag (1), simple_value (2, float) } }.
fn encode_event(wall_time: f64, step: i64, payload: Payload) -> Vec<u8> {
    let mut out = vec![0x09];
    out.extend_from_slice(&wall_time.to_le_bytes());
    out.push(0x10);
    put_varint(&mut out, step as u64);
    match payload {
        Payload::FileVersion(v) => put_bytes(&mut out, 3, v.as_bytes()),
        Payload::Scalar(tag, value) => {
            let mut val = Vec::new();
            put_bytes(&mut val, 1, tag.as_bytes());
            val.push(0x15);
            val.extend_from_slice(&value.to_le_bytes());
            let mut summary = Vec::new();
            put_bytes(&mut summary, 1, &val);
            put_bytes(&mut out, 5, &summary);
        }
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, ((field << 3) | 2) as u64);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

mod burn_metrics;
pub mod console;
pub mod curves;
pub mod meter;
pub use burn_metrics::BurnMetricLogger;
pub use meter::StepMeter;

#[cfg(test)]
mod tests;
