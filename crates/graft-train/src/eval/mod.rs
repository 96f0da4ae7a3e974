//! Evaluation: perplexity on JSONL rows and lm-eval-harness-style multiple-choice accuracy.
//!
//! ```text
//! rows.jsonl ──read_perplexity_rows──▶ ids ──windows──▶ ScoreRequest ─┐
//! task.jsonl ──read_choice_rows──▶ ChoiceRow ──encode_pair──▶ ScoreRequest ─┤
//!                                          score_requests (batched, right-padded) ◀┘
//!                                          → per-token log-probs → PerplexityResult / ChoiceResult
//! ```
//!
//! Everything is generic over the Burn backend; the CLI (`graft eval`) and the trainer's periodic
//! evaluation both call [`perplexity()`] and [`score_choice_task`].

pub mod choice;
pub mod error;
pub mod model;
pub mod perplexity;
pub mod rows;
pub mod score;

pub use choice::{
    encode_pair, read_choice_rows, score_choice_task, ChoiceInput, ChoiceOptions, ChoiceResult,
    ChoiceRow, RowScore,
};
pub use error::{EvalError, Result};
pub use model::EvalModel;
pub use perplexity::{perplexity, read_perplexity_rows, windows, PerplexityResult};
pub use score::{score_requests, ScoreRequest};
