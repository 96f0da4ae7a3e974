//! The synthesizer's output → `(question, answer)` pairs, exactly as LMOps's
//! `parse_comprehension(out, deduplicate=True)` does it.
//!
//! This differs from [`crate::format::parse_synth_output`] (graft's stricter parser for corpora
//! that were synthesized elsewhere): LMOps accepts an empty question, several `<QUE>` tags and
//! any tag inside an answer, and de-duplicates questions case-insensitively.

use std::collections::HashSet;

use crate::format::QaPair;

/// Pairs parsed from one output, and how many pieces were dropped (malformed or duplicate).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LmopsPairs {
    /// Kept pairs, in output order.
    pub pairs: Vec<QaPair>,
    /// Pieces ended by `</END>` that were not a well-formed pair.
    pub malformed: usize,
    /// Well-formed pairs dropped because an earlier pair had the same lower-cased question.
    pub duplicates: usize,
}

/// Python's `str.isspace()`: Unicode white space plus the ASCII separators `\x1c`–`\x1f`.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.strip()` without arguments.
fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

/// Splits `output` on `</END>` (a trailing piece without `</END>` is dropped), keeps pieces with
/// exactly one `<ANS>` whose question side starts with `<QUE>` and whose answer is non-empty,
/// removes every `<QUE>` from the question, and keeps the first pair of each lower-cased question.
pub fn parse_lmops(output: &str) -> LmopsPairs {
    let mut parsed = LmopsPairs::default();
    let mut pieces: Vec<&str> = output.split("</END>").collect();
    if !output.ends_with("</END>") {
        pieces.pop();
    }
    let mut seen = HashSet::new();
    for piece in pieces {
        let Some(pair) = parse_piece(piece) else {
            // LMOps's split leaves an empty last piece after a final `</END>`; it is not a pair
            // the synthesizer wrote, so it is not counted.
            if !piece.is_empty() {
                parsed.malformed += 1;
            }
            continue;
        };
        if seen.insert(pair.question.to_lowercase()) {
            parsed.pairs.push(pair);
        } else {
            parsed.duplicates += 1;
        }
    }
    parsed
}

fn parse_piece(piece: &str) -> Option<QaPair> {
    let mut sides = piece.split("<ANS>");
    let (question, answer) = (sides.next()?, sides.next()?);
    if sides.next().is_some() {
        return None;
    }
    let (question, answer) = (py_strip(question), py_strip(answer));
    if !question.starts_with("<QUE>") || answer.is_empty() {
        return None;
    }
    Some(QaPair {
        question: py_strip(&question.replace("<QUE>", "")).to_string(),
        answer: answer.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn questions(out: &str) -> Vec<String> {
        parse_lmops(out)
            .pairs
            .into_iter()
            .map(|p| p.question)
            .collect()
    }

    #[test]
    fn accepts_what_lmops_accepts() {
        assert_eq!(questions("<QUE> <ANS> x </END>"), [""]);
        assert_eq!(questions("<QUE> a <QUE> b <ANS> c </END>"), ["a  b"]);
        let p = parse_lmops("<QUE> q <ANS> tags </CON> and <s> here </END>");
        assert_eq!(p.pairs[0].answer, "tags </CON> and <s> here");
    }

    #[test]
    fn drops_and_counts_what_lmops_drops() {
        let p = parse_lmops(
            "pre <QUE> a <ANS> b </END><QUE> a <ANS> b <ANS> c </END>\
             <QUE> q <ANS>  </END><QUE> Q? <ANS> 1 </END><QUE> q? <ANS> 2 </END><QUE> cut <ANS> off",
        );
        assert_eq!(p.pairs.len(), 1);
        assert_eq!(p.pairs[0].answer, "1");
        assert_eq!((p.malformed, p.duplicates), (3, 1));
    }

    #[test]
    fn strips_python_whitespace() {
        let p = parse_lmops("\x1c<QUE> q\u{3000} <ANS> a\x1f </END>");
        assert_eq!(p.pairs[0].question, "q");
        assert_eq!(p.pairs[0].answer, "a");
    }
}
