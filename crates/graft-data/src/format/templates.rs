//! Natural-language templates that turn an instruction–response pair into plain text.
//!
//! Chosen per pair by a seeded RNG, so a corpus renders the same way every time. Some read like
//! plain Q&A, some like reading-comprehension tasks about the text above them.

use rand::Rng;

use super::synth::QaPair;

/// The templates, in a fixed order (the RNG picks an index).
pub const TEMPLATES: [Template; 8] = [
    Template::QuestionAnswer,
    Template::Bare,
    Template::QA,
    Template::AnswerLabel,
    Template::BasedOnText,
    Template::ReadAndAnswer,
    Template::InstructionResponse,
    Template::StepByStep,
];

/// One way of writing a pair as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// `Question: {q}\nAnswer: {a}`
    QuestionAnswer,
    /// `{q}\n{a}`
    Bare,
    /// `Q: {q}\nA: {a}`
    QA,
    /// `{q}\nAnswer: {a}`
    AnswerLabel,
    /// `Based on the text above, answer the following question.\n{q}\n{a}`
    BasedOnText,
    /// `Read the passage and answer: {q}\nAnswer: {a}`
    ReadAndAnswer,
    /// `Instruction: {q}\nResponse: {a}`
    InstructionResponse,
    /// `Question: {q}\nLet's answer using the text. {a}`
    StepByStep,
}

impl Template {
    /// Picks a template uniformly.
    pub fn choose(rng: &mut impl Rng) -> Template {
        TEMPLATES[rng.random_range(0..TEMPLATES.len())]
    }

    /// Renders one pair.
    pub fn render(self, pair: &QaPair) -> String {
        let (q, a) = (pair.question.as_str(), pair.answer.as_str());
        match self {
            Template::QuestionAnswer => format!("Question: {q}\nAnswer: {a}"),
            Template::Bare => format!("{q}\n{a}"),
            Template::QA => format!("Q: {q}\nA: {a}"),
            Template::AnswerLabel => format!("{q}\nAnswer: {a}"),
            Template::BasedOnText => {
                format!("Based on the text above, answer the following question.\n{q}\n{a}")
            }
            Template::ReadAndAnswer => format!("Read the passage and answer: {q}\nAnswer: {a}"),
            Template::InstructionResponse => format!("Instruction: {q}\nResponse: {a}"),
            Template::StepByStep => format!("Question: {q}\nLet's answer using the text. {a}"),
        }
    }
}
