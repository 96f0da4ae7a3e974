//! Raw sources with `synthesize = { model = … }`: data preparation (`graft prepare`, `graft train`) runs the
//! instruction synthesizer over them first, then prepare its output as `instruction-augmented`
//! data, chained as the synthesizer chained it.
//!
//! The output goes to `<prepared dir>/synthesized/<source>-<key>.jsonl`, where the key hashes
//! the synthesizer and its settings: a finished file is reused (prepare's manifest then sees
//! unchanged inputs), an interrupted one is resumed, other settings get a new file.

use std::path::{Path, PathBuf};

use graft_data::{DataConfig, Format, ReaderKind, SourceConfig, SynthesizeConfig};
use graft_llama::hub::Need;

use super::{synthesize_files, SynthesizeOptions};
use crate::backend::{device, Backend};
use crate::error::{Result, ResultExt, TrainError};
use crate::run::Observer;

/// `config` with every synthesized source replaced by its synthesizer output (synthesizing what is
/// not done yet). Sources without `synthesize` are unchanged.
pub fn synthesize_sources(
    config: &DataConfig,
    prepared: &Path,
    recipe: &Path,
    observer: &dyn Observer,
) -> Result<DataConfig> {
    for source in &config.sources {
        if let Some(syn) = &source.synthesize {
            let out = output_path(source, syn, prepared);
            run(source, syn, &out, recipe, observer)
                .context_with(|| format!("synthesizing source `{}`", source.name))?;
        }
    }
    Ok(prepared_config(config, prepared))
}

/// `config` as prepared: every synthesized source reads its synthesizer output (no work done).
pub fn prepared_config(config: &DataConfig, prepared: &Path) -> DataConfig {
    let mut config = config.clone();
    for source in &mut config.sources {
        let Some(syn) = source.synthesize.clone() else {
            continue;
        };
        *source = SourceConfig {
            path: output_path(source, &syn, prepared),
            reader: Some(ReaderKind::Jsonl),
            format: Format::InstructionAugmented,
            text_field: "text".into(),
            pairs_field: "qa_pairs".into(),
            question_field: None,
            response_field: None,
            synthesize: None,
            ..source.clone()
        };
    }
    config
}

fn output_path(source: &SourceConfig, syn: &SynthesizeConfig, prepared: &Path) -> PathBuf {
    prepared
        .join("synthesized")
        .join(format!("{}-{}.jsonl", source.name, key(source, syn)))
}

fn run(
    source: &SourceConfig,
    syn: &SynthesizeConfig,
    out: &Path,
    recipe: &Path,
    observer: &dyn Observer,
) -> Result<()> {
    let dir =
        crate::model::resolve_base(&syn.model, syn.revision.as_deref(), recipe, Need::Weights)?;
    let inputs: Vec<PathBuf> = source
        .files()
        .map_err(|e| TrainError::Data(e.to_string()))?;
    let opts = SynthesizeOptions {
        settings: graft_data::synthesis::SynthSettings {
            rounds: syn.rounds,
            max_new_tokens: syn.max_new_tokens,
            max_model_len: syn.max_model_len,
        },
        batch_size: syn.batch_size,
        stop_after: None,
    };
    let summary = synthesize_files::<Backend>(
        &dir,
        &device(),
        &inputs,
        &source.text_field,
        out,
        &opts,
        &mut |_| {},
    )?;
    observer.synthesized(&source.name, &summary);
    Ok(())
}

/// 16 hex digits identifying the synthesizer, its settings and the text field (FNV-1a, stable).
fn key(source: &SourceConfig, syn: &SynthesizeConfig) -> String {
    let text = format!(
        "{}\0{:?}\0{}\0{}\0{}\0{}",
        syn.model,
        syn.revision,
        syn.rounds,
        syn.max_new_tokens,
        syn.max_model_len,
        source.text_field
    );
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
