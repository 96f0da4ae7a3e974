//! Sampling, templating and assembly of one reading-comprehension document.
//!
//! Follows AdaptLLM's `format_recomprehension`: at most 2 candidates per subcategory, one template
//! per subcategory, the examples of a family kept together in one block, blocks shuffled, an intro
//! line, then a layout that wraps the raw text (summarize / completion / both / neither). Every draw
//! comes from the document's own RNG, so a document's output depends only on the seed, its index
//! and its text.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::layouts::{self, prompt_before};
use super::mine::{capitalize, Candidate, Family, Sub};
use super::segment::Parts;
use super::templates::{self as t, fill, Pair};

/// Examples kept per subcategory.
pub const PER_SUBCATEGORY: usize = 2;
/// Separator between examples of a family and between family blocks.
const DEMO_SEPARATOR: &str = "\n\n";

/// One task of a reading-comprehension document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    /// `summarize`, `word2text`, `nli`, `commonsense`, `paraphrase` or `completion`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub question: String,
    pub answer: String,
}

/// A reading-comprehension document: the rendered text and the tasks it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Augmented {
    pub text: String,
    pub tasks: Vec<Task>,
}

/// How the raw text is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Summarize,
    Completion,
    SummarizeCompletion,
    Neither,
}

/// Renders one document from its parts and its candidates (regex and keyword, any order).
pub fn assemble(
    parts: &Parts,
    candidates: Vec<Candidate>,
    domain: &str,
    rng: &mut ChaCha8Rng,
) -> Augmented {
    let kept = sample(candidates, rng);
    let generate_nli = rng.random_bool(0.2);
    let mut blocks: Vec<(String, Vec<Task>)> = Vec::new();
    for family in Family::ALL {
        let mut texts = Vec::new();
        let mut tasks = Vec::new();
        for sub in Sub::ALL.iter().filter(|s| s.family() == family) {
            let examples: Vec<&Candidate> = kept.iter().filter(|c| c.sub == *sub).collect();
            if examples.is_empty() {
                continue;
            }
            let pool = pool(*sub, generate_nli);
            let template = pool[rng.random_range(0..pool.len())];
            for c in examples {
                let (question, answer) = render(c, template, domain);
                texts.push(format!("{question} {answer}"));
                tasks.push(Task {
                    kind: family.name(),
                    question,
                    answer,
                });
            }
        }
        if !texts.is_empty() {
            blocks.push((texts.join(DEMO_SEPARATOR), tasks));
        }
    }
    blocks.shuffle(rng);
    let intro = fill(
        layouts::INTROS[rng.random_range(0..layouts::INTROS.len())],
        &[("domain", domain)],
    );
    let qa_demos = if blocks.is_empty() {
        String::new()
    } else {
        let joined: Vec<&str> = blocks.iter().map(|(b, _)| b.as_str()).collect();
        format!("{intro}{}", joined.join(DEMO_SEPARATOR))
    };
    let mut tasks: Vec<Task> = blocks.into_iter().flat_map(|(_, t)| t).collect();
    let text = wrap(parts, domain, &qa_demos, &mut tasks, rng);
    for task in &mut tasks {
        task.question = collapse_spaces(&task.question);
        task.answer = collapse_spaces(&task.answer);
    }
    Augmented {
        text: collapse_spaces(&text),
        tasks,
    }
}

/// Shuffles each subcategory's candidates and keeps the first [`PER_SUBCATEGORY`].
fn sample(candidates: Vec<Candidate>, rng: &mut ChaCha8Rng) -> Vec<Candidate> {
    let mut kept = Vec::new();
    for sub in Sub::ALL {
        let mut of_sub: Vec<&Candidate> = candidates.iter().filter(|c| c.sub == sub).collect();
        of_sub.shuffle(rng);
        kept.extend(of_sub.into_iter().take(PER_SUBCATEGORY).cloned());
    }
    kept
}

/// The template pool of a subcategory (NLI: the "generate" pools when `generate_nli`).
fn pool(sub: Sub, generate_nli: bool) -> &'static [Pair] {
    match (sub, generate_nli) {
        (Sub::Entail | Sub::Contradict | Sub::Neutral, false) => &t::NLI_CLASSIFY,
        (Sub::Entail, true) => &t::NLI_GENERATE_ENTAIL,
        (Sub::Neutral, true) => &t::NLI_GENERATE_NEUTRAL,
        (Sub::Contradict, true) => &t::NLI_GENERATE_CONTRADICT,
        (Sub::CauseEffect, _) => &t::CAUSE_EFFECT,
        (Sub::EffectCause, _) => &t::EFFECT_CAUSE,
        (Sub::Similar, _) => &t::PARAPHRASE_SIMILAR,
        (Sub::Different, _) => &t::PARAPHRASE_DIFFERENT,
        (Sub::Definition, _) => &t::DEFINITION,
        (Sub::Topic, _) => &t::TOPIC,
        (Sub::Keyword, _) => &t::KEYWORD,
    }
}

