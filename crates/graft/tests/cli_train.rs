//! `graft train` through the real binary: a short run writes checkpoints, `latest`, TensorBoard
//! events and the resolved recipe and prints the final checkpoint; a run stopped at step 3 and
//! resumed gives the same losses and bit-identical weights as an uninterrupted run; an existing run
//! directory is not trained over without --resume; unknown recipe keys are named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A tiny recipe over part of the shipped samples (absolute paths), written into `dir`.
fn tiny_recipe(dir: &Path) -> PathBuf {
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
fn recipe_with_model(dir: &Path, file: &str, model: &str) -> PathBuf {
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

fn graft(args: &[&str]) -> Output {
    // RUST_LOG pins the log format the loss parser below reads, whatever the caller's environment.
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn train(recipe: &Path, run: &Path, extra: &[&str]) -> (String, String) {
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

/// `step → loss` from the trainer's `train` log lines (`step=N loss=X ...`), exact text.
fn losses(stderr: &str) -> BTreeMap<u64, String> {
    let field = |line: &str, key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(|v| v.to_string())
    };
    stderr
        .lines()
        .filter(|l| l.contains(" train ") || l.ends_with(" train"))
        .filter_map(|l| Some((field(l, "step=")?.parse().ok()?, field(l, "loss=")?)))
        .collect()
}

/// The tensors of a safetensors file by name (dtype, shape, raw bytes), and its metadata map —
/// compared as maps, since the header's key order is not part of the content.
type Tensors = (
    BTreeMap<String, (String, Vec<u64>, Vec<u8>)>,
    BTreeMap<String, String>,
);

fn tensors(path: &Path) -> Tensors {
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

#[test]
fn short_run_writes_checkpoints_events_recipe_and_prints_the_final_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let run = dir.path().join("run");
    let (stdout, stderr) = train(&recipe, &run, &[]);

    let ckpts = run.join("checkpoints");
    for step in [3, 6] {
        let c = ckpts.join(format!("step-{step}"));
        for f in [
            "config.json",
            "model.safetensors",
            "optimizer.safetensors",
            "training_state.json",
            "tokenizer.json",
        ] {
            assert!(c.join(f).is_file(), "{} missing", c.join(f).display());
        }
    }
    assert_eq!(
        std::fs::canonicalize(ckpts.join("latest")).unwrap(),
        std::fs::canonicalize(ckpts.join("step-6")).unwrap()
    );
    let final_line = format!("final checkpoint: {}", ckpts.join("step-6").display());
    assert!(
        stdout.contains(&final_line),
        "stdout lacks `{final_line}`:\n{stdout}"
    );
    assert!(stdout.contains("graft export"), "no export hint:\n{stdout}");

    let saved = graft_train::Recipe::load(&run.join("recipe.toml"), &[]).unwrap();
    assert_eq!(
        (saved.name.as_str(), saved.total_steps(), saved.data.seq_len),
        ("cli-tiny", 6, 32)
    );

    let events: Vec<PathBuf> = std::fs::read_dir(run.join("tensorboard"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("events.out.tfevents."));
    let bytes = std::fs::read(&events[0]).unwrap();
    let has = |tag: &str| bytes.windows(tag.len()).any(|w| w == tag.as_bytes());
    let tags = [
        "train/loss",
        "train/lr",
        "train/grad_norm",
        "train/tokens_per_s",
        "train/tokens_seen/biomedicine",
        "train/tokens_seen/general",
        "train/epochs/general",
        "eval/biomedicine/loss",
        "eval/biomedicine/ppl",
        "eval/general/loss",
        "eval/finance/acc",
        "eval/finance/acc_norm",
    ];
    for tag in tags {
        assert!(has(tag), "no `{tag}` scalar in {}", events[0].display());
    }
    assert_eq!(losses(&stderr).len(), 6, "one log line per step:\n{stderr}");
    assert!(
        stderr.contains("eval/general/loss"),
        "eval not logged:\n{stderr}"
    );
}

#[test]
fn stopped_and_resumed_run_matches_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let (full_run, split_run) = (dir.path().join("full"), dir.path().join("split"));
    let (_, full) = train(&recipe, &full_run, &[]);
    let (stdout, first) = train(&recipe, &split_run, &["--stop-after", "3"]);
    assert!(stdout.contains("stopped after step 3 of 6"), "{stdout}");
    assert!(!split_run.join("checkpoints/step-6").exists());

    // without --resume an existing run is not trained over
    let refused = graft(&[
        "train",
        recipe.to_str().unwrap(),
        "--out",
        split_run.to_str().unwrap(),
    ]);
    let (_, err) = text(&refused);
    assert!(
        !refused.status.success() && err.contains("--resume") && err.contains("--out"),
        "{err}"
    );

    let (_, second) = train(&recipe, &split_run, &["--resume"]);
    let full = losses(&full);
    let mut split = losses(&first);
    split.extend(losses(&second));
    assert_eq!(full.len(), 6);
    assert_eq!(full, split, "loss curve differs after resume");
    for step in [3, 6] {
        let (a, b) = (
            full_run.join(format!("checkpoints/step-{step}")),
            split_run.join(format!("checkpoints/step-{step}")),
        );
        let (wa, wb) = (
            tensors(&a.join("model.safetensors")),
            tensors(&b.join("model.safetensors")),
        );
        assert!(wa.0.len() >= 10 && wa == wb, "step-{step} weights differ");
        let (oa, ob) = (
            tensors(&a.join("optimizer.safetensors")),
            tensors(&b.join("optimizer.safetensors")),
        );
        assert!(
            oa.0.len() >= 20 && oa == ob,
            "step-{step} AdamW moments differ"
        );
    }
}

#[test]
fn unknown_recipe_keys_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let run = dir.path().join("run");
    for (set, key) in [
        ("train.learning_rate=1e-3", "learning_rate"),
        ("model.init.hiden_size=64", "hiden_size"),
    ] {
        let out = graft(&[
            "train",
            recipe.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--set",
            set,
        ]);
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(
            stderr.contains(key),
            "error does not name `{key}`:\n{stderr}"
        );
    }
    assert!(
        !run.join("checkpoints").exists(),
        "nothing trained on a bad recipe"
    );
}

#[test]
fn activation_checkpointing_trains_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let (plain_run, ckpt_run) = (dir.path().join("plain"), dir.path().join("ckpt"));
    let (_, plain) = train(&recipe, &plain_run, &["--set", "train.steps=3"]);
    let (_, ckpt) = train(
        &recipe,
        &ckpt_run,
        &[
            "--set",
            "train.steps=3",
            "--set",
            "train.activation_checkpointing=true",
        ],
    );
    assert!(ckpt.contains("activation checkpointing: on"), "{ckpt}");
    let (a, b) = (losses(&plain), losses(&ckpt));
    assert_eq!(a.len(), 3);
    for ((step, x), (_, y)) in a.iter().zip(&b) {
        let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
        assert!((x - y).abs() <= 1e-5 * x.abs(), "step {step}: {x} vs {y}");
    }
}

#[test]
fn continual_pretraining_starts_from_a_base_checkpoint_directory() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    let (_, first) = train(&tiny_recipe(dir.path()), &scratch, &[]);
    // the step-6 checkpoint is an HF model directory with tokenizer.json: use it as [model].base
    let base = scratch.join("checkpoints/step-6");
    let recipe = recipe_with_model(
        dir.path(),
        "continued.toml",
        &format!("base = \"{}\"\n", base.display()),
    );
    let (stdout, second) = train(
        &recipe,
        &dir.path().join("continued"),
        &["--set", "train.steps=2"],
    );
    assert!(second.contains("loading the base model"), "{second}");
    assert!(stdout.contains("continued/checkpoints/step-2"), "{stdout}");
    // same data order from the start, so step 1 sees the same batch: the trained base does better
    let loss1 = |log: &str| -> f64 { losses(log)[&1].parse().unwrap() };
    let (random, trained) = (loss1(&first), loss1(&second));
    assert!(
        trained < random - 0.5,
        "step-1 loss from the trained base {trained} vs from scratch {random}"
    );
}

