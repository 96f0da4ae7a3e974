//! Every recipe in recipes/ loads and validates; the shipped ones say what they claim: tiny-demo
//! trains on the sample corpora that exist, the Llama-3-8B recipes carry the paper's
//! hyperparameters and name placeholder corpora that fail clearly, naming the missing path.

use std::path::{Path, PathBuf};

use graft_train::{Method, ModelDtype, Recipe};

fn recipes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes")
}

fn load(name: &str) -> Recipe {
    let path = recipes_dir().join(name);
    Recipe::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Domain sources (everything but `general`) and general replay weigh the same: 1:1 by tokens.
fn assert_one_to_one(r: &Recipe) {
    let (general, domain): (Vec<_>, Vec<_>) =
        r.data.sources.iter().partition(|s| s.name == "general");
    let w = |v: &[&graft_data::SourceConfig]| v.iter().map(|s| s.weight).sum::<f64>();
    assert!(
        !general.is_empty() && !domain.is_empty(),
        "{}: needs domain and general sources",
        r.name
    );
    assert!(
        (w(&general) - w(&domain)).abs() < 1e-12,
        "{}: domain {} vs general {}",
        r.name,
        w(&domain),
        w(&general)
    );
}

#[test]
fn every_recipe_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir(recipes_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Recipe::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 3, "only {n} recipes found");
}

#[test]
fn tiny_demo_is_small_and_uses_the_shipped_samples() {
    let r = load("tiny-demo.toml");
    let init = r
        .model
        .init
        .as_ref()
        .expect("tiny-demo initialises a new model");
    assert!(init.tie_word_embeddings && init.vocab_size == 128_256 && init.hidden_size <= 256);
    assert!(r.model.tokenizer.as_ref().unwrap().is_file());
    assert_eq!(r.model.dtype, ModelDtype::F32);
    for s in &r.data.sources {
        assert!(!s.files().unwrap().is_empty(), "{}: no files", s.name);
    }
    assert_one_to_one(&r);
    let t = &r.train;
    assert!(
        t.save_every > 0 && r.total_steps() / t.save_every >= 2,
        "a couple of checkpoints"
    );
    assert!(
        t.eval_every > 0 && r.total_steps() / t.eval_every >= 2,
        "several evaluations"
    );
}

#[test]
fn llama3_8b_recipes_carry_the_paper_hyperparameters() {
    for (file, domain) in [
        ("biomedicine-llama3-8b.toml", "biomedicine"),
        ("finance-llama3-8b.toml", "finance"),
    ] {
        let r = load(file);
        assert_eq!(
            r.model.base.as_deref(),
            Some("meta-llama/Meta-Llama-3-8B"),
            "{file}"
        );
        assert_eq!(r.model.dtype, ModelDtype::Bf16, "{file}");
        assert_eq!(r.data.seq_len, 4096, "{file}");
        let t = &r.train;
        let devices = t.devices.as_ref().map_or(1, |d| d.len());
        assert_eq!(
            t.micro_batch_size * t.grad_accum * devices,
            64,
            "{file}: global batch of 64 sequences"
        );
        assert_eq!(
            r.tokens_per_step(),
            64 * 4096,
            "{file}: ~0.25M tokens per step"
        );
        assert!(
            t.devices
                .iter()
                .flatten()
                .chain(&t.device)
                .all(|d| d.starts_with("cuda")),
            "{file}: CUDA"
        );
        assert_eq!(
            (t.method, t.lr, t.betas, t.weight_decay, t.clip_norm),
            (Method::Full, 1e-5, [0.9, 0.95], 0.1, 1.0),
            "{file}"
        );
        assert!(t.warmup_steps > 0 && t.activation_checkpointing, "{file}");
        // the paper's setup: full training on 4 GPUs with sharded optimizer state and gradients
        assert_eq!((t.zero_stage, devices), (2, 4), "{file}");
        let tokens = r.total_steps() * r.tokens_per_step();
        assert!(
            (0.9e9..1.2e9).contains(&(tokens as f64)),
            "{file}: {tokens} tokens, not ~1B"
        );
        assert_one_to_one(&r);
        assert!(r.data.sources.iter().any(|s| s.name == domain), "{file}");
    }
}

#[test]
fn placeholder_corpora_fail_naming_the_path() {
    for file in ["biomedicine-llama3-8b.toml", "finance-llama3-8b.toml"] {
        let r = load(file);
        for s in &r.data.sources {
            if s.files().is_ok() {
                continue; // the user has put the corpus in place
            }
            let e = s.files().unwrap_err().to_string();
            let shown = s.path.display().to_string();
            assert!(
                e.contains(&shown) && e.contains(&s.name),
                "{file}: error does not name {shown}: {e}"
            );
        }
    }
}

#[test]
fn tiny_reading_comprehension_renders_mined_tasks_at_prepare_time() {
    let r = load("tiny-reading-comprehension.toml");
    assert_one_to_one(&r);
    let source = r.data.source("biomedicine").unwrap();
    assert_eq!(source.format, graft_data::Format::ReadingComprehension);
    assert!(source.general_tokenizer.as_ref().unwrap().is_file());
    assert!(!source.files().unwrap().is_empty());
    let docs = graft_data::preview(&r.data, "biomedicine", 3).unwrap();
    assert_eq!(docs.len(), 3);
    for doc in &docs {
        // the raw text is there, and tasks mined from its planted connectives follow or wrap it
        assert!(doc.contains("Bioavailability is defined as"), "{doc}");
        assert!(doc.len() > 1500, "no tasks appended: {doc}");
    }
}
