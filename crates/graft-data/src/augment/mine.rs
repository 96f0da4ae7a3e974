//! Mining task candidates from a text with AdaptLLM's regular expressions.
//!
//! Every pattern scans the whole context string (across paragraph breaks), case-insensitively,
//! leftmost-first and without overlap, exactly like Python's `re.findall` on the same pattern: the
//! `regex` crate's leftmost-first semantics pick the same matches and groups as a backtracking engine
//! for these patterns (no look-around, no back-references). Shape of a sentence-pair pattern: the end
//! punctuation of the previous sentence, sentence 1 (50+ characters), whitespace, a connective that
//! begins sentence 2 (then optional spaces, a comma, whitespace), the rest of sentence 2 (50+
//! characters), whitespace. The patterns and connective lists are the method's (LMOps
//! `adaptllm/utils/read.py`, MIT).

use std::sync::LazyLock;

use regex::{Regex, RegexBuilder};

/// A task family, with the type name written in the output's `tasks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Nli,
    Commonsense,
    Paraphrase,
    Word2text,
}

impl Family {
    /// All mined families, in a fixed order (the original iterates a Python set).
    pub const ALL: [Family; 4] = [
        Family::Nli,
        Family::Commonsense,
        Family::Paraphrase,
        Family::Word2text,
    ];

    /// The output type name.
    pub fn name(self) -> &'static str {
        match self {
            Family::Nli => "nli",
            Family::Commonsense => "commonsense",
            Family::Paraphrase => "paraphrase",
            Family::Word2text => "word2text",
        }
    }
}

/// A subcategory: the unit of sampling (at most 2 kept per document) and of template choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sub {
    Entail,
    Contradict,
    Neutral,
    CauseEffect,
    EffectCause,
    Similar,
    Different,
    Definition,
    Topic,
    Keyword,
}

impl Sub {
    /// Every subcategory, grouped by family in the original's order.
    pub const ALL: [Sub; 10] = [
        Sub::Entail,
        Sub::Contradict,
        Sub::Neutral,
        Sub::CauseEffect,
        Sub::EffectCause,
        Sub::Similar,
        Sub::Different,
        Sub::Definition,
        Sub::Topic,
        Sub::Keyword,
    ];

    /// The family this subcategory belongs to.
    pub fn family(self) -> Family {
        match self {
            Sub::Entail | Sub::Contradict | Sub::Neutral => Family::Nli,
            Sub::CauseEffect | Sub::EffectCause => Family::Commonsense,
            Sub::Similar | Sub::Different => Family::Paraphrase,
            Sub::Definition | Sub::Topic | Sub::Keyword => Family::Word2text,
        }
    }
}

/// One mined example before templating.
///
/// `first`/`second`: premise/hypothesis (NLI), sentence 1/sentence 2 (commonsense: cause/effect for
/// cause→effect, effect/cause for effect→cause; paraphrase), word/definition, subject/topic, and for
/// keywords the comma-joined keywords/the sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub sub: Sub,
    /// The connective or verbalizer as written in the text ("Therefore", "is defined as", ...).
    pub verbalizer: String,
    pub first: String,
    pub second: String,
}

const PAIR_HEAD: &str = r"([.!?]+[\s]+)";

fn pair(body: &str, connectives: &str, comma: bool) -> String {
    let join = if comma { r"([\s]*,[\s]+)" } else { r"([\s]+)" };
    format!(
        r"{PAIR_HEAD}([^{body}]{{50,}}[.!?]+)([\s]+)({connectives}){join}([^{body}]{{50,}}[.!?]+)([\s]+)"
    )
}

/// The regex patterns, one per regex-mined subcategory, in the original's order.
fn patterns() -> Vec<(Sub, String)> {
    const ENTAIL: &str = "Yes|Therefore|Thus|Accordingly|Hence|For this reason";
    const CONTRA: &str = "No|However|But|On the contrary|In contrast|Whereas";
    const NEUTRAL: &str = "Maybe|Also|Furthermore|Secondly|Additionally|Moreover|In addition";
    const CAUSE: &str = "Thus|Therefore|Accordingly|Hence|For this reason";
    const DUE: &str = "due to|on account of|owing to";
    // "i.e." keeps the original's unescaped dots
    const SIMILAR: &str =
        "In other words|In other word|Namely|That is to say|i.e.|Scilicet|Similarly|Equally";
    vec![
        (Sub::Entail, pair(r".!?\n,", ENTAIL, true)),
        (Sub::Contradict, pair(r".!?\n,", CONTRA, true)),
        (Sub::Neutral, pair(r".!?\n,", NEUTRAL, true)),
        (Sub::CauseEffect, pair(r".!?\n,", CAUSE, true)),
        (Sub::EffectCause, pair(r".!?;\n,", DUE, false)),
        (Sub::Similar, pair(r".!?\n", SIMILAR, true)),
        (Sub::Different, pair(r".!?\n", CONTRA, true)),
        (
            Sub::Definition,
            r#"([\s]+)([^.!?,;\s"]{10,})([\s]+)(is defined as|'s definition is)([\s]+)([^.!?\n]{20,}[.!?]+)([\s]+)"#.into(),
        ),
        (
            Sub::Topic,
            r"([.!?]+[\s]+)([^.!?,;\n]{20,})([\s]+)(was about|talks about|is about|'s topic is)([\s]+)([^.!?\n]{20,}[.!?]+)([\s]+)".into(),
        ),
    ]
}

static REGEXES: LazyLock<Vec<(Sub, Regex)>> = LazyLock::new(|| {
    patterns()
        .into_iter()
        .map(|(sub, p)| {
            let re = RegexBuilder::new(&p)
                .case_insensitive(true)
                .size_limit(1 << 26)
                .build();
            // the patterns are constants, checked by the tests: failing here is a bug in graft
            (
                sub,
                re.unwrap_or_else(|e| panic!("bad built-in pattern {p}: {e}")),
            )
        })
        .collect()
});

/// All regex candidates of `context`, grouped by subcategory in pattern order, each in text order.
pub fn mine_patterns(context: &str) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (sub, re) in REGEXES.iter() {
        for caps in re.captures_iter(context) {
            let group = |i: usize| caps.get(i).map_or("", |m| m.as_str()).to_string();
            out.push(Candidate {
                sub: *sub,
                verbalizer: group(4),
                first: group(2),
                second: group(6),
            });
        }
    }
    out
}

/// Upper-cases the first character (the original does `s[0].upper() + s[1:]` on sentence 2).
pub fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
