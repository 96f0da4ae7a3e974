//! The protocol against `golden/synth-prompts.json` (LMOps's own code, stubbed outputs).

use std::path::PathBuf;

use serde_json::Value;
use tokenizers::Tokenizer;

use super::*;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn golden() -> Value {
    let path = fixtures().join("golden/synth-prompts.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_file(fixtures().join("tiny-mistral/tokenizer.json")).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn pairs_json(pairs: &[QaPair]) -> Value {
    serde_json::to_value(pairs).unwrap()
}

/// Runs the protocol with the stub outputs and compares every entry of every round.
fn check_run(g: &Value, run: &Value, tok: &Tokenizer) {
    let texts = strings(&g["texts"]);
    let stubs = strings(&g["stub_outputs"]);
    let settings = SynthSettings {
        rounds: run["rounds"].as_u64().unwrap() as usize,
        ..SynthSettings::default()
    };
    let mut syn = Synthesis::new(texts, settings);
    assert_eq!(
        syn.texts_per_round() as u64,
        run["texts_per_round"].as_u64().unwrap()
    );
    for (r, round) in run["rounds_detail"].as_array().unwrap().iter().enumerate() {
        let entries = round["entries"].as_array().unwrap();
        assert_eq!(syn.round_range(r).len(), entries.len(), "round {r}");
        // Plan the whole round before finishing any of it, as a batch is.
        let fitted: Vec<Fitted> = syn
            .round_range(r)
            .map(|i| {
                let plan = syn.plan(i);
                fit_prompt(&mut syn, plan, tok).unwrap()
            })
            .collect();
        for (f, e) in fitted.iter().zip(entries) {
            let i = f.plan.text_index;
            let ctx = format!("M={} round {r} text {i}", settings.rounds);
            assert_eq!(i as u64, e["text_index"].as_u64().unwrap(), "{ctx}");
            assert_eq!(f.plan.prompt, e["prompt"].as_str().unwrap(), "{ctx}");
            assert_eq!(
                f.ids.len() as u64,
                e["prompt_num_tokens"].as_u64().unwrap(),
                "{ctx}"
            );
            assert!(!f.chain_dropped && f.truncated_at.is_none(), "{ctx}");
            let prev: Vec<usize> =
                serde_json::from_value(e["previous_text_indices"].clone()).unwrap();
            assert_eq!(f.plan.previous, prev, "{ctx}");
            assert_eq!(
                f.plan.estimated_length,
                e["estimated_length"].as_f64(),
                "{ctx}"
            );
            assert_eq!(stubs[i], e["raw_output"].as_str().unwrap(), "{ctx}");
            let parsed = parse_lmops(&stubs[i]);
            assert_eq!(pairs_json(&parsed.pairs), e["qa_pairs"], "{ctx}");
            let chained = !f.plan.previous.is_empty();
            assert_eq!(chained, e["chained"].as_bool().unwrap(), "{ctx}");
            let inherit = syn.finish(i, chained, parsed.pairs);
            assert_eq!(inherit, e["inherit_from_prev"].as_bool().unwrap(), "{ctx}");
        }
    }
    assert!((0..syn.len()).all(|i| syn.is_done(i)));
}

#[test]
fn prompts_chains_and_pairs_equal_lmops_for_two_and_three_rounds() {
    let g = golden();
    let tok = tokenizer();
    let runs = g["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        check_run(&g, run, &tok);
    }
}

#[test]
fn parse_cases_equal_lmops() {
    let g = golden();
    for (k, case) in g["parse_cases"].as_array().unwrap().iter().enumerate() {
        let parsed = parse_lmops(case["output"].as_str().unwrap());
        assert_eq!(
            pairs_json(&parsed.pairs),
            case["qa_pairs"],
            "parse case {k}"
        );
    }
}

#[test]
fn rounds_split_like_lmops_including_short_and_empty_last_rounds() {
    let settings = |rounds| SynthSettings {
        rounds,
        ..SynthSettings::default()
    };
    let syn = Synthesis::new(vec![String::new(); 7], settings(5));
    let sizes: Vec<usize> = (0..5).map(|r| syn.round_range(r).len()).collect();
    assert_eq!(sizes, [2, 2, 2, 1, 0]);
    let syn = Synthesis::new(vec![String::new(); 7], settings(3));
    assert_eq!(syn.round_range(2), 6..7);
    assert_eq!(read_prompt(""), "<s>");
    assert_eq!(estimate_length("a\n\nb"), 1.5);
    assert_eq!(estimate_length("a  b"), 4.5);
}

#[test]
fn a_text_over_the_token_budget_is_truncated_and_a_long_chain_dropped() {
    let tok = tokenizer();
    let settings = SynthSettings {
        rounds: 2,
        max_new_tokens: 20,
        max_model_len: 60,
    };
    let long = "word ".repeat(100).trim_end().to_string();
    let texts = vec![
        "short text".to_string(),
        long.clone(),
        "ab ab ab".into(),
        "x".into(),
    ];
    let mut syn = Synthesis::new(texts, settings);
    let plan = syn.plan(1);
    let f = fit_prompt(&mut syn, plan, &tok).unwrap();
    let cut = f.truncated_at.expect("truncated");
    assert!(
        f.ids.len() <= 40 && f.ids.len() >= 35,
        "{} tokens",
        f.ids.len()
    );
    assert_eq!(f.plan.prompt, read_prompt(&long[..cut]));
    assert_eq!(syn.text(1), &long[..cut]);
    let pair = QaPair {
        question: "Why".repeat(60),
        answer: "a".into(),
    };
    syn.finish(0, false, vec![pair]);
    syn.finish(1, false, vec![]);
    // Text 2 chains after text 0: the estimate fits, the tokens do not.
    let plan = syn.plan(2);
    assert_eq!(plan.previous, [0]);
    let f = fit_prompt(&mut syn, plan, &tok).unwrap();
    assert!(f.chain_dropped && f.plan.previous.is_empty() && f.truncated_at.is_none());
    assert_eq!(f.plan.prompt, read_prompt("ab ab ab"));
}
