//! `prepare`: every source file → one pre-tokenized shard (in parallel), then the manifest.
//!
//! Incremental: a file whose path, size and mtime, source config and tokenizer are unchanged since
//! the last run keeps its shard. Shards are written under a temporary name and renamed; the manifest
//! is written last, so an interrupted run leaves nothing a later run would trust.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::atomic::write_atomic;
use crate::config::{DataConfig, SourceConfig};
use crate::error::{DataError, Result};
use crate::manifest::{self, FileEntry, FileStamp, Manifest, PrepareRun, SourceManifest};
use crate::read::Flow;
use crate::shard::{Shard, ShardWriter};
use crate::source::render_file;
use crate::tokenize::TextTokenizer;

/// Documents tokenized per `encode_batch` call.
const ENCODE_CHUNK: usize = 256;

/// One input file to turn into a shard.
struct Job<'a> {
    source: &'a SourceConfig,
    path: PathBuf,
    stamp: FileStamp,
    shard: String,
}

/// Tokenizes every source of `config` into shards under `out_dir` and writes `out_dir/manifest.json`.
///
/// `config`'s paths must be resolved. BOS/EOS ids come from `tokenizer` (the caller reads them from
/// the model's config); `add_bos`/`add_eos` in the config require them to be set.
pub fn prepare(config: &DataConfig, tokenizer: &TextTokenizer, out_dir: &Path) -> Result<Manifest> {
    config.validate()?;
    let bos = special(config.add_bos, tokenizer.bos_id, "add_bos", "BOS")?;
    let eos = special(config.add_eos, tokenizer.eos_id, "add_eos", "EOS")?;
    std::fs::create_dir_all(out_dir).map_err(|e| DataError::io(out_dir, e))?;
    let old = Manifest::load(out_dir).ok();
    let same_tokens =
        |m: &Manifest| m.tokenizer_hash == tokenizer.hash() && m.bos_id == bos && m.eos_id == eos;
    let old = old.filter(same_tokens);

    let mut reused: Vec<(usize, FileEntry)> = Vec::new();
    let mut jobs: Vec<(usize, Job)> = Vec::new();
    for (si, source) in config.sources.iter().enumerate() {
        let hash = manifest::source_config_hash(config, source);
        let old_source = old
            .as_ref()
            .and_then(|m| m.source(&source.name))
            .filter(|s| s.config_hash == hash);
        for path in source.files()? {
            let stamp = FileStamp::of(&path)?;
            let shard = manifest::shard_name(&source.name, &hash, tokenizer.hash(), &path);
            let prev = old_source
                .and_then(|s| s.files.iter().find(|f| f.path == path && f.shard == shard));
            match prev.filter(|f| stamp.matches(f) && shard_ok(&out_dir.join(&f.shard), f)) {
                Some(entry) => reused.push((si, entry.clone())),
                None => jobs.push((
                    si,
                    Job {
                        source,
                        path,
                        stamp,
                        shard,
                    },
                )),
            }
        }
    }
    let run = PrepareRun {
        written: jobs.len(),
        reused: reused.len(),
    };
    tracing::info!(
        "prepare: {} file(s) to tokenize, {} unchanged",
        run.written,
        run.reused
    );

    let bar = progress(jobs.len() as u64);
    let written: Vec<(usize, FileEntry)> = jobs
        .par_iter()
        .map(|(si, job)| {
            let entry = prepare_file(config, tokenizer, job, bos, eos, out_dir);
            bar.inc(1);
            entry.map(|e| (*si, e))
        })
        .collect::<Result<_>>()?;
    bar.finish_and_clear();
    let nothing_written = written.is_empty();

    let mut manifest = Manifest {
        version: manifest::MANIFEST_VERSION,
        tokenizer_hash: tokenizer.hash().to_string(),
        vocab_size: tokenizer.vocab_size(),
        bos_id: bos,
        eos_id: eos,
        sources: assemble(config, reused.into_iter().chain(written))?,
        run,
    };
    // nothing re-tokenized and the manifest on disk already says the same: leave the directory
    // untouched (a no-op re-run writes nothing, so several processes may share it read-only)
    let unchanged = nothing_written
        && Manifest::load(out_dir).is_ok_and(|old| {
            (
                &old.tokenizer_hash,
                old.vocab_size,
                old.bos_id,
                old.eos_id,
                &old.sources,
            ) == (
                &manifest.tokenizer_hash,
                manifest.vocab_size,
                manifest.bos_id,
                manifest.eos_id,
                &manifest.sources,
            )
        });
    if !unchanged {
        let json = serde_json::to_string_pretty(&manifest)
            .map_err(|e| DataError::Invalid(e.to_string()))?;
        write_atomic(&out_dir.join(manifest::MANIFEST_FILE), json.as_bytes())?;
        remove_stale(out_dir, &manifest);
    }
    manifest.run = run;
    for s in &manifest.sources {
        tracing::info!(
            "source {}: {} docs, {} tokens, {} bad records, {} dropped pairs",
            s.name,
            s.documents,
            s.tokens,
            s.bad_records,
            s.dropped_pairs
        );
    }
    Ok(manifest)
}