/// The f32 values of every tensor of a safetensors file (all tensors of these runs are f32).
fn f32_tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
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

#[test]
fn two_devices_train_the_same_model_as_one() {
    // --devices 0,1 on the CPU: two data-parallel peers share the CPU, each running
    // grad_accum = 1 micro-batch of its own slice of the stream, gradients all-reduced: the same
    // global batch as one device running grad_accum = 2 (the tiny recipe's).
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let (one_run, two_run) = (dir.path().join("one"), dir.path().join("two"));
    let (_, one) = train(&recipe, &one_run, &["--set", "train.steps=3"]);
    let (stdout, two) = train(
        &recipe,
        &two_run,
        &[
            "--set",
            "train.steps=3",
            "--set",
            "train.grad_accum=1",
            "--devices",
            "0,1",
        ],
    );
    assert!(two.contains("global_batch=4"), "{two}");
    assert!(two.contains("data-parallel training"), "{two}");
    assert!(stdout.contains("two/checkpoints/step-3"), "{stdout}");
    let (a, b) = (losses(&one), losses(&two));
    assert_eq!((a.len(), b.len()), (3, 3), "one log line per step:\n{two}");
    for ((step, x), (_, y)) in a.iter().zip(&b) {
        let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
        assert!((x - y).abs() <= 1e-5 * x.abs(), "step {step}: {x} vs {y}");
    }
    let file = "checkpoints/step-3/model.safetensors";
    let (wa, wb) = (
        f32_tensors(&one_run.join(file)),
        f32_tensors(&two_run.join(file)),
    );
    assert_eq!(wa.keys().collect::<Vec<_>>(), wb.keys().collect::<Vec<_>>());
    for (name, x) in &wa {
        let diff = x
            .iter()
            .zip(&wb[name])
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-4, "{name}: max abs diff {diff}");
    }
    // the recipe recorded in the run names the devices it trained on
    let saved = std::fs::read_to_string(two_run.join("recipe.toml")).unwrap();
    assert!(saved.contains("cpu:0") && saved.contains("cpu:1"), "{saved}");
}

