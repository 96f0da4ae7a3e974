//! Opening prepared data: verified shards per source, split into train and held-out documents.

use std::path::Path;
use std::sync::Arc;

use crate::config::DataConfig;
use crate::error::{DataError, Result};
use crate::manifest::{self, FileStamp, Manifest};
use crate::shard::Shard;

/// A document: shard index within its source, and token range within that shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DocRef {
    pub shard: u32,
    pub doc: u32,
}

/// One source's shards and its train / validation documents.
pub(crate) struct SourceData {
    pub name: String,
    pub weight: f64,
    pub shards: Vec<Shard>,
    pub train: Vec<DocRef>,
    pub val: Vec<DocRef>,
    pub train_tokens: u64,
}

impl SourceData {
    /// The tokens of a document.
    pub fn doc(&self, d: DocRef) -> &[u32] {
        let shard = &self.shards[d.shard as usize];
        &shard.tokens()[shard.doc_range(d.doc as usize)]
    }
}

/// Prepared data opened for reading; cheap to share (`Arc`) between a train stream and eval iterators.
pub struct PreparedData {
    pub(crate) config: DataConfig,
    pub(crate) sources: Vec<SourceData>,
    manifest: Manifest,
}

impl PreparedData {
    /// Opens `dir` (written by [`crate::prepare`] for this config): checks that every source of the
    /// config was prepared with the same rendering settings, maps and verifies every shard, and splits
    /// each source's documents into train and validation.
    pub fn open(config: &DataConfig, dir: &Path) -> Result<Arc<PreparedData>> {
        config.validate()?;
        let manifest = Manifest::load(dir)?;
        let not_prepared = |message: String| DataError::NotPrepared {
            dir: dir.to_path_buf(),
            message,
        };
        let mut sources = Vec::with_capacity(config.sources.len());
        for source in &config.sources {
            let sm = manifest.source(&source.name).ok_or_else(|| {
                not_prepared(format!("source `{}` was not prepared", source.name))
            })?;
            if sm.config_hash != manifest::source_config_hash(config, source) {
                return Err(not_prepared(format!(
                    "source `{}` was prepared with different settings",
                    source.name
                )));
            }
            let mut shards = Vec::with_capacity(sm.files.len());
            for f in &sm.files {
                if FileStamp::of(&f.path).is_ok_and(|s| !s.matches(f)) {
                    tracing::warn!("{} changed since it was prepared; run `graft prepare` to pick up the change", f.path.display());
                }
                let shard = Shard::open(&dir.join(&f.shard))?;
                if shard.n_tokens() as u64 != f.tokens || shard.n_docs() as u64 != f.documents {
                    return Err(DataError::CorruptShard {
                        path: dir.join(&f.shard),
                        message: format!(
                            "holds {} tokens / {} docs, manifest says {} / {}",
                            shard.n_tokens(),
                            shard.n_docs(),
                            f.tokens,
                            f.documents
                        ),
                    });
                }
                shards.push(shard);
            }
            sources.push(split(
                &source.name,
                source.weight,
                shards,
                source.val_fraction(config.val_fraction),
            )?);
        }
        Ok(Arc::new(PreparedData {
            config: config.clone(),
            sources,
            manifest,
        }))
    }

    /// The manifest the data was opened from.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Source names, in config order.
    pub fn source_names(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.name.clone()).collect()
    }

    /// Sequence length of train and eval sequences.
    pub fn seq_len(&self) -> usize {
        self.config.seq_len
    }

    /// Training tokens of a source (after the validation hold-out).
    pub fn train_tokens(&self, source: &str) -> Result<u64> {
        self.source_index(source)
            .map(|i| self.sources[i].train_tokens)
    }

    /// Held-out tokens of a source.
    pub fn val_tokens(&self, source: &str) -> Result<u64> {
        let s = &self.sources[self.source_index(source)?];
        Ok(s.val.iter().map(|&d| s.doc(d).len() as u64).sum())
    }

    pub(crate) fn source_index(&self, name: &str) -> Result<usize> {
        self.sources
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| DataError::UnknownSource(name.into()))
    }
}

/// Number of held-out documents out of `n` for fraction `f`: at least one when `f > 0` and `n >= 2`,
/// always leaving at least one training document.
pub fn val_count(n: usize, f: f64) -> usize {
    if f <= 0.0 || n < 2 {
        return 0;
    }
    ((n as f64 * f).round() as usize).clamp(1, n - 1)
}

/// Splits documents deterministically: the `k` held-out ones are spread evenly over the source
/// (doc `i` is held out when `floor((i+1)k/n) > floor(ik/n)`), independent of the seed.
fn split(name: &str, weight: f64, shards: Vec<Shard>, val_fraction: f64) -> Result<SourceData> {
    let all: Vec<DocRef> = shards
        .iter()
        .enumerate()
        .flat_map(|(s, sh)| {
            (0..sh.n_docs()).map(move |d| DocRef {
                shard: s as u32,
                doc: d as u32,
            })
        })
        .collect();
    if all.is_empty() {
        return Err(DataError::EmptySource(name.to_string()));
    }
    let (n, k) = (all.len(), val_count(all.len(), val_fraction));
    let (mut train, mut val) = (Vec::with_capacity(n - k), Vec::with_capacity(k));
    for (i, d) in all.into_iter().enumerate() {
        if (i + 1) * k / n > i * k / n {
            val.push(d);
        } else {
            train.push(d);
        }
    }
    let mut data = SourceData {
        name: name.to_string(),
        weight,
        shards,
        train,
        val,
        train_tokens: 0,
    };
    data.train_tokens = data.train.iter().map(|&d| data.doc(d).len() as u64).sum();
    if data.train_tokens == 0 {
        return Err(DataError::EmptySource(name.to_string()));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::val_count;

    #[test]
    fn val_count_holds_out_at_least_one_and_leaves_training_data() {
        assert_eq!(val_count(100, 0.0), 0);
        assert_eq!(val_count(100, 0.05), 5);
        assert_eq!(
            val_count(10, 0.01),
            1,
            "a positive fraction holds out at least one document"
        );
        assert_eq!(
            val_count(2, 0.9),
            1,
            "at least one document stays for training"
        );
        assert_eq!(val_count(1, 0.5), 0);
    }
}