fn special(enabled: bool, id: Option<u32>, key: &str, what: &str) -> Result<Option<u32>> {
    match (enabled, id) {
        (false, _) => Ok(None),
        (true, Some(id)) => Ok(Some(id)),
        (true, None) => Err(DataError::Invalid(format!(
            "{key} = true but no {what} id is known; pass it from the model config"
        ))),
    }
}

/// True if the shard on disk opens and agrees with its manifest entry.
fn shard_ok(path: &Path, entry: &FileEntry) -> bool {
    Shard::open(path)
        .is_ok_and(|s| s.n_tokens() as u64 == entry.tokens && s.n_docs() as u64 == entry.documents)
}

fn progress(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "tokenizing {bar:30} {pos}/{len} files [{elapsed_precise}, eta {eta}]",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Renders, tokenizes and writes one file's shard.
fn prepare_file(
    config: &DataConfig,
    tokenizer: &TextTokenizer,
    job: &Job,
    bos: Option<u32>,
    eos: Option<u32>,
    out_dir: &Path,
) -> Result<FileEntry> {
    let mut writer = ShardWriter::create(&out_dir.join(&job.shard))?;
    let mut docs: Vec<String> = Vec::with_capacity(ENCODE_CHUNK);
    let mut tokens: Vec<u32> = Vec::new();
    let mut flush = |docs: &mut Vec<String>, writer: &mut ShardWriter| -> Result<()> {
        tokens.clear();
        let ends = tokenizer.encode_docs(docs, bos, eos, &mut tokens)?;
        docs.clear();
        writer.append(&tokens, &ends)
    };
    let stats = render_file(
        job.source,
        &job.path,
        config.seed,
        config.on_bad_record,
        &mut |doc| {
            docs.push(doc);
            if docs.len() >= ENCODE_CHUNK {
                flush(&mut docs, &mut writer)?;
            }
            Ok(Flow::Continue)
        },
    )?;
    if !docs.is_empty() {
        flush(&mut docs, &mut writer)?;
    }
    let (documents, n_tokens) = (writer.n_docs(), writer.n_tokens());
    writer.finish()?;
    Ok(FileEntry {
        path: job.path.clone(),
        size: job.stamp.size,
        mtime_s: job.stamp.mtime_s,
        mtime_ns: job.stamp.mtime_ns,
        shard: job.shard.clone(),
        documents,
        tokens: n_tokens,
        records: stats.records,
        bad_records: stats.bad_records,
        dropped_pairs: stats.dropped_pairs,
    })
}

/// Groups file entries by source (files in path order) and sums their counts.
fn assemble(
    config: &DataConfig,
    entries: impl Iterator<Item = (usize, FileEntry)>,
) -> Result<Vec<SourceManifest>> {
    let mut per_source: Vec<Vec<FileEntry>> = vec![Vec::new(); config.sources.len()];
    for (si, e) in entries {
        per_source[si].push(e);
    }
    let mut out = Vec::with_capacity(config.sources.len());
    for (source, mut files) in config.sources.iter().zip(per_source) {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let sum = |f: fn(&FileEntry) -> u64| files.iter().map(f).sum::<u64>();
        let sm = SourceManifest {
            name: source.name.clone(),
            format: source.format,
            config_hash: manifest::source_config_hash(config, source),
            documents: sum(|f| f.documents),
            tokens: sum(|f| f.tokens),
            records: sum(|f| f.records),
            bad_records: sum(|f| f.bad_records),
            dropped_pairs: sum(|f| f.dropped_pairs),
            files,
        };
        if sm.documents == 0 {
            return Err(DataError::EmptySource(source.name.clone()));
        }
        out.push(sm);
    }
    Ok(out)
}

/// Deletes shard files (and leftover temporaries) that the manifest no longer references.
fn remove_stale(out_dir: &Path, manifest: &Manifest) {
    let Ok(entries) = std::fs::read_dir(out_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_ours = name.ends_with(".tok") || (name.contains(".tok.") && name.ends_with(".tmp"));
        let used = manifest
            .sources
            .iter()
            .flat_map(|s| &s.files)
            .any(|f| f.shard == name);
        if is_ours && !used {
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(
                    "could not remove stale shard {}: {e}",
                    entry.path().display()
                );
            }
        }
    }
}
