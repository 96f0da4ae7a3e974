//! `graft synthesize`: raw texts → instruction-augmented records, with the instruction
//! synthesizer (a Mistral model) driven through LMOps's protocol ([`graft_data::synthesis`]).
//!
//! Rounds run one after the other (round r chains after round r − 1's pairs). A round is cut
//! into chunks of `8 × batch_size` texts in input order; a chunk's prompts are sorted by length
//! into batches for [`generate_greedy_batch`], and its records are appended to the output in
//! input order and fsynced when the chunk is done. Chunks do not depend on where a run stopped,
//! so a resumed run computes every text in the same batch as an uninterrupted one and writes
//! the same bytes.

mod io;
pub mod sources;

use std::ops::Range;
use std::path::Path;

use graft_data::synthesis::{
    fit_prompt, parse_lmops, Fitted, SynthLink, SynthRecord, SynthSettings, SynthSummary, Synthesis,
};
use graft_llama::batch::{generate_greedy_batch, BatchConfig};
use graft_llama::Llama;
use tokenizers::Tokenizer;

pub use io::{read_texts, resume, OutputWriter};

use crate::error::{Result, TrainError};

/// Settings of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthesizeOptions {
    pub settings: SynthSettings,
    /// Prompts generated together.
    pub batch_size: usize,
    /// Stop once this many records were written by this run (for tests of resuming).
    pub stop_after: Option<usize>,
}

/// Where a run stands, for a progress bar.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub texts_done: usize,
    pub texts_total: usize,
    pub generated_tokens: u64,
}

/// Texts per chunk: how many are generated (in batches) before records are written and synced.
fn chunk_len(batch_size: usize) -> usize {
    batch_size.max(1) * 8
}

/// Synthesizes every text of `texts` into `out` (one JSON line per text, in order), resuming
/// what an earlier run of the same command wrote there.
pub fn synthesize<B: graft_llama::FusedOps>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    eos_token_ids: &[u32],
    texts: Vec<String>,
    out: &Path,
    opts: &SynthesizeOptions,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<SynthSummary> {
    let settings = opts.settings;
    let max_positions = model.config().max_position_embeddings;
    if settings.max_model_len > max_positions || settings.budget() == 0 {
        return Err(TrainError::Config(format!(
            "--max-model-len {} must be at most the model's max_position_embeddings ({max_positions}) \
             and more than --max-new-tokens {}",
            settings.max_model_len, settings.max_new_tokens
        )));
    }
    let mut syn = Synthesis::new(texts.clone(), settings);
    let done = resume(out, &texts, syn.texts_per_round())?;
    for r in &done {
        restore(&mut syn, r, out)?;
    }
    let mut run = Run {
        model,
        tokenizer,
        texts: &texts,
        writer: OutputWriter::open(out)?,
        next_write: done.len(),
        summary: SynthSummary {
            texts: texts.len(),
            resumed: done.len(),
            ..Default::default()
        },
        batch: BatchConfig {
            max_new_tokens: settings.max_new_tokens,
            eos_token_ids: eos_token_ids.to_vec(),
            max_len: settings.max_model_len,
        },
        opts,
    };
    for round in 0..settings.rounds.max(1) {
        let range = syn.round_range(round);
        for start in range.clone().step_by(chunk_len(opts.batch_size)) {
            let chunk = start..(start + chunk_len(opts.batch_size)).min(range.end);
            if chunk.end <= run.next_write {
                continue;
            }
            if run.chunk(&mut syn, chunk, on_progress)? {
                return Ok(run.summary);
            }
        }
    }
    Ok(run.summary)
}

/// Puts a record of a resumed run back into the protocol's state.
fn restore(syn: &mut Synthesis, r: &SynthRecord, out: &Path) -> Result<()> {
    let i = r.synth.index;
    if let Some(cut) = r.synth.truncated_at {
        if !r.text.is_char_boundary(cut) {
            return Err(TrainError::Data(format!(
                "{}: record {}: truncated_at {cut} is not a character boundary of its text",
                out.display(),
                i + 1
            )));
        }
        syn.set_text(i, r.text[..cut].to_string());
    }
    syn.finish(i, !r.synth.previous.is_empty(), r.qa_pairs.clone());
    Ok(())
}

struct Run<'a, B: graft_llama::FusedOps> {
    model: &'a Llama<B>,
    tokenizer: &'a Tokenizer,
    texts: &'a [String],
    writer: OutputWriter,
    next_write: usize,
    summary: SynthSummary,
    batch: BatchConfig,
    opts: &'a SynthesizeOptions,
}

