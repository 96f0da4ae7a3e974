//! Helpers of the `graft train` CLI tests: a tiny recipe over the shipped samples, running the
//! binary, reading loss log lines and safetensors files back.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A tiny recipe over part of the shipped samples (absolute paths), written into `dir`.
pub fn tiny_recipe(dir: &Path) -> PathBuf {
    let tok = repo().join("tests/fixtures/llama3-tokenizer/tokenizer.json");
    let model = format!(
        "tokenizer = \"{}\"\n[model.init]\nvocab_size = 128256\ntie_word_embeddings = true\nhidden_size = 32\n\
         intermediate_size = 64\nnum_hidden_layers = 1\nnum_attention_heads = 2\nnum_key_value_heads = 1\n\
         max_position_embeddings = 64\n",
        tok.display()
    );
    recipe_with_model(dir, "tiny.toml", &model)
}

/// The tiny recipe with `model` as the body of its `[model]` table (f32 weights).
pub fn recipe_with_model(dir: &Path, file: &str, model: &str) -> PathBuf {
    let r = repo();
    let text = format!(
        r#"name = "cli-tiny"
[model]
dtype = "f32"
{model}
[data]
seq_len = 32
val_fraction = 0.05
prepared_dir = "{prepared}"
[[data.sources]]
name = "biomedicine"
path = "{data}/biomedicine/biomedicine-00.jsonl"
format = "instruction-augmented"
[[data.sources]]
name = "general"
path = "{data}/general/general-00.jsonl"
format = "instruction"
[train]
micro_batch_size = 2
grad_accum = 2
steps = 6
lr = 1e-2
warmup_steps = 2
log_every = 1
save_every = 3
keep_last = 0
eval_every = 3
eval_batches = 2
[eval]
tasks = ["{data}/eval/finance.jsonl"]
"#,
        data = r.join("data").display(),
        prepared = dir.join("prepared").display(),
    );
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn graft(args: &[&str]) -> Output {
    // RUST_LOG pins the log lines the helpers below read, whatever the caller's environment.
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn train(recipe: &Path, run: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "train",
        recipe.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = graft(&args);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "graft train {extra:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

/// `step → loss` of a run, exact text, from its `scalars.tsv` (full precision; the log lines are
/// rounded); a resumed run's file holds both halves, a step logged twice counts with its last value.
pub fn losses(run: &Path) -> BTreeMap<u64, String> {
    let text = std::fs::read_to_string(run.join("scalars.tsv")).unwrap();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (step, tag, value) = (f.next()?, f.next()?, f.next()?);
            (tag == "train/loss").then(|| (step.parse().unwrap(), value.to_string()))
        })
        .collect()
}

/// The trainer's step lines in a log (`step:  3/6  loss: 2.9407  lr: ...`).
pub fn step_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("step:")).collect()
}

/// The row of source or task `name` in the log's last evaluation table.
pub fn eval_row<'a>(stderr: &'a str, name: &str) -> Option<&'a str> {
    let table = &stderr[stderr.rfind("eval at step ")?..];
    table
        .lines()
        .find(|l| l.trim_start().split_whitespace().next() == Some(name))
}

/// The tensors of a safetensors file by name (dtype, shape, raw bytes), and its metadata map —
/// compared as maps, since the header's key order is not part of the content.
pub type Tensors = (
    BTreeMap<String, (String, Vec<u64>, Vec<u8>)>,
    BTreeMap<String, String>,
);

pub fn tensors(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let (mut out, mut meta) = (BTreeMap::new(), BTreeMap::new());
    for (name, v) in header {
        if name == "__metadata__" {
            meta = v
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            continue;
        }
        let off: Vec<usize> = v["data_offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_u64().unwrap() as usize)
            .collect();
        let shape = v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        out.insert(
            name,
            (
                v["dtype"].as_str().unwrap().to_string(),
                shape,
                data[off[0]..off[1]].to_vec(),
            ),
        );
    }
    (out, meta)
}

/// The f32 values of every tensor of a safetensors file (all tensors of these runs are f32).
pub fn f32_tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    tensors(path)
        .0
        .into_iter()
        .map(|(name, (dtype, _, bytes))| {
            assert_eq!(dtype, "F32", "{name}");
            let values = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, values)
        })
        .collect()
}

/// Two runs' loss curves have `steps` steps and agree to `rel`, relative.
pub fn assert_losses_close(a: &Path, b: &Path, steps: usize, rel: f64) {
    let (a, b) = (losses(a), losses(b));
    assert_eq!((a.len(), b.len()), (steps, steps), "one log line per step");
    for ((step, x), (_, y)) in a.iter().zip(&b) {
        let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
        assert!((x - y).abs() <= rel * x.abs(), "step {step}: {x} vs {y}");
    }
}

/// Two safetensors files hold the same tensors, bit for bit (dtype, shape and bytes).
pub fn assert_weights_bitwise(a: &Path, b: &Path) {
    let (ta, tb) = (tensors(a).0, tensors(b).0);
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (name, x) in &ta {
        assert!(x == &tb[name], "{name} differs");
    }
}

/// Two f32 safetensors files hold the same tensors, equal to `tol` (max abs difference).
pub fn assert_weights_close(a: &Path, b: &Path, tol: f32) {
    let (wa, wb) = (f32_tensors(a), f32_tensors(b));
    assert_eq!(wa.keys().collect::<Vec<_>>(), wb.keys().collect::<Vec<_>>());
    for (name, x) in &wa {
        let diff = x
            .iter()
            .zip(&wb[name])
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(diff <= tol, "{name}: max abs diff {diff}");
    }
}
