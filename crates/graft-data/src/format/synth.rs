//! Parsing the instruction synthesizer's raw output: `<QUE> q <ANS> a </END>` repeated.

/// One instruction–response pair.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QaPair {
    pub question: String,
    pub answer: String,
}

/// Pairs parsed from synthesizer output, and how many malformed pairs were dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedPairs {
    pub pairs: Vec<QaPair>,
    pub dropped: usize,
}

/// Special markers of the synthesizer's input/output format; none may survive into training text.
pub const TAGS: [&str; 7] = ["<QUE>", "<ANS>", "</END>", "<CON>", "</CON>", "<s>", "</s>"];

/// Splits on `</END>` and keeps each segment of the form `<QUE> question <ANS> answer` with a
/// non-empty question and answer and no further tags. Anything else (a missing `<ANS>`, two
/// `<QUE>`s, an empty side, a trailing segment cut off before `</END>`) is dropped and counted.
pub fn parse_synth_output(output: &str) -> ParsedPairs {
    let mut parsed = ParsedPairs::default();
    let output = output.trim().trim_end_matches("</s>").trim_end();
    let segments: Vec<&str> = output.split("</END>").collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.into_iter().enumerate() {
        if segment.trim().is_empty() {
            continue;
        }
        // The segment after the last `</END>` is a pair the synthesizer did not finish.
        let pair = if i == last {
            None
        } else {
            parse_segment(segment)
        };
        match pair {
            Some(pair) => parsed.pairs.push(pair),
            None => parsed.dropped += 1,
        }
    }
    parsed
}

fn parse_segment(segment: &str) -> Option<QaPair> {
    let rest = segment.trim().strip_prefix("<QUE>")?;
    let (question, answer) = rest.split_once("<ANS>")?;
    let (question, answer) = (question.trim(), answer.trim());
    if question.is_empty() || answer.is_empty() || has_tag(question) || has_tag(answer) {
        return None;
    }
    Some(QaPair {
        question: question.to_string(),
        answer: answer.to_string(),
    })
}

/// True if `text` still holds any synthesizer tag.
pub fn has_tag(text: &str) -> bool {
    TAGS.iter().any(|t| text.contains(t))
}

/// Removes the synthesizer's input wrapping (`<s>`, `<CON>`, `</CON>`) from a raw text.
pub fn strip_tags(text: &str) -> String {
    let mut s = text.to_string();
    for tag in TAGS {
        if s.contains(tag) {
            s = s.replace(tag, "");
        }
    }
    s.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_well_formed_pairs() {
        let p = parse_synth_output(
            "<QUE> What is X? <ANS> X is Y. </END><QUE> Why? <ANS> Because. </END>",
        );
        assert_eq!(p.dropped, 0);
        assert_eq!(p.pairs.len(), 2);
        assert_eq!(
            p.pairs[0],
            QaPair {
                question: "What is X?".into(),
                answer: "X is Y.".into()
            }
        );
        assert_eq!(p.pairs[1].answer, "Because.");
    }

    #[test]
    fn drops_and_counts_malformed_pairs() {
        let out = "<QUE> ok? <ANS> yes </END>\
                   <QUE> no answer tag </END>\
                   <QUE> <ANS> empty question </END>\
                   <QUE> a <QUE> b <ANS> two questions </END>\
                   answer without question <ANS> x </END>\
                   <QUE> fine <ANS> good </END>\
                   <QUE> cut off <ANS> never fini";
        let p = parse_synth_output(out);
        assert_eq!(
            p.pairs
                .iter()
                .map(|q| q.question.as_str())
                .collect::<Vec<_>>(),
            ["ok?", "fine"]
        );
        assert_eq!(p.dropped, 5);
    }

    #[test]
    fn strips_input_tags() {
        assert_eq!(strip_tags("<s> <CON> Some text. </CON>"), "Some text.");
        assert!(!has_tag(&strip_tags("<CON>a</CON>")));
    }
}
