//! Multiple-choice scoring against the golden logits of transformers, lm-eval's tokenization of
//! (context, continuation) pairs, and row errors.

mod eval_common;

use eval_common::*;
use graft_data::TextTokenizer;
use graft_train::eval::{
    encode_pair, read_choice_rows, score_choice_task, ChoiceInput, ChoiceOptions, ChoiceRow,
};
use serde_json::json;

/// Rows cut from the golden sequences: context = ids[..k]; choices = the golden continuation
/// ids[k..k+4], the token the golden logits rank highest at position k-1, and the lowest.
/// Returns the rows and the expected log-likelihood of each choice from the golden log-probs.
fn golden_rows() -> (Vec<ChoiceRow>, Vec<Vec<f64>>) {
    let ids = golden_ids();
    let lp = golden_log_probs();
    let mut rows = Vec::new();
    let mut expected = Vec::new();
    for (r, seq) in ids.iter().enumerate() {
        for k in [1usize, 5, 17, 28] {
            let cont = seq[k..(k + 4).min(seq.len())].to_vec();
            let at = &lp[r][k - 1];
            let best = (0..at.len())
                .max_by(|&a, &b| at[a].total_cmp(&at[b]))
                .unwrap() as u32;
            let worst = (0..at.len())
                .min_by(|&a, &b| at[a].total_cmp(&at[b]))
                .unwrap() as u32;
            let golden_cont: f64 = cont
                .iter()
                .enumerate()
                .map(|(j, &t)| lp[r][k - 1 + j][t as usize])
                .sum();
            expected.push(vec![golden_cont, at[best as usize], at[worst as usize]]);
            rows.push(ChoiceRow {
                path: "golden".into(),
                line: rows.len() + 1,
                input: ChoiceInput::Ids {
                    context: seq[..k].to_vec(),
                    choices: vec![cont, vec![best], vec![worst]],
                },
                gold: 0,
            });
        }
    }
    (rows, expected)
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

#[test]
fn choice_logliks_equal_golden_log_probs() {
    let model = tiny();
    let (mut rows, expected) = golden_rows();
    // Gold = the choice the golden log-probs favour, so acc must be 1.
    for (row, exp) in rows.iter_mut().zip(&expected) {
        row.gold = argmax(exp);
    }
    for batch_size in [1, 5] {
        let options = ChoiceOptions::new(4096, batch_size);
        let result =
            score_choice_task(&model, None, None, &rows, &options, &mut |_, _| {}).expect("score");
        assert_eq!(result.n, rows.len());
        for (row, exp) in result.per_row.iter().zip(&expected) {
            for (got, want) in row.loglik.iter().zip(exp) {
                assert!((got - want).abs() <= 1e-4, "loglik {got} vs golden {want}");
            }
        }
        assert_eq!(result.acc, 1.0, "batch size {batch_size}");
        // acc_norm divides by token counts (4, 1, 1): recompute from the golden values.
        let norm_hits = rows
            .iter()
            .zip(&expected)
            .filter(|(row, exp)| {
                let normed: Vec<f64> = exp
                    .iter()
                    .zip([4.0, 1.0, 1.0])
                    .map(|(l, n)| l / n)
                    .collect();
                argmax(&normed) == row.gold
            })
            .count();
        assert_eq!(result.acc_norm, norm_hits as f64 / rows.len() as f64);
        assert!(result.acc_stderr == Some(0.0));
    }
}

#[test]
fn accuracy_counts_wrong_gold_labels() {
    let model = tiny();
    let (mut rows, expected) = golden_rows();
    // Gold = the lowest-ranked single token (choice 2) on every other row.
    let mut want = 0;
    for (i, (row, exp)) in rows.iter_mut().zip(&expected).enumerate() {
        row.gold = if i % 2 == 0 { 2 } else { argmax(exp) };
        want += (row.gold == argmax(exp)) as usize;
    }
    let options = ChoiceOptions::new(4096, 4);
    let result = score_choice_task(&model, None, None, &rows, &options, &mut |_, _| {}).unwrap();
    assert_eq!(result.acc, want as f64 / rows.len() as f64);
    assert!((result.acc - 0.5).abs() < 1e-12);
    let se = result.acc_stderr.unwrap();
    // sample std of 0/1 with p = 1/2 over n = 8: sqrt(8/7 · 1/4) / sqrt(8).
    assert!((se - (8.0f64 / 7.0 * 0.25).sqrt() / 8f64.sqrt()).abs() < 1e-12);
}

#[test]
fn left_truncation_keeps_the_last_max_length_tokens() {
    let model = tiny();
    let (rows, _) = golden_rows();
    let long = &rows[7]; // context 28 tokens
    let ChoiceInput::Ids { context, choices } = &long.input else {
        unreachable!()
    };
    let short_ctx = context[context.len() - 3..].to_vec();
    let short = ChoiceRow {
        input: ChoiceInput::Ids {
            context: short_ctx,
            choices: choices.clone(),
        },
        ..long.clone()
    };
    // With max_length = 3 + 4 - 1 the long row's 4-token choice sees exactly the short row's tokens.
    let options = ChoiceOptions::new(6, 2);
    let a = score_choice_task(
        &model,
        None,
        None,
        std::slice::from_ref(long),
        &options,
        &mut |_, _| {},
    )
    .unwrap();
    let b = score_choice_task(
        &model,
        None,
        None,
        &[short],
        &ChoiceOptions::new(4096, 2),
        &mut |_, _| {},
    )
    .unwrap();
    let full = score_choice_task(
        &model,
        None,
        None,
        std::slice::from_ref(long),
        &ChoiceOptions::new(4096, 2),
        &mut |_, _| {},
    )
    .unwrap();
    let (a, b, full) = (
        a.per_row[0].loglik[0],
        b.per_row[0].loglik[0],
        full.per_row[0].loglik[0],
    );
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    assert!(
        (a - full).abs() > 1e-4,
        "truncation must change the score: {a} vs {full}"
    );
}

#[test]
fn encode_pair_follows_lm_eval() {
    let tok_path = fixtures().join("llama3-tokenizer/tokenizer.json");
    let tok = TextTokenizer::from_file(&tok_path, Some(128000), Some(128001)).unwrap();
    let p = std::path::Path::new("t.jsonl");
    let (ctx, cont) = encode_pair(
        &tok,
        Some(128000),
        "Question: Is it safe?\nAnswer:",
        " yes",
        p,
        1,
    )
    .unwrap();
    assert_eq!(ctx[0], 128000, "BOS first");
    assert_eq!(
        ctx.iter().filter(|&&t| t == 128000).count(),
        1,
        "no double BOS"
    );
    let mut whole = vec![128000];
    tok.encode_docs(
        &["Question: Is it safe?\nAnswer: yes".to_string()],
        None,
        None,
        &mut whole,
    )
    .unwrap();
    assert_eq!([ctx.clone(), cont.clone()].concat(), whole);
    assert_eq!(cont.len(), 1, "\" yes\" is one Llama-3 token");
    // Trailing whitespace of the context moves to the continuation.
    let (ctx2, cont2) = encode_pair(
        &tok,
        Some(128000),
        "Question: Is it safe?\nAnswer: ",
        "yes",
        p,
        1,
    )
    .unwrap();
    assert_eq!((ctx2, cont2), (ctx, cont));
}

#[test]
fn task_files_parse_and_bad_rows_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = json!({"context": "Q?", "choices": ["a", "b"], "gold": 1}).to_string();
    let ids = json!({"context_ids": [1, 5], "choices_ids": [[7], [8, 9]], "gold": 0}).to_string();
    let path = write_jsonl(
        dir.path(),
        "task.jsonl",
        &[good.clone(), String::new(), ids],
    );
    let rows = read_choice_rows(&path, None).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].line, 3);
    assert_eq!(read_choice_rows(&path, Some(1)).unwrap().len(), 1);

    let cases = [
        ("{not json", "not a valid row"),
        (r#"{"context": "Q", "choices": ["a", "b"]}"#, "no \"gold\""),
        (
            r#"{"context": "Q", "choices": ["a", "b"], "gold": 2}"#,
            "only 2 choices",
        ),
        (
            r#"{"context": "Q", "choices": ["a"], "gold": 0}"#,
            "at least 2",
        ),
        (
            r#"{"prompt": "Q", "choices": ["a", "b"], "gold": 0}"#,
            "not a valid row",
        ),
    ];
    for (bad, needle) in cases {
        let path = write_jsonl(dir.path(), "bad.jsonl", &[good.clone(), bad.to_string()]);
        let err = read_choice_rows(&path, None).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl:2"), "{err}");
        assert!(err.contains(needle), "{err}");
    }

    // Ids beyond the vocabulary, and text without a tokenizer, fail at scoring time.
    let model = tiny();
    let path = write_jsonl(
        dir.path(),
        "oov.jsonl",
        &[json!({"context_ids": [1], "choices_ids": [[7], [384]], "gold": 0}).to_string()],
    );
    let rows = read_choice_rows(&path, None).unwrap();
    let options = ChoiceOptions::new(4096, 1);
    let err = score_choice_task(&model, None, Some(1), &rows, &options, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("oov.jsonl:1") && err.contains("choices_ids[1][0] = 384"),
        "{err}"
    );
    let path = write_jsonl(dir.path(), "text.jsonl", &[good]);
    let rows = read_choice_rows(&path, None).unwrap();
    let err = score_choice_task(&model, None, Some(1), &rows, &options, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("text.jsonl:1") && err.contains("no tokenizer"),
        "{err}"
    );
}

#[test]
fn sample_task_files_parse() {
    for name in ["biomedicine", "finance"] {
        let path = fixtures().join(format!("../../data/eval/{name}.jsonl"));
        let rows = read_choice_rows(&path, None).unwrap();
        assert!(rows.len() >= 24, "{name}: {} rows", rows.len());
        assert!(rows
            .iter()
            .all(|r| matches!(r.input, ChoiceInput::Text { .. })));
    }
}
