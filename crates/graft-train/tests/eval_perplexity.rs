//! Perplexity: equals transformers' loss on the golden batch, windows score every target once, and
//! bad rows name the file and line.

mod eval_common;

use burn::tensor::{Int, Tensor, TensorData};
use eval_common::*;
use graft_data::TextTokenizer;
use graft_llama::{causal_lm_loss_sum, IGNORE_INDEX};
use graft_train::eval::{perplexity, read_perplexity_rows, windows};
use serde_json::json;

fn nll(rows: &[Vec<u32>], seq_len: usize, batch: usize) -> (u64, f64) {
    let model = tiny();
    let r = perplexity(
        &model,
        rows,
        seq_len,
        batch,
        "rows".as_ref(),
        &mut |_, _| {},
    )
    .unwrap();
    assert!((r.ppl - r.nll.exp()).abs() < 1e-9);
    (r.tokens, r.nll)
}

#[test]
fn whole_rows_match_the_golden_loss() {
    let rows = golden_ids();
    for batch in [1, 2] {
        let (tokens, nll) = nll(&rows, 4096, batch);
        assert_eq!(tokens, 62);
        assert!(
            (nll - golden_loss()).abs() <= 1e-5,
            "{nll} vs {}",
            golden_loss()
        );
    }
}

#[test]
fn windows_score_every_target_exactly_once() {
    let row: Vec<u32> = (0..23).collect();
    for seq_len in [1, 4, 7, 22, 23, 50] {
        let ws = windows(&row, seq_len);
        let targets: Vec<u32> = ws.iter().flat_map(|w| w.targets.clone()).collect();
        assert_eq!(targets, row[1..], "seq_len {seq_len}");
        for w in &ws {
            assert!(w.input.len() <= seq_len && w.input.len() == w.targets.len());
            assert_eq!(w.input[0] + 1, w.targets[0], "input i predicts token i + 1");
        }
        let inputs: Vec<u32> = ws.iter().flat_map(|w| w.input.clone()).collect();
        assert_eq!(inputs, row[..22], "inputs do not overlap");
    }
    assert!(windows(&[5], 4).is_empty());
}

#[test]
fn windowed_perplexity_equals_separate_passes() {
    let model = tiny();
    let rows = golden_ids();
    // Each window of 10 inputs on its own: the cross-entropy of input + its last target.
    let (mut sum, mut count) = (0.0f64, 0.0f64);
    for row in &rows {
        for w in windows(row, 10) {
            let mut seq = w.input.clone();
            seq.push(*w.targets.last().unwrap());
            let ids: Vec<i64> = seq.iter().map(|&t| t as i64).collect();
            let t: Tensor<B, 2, Int> =
                Tensor::from_data(TensorData::new(ids, [1, seq.len()]), &Default::default());
            let (s, c) = causal_lm_loss_sum(model.forward(t.clone()), t, IGNORE_INDEX);
            sum += s.into_scalar() as f64;
            count += c.into_scalar() as f64;
        }
    }
    let (tokens, got) = nll(&rows, 10, 3);
    assert_eq!(tokens as f64, count);
    assert_eq!(tokens, 62);
    assert!(
        (got - sum / count).abs() <= 1e-5,
        "{got} vs {}",
        sum / count
    );
    assert!(
        (got - golden_loss()).abs() > 1e-4,
        "windows lose context, so the NLL differs"
    );
}

#[test]
fn text_rows_get_one_bos_and_match_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let tok_path = fixtures().join("llama3-tokenizer/tokenizer.json");
    let tok = TextTokenizer::from_file(&tok_path, Some(128000), Some(128001)).unwrap();
    let path = write_jsonl(
        dir.path(),
        "rows.jsonl",
        &[
            json!({"text": "Hello world"}).to_string(),
            json!({"input_ids": [128000, 9906]}).to_string(),
        ],
    );
    let rows = read_perplexity_rows(&path, Some(&tok), Some(128000), 128256).unwrap();
    assert_eq!(rows, vec![vec![128000, 9906, 1917], vec![128000, 9906]]);
    // Those ids do not fit the tiny model's 384-token vocabulary: a clear error, not a panic.
    let err = read_perplexity_rows(&path, Some(&tok), Some(128000), 384)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rows.jsonl:1") && err.contains("vocabulary"),
        "{err}"
    );
}

#[test]
fn bad_rows_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = json!({"input_ids": [1, 2, 3]}).to_string();
    let cases = [
        ("{\"input_ids\": [1, 2", "not a valid row"),
        ("{}", "needs a \"text\" or an \"input_ids\""),
        (r#"{"text": "a", "input_ids": [1]}"#, "not both"),
        (r#"{"input_ids": [1, 999]}"#, "input_ids[1] = 999"),
        (r#"{"input_ids": [1, -3]}"#, "not a valid row"),
        (r#"{"text": "hello"}"#, "no tokenizer"),
    ];
    for (bad, needle) in cases {
        let path = write_jsonl(
            dir.path(),
            "data.jsonl",
            &[good.clone(), String::new(), bad.into()],
        );
        let err = read_perplexity_rows(&path, None, Some(1), 384)
            .unwrap_err()
            .to_string();
        assert!(err.contains("data.jsonl:3"), "{err}");
        assert!(err.contains(needle), "{bad}: {err}");
    }
    let missing = dir.path().join("missing.jsonl");
    let err = read_perplexity_rows(&missing, None, Some(1), 384)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.jsonl"), "{err}");
    // Nothing to score.
    let model = tiny();
    let err = perplexity(
        &model,
        &[vec![1]],
        8,
        1,
        "one.jsonl".as_ref(),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("one.jsonl") && err.contains("no targets"),
        "{err}"
    );
}
