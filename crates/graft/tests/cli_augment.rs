//! `graft augment` through the real binary on a tiny corpus; `graft data preview` of the shipped
//! reading-comprehension recipe.

mod cli_common;

use cli_common::{fixtures, graft, ok, stderr, stdout};

const DOC: &str = "Clinical note\\nThe study started in the spring. The new compound lowered blood pressure in most of the adult patients. Therefore, the trial was extended to include older patients as well. It ended in the autumn.";

#[test]
fn augment_writes_one_record_per_document_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let lines: Vec<String> = (0..3)
        .map(|i| {
            format!(
                "{{\"text\": \"{}\"}}",
                DOC.replace("Clinical note", &format!("Note {i}"))
            )
        })
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("out.jsonl");
    let tok = fixtures().join("llama3-tokenizer/tokenizer.json");
    let args = [
        "augment",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--domain",
        "medicine",
        "--seed",
        "3",
        "--general-tokenizer",
        tok.to_str().unwrap(),
    ];
    ok(graft(&args, &[]));
    let first = std::fs::read_to_string(&out).unwrap();
    let records: Vec<serde_json::Value> = first
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    for (i, r) in records.iter().enumerate() {
        let text = r["text"].as_str().unwrap();
        assert!(
            text.contains(&format!("Note {i}")),
            "record {i} out of order"
        );
        let types: Vec<&str> = r["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["type"].as_str().unwrap())
            .collect();
        assert!(
            types.contains(&"nli") && types.contains(&"commonsense"),
            "{types:?}"
        );
    }
    // same seed, same bytes
    ok(graft(&args, &[]));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), first);
}

#[test]
fn augment_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"text\": \"a\"}\n{\"txt\": \"b\"}\n").unwrap();
    let out = dir.path().join("out.jsonl");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let no_tok = graft(&["augment", i, "--out", o], &[]);
    assert!(!no_tok.status.success());
    assert!(
        stderr(&no_tok).contains("--general-tokenizer is required"),
        "{}",
        stderr(&no_tok)
    );
    let tok = fixtures().join("llama3-tokenizer/tokenizer.json");
    let bad = graft(
        &[
            "augment",
            i,
            "--out",
            o,
            "--general-tokenizer",
            tok.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!bad.status.success());
    let err = stderr(&bad);
    assert!(
        err.contains("in.jsonl:line 2") && err.contains("missing field `text`"),
        "{err}"
    );
    assert!(!out.exists(), "no output on error");
}

#[test]
fn data_preview_shows_reading_comprehension() {
    let recipe = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../recipes/tiny-reading-comprehension.toml"
    );
    let out = ok(graft(
        &[
            "data",
            "preview",
            recipe,
            "--source",
            "biomedicine",
            "-n",
            "1",
        ],
        &[],
    ));
    let text = stdout(&out);
    assert!(text.contains("Bioavailability is defined as"), "{text}");
}
