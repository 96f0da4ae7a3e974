//! Pre-tokenized shard files: a versioned header, the tokens, and an index of document boundaries.
//!
//! Layout (little-endian):
//! ```text
//! 0   magic  b"GRAFTTOK"
//! 8   version u32 (= 1)
//! 12  dtype   u32 (= 4: u32 tokens)
//! 16  n_tokens u64
//! 24  n_docs   u64
//! 32  zero padding to 64
//! 64  tokens   [u32; n_tokens]
//! ..  offsets  [u64; n_docs + 1]   (doc i = tokens[offsets[i]..offsets[i+1]], offsets[0] = 0)
//! ```
//! A file whose length disagrees with its header is rejected, so a truncated shard is never misread.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::atomic;
use crate::error::{DataError, Result};

pub const MAGIC: &[u8; 8] = b"GRAFTTOK";
pub const VERSION: u32 = 1;
pub const DTYPE_U32: u32 = 4;
pub const HEADER_LEN: usize = 64;

/// Streams tokens into a temporary file; `finish` writes index and header, fsyncs and renames.
pub struct ShardWriter {
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<File>,
    offsets: Vec<u64>,
    n_tokens: u64,
}

impl ShardWriter {
    /// Starts `path` (written under a unique temporary name until `finish`).
    pub fn create(path: &Path) -> Result<Self> {
        let tmp = atomic::temp_path(path);
        let file = File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&[0u8; HEADER_LEN])
            .map_err(|e| DataError::io(&tmp, e))?;
        Ok(ShardWriter {
            tmp,
            path: path.to_path_buf(),
            out,
            offsets: vec![0],
            n_tokens: 0,
        })
    }

    /// Appends documents: `tokens` holds them back to back, `ends` their end offsets within `tokens`.
    pub fn append(&mut self, tokens: &[u32], ends: &[usize]) -> Result<()> {
        self.out
            .write_all(bytemuck::cast_slice(tokens))
            .map_err(|e| DataError::io(&self.tmp, e))?;
        self.offsets
            .extend(ends.iter().map(|&e| self.n_tokens + e as u64));
        self.n_tokens += tokens.len() as u64;
        Ok(())
    }

    /// Number of documents appended so far.
    pub fn n_docs(&self) -> u64 {
        self.offsets.len() as u64 - 1
    }

    /// Number of tokens appended so far.
    pub fn n_tokens(&self) -> u64 {
        self.n_tokens
    }

    /// Writes the index and header, fsyncs, and renames into place.
    pub fn finish(mut self) -> Result<()> {
        let io = |e| DataError::io(&self.tmp, e);
        for off in &self.offsets {
            self.out.write_all(&off.to_le_bytes()).map_err(io)?;
        }
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&DTYPE_U32.to_le_bytes());
        header[16..24].copy_from_slice(&self.n_tokens.to_le_bytes());
        header[24..32].copy_from_slice(&self.n_docs().to_le_bytes());
        self.out.seek(SeekFrom::Start(0)).map_err(io)?;
        self.out.write_all(&header).map_err(io)?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| DataError::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| DataError::io(&self.tmp, e))?;
        drop(file);
        atomic::commit(&self.tmp, &self.path)
    }
}

/// A memory-mapped, verified shard.
pub struct Shard {
    path: PathBuf,
    map: Mmap,
    offsets: Vec<u64>,
    n_tokens: usize,
}

impl Shard {
    /// Maps `path` and checks magic, version, dtype, exact length and the document index.
    pub fn open(path: &Path) -> Result<Shard> {
        let corrupt = |message: String| DataError::CorruptShard {
            path: path.to_path_buf(),
            message,
        };
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        // SAFETY: shards are written once (atomically renamed into place) and never modified in place.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, e))?;
        if map.len() < HEADER_LEN {
            return Err(corrupt(format!(
                "{} bytes, shorter than the {HEADER_LEN}-byte header",
                map.len()
            )));
        }
        if &map[..8] != MAGIC {
            return Err(corrupt("bad magic (not a graft token shard)".into()));
        }
        let u32_at = |o: usize| u32::from_le_bytes(map[o..o + 4].try_into().unwrap_or_default());
        let u64_at = |o: usize| u64::from_le_bytes(map[o..o + 8].try_into().unwrap_or_default());
        let (version, dtype, n_tokens, n_docs) = (u32_at(8), u32_at(12), u64_at(16), u64_at(24));
        if version != VERSION {
            return Err(corrupt(format!(
                "version {version}, this build reads version {VERSION}"
            )));
        }
        if dtype != DTYPE_U32 {
            return Err(corrupt(format!(
                "token dtype code {dtype}, expected {DTYPE_U32} (u32)"
            )));
        }
        let expected = (n_tokens as u128) * 4 + (n_docs as u128 + 1) * 8 + HEADER_LEN as u128;
        if expected != map.len() as u128 {
            return Err(corrupt(format!(
                "length {} bytes, header says {n_tokens} tokens and {n_docs} documents ({expected} bytes): truncated or overwritten",
                map.len()
            )));
        }
        let n_tokens = n_tokens as usize;
        let idx = HEADER_LEN + n_tokens * 4;
        let offsets: Vec<u64> = (0..=n_docs as usize).map(|i| u64_at(idx + i * 8)).collect();
        let monotone = offsets.windows(2).all(|w| w[0] <= w[1]);
        if offsets[0] != 0 || offsets[offsets.len() - 1] != n_tokens as u64 || !monotone {
            return Err(corrupt(
                "document index is inconsistent with the token count".into(),
            ));
        }
        let shard = Shard {
            path: path.to_path_buf(),
            map,
            offsets,
            n_tokens,
        };
        bytemuck::try_cast_slice::<u8, u32>(shard.token_bytes())
            .map_err(|e| corrupt(format!("token area: {e:?}")))?;
        Ok(shard)
    }

    fn token_bytes(&self) -> &[u8] {
        &self.map[HEADER_LEN..HEADER_LEN + self.n_tokens * 4]
    }

    /// All tokens.
    pub fn tokens(&self) -> &[u32] {
        // Alignment and length were checked in `open`.
        bytemuck::cast_slice(self.token_bytes())
    }

    /// Number of documents.
    pub fn n_docs(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Number of tokens.
    pub fn n_tokens(&self) -> usize {
        self.n_tokens
    }

    /// Token range of document `i`.
    pub fn doc_range(&self, i: usize) -> std::ops::Range<usize> {
        self.offsets[i] as usize..self.offsets[i + 1] as usize
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
