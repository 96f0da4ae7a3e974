//! `DataConfig`: the recipe's `[data]` table (sources, formats, mixing weights, split, sequence length).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// The `[data]` table of a recipe.
///
/// ```toml
/// [data]
/// seq_len = 256
/// seed = 1234
/// val_fraction = 0.02
/// [[data.sources]]
/// name = "biomedicine"
/// path = "../data/biomedicine/*.jsonl"
/// format = "instruction-augmented"
/// weight = 1.0
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Length of every packed training/eval sequence, in tokens.
    pub seq_len: usize,
    /// Seed for template choice, document shuffling and nothing else.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Tokenizer file; `None` means the model's `tokenizer.json` (the caller decides).
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Where pre-tokenized shards go; `None` means a default chosen by the caller.
    #[serde(default)]
    pub prepared_dir: Option<PathBuf>,
    /// What to do with a malformed record: stop with an error, or skip and count it.
    #[serde(default)]
    pub on_bad_record: OnBadRecord,
    /// Fraction of each source's documents held out for evaluation (per-source override possible).
    #[serde(default)]
    pub val_fraction: f64,
    /// Put BOS at the start of every document.
    #[serde(default = "yes")]
    pub add_bos: bool,
    /// Put EOS at the end of every document.
    #[serde(default = "yes")]
    pub add_eos: bool,
    /// The corpora.
    pub sources: Vec<SourceConfig>,
}

/// One named corpus: files, how to read them, how to render a record into a document, and its weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name (used in logs, manifest, eval losses).
    pub name: String,
    /// A file or glob; relative paths are relative to the recipe file's directory.
    pub path: PathBuf,
    /// Reader; `None` picks one from the file extension.
    #[serde(default)]
    pub reader: Option<ReaderKind>,
    /// How a record becomes a document.
    #[serde(default)]
    pub format: Format,
    /// Field holding the raw text (`raw`, `instruction-augmented`).
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// Field holding the pairs: a list of {question, answer} objects or the synthesizer's raw output.
    #[serde(default = "default_pairs_field")]
    pub pairs_field: String,
    /// Field name of a question; `None` accepts `question` or `instruction`.
    #[serde(default)]
    pub question_field: Option<String>,
    /// Field name of a response; `None` accepts `answer`, `response` or `output`.
    #[serde(default)]
    pub response_field: Option<String>,
    /// Examples (text + pairs) chained into one document (`instruction-augmented`).
    #[serde(default = "default_examples_per_doc")]
    pub examples_per_doc: usize,
    /// Mixing weight, by tokens.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Per-source override of `val_fraction`.
    #[serde(default)]
    pub val_fraction: Option<f64>,
    /// `reading-comprehension`: the domain's name in the templates; `None` means the source name.
    #[serde(default)]
    pub domain: Option<String>,
    /// `reading-comprehension`: the base model's `tokenizer.json` (bounds each text to the token
    /// budget; its words are not domain keywords). Required by that format.
    #[serde(default)]
    pub general_tokenizer: Option<PathBuf>,
    /// `reading-comprehension`: a domain `tokenizer.json` for keyword tasks; `None` trains one on
    /// the source's own texts.
    #[serde(default)]
    pub domain_tokenizer: Option<PathBuf>,
    /// `format = "raw"` only: run the instruction synthesizer over the texts first (`graft
    /// prepare` does, with a Burn model), then use its output as `instruction-augmented` data.
    #[serde(default)]
    pub synthesize: Option<SynthesizeConfig>,
}

/// `synthesize = { model = "instruction-pretrain/instruction-synthesizer" }` on a raw source: the
/// settings of `graft synthesize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthesizeConfig {
    /// The synthesizer: a directory (relative to the recipe) or a Hub repo id in the HF cache.
    pub model: String,
    /// Hub revision, when `model` is a repo id.
    #[serde(default)]
    pub revision: Option<String>,
    /// Rounds M (LMOps's M-shot chaining).
    #[serde(default = "default_rounds")]
    pub rounds: usize,
    /// Most tokens generated per text.
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: usize,
    /// Prompt + output length bound.
    #[serde(default = "default_max_model_len")]
    pub max_model_len: usize,
    /// Prompts generated together.
    #[serde(default = "default_synth_batch")]
    pub batch_size: usize,
}

fn default_rounds() -> usize {
    2
}

fn default_max_new_tokens() -> usize {
    400
}

fn default_max_model_len() -> usize {
    4096
}

fn default_synth_batch() -> usize {
    16
}

/// Policy for malformed records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnBadRecord {
    #[default]
    Error,
    Skip,
}