impl<B: graft_llama::FusedOps> Run<'_, B> {
    /// Generates one chunk and writes its records not written yet; true when `stop_after` is reached.
    fn chunk(
        &mut self,
        syn: &mut Synthesis,
        chunk: Range<usize>,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<bool> {
        let mut fitted = Vec::with_capacity(chunk.len());
        for i in chunk.clone() {
            let plan = syn.plan(i);
            fitted.push(
                fit_prompt(syn, plan, self.tokenizer)
                    .map_err(|e| TrainError::Data(e.to_string()))?,
            );
        }
        let outputs = self.generate(&fitted, on_progress)?;
        for (f, tokens) in fitted.into_iter().zip(outputs) {
            let i = f.plan.text_index;
            let record = self.record(syn, f, &tokens)?;
            if i < self.next_write {
                continue;
            }
            self.writer.append(&record)?;
            self.next_write += 1;
            self.count(&record, tokens.len());
            let written = self.next_write - self.summary.resumed;
            if self.opts.stop_after.is_some_and(|n| written >= n) {
                self.writer.sync()?;
                return Ok(true);
            }
        }
        self.writer.sync()?;
        on_progress(&self.progress());
        Ok(false)
    }

    fn progress(&self) -> Progress {
        Progress {
            texts_done: self.next_write,
            texts_total: self.texts.len(),
            generated_tokens: self.summary.generated_tokens,
        }
    }

    /// The new tokens of every prompt of a chunk, in chunk order; batches of similar lengths.
    fn generate(
        &mut self,
        fitted: &[Fitted],
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<Vec<Vec<u32>>> {
        let mut order: Vec<usize> = (0..fitted.len()).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(fitted[k].ids.len()));
        let mut outputs = vec![Vec::new(); fitted.len()];
        let mut progress = self.progress();
        for batch in order.chunks(self.opts.batch_size.max(1)) {
            let prompts: Vec<Vec<u32>> = batch.iter().map(|&k| fitted[k].ids.clone()).collect();
            let generations = generate_greedy_batch(self.model, &prompts, &self.batch, &mut |n| {
                progress.generated_tokens += n as u64;
                on_progress(&progress);
            })
            .map_err(|e| TrainError::Model(e.to_string()))?;
            for (&k, g) in batch.iter().zip(generations) {
                outputs[k] = g.tokens;
            }
        }
        Ok(outputs)
    }

    /// Parses one output, records it in the protocol, and builds its output record.
    fn record(&self, syn: &mut Synthesis, f: Fitted, tokens: &[u32]) -> Result<SynthRecord> {
        let output = self
            .tokenizer
            .decode(tokens, true)
            .map_err(|e| TrainError::Data(format!("decoding the synthesizer's output: {e}")))?;
        let parsed = parse_lmops(&output);
        let i = f.plan.text_index;
        syn.finish(i, !f.plan.previous.is_empty(), parsed.pairs.clone());
        Ok(SynthRecord {
            text: self.texts[i].clone(),
            qa_pairs: parsed.pairs,
            synthesizer_output: output,
            synth: SynthLink {
                index: i,
                round: f.plan.round,
                texts_per_round: syn.texts_per_round(),
                previous: f.plan.previous,
                truncated_at: f.truncated_at,
                chain_dropped: f.chain_dropped,
            },
        })
    }

    fn count(&mut self, record: &SynthRecord, new_tokens: usize) {
        let s = &mut self.summary;
        let parsed = parse_lmops(&record.synthesizer_output);
        s.generated_tokens += new_tokens as u64;
        s.pairs += record.qa_pairs.len();
        s.malformed_pairs += parsed.malformed;
        s.duplicate_questions += parsed.duplicates;
        s.texts_without_pairs += usize::from(record.qa_pairs.is_empty());
        s.chained += usize::from(!record.synth.previous.is_empty());
        s.chains_dropped += usize::from(record.synth.chain_dropped);
        s.truncated += usize::from(record.synth.truncated_at.is_some());
    }
}

/// [`synthesize`] with everything read from disk: the synthesizer checkpoint `dir` (with its
/// `tokenizer.json`; EOS ids from `config.json` and `generation_config.json`) and the texts of
/// `inputs`.
pub fn synthesize_files<B: graft_llama::FusedOps>(
    dir: &Path,
    device: &B::Device,
    inputs: &[std::path::PathBuf],
    text_field: &str,
    out: &Path,
    opts: &SynthesizeOptions,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<SynthSummary> {
    let texts = read_texts(inputs, text_field)?;
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.is_file() {
        return Err(TrainError::MissingPath {
            key: "synthesizer tokenizer.json".into(),
            path: tok_path,
        });
    }
    let tokenizer = Tokenizer::from_file(&tok_path)
        .map_err(|e| TrainError::Data(format!("{}: {e}", tok_path.display())))?;
    let (model, config) = graft_llama::load::<B>(dir, device)
        .map_err(|e| TrainError::Model(format!("loading {}: {e}", dir.display())))?;
    let eos = graft_llama::generate::eos_token_ids(dir, &config.llama.eos_token_ids)
        .map_err(|e| TrainError::Model(e.to_string()))?;
    tracing::info!(
        texts = texts.len(),
        rounds = opts.settings.rounds,
        model = %dir.display(),
        "synthesizing"
    );
    synthesize(&model, &tokenizer, &eos, texts, out, opts, on_progress)
}