#[test]
fn the_tiny_demo_recipe_runs_end_to_end() {
    // The README's main command, shortened to 4 steps (checkpoint and eval at 2 and 4), run from
    // a scratch directory so that its default runs/ paths land there.
    let dir = tempfile::tempdir().unwrap();
    let recipe = repo().join("recipes/tiny-demo.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_graft"))
        .current_dir(dir.path())
        .args(["train", recipe.to_str().unwrap()])
        .args(["--set", "train.steps=4", "--set", "train.save_every=2"])
        .args(["--set", "train.eval_every=2", "--set", "train.log_every=1"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let run = dir.path().join("runs/tiny-demo");
    assert!(
        stdout.contains("final checkpoint: runs/tiny-demo/checkpoints/step-4"),
        "{stdout}"
    );
    assert!(dir.path().join("runs/prepared/tiny-demo/manifest.json").is_file());
    let (model, config) = graft_llama::load::<burn::backend::Flex>(
        run.join("checkpoints/latest"),
        &Default::default(),
    )
    .unwrap();
    assert_eq!((config.llama.hidden_size, config.llama.vocab_size), (128, 128256));
    assert!(config.llama.tie_word_embeddings);
    drop(model);
    assert_eq!(losses(&stderr).len(), 4, "{stderr}");
    for tag in ["eval/biomedicine/loss", "eval/finance/loss", "eval/general/loss", "eval/finance/acc"] {
        assert!(stderr.contains(tag), "no {tag} in the log:\n{stderr}");
    }
}