/// How a record is turned into a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The text field as is.
    #[default]
    Raw,
    /// Raw text + instruction–response pairs, rendered with natural templates, M examples per document.
    InstructionAugmented,
    /// General instruction data rendered as `"{question} {response}"`.
    Instruction,
    /// Raw text augmented with tasks mined from itself by AdaptLLM's rules (see `augment`).
    ReadingComprehension,
}

/// File reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReaderKind {
    /// One JSON object per line; `.gz` and `.zst` are decompressed.
    Jsonl,
    /// Parquet rows.
    Parquet,
    /// A whole `.txt` file is one document (its text is the `text_field`).
    Txt,
}

fn default_seed() -> u64 {
    1234
}
fn yes() -> bool {
    true
}
fn default_text_field() -> String {
    "text".into()
}
fn default_pairs_field() -> String {
    "qa_pairs".into()
}
fn default_examples_per_doc() -> usize {
    3
}
fn default_weight() -> f64 {
    1.0
}

impl ReaderKind {
    /// Picks a reader from a file name: `.jsonl[.gz|.zst]`, `.json[.gz|.zst]`, `.parquet`, `.txt`.
    pub fn from_path(path: &Path) -> Option<ReaderKind> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        let base = name
            .strip_suffix(".gz")
            .or_else(|| name.strip_suffix(".zst"))
            .unwrap_or(&name);
        if base.ends_with(".jsonl") || base.ends_with(".json") || base.ends_with(".ndjson") {
            Some(ReaderKind::Jsonl)
        } else if base.ends_with(".parquet") {
            Some(ReaderKind::Parquet)
        } else if base.ends_with(".txt") {
            Some(ReaderKind::Txt)
        } else {
            None
        }
    }
}

impl DataConfig {
    /// `[data]` with these sources and sequence length, every other key at its default (for
    /// recipes built in code).
    pub fn new(seq_len: usize, sources: Vec<SourceConfig>) -> Self {
        DataConfig {
            seq_len,
            seed: default_seed(),
            tokenizer: None,
            prepared_dir: None,
            on_bad_record: OnBadRecord::default(),
            val_fraction: 0.0,
            add_bos: yes(),
            add_eos: yes(),
            sources,
        }
    }

    /// Parses a data config from TOML text holding the table's contents (not the `[data]` header).
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<DataConfig> {
        let config: DataConfig = toml::from_str(text).map_err(|e| DataError::Config {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Where prepared shards of the recipe at `recipe` go: `prepared_dir` if set (already resolved),
    /// else `runs/prepared/<recipe file stem>` under the current directory.
    pub fn prepared_dir_for(&self, recipe: &Path) -> PathBuf {
        self.prepared_dir.clone().unwrap_or_else(|| {
            let stem = recipe
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "recipe".into());
            Path::new("runs").join("prepared").join(stem)
        })
    }

    /// Makes relative source paths, `tokenizer` and `prepared_dir` relative to `base_dir`.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base_dir.join(&*p);
            }
        };
        for s in &mut self.sources {
            fix(&mut s.path);
            s.general_tokenizer.as_mut().map(fix);
            s.domain_tokenizer.as_mut().map(fix);
        }
        self.tokenizer.as_mut().map(fix);
        self.prepared_dir.as_mut().map(fix);
    }

    /// Checks ranges and uniqueness of names.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::Invalid(m));
        if self.seq_len == 0 {
            return bad("seq_len must be > 0".into());
        }
        if self.sources.is_empty() {
            return bad("no [[data.sources]] given".into());
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return bad(format!(
                "val_fraction = {} must be in [0, 1)",
                self.val_fraction
            ));
        }
        for (i, s) in self.sources.iter().enumerate() {
            if s.name.is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return bad(format!(
                    "source name `{}`: use letters, digits, '-', '_', '.'",
                    s.name
                ));
            }
            if self.sources[..i].iter().any(|o| o.name == s.name) {
                return bad(format!("source name `{}` is used twice", s.name));
            }
            if !(s.weight.is_finite() && s.weight > 0.0) {
                return bad(format!(
                    "source `{}`: weight = {} must be > 0",
                    s.name, s.weight
                ));
            }
            if s.examples_per_doc == 0 {
                return bad(format!(
                    "source `{}`: examples_per_doc must be >= 1",
                    s.name
                ));
            }
            if s.format == Format::ReadingComprehension && s.general_tokenizer.is_none() {
                return bad(format!(
                    "source `{}`: format = \"reading-comprehension\" needs general_tokenizer = \"path/to/tokenizer.json\" \
                     (the base model's tokenizer: it bounds each text to the token budget and its words are not domain keywords)",
                    s.name
                ));
            }
            if let Some(syn) = &s.synthesize {
                if s.format != Format::Raw {
                    return bad(format!(
                        "source `{}`: synthesize needs format = \"raw\" (the synthesizer writes the pairs)",
                        s.name
                    ));
                }
                if syn.rounds == 0 || syn.batch_size == 0 || syn.max_new_tokens >= syn.max_model_len
                {
                    return bad(format!(
                        "source `{}`: synthesize needs rounds >= 1, batch_size >= 1 and max_new_tokens < max_model_len",
                        s.name
                    ));
                }
            }
            if let Some(v) = s.val_fraction.filter(|v| !(0.0..1.0).contains(v)) {
                return bad(format!(
                    "source `{}`: val_fraction = {v} must be in [0, 1)",
                    s.name
                ));
            }
        }
        Ok(())
    }

    /// The source with this name.
    pub fn source(&self, name: &str) -> Result<&SourceConfig> {
        self.sources
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| DataError::UnknownSource(name.into()))
    }
}

