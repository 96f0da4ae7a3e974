//! A source's files → rendered documents, applying the `on_bad_record` policy; and `preview`.

use std::path::Path;

use crate::config::{DataConfig, Format, OnBadRecord, SourceConfig};
use crate::error::{DataError, Result};
use crate::format::{RenderStats, Renderer};
use crate::read::{for_each_record, Flow};

/// Renders every document of one file, in order, calling `sink` on each; stops early when `sink`
/// returns `Flow::Stop`. Returns the file's counts.
pub fn render_file(
    source: &SourceConfig,
    path: &Path,
    seed: u64,
    on_bad: OnBadRecord,
    sink: &mut dyn FnMut(String) -> Result<Flow>,
) -> Result<RenderStats> {
    let kind = source.reader_for(path)?;
    let file_key = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut renderer = Renderer::new(source, seed, &file_key);
    if source.format == Format::ReadingComprehension {
        renderer = renderer.with_augmenter(crate::augment::recipe::for_source(source)?);
    }
    let mut bad = 0u64;
    let mut stopped = false;
    for_each_record(path, kind, &source.text_field, &mut |record| {
        let rendered = record.value.and_then(|v| renderer.push(&v));
        match rendered {
            Ok(Some(doc)) => {
                let mut flow = sink(doc)?;
                while flow == Flow::Continue {
                    let Some(doc) = renderer.next_ready() else {
                        break;
                    };
                    flow = sink(doc)?;
                }
                stopped = flow == Flow::Stop;
                Ok(flow)
            }
            Ok(None) => Ok(Flow::Continue),
            Err(reason) => match on_bad {
                OnBadRecord::Error => Err(DataError::BadRecord {
                    path: path.to_path_buf(),
                    location: record.location,
                    reason,
                }),
                OnBadRecord::Skip => {
                    tracing::debug!("{}:{}: skipped: {reason}", path.display(), record.location);
                    bad += 1;
                    Ok(Flow::Continue)
                }
            },
        }
    })?;
    if !stopped {
        let mut next = renderer.finish();
        while let Some(doc) = next {
            if sink(doc)? == Flow::Stop {
                break;
            }
            next = renderer.next_ready();
        }
    }
    let mut stats = renderer.stats;
    stats.bad_records = bad;
    Ok(stats)
}

/// The first `n` documents of a source exactly as they will be tokenized (without BOS/EOS).
///
/// The config's paths must already be resolved (see [`DataConfig::resolve_paths`]).
pub fn preview(config: &DataConfig, source_name: &str, n: usize) -> Result<Vec<String>> {
    let source = config.source(source_name)?;
    let mut docs = Vec::with_capacity(n);
    if n == 0 {
        return Ok(docs);
    }
    for path in source.files()? {
        render_file(
            source,
            &path,
            config.seed,
            config.on_bad_record,
            &mut |doc| {
                docs.push(doc);
                Ok(if docs.len() >= n {
                    Flow::Stop
                } else {
                    Flow::Continue
                })
            },
        )?;
        if docs.len() >= n {
            break;
        }
    }
    if docs.is_empty() {
        return Err(DataError::EmptySource(source_name.to_string()));
    }
    Ok(docs)
}
