//! Every command that reads a recipe reads it the same way (`Recipe::load`): an unknown key is an
//! error naming the key and the file, and `--set key=value` overrides any key. Checked for
//! `prepare`, `plan`, `data preview` and `train` on a tiny recipe; no command gets past the recipe
//! except `prepare` and `plan`, which are fast.

mod cli_common;

use std::path::{Path, PathBuf};

use cli_common::{fixtures, graft, ok, stderr, stdout};

/// A tiny, valid recipe in `dir` (one raw source of three documents), with `extra` appended to
/// its last table, `[train]`.
fn recipe(dir: &Path, extra: &str) -> PathBuf {
    let docs: Vec<String> = (0..3)
        .map(|i| format!("{{\"text\": \"document {i} about cells and markets\"}}"))
        .collect();
    std::fs::write(dir.join("web.jsonl"), docs.join("\n") + "\n").unwrap();
    let tokenizer = fixtures().join("llama3-tokenizer/tokenizer.json");
    let text = format!(
        "name = \"r\"\n[model]\ntokenizer = {tokenizer:?}\ndtype = \"f32\"\n[model.init]\n\
         vocab_size = 128256\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 1\n\
         num_attention_heads = 2\nnum_key_value_heads = 1\n[data]\nseq_len = 16\n\
         [[data.sources]]\nname = \"web\"\npath = \"web.jsonl\"\nformat = \"raw\"\n\
         [train]\nmicro_batch_size = 1\nsteps = 1\nlr = 1e-3\n{extra}\n",
        tokenizer = tokenizer.to_string_lossy()
    );
    let path = dir.join("recipe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The commands, each as its arguments before the recipe.
const COMMANDS: [&[&str]; 4] = [&["prepare"], &["plan"], &["data", "preview"], &["train"]];

fn run(command: &[&str], recipe: &Path, rest: &[&str]) -> std::process::Output {
    let mut args = command.to_vec();
    args.push(recipe.to_str().unwrap());
    args.extend_from_slice(rest);
    graft(&args, &[])
}

#[test]
fn an_unknown_key_is_an_error_naming_it_and_the_file_in_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let path = recipe(dir.path(), "warmup_stpes = 3");
    for command in COMMANDS {
        let out = run(command, &path, &[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{command:?} accepted an unknown key");
        assert!(
            err.contains("warmup_stpes") && err.contains("recipe.toml"),
            "{command:?}: {err}"
        );
    }
    // the same through --set
    let path = recipe(dir.path(), "");
    for command in COMMANDS {
        let out = run(command, &path, &["--set", "train.fancy_knob=1"]);
        let err = stderr(&out);
        assert!(
            !out.status.success(),
            "{command:?} accepted --set of an unknown key"
        );
        assert!(err.contains("fancy_knob"), "{command:?}: {err}");
    }
}

#[test]
fn every_command_applies_set_before_validation() {
    let dir = tempfile::tempdir().unwrap();
    let path = recipe(dir.path(), "");
    for command in COMMANDS {
        let out = run(command, &path, &["--set", "data.seq_len=0"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{command:?} ignored --set");
        assert!(err.contains("seq_len"), "{command:?}: {err}");
    }
}

#[test]
fn set_takes_effect_in_prepare_plan_and_preview() {
    let dir = tempfile::tempdir().unwrap();
    let path = recipe(dir.path(), "");
    let prepared = dir.path().join("elsewhere");
    let set_dir = format!("data.prepared_dir={}", prepared.display());
    ok(run(&["prepare"], &path, &["--set", &set_dir]));
    assert!(prepared.join("manifest.json").is_file());

    let plan = ok(run(
        &["plan"],
        &path,
        &["--json", "--set", "data.seq_len=48"],
    ));
    let report: serde_json::Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(report["seq_len"], 48);

    let preview = ok(run(
        &["data", "preview"],
        &path,
        &["-n", "1", "--set", "data.seed=7"],
    ));
    assert!(
        stdout(&preview).contains("document 0 about cells"),
        "{}",
        stdout(&preview)
    );
}
