//! `graft train` through the real binary: a short run writes checkpoints, `latest`, TensorBoard
//! events and the resolved recipe and prints the final checkpoint; a run stopped at step 3 and
//! resumed gives the same losses and bit-identical weights as an uninterrupted run; an existing run
//! directory is not trained over without --resume; unknown recipe keys are named.

mod train_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use train_common::*;

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
    assert_eq!(losses(&run).len(), 6, "train/loss of every step");
    // one rounded line per step (log_every = 1), no timestamp, level or module path without -v
    let lines = step_lines(&stderr);
    assert_eq!(lines.len(), 6, "one log line per step:\n{stderr}");
    for line in &lines {
        let fields: Vec<&str> = line
            .split("  ")
            .map(|f| f.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            ["step", "loss", "lr", "grad_norm", "tok/s", "memory"],
            "{line}"
        );
        let loss = line
            .split("loss: ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        assert_eq!(loss.split('.').nth(1).map(str::len), Some(4), "{line}");
    }
    assert!(lines[5].starts_with("step: 6/6  loss: "), "{}", lines[5]);
    // evaluation: one table, a row per source and task
    let general = eval_row(&stderr, "general").unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(general.split_whitespace().count(), 5, "{general}"); // name, loss, ppl, -, -
    assert!(eval_row(&stderr, "finance").is_some(), "{stderr}");
    assert!(
        !stderr.contains("eval/general/loss"),
        "tags are for TensorBoard:\n{stderr}"
    );
    // the loss curves
    let png = std::fs::read(run.join("curves.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(stdout.contains("loss curves: "), "{stdout}");
}

#[test]
fn stopped_and_resumed_run_matches_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let (full_run, split_run) = (dir.path().join("full"), dir.path().join("split"));
    train(&recipe, &full_run, &[]);
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
    assert_eq!(
        (step_lines(&first).len(), step_lines(&second).len()),
        (3, 3)
    );
    let (full, split) = (losses(&full_run), losses(&split_run));
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
    train(&recipe, &plain_run, &["--set", "train.steps=3"]);
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
    let (a, b) = (losses(&plain_run), losses(&ckpt_run));
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
    train(&tiny_recipe(dir.path()), &scratch, &[]);
    // the step-6 checkpoint is an HF model directory with tokenizer.json: use it as [model].base
    let base = scratch.join("checkpoints/step-6");
    let recipe = recipe_with_model(
        dir.path(),
        "continued.toml",
        &format!("base = \"{}\"\n", base.display()),
    );
    let continued = dir.path().join("continued");
    let (stdout, second) = train(&recipe, &continued, &["--set", "train.steps=2"]);
    assert!(second.contains("loading the base model"), "{second}");
    assert!(stdout.contains("continued/checkpoints/step-2"), "{stdout}");
    // same data order from the start, so step 1 sees the same batch: the trained base does better
    let loss1 = |run: &Path| -> f64 { losses(run)[&1].parse().unwrap() };
    let (random, trained) = (loss1(&scratch), loss1(&continued));
    assert!(
        trained < random - 0.5,
        "step-1 loss from the trained base {trained} vs from scratch {random}"
    );
}

#[test]
fn two_devices_train_the_same_model_as_one() {
    // --devices 0,1 on the CPU: two data-parallel peers share the CPU, each running
    // grad_accum = 1 micro-batch of its own slice of the stream, gradients all-reduced: the same
    // global batch as one device running grad_accum = 2 (the tiny recipe's).
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let (one_run, two_run) = (dir.path().join("one"), dir.path().join("two"));
    train(&recipe, &one_run, &["--set", "train.steps=3"]);
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
    assert_losses_close(&one_run, &two_run, 3, 1e-5);
    let file = "checkpoints/step-3/model.safetensors";
    assert_weights_close(&one_run.join(file), &two_run.join(file), 1e-4);
    // the recipe recorded in the run names the devices it trained on
    let saved = std::fs::read_to_string(two_run.join("recipe.toml")).unwrap();
    assert!(
        saved.contains("cpu:0") && saved.contains("cpu:1"),
        "{saved}"
    );
}

/// `graft train recipes/<file>` for `steps` steps (checkpoint and eval every 2), from a scratch
/// directory so that the recipe's default runs/ paths land there.
fn run_shipped_recipe(file: &str, steps: u64) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let recipe = repo().join("recipes").join(file);
    let steps = format!("train.steps={steps}");
    let out = Command::new(env!("CARGO_BIN_EXE_graft"))
        .current_dir(dir.path())
        .args(["train", recipe.to_str().unwrap()])
        .args(["--set", &steps, "--set", "train.save_every=2"])
        .args(["--set", "train.eval_every=2", "--set", "train.log_every=1"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    (dir, stdout, stderr)
}

#[test]
fn the_tiny_lora_demo_recipe_runs_end_to_end() {
    let (dir, stdout, stderr) = run_shipped_recipe("tiny-lora-demo.toml", 2);
    assert!(stderr.contains("LoRA: base frozen"), "{stderr}");
    let ckpt = dir.path().join("runs/tiny-lora-demo/checkpoints/step-2");
    assert!(
        stdout.contains("final checkpoint: runs/tiny-lora-demo/checkpoints/step-2"),
        "{stdout}"
    );
    for f in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "optimizer.safetensors",
    ] {
        assert!(ckpt.join(f).is_file(), "{f} missing in {}", ckpt.display());
    }
    assert!(
        !ckpt.join("model.safetensors").exists(),
        "a LoRA checkpoint holds the adapter only"
    );
    assert!(eval_row(&stderr, "finance").is_some(), "{stderr}");
}

#[test]
fn the_tiny_demo_recipe_runs_end_to_end() {
    // The README's main command, shortened to 4 steps (checkpoint and eval at 2 and 4), run from
    // a scratch directory so that its default runs/ paths land there.
    let (dir, stdout, stderr) = run_shipped_recipe("tiny-demo.toml", 4);
    let run = dir.path().join("runs/tiny-demo");
    assert!(
        stdout.contains("final checkpoint: runs/tiny-demo/checkpoints/step-4"),
        "{stdout}"
    );
    assert!(dir
        .path()
        .join("runs/prepared/tiny-demo/manifest.json")
        .is_file());
    let (model, config) = graft_llama::load::<burn::backend::Flex>(
        run.join("checkpoints/latest"),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(
        (config.llama.hidden_size, config.llama.vocab_size),
        (128, 128256)
    );
    assert!(config.llama.tie_word_embeddings);
    drop(model);
    assert_eq!(losses(&run).len(), 4);
    assert_eq!(step_lines(&stderr).len(), 4, "{stderr}");
    for name in ["biomedicine", "finance", "general"] {
        assert!(
            eval_row(&stderr, name).is_some(),
            "no {name} in the log:\n{stderr}"
        );
    }
    assert!(run.join("curves.png").is_file());
}

/// A bf16 recipe on the CPU trains the CPU backend's f32 weights: its checkpoints store them as
/// trained (f32, `torch_dtype` float32) instead of rounding them to bf16 at every save, so a run
/// stopped and resumed matches an uninterrupted one bit for bit; `graft export --dtype` picks
/// the precision of the exported model.
#[test]
fn bf16_recipe_stopped_and_resumed_matches_an_uninterrupted_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let bf16 = ["--set", "model.dtype=bf16"];
    let (full_run, split_run) = (dir.path().join("full"), dir.path().join("split"));
    train(&recipe, &full_run, &bf16);
    train(
        &recipe,
        &split_run,
        &[&bf16[..], &["--stop-after", "3"]].concat(),
    );
    train(&recipe, &split_run, &[&bf16[..], &["--resume"]].concat());
    let (full, split) = (losses(&full_run), losses(&split_run));
    assert_eq!(full.len(), 6);
    assert_eq!(full, split, "loss curve differs after resume");

    let (a, b) = (
        full_run.join("checkpoints/step-6"),
        split_run.join("checkpoints/step-6"),
    );
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let (ta, tb) = (tensors(&a.join(file)), tensors(&b.join(file)));
        assert!(ta.0.len() >= 10 && ta == tb, "step-6 {file} differs");
    }
    let config = |dir: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
    };
    assert_eq!(config(&a)["torch_dtype"], "float32");
    let weights = f32_tensors(&a.join("model.safetensors")); // asserts every tensor is F32

    let out = dir.path().join("exported");
    let exported = graft(&[
        "export",
        a.to_str().unwrap(),
        out.to_str().unwrap(),
        "--dtype",
        "bf16",
    ]);
    assert!(exported.status.success(), "{:?}", text(&exported));
    assert_eq!(config(&out)["torch_dtype"], "bfloat16");
    for (name, (dtype, _, bytes)) in tensors(&out.join("model.safetensors")).0 {
        let want: Vec<u8> = weights[&name]
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        assert!(
            dtype == "BF16" && bytes == want,
            "{name}: not the rounded weights"
        );
    }
}
