//! Formats: records → plain-text documents (`raw`, `instruction-augmented`, `instruction`,
//! `reading-comprehension`).

mod chains;
pub mod synth;
pub mod templates;

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::augment::Augmenter;
use crate::config::{Format, SourceConfig};
use crate::synthesis::SynthLink;
use chains::LinkedChains;
pub use synth::{parse_synth_output, ParsedPairs, QaPair};
pub use templates::{Template, TEMPLATES};

/// Separator between the text and its pairs, between pairs, and between chained examples.
pub const SEPARATOR: &str = "\n\n";

/// Counts kept while rendering one file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderStats {
    /// Records rendered (not counting bad ones).
    pub records: u64,
    /// Records skipped as malformed (only with `on_bad_record = "skip"`).
    pub bad_records: u64,
    /// Malformed synthesizer pairs dropped.
    pub dropped_pairs: u64,
}

/// A raw text with its pairs: one example of an instruction-augmented corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub text: String,
    pub pairs: Vec<QaPair>,
}

/// Turns the records of one file into documents, in order.
///
/// Template choice depends only on `(seed, source name, file key, document index)`, so rendering is
/// reproducible and files can be rendered in parallel.
pub struct Renderer<'a> {
    source: &'a SourceConfig,
    seed: u64,
    file_key: String,
    pending: Vec<Example>,
    linked: LinkedChains,
    ready: std::collections::VecDeque<Vec<Example>>,
    documents: u64,
    augmenter: Option<Arc<Augmenter>>,
    /// Counts so far.
    pub stats: RenderStats,
}

impl<'a> Renderer<'a> {
    /// A renderer for one file; `file_key` is a stable name for the file (its file name).
    pub fn new(source: &'a SourceConfig, seed: u64, file_key: &str) -> Self {
        Renderer {
            source,
            seed,
            file_key: file_key.to_string(),
            pending: Vec::new(),
            linked: LinkedChains::default(),
            ready: Default::default(),
            documents: 0,
            augmenter: None,
            stats: RenderStats::default(),
        }
    }

    /// Uses `augmenter` for the `reading-comprehension` format (see [`crate::augment::recipe`]).
    pub fn with_augmenter(mut self, augmenter: Arc<Augmenter>) -> Self {
        self.augmenter = Some(augmenter);
        self
    }

    /// Adds one record; returns a finished document if this record completed one, or the reason the
    /// record is malformed (the caller decides whether that is an error). A record of a
    /// `graft synthesize` output can complete several chains: the others wait in
    /// [`Renderer::next_ready`].
    ///
    /// `instruction-augmented` records with a `synth` link (the output of `graft synthesize`) are
    /// chained as the synthesizer chained them; other records `examples_per_doc` at a time.
    pub fn push(&mut self, record: &Value) -> Result<Option<String>, String> {
        let doc = match self.source.format {
            Format::Raw => Some(self.raw(record)?),
            Format::Instruction => Some(self.instruction(record)?),
            Format::ReadingComprehension => Some(self.reading(record)?),
            Format::InstructionAugmented => self.augmented(record)?,
        };
        self.stats.records += 1;
        Ok(doc)
    }

