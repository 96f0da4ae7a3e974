//! The instruction synthesizer's protocol as LMOps runs it (`instruction_pretrain/utils/read_compre.py`
//! and the README's multi-round loop): prompts, rounds, chaining, parsing and de-duplication.
//!
//! Text only: generating the outputs is the caller's business (graft-train's `synthesize`). The
//! caller builds a [`Synthesis`] over all texts, and for each round asks for the prompts
//! ([`Synthesis::plan`]), generates, and hands every output back ([`Synthesis::finish`]) before
//! the next round.
//!
//! ```text
//! round 0:  read(t0)  read(t1) … read(t_{B-1})                      B = ⌈N / M⌉
//! round r:  [examples of the chain ending at i−B] read(t_i)        when i−B has pairs and
//!                                                                   words·1.5 ≤ max_model_len − max_new_tokens
//! ```

mod fit;
mod parse;
mod record;

use std::ops::Range;

pub use fit::{fit_prompt, Fitted, LengthPolicy};
pub use parse::{parse_lmops, LmopsPairs};
pub use record::{read_output, SynthLink, SynthRecord, SynthSummary};

use crate::format::QaPair;

/// The protocol's settings (LMOps's defaults: 2 rounds, 400 new tokens, a 4096-token context).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthSettings {
    /// Rounds M: the texts are split into M consecutive blocks of ⌈N/M⌉.
    pub rounds: usize,
    /// Most tokens generated per text.
    pub max_new_tokens: usize,
    /// Prompt plus output must fit in this many tokens.
    pub max_model_len: usize,
}

impl Default for SynthSettings {
    fn default() -> Self {
        Self {
            rounds: 2,
            max_new_tokens: 400,
            max_model_len: 4096,
        }
    }
}

impl SynthSettings {
    /// `max_model_len − max_new_tokens`: the bound on a prompt (LMOps: on its estimated length).
    pub fn budget(&self) -> usize {
        self.max_model_len.saturating_sub(self.max_new_tokens)
    }
}

/// The prompt of one text alone: `<s> <CON> {text} </CON>\n\n` (the text verbatim); `<s>` for an
/// empty text, as LMOps's `cook_read`.
pub fn read_prompt(text: &str) -> String {
    if text.is_empty() {
        return "<s>".to_string();
    }
    format!("<s> <CON> {text} </CON>\n\n")
}

/// A previous example: its prompt, its pairs `<QUE> q <ANS> a </END>` joined by blank lines, `</s>`.
pub fn example_prompt(text: &str, pairs: &[QaPair]) -> String {
    let pairs: Vec<String> = pairs
        .iter()
        .map(|p| format!("<QUE> {} <ANS> {} </END>", p.question, p.answer))
        .collect();
    format!("{}{}</s>", read_prompt(text), pairs.join("\n\n"))
}

/// LMOps's length estimate: pieces between single spaces (`str.split(" ")`) × 1.5.
pub fn estimate_length(prompt: &str) -> f64 {
    prompt.split(' ').count() as f64 * 1.5
}

/// The prompt chosen for one text.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptPlan {
    pub text_index: usize,
    pub round: usize,
    pub prompt: String,
    /// The earlier texts whose examples precede this text in `prompt`, oldest first.
    pub previous: Vec<usize>,
    /// The estimate of the chained candidate (`None` when there was none).
    pub estimated_length: Option<f64>,
}

/// What is kept of a finished text for chaining later ones.
#[derive(Debug, Clone)]
struct Done {
    pairs: Vec<QaPair>,
    inherit_from_prev: bool,
}

/// The multi-round protocol over N texts.
#[derive(Debug, Clone)]
pub struct Synthesis {
    settings: SynthSettings,
    /// The texts as they appear in prompts (a text shortened by the length policy is replaced).
    texts: Vec<String>,
    done: Vec<Option<Done>>,
}

impl Synthesis {
    /// The protocol over `texts` (their prompt versions, in input order).
    pub fn new(texts: Vec<String>, settings: SynthSettings) -> Self {
        let done = vec![None; texts.len()];
        Self {
            settings,
            texts,
            done,
        }
    }

    pub fn settings(&self) -> &SynthSettings {
        &self.settings
    }

    /// Number of texts.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// B = ⌈N / M⌉ (at least 1).
    pub fn texts_per_round(&self) -> usize {
        let m = self.settings.rounds.max(1);
        self.texts.len().div_ceil(m).max(1)
    }

    /// Text indices of round `r` (the last rounds may be short or empty).
    pub fn round_range(&self, round: usize) -> Range<usize> {
        let b = self.texts_per_round();
        let n = self.texts.len();
        (round * b).min(n)..((round + 1) * b).min(n)
    }

    /// Round of text `i`.
    pub fn round_of(&self, i: usize) -> usize {
        i / self.texts_per_round()
    }

    /// The text of `i` as it appears in prompts.
    pub fn text(&self, i: usize) -> &str {
        &self.texts[i]
    }

    /// Replaces the prompt version of text `i` (the length policy's truncation); must happen
    /// before `i` is planned.
    pub fn set_text(&mut self, i: usize, text: String) {
        self.texts[i] = text;
    }

    /// The prompt for text `i`; every text of earlier rounds it may chain after must be finished.
    pub fn plan(&self, i: usize) -> PromptPlan {
        let b = self.texts_per_round();
        let round = i / b;
        let alone = PromptPlan {
            text_index: i,
            round,
            prompt: read_prompt(&self.texts[i]),
            previous: Vec::new(),
            estimated_length: None,
        };
        if round == 0 {
            return alone;
        }
        let prev = self.done[i - b]
            .as_ref()
            .expect("the previous round is finished before this one is planned");
        if prev.pairs.is_empty() {
            return alone;
        }
        let mut chain = vec![i - b];
        while self.done[chain[0]]
            .as_ref()
            .is_some_and(|d| d.inherit_from_prev)
        {
            chain.insert(0, chain[0] - b);
        }
        let mut candidate: String = chain
            .iter()
            .map(|&j| example_prompt(&self.texts[j], &self.done_pairs(j)))
            .collect();
        candidate.push_str(&alone.prompt);
        let estimate = estimate_length(&candidate);
        if estimate <= self.settings.budget() as f64 {
            PromptPlan {
                prompt: candidate,
                previous: chain,
                estimated_length: Some(estimate),
                ..alone
            }
        } else {
            PromptPlan {
                estimated_length: Some(estimate),
                ..alone
            }
        }
    }

    fn done_pairs(&self, i: usize) -> Vec<QaPair> {
        self.done[i]
            .as_ref()
            .map(|d| d.pairs.clone())
            .unwrap_or_default()
    }

    /// Records the parsed pairs of a planned text; `chained` is whether its final prompt carried
    /// the chain (the length policy may have dropped it). Returns `inherit_from_prev`.
    pub fn finish(&mut self, i: usize, chained: bool, pairs: Vec<QaPair>) -> bool {
        let inherit_from_prev = chained && !pairs.is_empty();
        self.done[i] = Some(Done {
            pairs,
            inherit_from_prev,
        });
        inherit_from_prev
    }

    /// Whether text `i` is finished.
    pub fn is_done(&self, i: usize) -> bool {
        self.done[i].is_some()
    }
}

#[cfg(test)]
mod tests;
