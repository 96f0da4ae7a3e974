//! The output of `graft synthesize`: one JSON line per input text, in input order.
//!
//! ```json
//! {"text": "…", "qa_pairs": [{"question": "…", "answer": "…"}], "synthesizer_output": "…",
//!  "synth": {"index": 4, "round": 1, "texts_per_round": 4, "previous": [0]}}
//! ```
//! `synth` links a record to the chain it was synthesized in: `previous` lists the texts (by
//! `index`) whose examples preceded it in its prompt, oldest first. `graft prepare` chains such
//! records into one document as the synthesizer chained them.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::format::QaPair;

/// Where a record sits in the synthesis protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthLink {
    /// Position of the text in the synthesis input (0-based).
    pub index: usize,
    /// Round the text was synthesized in.
    pub round: usize,
    /// Texts per round (B): the text chained after this one, if any, is `index + B`.
    pub texts_per_round: usize,
    /// Texts whose examples preceded this one in its prompt, oldest first (empty: not chained).
    pub previous: Vec<usize>,
    /// The synthesizer read only `text[..truncated_at]` (bytes): the text was too long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_at: Option<usize>,
    /// The chained prompt was over the token budget and the text was synthesized alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chain_dropped: bool,
}

/// One output record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthRecord {
    pub text: String,
    pub qa_pairs: Vec<QaPair>,
    /// The generated text, special tokens skipped.
    pub synthesizer_output: String,
    pub synth: SynthLink,
}

/// Counts of one synthesis run (or of the part resumed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SynthSummary {
    pub texts: usize,
    /// Texts already in the output when the run started (resumed).
    pub resumed: usize,
    pub generated_tokens: u64,
    pub pairs: usize,
    /// Pieces ended by `</END>` that were not a pair.
    pub malformed_pairs: usize,
    pub duplicate_questions: usize,
    pub texts_without_pairs: usize,
    pub chained: usize,
    /// Chained prompts over the token budget, synthesized without their chain.
    pub chains_dropped: usize,
    /// Texts truncated to fit the token budget.
    pub truncated: usize,
}

/// The complete records of an existing output file, and the byte length they end at (a line cut
/// off by a killed run is not complete; the caller truncates the file there).
pub fn read_output(path: &Path) -> Result<(Vec<SynthRecord>, u64)> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = BufReader::new(file);
    let (mut records, mut good, mut line_no) = (Vec::new(), 0u64, 0usize);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::io(path, e))?;
        if n == 0 || buf.last() != Some(&b'\n') {
            return Ok((records, good));
        }
        line_no += 1;
        let record: SynthRecord =
            serde_json::from_slice(&buf).map_err(|e| DataError::BadRecord {
                path: path.to_path_buf(),
                location: format!("line {line_no}"),
                reason: format!("not a `graft synthesize` output record: {e}"),
            })?;
        records.push(record);
        good += n as u64;
    }
}
