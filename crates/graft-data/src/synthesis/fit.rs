//! The long-text policy: a prompt must leave room for `max_new_tokens` in `max_model_len`.
//!
//! LMOps bounds only its word estimate of a chained prompt and sends whatever results to vLLM,
//! which refuses prompts longer than the model's context. graft checks the real token count of
//! every prompt against `max_model_len − max_new_tokens`:
//! 1. a chained prompt that is too long is replaced by the text's own prompt (the chain is
//!    dropped, counted as `chains_dropped`);
//! 2. a text whose own prompt is too long is truncated at a token boundary to the longest prefix
//!    whose prompt fits (counted as `truncated`); the output record keeps the whole text and the
//!    byte offset where the synthesizer's view of it ended.

use tokenizers::Tokenizer;

use super::{read_prompt, PromptPlan, Synthesis};
use crate::error::{DataError, Result};

/// What to do with a prompt over the token budget (only truncation for now; see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LengthPolicy {
    /// Drop the chain, then keep the longest token-aligned prefix of the text that fits.
    #[default]
    Truncate,
}

/// A prompt that fits the budget, and its ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub plan: PromptPlan,
    /// The prompt's ids (`<s>`, `</s>` as the special tokens, nothing added).
    pub ids: Vec<u32>,
    /// The plan was chained, and the chain was dropped for length.
    pub chain_dropped: bool,
    /// The text was cut at this byte offset for the prompt.
    pub truncated_at: Option<usize>,
}

fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    tok.encode_fast(text, false)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| DataError::Tokenizer {
            path: "tokenizer.json".into(),
            message: e.to_string(),
        })
}

/// Applies the length policy to `plan` (from `synthesis.plan(i)`); a truncated text replaces text
/// `i` in `synthesis` so later rounds chain what the synthesizer read.
pub fn fit_prompt(synthesis: &mut Synthesis, plan: PromptPlan, tok: &Tokenizer) -> Result<Fitted> {
    let budget = synthesis.settings().budget();
    let ids = encode(tok, &plan.prompt)?;
    if ids.len() <= budget {
        return Ok(Fitted {
            plan,
            ids,
            chain_dropped: false,
            truncated_at: None,
        });
    }
    let chain_dropped = !plan.previous.is_empty();
    let i = plan.text_index;
    let text = synthesis.text(i).to_string();
    let mut plan = PromptPlan {
        prompt: read_prompt(&text),
        previous: Vec::new(),
        ..plan
    };
    let ids = encode(tok, &plan.prompt)?;
    if ids.len() <= budget {
        return Ok(Fitted {
            plan,
            ids,
            chain_dropped,
            truncated_at: None,
        });
    }
    let (cut, ids) = truncate(tok, &text, ids.len(), budget)?;
    plan.prompt = read_prompt(&text[..cut]);
    synthesis.set_text(i, text[..cut].to_string());
    Ok(Fitted {
        plan,
        ids,
        chain_dropped,
        truncated_at: Some(cut),
    })
}

/// The longest token-aligned prefix of `text` whose prompt has at most `budget` tokens:
/// `(byte offset, prompt ids)`. `prompt_len` is the length of the whole text's prompt.
fn truncate(
    tok: &Tokenizer,
    text: &str,
    prompt_len: usize,
    budget: usize,
) -> Result<(usize, Vec<u32>)> {
    // `encode` (not `encode_fast`): the byte offsets are needed.
    let enc = tok.encode(text, false).map_err(|e| DataError::Tokenizer {
        path: "tokenizer.json".into(),
        message: e.to_string(),
    })?;
    let offsets = enc.get_offsets();
    let overhead = prompt_len.saturating_sub(offsets.len());
    let mut keep = budget.saturating_sub(overhead).min(offsets.len());
    loop {
        let mut cut = offsets.get(keep).map_or(text.len(), |o| o.0);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let ids = encode(tok, &read_prompt(&text[..cut]))?;
        if ids.len() <= budget {
            return Ok((cut, ids));
        }
        if keep == 0 {
            return Err(DataError::Invalid(format!(
                "max_model_len − max_new_tokens = {budget} tokens cannot hold even an empty prompt"
            )));
        }
        keep = keep.saturating_sub((ids.len() - budget).max(1));
    }
}
