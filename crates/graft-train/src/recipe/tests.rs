//! Recipe parsing, validation, overrides and path resolution.

use super::*;

const RECIPE: &str = r#"
name = "tiny"
[model]
base = "model"
dtype = "f32"
[data]
seq_len = 32
[[data.sources]]
name = "web"
path = "web.jsonl"
[train]
micro_batch_size = 2
grad_accum = 2
steps = 6
lr = 1e-3
warmup_steps = 2
"#;

/// A recipe directory with the files RECIPE names.
fn setup(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("model")).unwrap();
    std::fs::write(dir.path().join("web.jsonl"), "{}\n").unwrap();
    let path = dir.path().join("recipe.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn loads_with_defaults_and_resolves_paths() {
    let (dir, path) = setup(RECIPE);
    let r = Recipe::load(&path, &[]).unwrap();
    assert_eq!(r.name, "tiny");
    assert_eq!(
        r.model.base.as_deref(),
        Some(dir.path().join("model").to_str().unwrap())
    );
    assert_eq!(r.model.dtype, ModelDtype::F32);
    assert_eq!(r.train.betas, [0.9, 0.95]);
    assert_eq!(r.train.method, Method::Full);
    assert_eq!(r.data.sources[0].path, dir.path().join("web.jsonl"));
    assert_eq!(r.tokens_per_step(), 128);
    assert_eq!(r.total_steps(), 6);
}

#[test]
fn unknown_keys_are_named() {
    let (_d, path) = setup(&RECIPE.replace("warmup_steps = 2", "warmup_stpes = 2"));
    let e = Recipe::load(&path, &[]).unwrap_err().to_string();
    assert!(
        e.contains("warmup_stpes") && e.contains("recipe.toml"),
        "{e}"
    );
    let (_d, path) = setup(RECIPE);
    let e = Recipe::load(&path, &["train.learning_rate=1".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("learning_rate"), "{e}");
}

#[test]
fn overrides_apply_before_validation() {
    let (_d, path) = setup(RECIPE);
    let r = Recipe::load(
        &path,
        &[
            "train.lr=2e-5".into(),
            "data.seq_len=512".into(),
            "train.method=\"full\"".into(),
        ],
    )
    .unwrap();
    assert_eq!(r.train.lr, 2e-5);
    assert_eq!(r.data.seq_len, 512);
    let e = Recipe::load(&path, &["train.lr=fast".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("lr") && e.contains("fast"), "{e}");
    let e = Recipe::load(&path, &["train.lr=-1".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("train.lr must be a positive number"), "{e}");
}

#[test]
fn missing_files_name_the_key() {
    let (_d, path) = setup(&RECIPE.replace("base = \"model\"", "base = \"./nope\""));
    let e = Recipe::load(&path, &[]).unwrap_err().to_string();
    assert!(e.contains("model.base") && e.contains("nope"), "{e}");
    let (_d, path) = setup(RECIPE);
    let e = Recipe::load(&path, &["model.tokenizer=tok/tokenizer.json".into()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model.tokenizer") && e.contains("tokenizer.json"),
        "{e}"
    );
}

#[test]
fn hub_ids_are_kept() {
    let (_d, path) = setup(RECIPE);
    let r = Recipe::load(&path, &["model.base=meta-llama/Llama-3.1-8B".into()]).unwrap();
    assert_eq!(r.model.base.as_deref(), Some("meta-llama/Llama-3.1-8B"));
}

#[test]
fn invalid_combinations_are_rejected() {
    let (_d, path) = setup(RECIPE);
    let e = Recipe::load(&path, &["train.total_tokens=1000".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("both `steps` and `total_tokens`"), "{e}");
    let e = Recipe::load(&path, &["train.method=lora".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("[lora]"), "{e}");
    let e = Recipe::load(&path, &["train.zero_stage=3".into()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train.zero_stage = 3") && e.contains("0 (replicated)"),
        "{e}"
    );
    assert_eq!(Recipe::load(&path, &[]).unwrap().train.zero_stage, 0);
    let r = Recipe::load(&path, &["train.zero_stage=2".into()]).unwrap();
    assert_eq!(r.train.zero_stage, 2);
    let init = RECIPE.replace("base = \"model\"", "")
        + "[model.init]\nhidden_size = 64\nintermediate_size = 176\nnum_hidden_layers = 2\nnum_attention_heads = 4\nnum_key_value_heads = 2\nvocab_size = 384\n";
    // `[model.init]` after `[train]` is still the model table
    let (_d, path) = setup(&init);
    let r = Recipe::load(&path, &[]).unwrap();
    assert_eq!(r.model.init.as_ref().unwrap().rope_theta, 500000.0);
}

#[test]
fn resolved_recipe_round_trips() {
    let (_d, path) = setup(RECIPE);
    let r = Recipe::load(
        &path,
        &["train.total_tokens=1000".into(), "train.steps=6".into()],
    )
    .unwrap_err();
    assert!(r.to_string().contains("total_tokens"));
    let r = Recipe::load(&path, &[]).unwrap();
    let text = r.to_toml().unwrap();
    let back: Recipe = toml::from_str(&text).unwrap();
    assert_eq!(back, r);
}