/// Fills a template pair with a candidate: `(question, answer)`.
fn render(c: &Candidate, (q, a): Pair, domain: &str) -> (String, String) {
    let second = capitalize(&c.second);
    let (first, v) = (c.first.as_str(), c.verbalizer.as_str());
    let values: Vec<(&str, &str)> = match c.sub {
        Sub::Entail | Sub::Contradict | Sub::Neutral => {
            let (answer, connect, relation) = match c.sub {
                Sub::Entail => ("Yes", "Therefore", "Entailment"),
                Sub::Contradict => ("No", "However", "Contradictory"),
                _ => ("Maybe", "Moreover", "Neutral"),
            };
            vec![
                ("premise", first),
                ("hypothesis", &second),
                ("options_", "- Yes\n- No\n- Maybe"),
                ("verbalizer", v),
                ("answer", answer),
                ("connect_answer", connect),
                ("relation_answer", relation),
            ]
        }
        Sub::CauseEffect => vec![("cause", first), ("effect", &second), ("verbalizer", v)],
        Sub::EffectCause => vec![("cause", &second), ("effect", first), ("verbalizer", v)],
        Sub::Similar | Sub::Different => {
            vec![
                ("sentence1", first),
                ("sentence2", &second),
                ("verbalizer", v),
            ]
        }
        Sub::Definition => vec![
            ("word", first),
            ("verbalizer", v),
            ("definition", &c.second),
        ],
        Sub::Topic => vec![("sentence", first), ("verbalizer", v), ("topic", &c.second)],
        Sub::Keyword => vec![
            ("tripleset", first),
            ("target", c.second.trim()),
            ("domain", domain),
        ],
    };
    (fill(q, &values), fill(a, &values))
}

/// Draws the layout: the method's probabilities, by whether there is a title and 2+ sentences.
fn draw_layout(parts: &Parts, rng: &mut ChaCha8Rng) -> Layout {
    let two = parts.sentences.len() >= 2;
    let x: f64 = rng.random();
    match (parts.title.is_some(), two) {
        (true, true) if x < 0.4 => Layout::Summarize,
        (true, true) if x < 0.5 => Layout::Completion,
        (true, true) if x < 0.9 => Layout::SummarizeCompletion,
        (true, false) if x < 0.5 => Layout::Summarize,
        (false, true) if x < 0.5 => Layout::Completion,
        _ => Layout::Neither,
    }
}

/// Wraps the raw text with a layout and places the tasks; appends the layout's own tasks.
fn wrap(
    parts: &Parts,
    domain: &str,
    qa_demos: &str,
    tasks: &mut Vec<Task>,
    rng: &mut ChaCha8Rng,
) -> String {
    let layout = draw_layout(parts, rng);
    let title = parts.title.as_deref().unwrap_or("");
    let body = parts.sentences.concat();
    let body = body.trim();
    let pick =
        |pool: &'static [&'static str], rng: &mut ChaCha8Rng| pool[rng.random_range(0..pool.len())];
    let template = match layout {
        Layout::Summarize => pick(&layouts::SUMMARIZE, rng),
        Layout::Completion => pick(&layouts::COMPLETION, rng),
        Layout::SummarizeCompletion => pick(&layouts::SUMMARIZE_COMPLETION, rng),
        Layout::Neither => pick(&layouts::NEITHER, rng),
    };
    let (first, second) = halves(parts, layout, rng);
    let context = match &parts.title {
        Some(t) => format!("{t}\n{body}"),
        None => body.to_string(),
    };
    let values = [
        ("domain", domain),
        ("title", title),
        ("context_wo_title", body),
        ("context", &context),
        ("context_1st_half", &first),
        ("context_2nd_half", &second),
    ];
    if matches!(layout, Layout::Completion | Layout::SummarizeCompletion) {
        let end = template
            .find("{context_2nd_half}")
            .unwrap_or(template.len());
        let question = fill(&template[..end], &values).trim().to_string();
        tasks.push(layout_task("completion", question, second.clone()));
    }
    if matches!(layout, Layout::Summarize | Layout::SummarizeCompletion) {
        let title_at = template.find("{title}").unwrap_or(0);
        let text_at = template.find("{context").unwrap_or(0);
        let (placeholder, answer) = if title_at > text_at {
            ("{title}", title.to_string())
        } else {
            ("{context_wo_title}", body.to_string())
        };
        let question = prompt_before(template, placeholder, &values).unwrap_or_default();
        tasks.push(layout_task("summarize", question, answer));
    }
    let mut all = values.to_vec();
    all.push(("qa_demos", qa_demos));
    fill(template, &all)
}

fn layout_task(kind: &'static str, question: String, answer: String) -> Task {
    Task {
        kind,
        question,
        answer,
    }
}

/// The completion halves: sentences before and after a cut drawn in `[1, n-1]`, each stripped; with
/// completion only, the first half starts with the title line.
fn halves(parts: &Parts, layout: Layout, rng: &mut ChaCha8Rng) -> (String, String) {
    if !matches!(layout, Layout::Completion | Layout::SummarizeCompletion) {
        return (String::new(), String::new());
    }
    let n = parts.sentences.len();
    let cut = rng.random_range(1..n);
    let first = parts.sentences[..cut].concat();
    let second = parts.sentences[cut..].concat().trim().to_string();
    match (&parts.title, layout) {
        (Some(t), Layout::Completion) => (format!("{t}\n{}", first.trim()), second),
        _ => (first.trim().to_string(), second),
    }
}

/// Every run of two or more spaces becomes one (the original's last step, on the whole document).
pub fn collapse_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_space = false;
    for c in s.chars() {
        if !(c == ' ' && prev_space) {
            out.push(c);
        }
        prev_space = c == ' ';
    }
    out
}
