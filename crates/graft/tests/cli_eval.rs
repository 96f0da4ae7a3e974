//! `graft eval perplexity` and `graft eval choice`, run as the real binary on the tiny fixture.

mod cli_common;

use cli_common::*;
use serde_json::{json, Value};

fn ids_rows(dir: &std::path::Path) -> std::path::PathBuf {
    let lines: Vec<String> = golden_ids()
        .iter()
        .map(|row| json!({ "input_ids": row }).to_string())
        .collect();
    write_jsonl(dir, "rows.jsonl", &lines)
}

#[test]
fn perplexity_json_equals_the_golden_loss() {
    let dir = tempfile::tempdir().unwrap();
    let rows = ids_rows(dir.path());
    let tiny = tiny_dir();
    let out = ok(graft(
        &[
            "eval",
            "perplexity",
            tiny.to_str().unwrap(),
            rows.to_str().unwrap(),
            "--json",
        ],
        &[],
    ));
    let v: Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON object");
    let golden = golden_f32("loss")[0] as f64;
    let nll = v["nll"].as_f64().unwrap();
    assert!(
        (nll - golden).abs() <= 1e-4,
        "nll {nll} vs golden loss {golden}"
    );
    assert_eq!(v["tokens"], 62);
    assert!((v["ppl"].as_f64().unwrap() - nll.exp()).abs() < 1e-9);
    assert_eq!(
        v.as_object().unwrap().len(),
        3,
        "exactly tokens, nll, ppl: {v}"
    );
}

#[test]
fn perplexity_windows_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let rows = ids_rows(dir.path());
    let tiny = tiny_dir();
    let run = |extra: &[&str]| -> Value {
        let mut args = vec![
            "eval",
            "perplexity",
            tiny.to_str().unwrap(),
            rows.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        serde_json::from_str(stdout(&ok(graft(&args, &[]))).trim()).unwrap()
    };
    let a = run(&["--seq-len", "8", "--batch-size", "1"]);
    let b = run(&["--seq-len", "8", "--batch-size", "5"]);
    assert_eq!(a["tokens"], 62);
    assert!((a["nll"].as_f64().unwrap() - b["nll"].as_f64().unwrap()).abs() < 1e-5);
    let golden = golden_f32("loss")[0] as f64;
    assert!(
        (a["nll"].as_f64().unwrap() - golden).abs() > 1e-4,
        "short windows lose context"
    );
    // Plain-text output names the numbers.
    let text = stdout(&ok(graft(
        &[
            "eval",
            "perplexity",
            tiny.to_str().unwrap(),
            rows.to_str().unwrap(),
        ],
        &[],
    )));
    assert!(
        text.contains("62 tokens") && text.contains("perplexity"),
        "{text}"
    );
}

#[test]
fn text_rows_use_the_model_tokenizer_with_one_bos() {
    let model = tiny_with_tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let text = write_jsonl(
        dir.path(),
        "text.jsonl",
        &[json!({"text": "w10 w20 w30 w40"}).to_string()],
    );
    let ids = write_jsonl(
        dir.path(),
        "ids.jsonl",
        &[json!({"input_ids": [1, 10, 20, 30, 40]}).to_string()],
    );
    let m = model.path().to_str().unwrap();
    let run = |p: &std::path::Path| -> Value {
        serde_json::from_str(
            stdout(&ok(graft(
                &["eval", "perplexity", m, p.to_str().unwrap(), "--json"],
                &[],
            )))
            .trim(),
        )
        .unwrap()
    };
    let (a, b) = (run(&text), run(&ids));
    assert_eq!(a["tokens"], 4);
    assert_eq!(a, b);
}

