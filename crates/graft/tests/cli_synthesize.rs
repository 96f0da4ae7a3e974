//! `graft synthesize` with `tiny-mistral` as the synthesizer: one record per text in order, the
//! golden prompt format and generations, resuming after a stop gives the same bytes, bad input is
//! reported with file and line; `graft prepare` synthesizes a raw source with
//! `synthesize = { model = … }` and trains from it.

mod cli_common;

use std::path::Path;

use cli_common::*;
use serde_json::Value;

fn mistral() -> String {
    fixtures()
        .join("tiny-mistral")
        .to_string_lossy()
        .into_owned()
}

/// Five texts: the golden generation prompts' texts and a longer one.
fn write_inputs(dir: &Path) -> std::path::PathBuf {
    let texts = [
        "The river rose after three days of rain.",
        "Zinc is an essential trace element for humans.",
        "Bond prices fell as yields rose.",
        "Copper prices climbed after a mine closed in Chile, and traders expect tight supply.",
        "Birds were counted at dawn.",
    ];
    let path = dir.join("raw.jsonl");
    let lines: Vec<String> = texts
        .iter()
        .map(|t| serde_json::json!({ "body": t }).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn synthesize(input: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "synthesize",
        &*Box::leak(mistral().into_boxed_str()),
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--text-field",
        "body",
        "--max-new-tokens",
        "24",
        "--batch-size",
        "2",
    ];
    args.extend_from_slice(extra);
    graft(&args, &[])
}

#[test]
fn synthesize_writes_one_record_per_text_and_resumes_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_inputs(tmp.path());
    let full = tmp.path().join("full.jsonl");
    ok(synthesize(&input, &full, &[]));
    let text = std::fs::read_to_string(&full).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 5);
    // Round 0 is texts 0..3 (B = 3); the golden generation of text 0's prompt.
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("golden/tiny-mistral/generate.json")).unwrap(),
    )
    .unwrap();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["synth"]["index"], i);
        assert_eq!(r["synth"]["round"], i / 3);
        assert_eq!(r["synth"]["texts_per_round"], 3);
        assert!(r["qa_pairs"].is_array());
    }
    for k in 0..2 {
        assert_eq!(
            records[k]["synthesizer_output"], golden["rows"][k]["output_text"],
            "text {k}"
        );
    }
    // Stop after 2 records, then after 2 more, then finish: the same file.
    let resumed = tmp.path().join("resumed.jsonl");
    ok(synthesize(&input, &resumed, &["--stop-after", "2"]));
    assert_eq!(
        std::fs::read_to_string(&resumed).unwrap().lines().count(),
        2
    );
    ok(synthesize(&input, &resumed, &["--stop-after", "2"]));
    // A killed run can leave half a line: it is cut off and redone.
    let mut partial = std::fs::read(&resumed).unwrap();
    partial.extend_from_slice(b"{\"text\": \"Bird");
    std::fs::write(&resumed, partial).unwrap();
    ok(synthesize(&input, &resumed, &[]));
    assert_eq!(std::fs::read(&resumed).unwrap(), text.as_bytes());
    // Other rounds do not resume this file.
    let out = synthesize(&input, &resumed, &["--rounds", "3"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not belong to this run"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_input_records_are_reported_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("bad.jsonl");
    std::fs::write(&input, "{\"body\": \"fine\"}\n{\"text\": \"no body\"}\n").unwrap();
    let out = synthesize(&input, &tmp.path().join("o.jsonl"), &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("bad.jsonl:line 2") && err.contains("body"),
        "{err}"
    );
}

#[test]
fn prepare_synthesizes_a_raw_source_and_train_starts_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    write_inputs(tmp.path());
    let recipe = tmp.path().join("recipe.toml");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/new-domain-from-raw.toml"),
    )
    .unwrap();
    assert!(text.contains("synthesize = {"), "the template synthesizes");
    std::fs::write(
        &recipe,
        format!(
            r#"name = "raw-e2e"
[model]
tokenizer = "{m}/tokenizer.json"
dtype = "f32"
[model.init]
vocab_size = 32000
tie_word_embeddings = true
hidden_size = 16
intermediate_size = 32
num_hidden_layers = 1
num_attention_heads = 2
num_key_value_heads = 1
max_position_embeddings = 64
bos_token_id = 1
eos_token_id = 2
[data]
seq_len = 32
[[data.sources]]
name = "domain"
path = "raw.jsonl"
format = "raw"
text_field = "body"
synthesize = {{ model = "{m}", max_new_tokens = 16, batch_size = 4 }}
[train]
micro_batch_size = 1
steps = 2
lr = 1e-3
warmup_steps = 1
save_every = 2
"#,
            m = mistral()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_graft"));
        cmd.args(args).current_dir(tmp.path());
        cmd.output().unwrap()
    };
    let out = ok(run(&["prepare", "recipe.toml"]));
    assert!(
        stderr(&out).contains("synthesized `domain`: 5 texts"),
        "{}",
        stderr(&out)
    );
    let dir = tmp.path().join("runs/prepared/recipe/synthesized");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1);
    let synthesized = files[0].as_ref().unwrap().path();
    assert_eq!(
        std::fs::read_to_string(&synthesized)
            .unwrap()
            .lines()
            .count(),
        5
    );
    // Again: nothing to synthesize, nothing to tokenize.
    let out = ok(run(&["prepare", "recipe.toml"]));
    assert!(
        stderr(&out).contains("(5 already done)"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("0 file(s) tokenized"),
        "{}",
        stderr(&out)
    );
    ok(run(&["train", "recipe.toml"]));
    assert!(tmp.path().join("runs/raw-e2e/checkpoints").is_dir());
}