    fn augmented(&mut self, record: &Value) -> Result<Option<String>, String> {
        let link = match record.get("synth") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value::<SynthLink>(v.clone())
                    .map_err(|e| format!("field `synth` is not a synthesis link: {e}"))?,
            ),
        };
        let example = self.example(record, link.is_some())?;
        if let Some(link) = link {
            let done = self.linked.push(&link, example);
            self.ready.extend(done);
            return Ok(self.next_ready());
        }
        self.pending.push(example);
        if self.pending.len() >= self.source.examples_per_doc {
            let examples = std::mem::take(&mut self.pending);
            return Ok(Some(self.render(examples)));
        }
        Ok(None)
    }

    /// A finished document waiting to be taken (after [`Renderer::push`] or [`Renderer::finish`]).
    pub fn next_ready(&mut self) -> Option<String> {
        let examples = self.ready.pop_front()?;
        Some(self.render(examples))
    }

    /// The last, possibly shorter, chained document (more may follow from [`Renderer::next_ready`]).
    pub fn finish(&mut self) -> Option<String> {
        let done = self.linked.finish();
        self.ready.extend(done);
        if !self.pending.is_empty() {
            self.ready.push_back(std::mem::take(&mut self.pending));
        }
        self.next_ready()
    }

    fn render(&mut self, examples: Vec<Example>) -> String {
        let mut rng = ChaCha8Rng::seed_from_u64(self.doc_seed());
        self.documents += 1;
        render_examples(&examples, &mut rng)
    }

    fn doc_seed(&self) -> u64 {
        let mut h = Sha256::new();
        h.update(self.seed.to_le_bytes());
        h.update(self.source.name.as_bytes());
        h.update([0]);
        h.update(self.file_key.as_bytes());
        h.update(self.documents.to_le_bytes());
        let d = h.finalize();
        u64::from_le_bytes(d[..8].try_into().unwrap_or([0; 8]))
    }

    fn raw(&self, record: &Value) -> Result<String, String> {
        let text = string_field(record, &self.source.text_field)?;
        let text = text.trim();
        if text.is_empty() {
            return Err(format!("field `{}` is empty", self.source.text_field));
        }
        Ok(text.to_string())
    }

    /// The record's text with tasks mined from it, seeded per document like the other formats.
    fn reading(&mut self, record: &Value) -> Result<String, String> {
        let text = self.raw(record)?;
        let seed = self.doc_seed();
        self.documents += 1;
        let aug = self.augmenter.as_ref().ok_or(
            "format `reading-comprehension` needs an augmenter (graft_data::augment::recipe::for_source)",
        )?;
        Ok(aug.augment(&text, seed, 0).text)
    }

    fn instruction(&self, record: &Value) -> Result<String, String> {
        let pair = self.pair_from(record)?;
        Ok(format!("{} {}", pair.question, pair.answer))
    }

    /// One example; `synthesized`: the pairs come from `graft synthesize`, which keeps what LMOps
    /// keeps — pairs with an empty side or a tag are dropped here and counted, not errors.
    fn example(&mut self, record: &Value, synthesized: bool) -> Result<Example, String> {
        let text = synth::strip_tags(string_field(record, &self.source.text_field)?);
        if text.is_empty() {
            return Err(format!("field `{}` is empty", self.source.text_field));
        }
        let field = &self.source.pairs_field;
        let pairs = match record.get(field) {
            None | Some(Value::Null) => return Err(format!("missing field `{field}`")),
            Some(Value::String(out)) => {
                let parsed = parse_synth_output(out);
                self.stats.dropped_pairs += parsed.dropped as u64;
                parsed.pairs
            }
            Some(Value::Array(items)) if synthesized => self.synthesized_pairs(items),
            Some(Value::Array(items)) => {
                let pairs: Result<Vec<QaPair>, String> =
                    items.iter().map(|p| self.pair_from(p)).collect();
                pairs.map_err(|e| format!("in `{field}`: {e}"))?
            }
            Some(_) => {
                return Err(format!(
                    "field `{field}` must be a list of pairs or the synthesizer's output string"
                ))
            }
        };
        Ok(Example { text, pairs })
    }

    fn synthesized_pairs(&mut self, items: &[Value]) -> Vec<QaPair> {
        let mut pairs = Vec::with_capacity(items.len());
        for item in items {
            match self.pair_from(item) {
                Ok(p) if !synth::has_tag(&p.question) && !synth::has_tag(&p.answer) => {
                    pairs.push(p)
                }
                _ => self.stats.dropped_pairs += 1,
            }
        }
        pairs
    }

    fn pair_from(&self, v: &Value) -> Result<QaPair, String> {
        let question = pick_field(
            v,
            self.source.question_field.as_deref(),
            &["question", "instruction"],
        )?;
        let answer = pick_field(
            v,
            self.source.response_field.as_deref(),
            &["answer", "response", "output"],
        )?;
        let (question, answer) = (question.trim(), answer.trim());
        if question.is_empty() || answer.is_empty() {
            return Err("empty question or response".into());
        }
        Ok(QaPair {
            question: question.to_string(),
            answer: answer.to_string(),
        })
    }
}

/// Renders chained examples: each is its text then its pairs (template per pair), all joined by blank lines.
pub fn render_examples(examples: &[Example], rng: &mut ChaCha8Rng) -> String {
    let mut parts: Vec<String> = Vec::new();
    for ex in examples {
        parts.push(ex.text.clone());
        for pair in &ex.pairs {
            parts.push(Template::choose(rng).render(pair));
        }
    }
    parts.join(SEPARATOR)
}

fn string_field<'v>(record: &'v Value, field: &str) -> Result<&'v str, String> {
    match record.get(field) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(format!("missing field `{field}`")),
        Some(_) => Err(format!("field `{field}` is not a string")),
    }
}

/// The configured field, or the first of the default names present.
fn pick_field<'v>(
    v: &'v Value,
    configured: Option<&str>,
    defaults: &[&str],
) -> Result<&'v str, String> {
    if let Some(field) = configured {
        return string_field(v, field);
    }
    for field in defaults {
        if v.get(field).is_some_and(|x| !x.is_null()) {
            return string_field(v, field);
        }
    }
    Err(format!(
        "missing field (one of `{}`)",
        defaults.join("`, `")
    ))
}
