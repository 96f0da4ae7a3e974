//! `graft plan` library figures: Llama-3-8B (the numbers of the Instruction Pre-Training docs),
//! checkpointing, LoRA, the fit verdicts and model resolution errors.

use std::path::{Path, PathBuf};

use graft_train::plan::{format_bytes, plan, render_text, PlanOptions};
use graft_train::Recipe;

/// config.json of meta-llama/Meta-Llama-3-8B.
const LLAMA3_8B: &str = r#"{
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
  "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 8192,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.40.0.dev0", "use_cache": true, "vocab_size": 128256
}"#;

/// A recipe dir with the 8B config in `model/` and a recipe using it (micro-batch 1 ×
/// `seq_len`); `extra` goes at the end of [train].
fn setup_seq(seq_len: usize, extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("model")).unwrap();
    std::fs::write(dir.path().join("model/config.json"), LLAMA3_8B).unwrap();
    std::fs::write(dir.path().join("web.jsonl"), "{}\n").unwrap();
    let recipe = format!(
        "name = \"biomed-8b\"\n[model]\nbase = \"model\"\ndtype = \"bf16\"\n[data]\nseq_len = {seq_len}\n\
         [[data.sources]]\nname = \"web\"\npath = \"web.jsonl\"\n[train]\nmicro_batch_size = 1\n\
         grad_accum = 16\nsteps = 4000\nlr = 1e-5\n{extra}\n"
    );
    let path = dir.path().join("recipe.toml");
    std::fs::write(&path, recipe).unwrap();
    (dir, path)
}

/// [`setup_seq`] at the recipe's 4096 tokens.
fn setup(extra: &str) -> (tempfile::TempDir, PathBuf) {
    setup_seq(4096, extra)
}

fn load(path: &Path) -> Recipe {
    Recipe::load(path, &[]).unwrap()
}

#[test]
fn llama3_8b_full_training_figures() {
    let (_d, path) = setup("");
    let r = plan(&load(&path), &PlanOptions::default()).unwrap();
    assert_eq!(r.params, 8_030_261_248);
    assert_eq!(r.full.weights, 8_030_261_248 * 2);
    assert_eq!(r.full.gradients, 8_030_261_248 * 2);
    assert_eq!(r.full.optimizer, 8_030_261_248 * 12);
    assert_eq!(format_bytes(r.full.weights), "16.06 GB");
    assert_eq!(format_bytes(r.full.gradients), "16.06 GB");
    assert_eq!(format_bytes(r.full.optimizer), "96.36 GB");
    assert_eq!(r.full.state(), 8_030_261_248 * 16);
    // activations: 1 × 4096 tokens; the fused loss holds one chunk of 261 rows × 128256 f32
    // logits and three temporaries, the final norm's tensors (f32 + bf16), d hidden (bf16) and
    // d lm_head in f32 — never 4096 × 128256 logits at once
    let chunk = 4 * 261 * 128_256 * 4;
    let norm_and_grad_hidden = 4096 * 4096 * (4 + 2) + 4096 * 4096 * 2;
    assert_eq!(
        r.full.logits_buffer,
        chunk + norm_and_grad_hidden + 128_256 * 4096 * 4
    );
    assert!(r.full.activations > r.full.activations_checkpointed);
    assert!(r.full.activations_checkpointed > r.full.logits_buffer);
    // 128 GB of state does not fit an 80 GB GPU, whatever the number of replicas.
    assert_eq!(r.gpu_mem, 80_000_000_000);
    assert!(r.full.total(true) > r.gpu_mem);
    assert!(r.advice[0].contains("does NOT fit"), "{:?}", r.advice);
    assert!(
        r.advice[1].contains("sharding") && r.advice[1].contains("GPUs"),
        "{:?}",
        r.advice
    );
}

#[test]
fn bf16_optimizer_state_halves_the_moments_not_the_master_copy() {
    let (_d, path) = setup("optimizer_state_dtype = \"bf16\"");
    let r = plan(&load(&path), &PlanOptions::default()).unwrap();
    // f32 master copy (4 B) + m and v in bf16 (2 × 2 B)
    assert_eq!(r.full.optimizer, 8_030_261_248 * 8);
    assert_eq!(format_bytes(r.full.optimizer), "64.24 GB");
}

