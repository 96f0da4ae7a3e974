//! graft-data: corpora → templated text → tokens → packed, mixed, resumable batches.
//!
//! Stages, one module each:
//! - [`atomic`]: atomic file writes (unique temporary name, fsync, rename, fsync of the directory).
//! - [`augment`]: raw text → reading-comprehension documents (AdaptLLM rules, `graft augment`).
//! - [`config`]: the recipe's `[data]` table ([`DataConfig`], [`SourceConfig`]).
//! - [`read`]: files (JSONL, `.gz`/`.zst`, Parquet, `.txt`) → records.
//! - [`format`]: records → plain-text documents (`raw`, `instruction-augmented`, `instruction`).
//! - [`source`]: a source's files → documents with the bad-record policy; [`preview`].
//! - [`tokenizer_source`]: which tokenizer a recipe uses, with its BOS/EOS ids.
//! - [`tokenize`], [`shard`], [`prepare()`](prepare::prepare): documents → pre-tokenized shards + manifest.
//! - [`synthesis`]: the instruction synthesizer's protocol (prompts, rounds, parsing) as LMOps runs it.
//! - [`prepared`], [`stream`], [`eval`]: shards → mixed, packed, resumable batches; held-out batches.
//!
//! ```no_run
//! # fn main() -> graft_data::Result<()> {
//! use graft_data::*;
//! // a recipe's [data] table (`graft_train::Recipe::load` reads whole recipes)
//! let mut config = DataConfig::from_toml_str(
//!     "seq_len = 512\n[[sources]]\nname = \"web\"\npath = \"web/*.jsonl\"",
//!     "data.toml".as_ref(),
//! )?;
//! config.resolve_paths("recipes".as_ref());
//! let tok = TextTokenizer::from_file("model/tokenizer.json".as_ref(), Some(128000), Some(128001))?;
//! prepare(&config, &tok, "prepared".as_ref())?;
//! let data = PreparedData::open(&config, "prepared".as_ref())?;
//! let mut stream = TrainStream::new(data.clone(), StreamOptions { batch_size: 8, rank: 0, world_size: 1 })?;
//! let batch = stream.next_batch(); // [8, seq_len] row-major u32
//! let cursor = stream.cursor();    // save in the checkpoint; stream.restore(&cursor) resumes
//! for b in data.eval_iter("biomedicine", 8, 0, 1)? { /* held-out loss */ }
//! # Ok(()) }
//! ```

pub mod atomic;
pub mod augment;
pub mod config;
pub mod detokenize;
pub mod error;
pub mod eval;
pub mod format;
pub mod manifest;
pub mod prepare;
pub mod prepared;
pub mod read;
pub mod shard;
pub mod source;
pub mod stream;
pub mod synthesis;
pub mod tokenize;
pub mod tokenizer_source;

pub use config::{DataConfig, Format, OnBadRecord, ReaderKind, SourceConfig, SynthesizeConfig};
pub use detokenize::TextStream;
pub use error::{DataError, Result};
pub use eval::EvalIter;
pub use manifest::{FileEntry, Manifest, PrepareRun, SourceManifest};
pub use prepare::prepare;
pub use prepared::PreparedData;
pub use source::preview;
pub use stream::{Batch, Cursor, SourceCursor, SourceStats, StreamOptions, TrainStream};
pub use tokenize::TextTokenizer;
pub use tokenizer_source::TokenizerSource;