#[test]
fn bad_rows_fail_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny_dir();
    let cases = [
        ("{\"input_ids\": [1, 2,", "not a valid row"),
        ("{\"input\": [1, 2]}", "not a valid row"),
        (
            "{\"input_ids\": [1, 500]}",
            "outside the model's vocabulary",
        ),
        ("{\"text\": \"hi\"}", "no tokenizer"),
    ];
    for (bad, needle) in cases {
        let path = write_jsonl(
            dir.path(),
            "rows.jsonl",
            &[json!({"input_ids": [1, 2]}).to_string(), bad.into()],
        );
        let out = graft(
            &[
                "eval",
                "perplexity",
                tiny.to_str().unwrap(),
                path.to_str().unwrap(),
            ],
            &[],
        );
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("rows.jsonl:2") && err.contains(needle),
            "{bad}: {err}"
        );
    }
}

#[test]
fn choice_json_reports_accuracy_on_golden_rows() {
    // Single-token choices after golden prefixes: the best and the worst token under the golden
    // logits; gold is the best on the first 3 rows and the worst on the 4th → acc 0.75.
    let ids = golden_ids();
    let logits = golden_f32("logits");
    let vocab = 384;
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for (i, k) in [3usize, 9, 20, 30].into_iter().enumerate() {
        let at = &logits[(k - 1) * vocab..k * vocab];
        let best = (0..vocab).max_by(|&a, &b| at[a].total_cmp(&at[b])).unwrap();
        let worst = (0..vocab).min_by(|&a, &b| at[a].total_cmp(&at[b])).unwrap();
        let gold = if i == 3 { 0 } else { 1 };
        lines.push(
            json!({"context_ids": &ids[0][..k], "choices_ids": [[worst], [best]], "gold": gold})
                .to_string(),
        );
    }
    let task = write_jsonl(dir.path(), "golden_task.jsonl", &lines);
    let tiny = tiny_dir();
    let out = ok(graft(
        &[
            "eval",
            "choice",
            tiny.to_str().unwrap(),
            task.to_str().unwrap(),
            "--json",
            "--batch-size",
            "3",
        ],
        &[],
    ));
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["task"], "golden_task");
    assert_eq!(v["n"], 4);
    assert_eq!(v["acc"], 0.75);
    assert_eq!(
        v["acc_norm"], 0.75,
        "single-token choices: norm by 1 token changes nothing"
    );
    assert_eq!(v["per_row"].as_array().unwrap().len(), 4);
    // --limit keeps the first rows.
    let out = ok(graft(
        &[
            "eval",
            "choice",
            tiny.to_str().unwrap(),
            task.to_str().unwrap(),
            "--limit",
            "3",
        ],
        &[],
    ));
    let text = stdout(&out);
    assert!(
        text.contains("n = 3") && text.contains("acc = 1.0000"),
        "{text}"
    );
}

#[test]
fn choice_text_rows_run_with_a_tokenizer() {
    let model = tiny_with_tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let row =
        json!({"context": "w5 w6 w7", "choices": ["w8", "w9 w10", "w11"], "gold": 1}).to_string();
    let bad = json!({"context": "w5", "choices": ["w8"], "gold": 0}).to_string();
    let task = write_jsonl(dir.path(), "t.jsonl", &[row.clone(), row]);
    let m = model.path().to_str().unwrap();
    let out = ok(graft(
        &["eval", "choice", m, task.to_str().unwrap(), "--json"],
        &[],
    ));
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["n"], 2);
    assert_eq!(
        v["per_row"][0]["lengths"],
        json!([2, 6, 3]),
        "acc_norm divides by UTF-8 bytes"
    );
    // Identical rows score the same; batch position may change the matmul kernel's
    // summation order (tail tiles), so compare within f32 round-off, not bit for bit.
    let (a, b) = (&v["per_row"][0]["loglik"], &v["per_row"][1]["loglik"]);
    let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
    assert_eq!(a.len(), 3);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
        assert!((x - y).abs() < 1e-5, "identical rows scored {x} vs {y}");
    }
    let task = write_jsonl(dir.path(), "bad.jsonl", &[bad]);
    let out = graft(&["eval", "choice", m, task.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bad.jsonl:1"), "{}", stderr(&out));
}