#[test]
fn optimizer_sharding_needed_is_the_smallest_that_fits() {
    // At 512 tokens the activations are small: weights + grads fit, the optimizer state does not.
    let (_d, path) = setup_seq(512, "");
    let gpu = 80_000_000_000u64;
    let r = plan(
        &load(&path),
        &PlanOptions {
            gpu_mem: Some(gpu),
            devices: Some(4),
        },
    )
    .unwrap();
    let f = &r.full;
    let fixed = f.weights + f.gradients + f.activations_checkpointed;
    assert!(fixed < gpu && f.total(true) > gpu);
    let n = f.optimizer.div_ceil(gpu - fixed);
    assert!(fixed + f.optimizer.div_ceil(n) <= gpu && fixed + f.optimizer.div_ceil(n - 1) > gpu);
    let want = format!("needs optimizer-state sharding (ZeRO-1) over >= {n} GPUs");
    assert!(r.advice[1].contains(&want), "{want} not in {:?}", r.advice);
    assert!(r.advice[0].contains("4 data-parallel GPU(s)"));
    assert!(r.advice[2].contains("use LoRA"), "{:?}", r.advice);
}

#[test]
fn lora_fits_one_gpu() {
    let (_d, path) = setup("method = \"lora\"\nactivation_checkpointing = true\n[lora]\nrank = 16\nalpha = 32\ntarget_modules = [\"q_proj\", \"v_proj\"]");
    let r = plan(&load(&path), &PlanOptions::default()).unwrap();
    // q: 16·(4096+4096), v: 16·(4096+1024), per layer, 32 layers
    assert_eq!(r.lora.trainable_params, 32 * (16 * 8192 + 16 * 5120));
    assert_eq!(r.lora.weights, r.full.weights);
    assert_eq!(r.lora.optimizer, r.lora.trainable_params * 8);
    // flash attention and the fused loss: at 4096 tokens LoRA fits even without checkpointing,
    // and checkpointing still saves memory
    assert!(r.lora.total(false) < 80_000_000_000 && r.lora.total(true) < r.lora.total(false));
    println!("{}", render_text(&r));
    assert!(
        r.advice[0].contains("lora r16 (q_proj, v_proj)") && r.advice[0].contains("— fits"),
        "{:?}",
        r.advice
    );
    assert!(r.advice[2].contains("use LoRA"), "{:?}", r.advice);
}

#[test]
fn checkpointing_can_make_it_fit() {
    let (_d, path) = setup("activation_checkpointing = true");
    // A GPU just above the checkpointed total but below the plain one.
    let probe = plan(&load(&path), &PlanOptions::default()).unwrap();
    let gpu = probe.full.total(true) + 1;
    assert!(gpu < probe.full.total(false));
    let r = plan(
        &load(&path),
        &PlanOptions {
            gpu_mem: Some(gpu),
            devices: None,
        },
    )
    .unwrap();
    assert!(
        r.advice[0].contains("checkpointing on") && r.advice[0].contains("— fits"),
        "{:?}",
        r.advice
    );
    assert!(
        r.advice[1].contains("only with activation checkpointing"),
        "{:?}",
        r.advice
    );
    let text = render_text(&r);
    assert!(
        text.contains("16.06 GB")
            && text.contains("96.36 GB")
            && text.contains("logits/loss buffer"),
        "{text}"
    );
}

#[test]
fn model_init_and_missing_config() {
    let (dir, path) = setup("");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "base = \"model\"\ndtype = \"bf16\"",
        "dtype = \"bf16\"\n[model.init]\nhidden_size = 64\nintermediate_size = 176\nnum_hidden_layers = 2\nnum_attention_heads = 4\nnum_key_value_heads = 2\nvocab_size = 384",
    );
    std::fs::write(&path, text).unwrap();
    let r = plan(&load(&path), &PlanOptions::default()).unwrap();
    assert_eq!(r.model, "[model.init]");
    // tiny-llama3's size: 2·384·64 + 2·(4·64·16·2 + 2·64·16·2 + 3·64·176 + 2·64) + 64
    assert_eq!(
        r.params,
        2 * 384 * 64 + 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 176 + 2 * 64) + 64
    );

    std::fs::remove_file(dir.path().join("model/config.json")).unwrap();
    let (_d2, path2) = setup("");
    std::fs::remove_file(path2.parent().unwrap().join("model/config.json")).unwrap();
    let err = plan(&load(&path2), &PlanOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
}