impl SourceConfig {
    /// A source read from `path` (a file or glob) in `format`, every other key at its default (for
    /// recipes built in code).
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>, format: Format) -> Self {
        SourceConfig {
            name: name.into(),
            path: path.into(),
            reader: None,
            format,
            text_field: default_text_field(),
            pairs_field: default_pairs_field(),
            question_field: None,
            response_field: None,
            examples_per_doc: default_examples_per_doc(),
            weight: default_weight(),
            val_fraction: None,
            domain: None,
            general_tokenizer: None,
            domain_tokenizer: None,
            synthesize: None,
        }
    }

    /// The validation fraction for this source (its own, else the global one).
    pub fn val_fraction(&self, global: f64) -> f64 {
        self.val_fraction.unwrap_or(global)
    }

    /// The files of this source, sorted; an error naming the path if none match.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        let missing = || DataError::MissingInput {
            source_name: self.name.clone(),
            path: self.path.clone(),
        };
        let pattern = self.path.to_string_lossy();
        let files: Vec<PathBuf> = if pattern.contains(['*', '?', '[']) {
            let paths = glob::glob(&pattern).map_err(|e| {
                DataError::Invalid(format!("source `{}`: bad glob {pattern}: {e}", self.name))
            })?;
            let mut v: Vec<PathBuf> = paths
                .filter_map(|p| p.ok())
                .filter(|p| p.is_file())
                .collect();
            v.sort();
            v
        } else if self.path.is_dir() {
            let rd = std::fs::read_dir(&self.path).map_err(|e| DataError::io(&self.path, e))?;
            let mut v: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && ReaderKind::from_path(p).is_some())
                .collect();
            v.sort();
            v
        } else if self.path.is_file() {
            vec![self.path.clone()]
        } else {
            vec![]
        };
        if files.is_empty() {
            return Err(missing());
        }
        Ok(files)
    }

    /// The reader for one of this source's files.
    pub fn reader_for(&self, path: &Path) -> Result<ReaderKind> {
        self.reader.or_else(|| ReaderKind::from_path(path)).ok_or_else(|| {
            DataError::Invalid(format!(
                "source `{}`: cannot tell the reader of {} from its extension; set reader = \"jsonl\"|\"parquet\"|\"txt\"",
                self.name,
                path.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_is_picked_by_extension() {
        let kind = |p: &str| ReaderKind::from_path(Path::new(p));
        assert_eq!(kind("a/b.jsonl"), Some(ReaderKind::Jsonl));
        assert_eq!(kind("b.JSONL.gz"), Some(ReaderKind::Jsonl));
        assert_eq!(kind("b.jsonl.zst"), Some(ReaderKind::Jsonl));
        assert_eq!(
            kind("train-00000-of-00002.parquet"),
            Some(ReaderKind::Parquet)
        );
        assert_eq!(kind("notes.txt"), Some(ReaderKind::Txt));
        assert_eq!(kind("data.csv"), None);
    }

    #[test]
    fn invalid_values_are_rejected_with_the_source_name() {
        let parse = |extra: &str| {
            DataConfig::from_toml_str(
                &format!("seq_len = 8\n[[sources]]\nname = \"s\"\npath = \"x\"\n{extra}"),
                Path::new("r.toml"),
            )
        };
        assert!(parse("").is_ok());
        assert!(parse("weight = 0.0")
            .unwrap_err()
            .to_string()
            .contains("source `s`: weight"));
        assert!(parse("examples_per_doc = 0").is_err());
        assert!(parse("val_fraction = 1.5").is_err());
    }
}
