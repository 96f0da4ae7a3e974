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
    let n = 8_030_261_248u64;
    assert_eq!(r.params, n);
    assert_eq!(r.full.weights, n * 2);
    // grad_accum 16: the f32 sums (4 B) and, while a micro-batch's backward runs, its bf16
    // gradients (2 B) — graft_train::grad_accum
    assert_eq!(r.full.gradients, n * (4 + 2));
    assert_eq!(r.full.optimizer, n * 12);
    assert_eq!(format_bytes(r.full.weights), "16.06 GB");
    assert_eq!(format_bytes(r.full.gradients), "48.18 GB");
    assert_eq!(format_bytes(r.full.optimizer), "96.36 GB");
    assert_eq!(r.full.state(), n * 20);
    // the fused loss over 1 × 4096 tokens: four f32 chunks of 261 rows × 128256 logits, the final
    // norm's tensors (f32 + bf16), d hidden (bf16, chunks + concatenation) and the head's f32
    // gradient sum with one chunk's term and its bf16 copy — never 4096 × 128256 logits at once
    let chunk = 4 * 261 * 128_256 * 4;
    let norm_and_grad_hidden = 4096 * 4096 * (4 + 2) + 2 * 4096 * 4096 * 2;
    assert_eq!(
        r.full.logits_buffer,
        chunk + norm_and_grad_hidden + 128_256 * 4096 * (2 * 4 + 2)
    );
    // issue 10: checkpointed activations at seq 4096 stay under 10 GB; the loss's buffers come
    // before this micro-batch's 16 GB of gradients exist, so the layers' phase is the peak
    assert!(r.full.activations_checkpointed <= 10_000_000_000);
    assert!(r.full.activations > r.full.activations_checkpointed);
    assert_eq!(r.gpu_mem, 80_000_000_000);
    assert!(r.full.total(true) > r.gpu_mem && !r.fits);
    assert!(r.advice[0].contains("does NOT fit"), "{:?}", r.advice);
    assert!(
        r.advice[1].contains("train.zero_stage") && r.advice[1].contains("GPUs"),
        "{:?}",
        r.advice
    );
}

/// Issue 11: per-GPU memory at ZeRO stages 0, 1 and 2 over 4 GPUs.
#[test]
fn zero_stages_shard_optimizer_state_then_gradients() {
    let (_d, path) = setup("activation_checkpointing = true\nzero_stage = 2");
    let options = PlanOptions {
        devices: Some(4),
        ..PlanOptions::default()
    };
    let r = plan(&load(&path), &options).unwrap();
    let n = 8_030_261_248u64;
    let embedding = 128_256 * 4096u64;
    let [s0, s1, s2] = [0, 1, 2].map(|i| r.full.stages[i].clone());
    assert_eq!(
        (s0.optimizer, s1.optimizer, s2.optimizer),
        (12 * n, 3 * n, 3 * n)
    );
    assert_eq!(s0.gradients, 6 * n);
    assert_eq!(s1.gradients, 6 * n);
    // stage 2: this GPU's quarter of the f32 sums, one f32 bucket (the largest tensor) and a
    // micro-batch's bf16 gradients, which Burn's backward makes whole
    assert_eq!(s2.gradients, n + embedding * 4 + 2 * n);
    assert!(s0.total > s1.total && s1.total > s2.total);
    assert_eq!(r.zero_stage, 2);
    assert_eq!(r.recipe_total_per_gpu, s2.total);
    assert_eq!(r.full.total(true), s2.total);
    // the paper's setup fits 4 × 80 GB with room to spare
    assert!(r.fits && r.headroom >= 8_000_000_000, "{:?}", r.advice);
    assert!(r.advice[0].contains("ZeRO stage 2") && r.advice[0].contains("headroom"));
}

/// With one GPU there is nothing to shard: every stage plans what stage 0 holds, and the report
/// says so; `train.nodes` (a multi-node run's recipe) multiplies the GPUs the state is sharded over.
#[test]
fn zero_stages_on_one_gpu_are_stage_0_and_nodes_count() {
    let (_d, path) = setup("activation_checkpointing = true\nzero_stage = 2");
    let r = plan(&load(&path), &PlanOptions::default()).unwrap();
    let totals: Vec<u64> = r.full.stages.iter().map(|s| s.total).collect();
    assert_eq!(totals, [totals[0]; 3]);
    assert_eq!(r.recipe_total_per_gpu, totals[0]);
    assert!(
        r.advice[0].contains("ZeRO stage 2, on one GPU the same as 0"),
        "{:?}",
        r.advice
    );
    let (_d, path) = setup("activation_checkpointing = true\nzero_stage = 1\nnodes = 2");
    let r = plan(&load(&path), &PlanOptions::default()).unwrap();
    assert_eq!(r.devices, 2);
    assert_eq!(r.full.stages[1].optimizer * 2, r.full.stages[0].optimizer);
}

#[test]
fn lora_targets_parse_as_training_does() {
    let (_d, path) = setup("[lora]\nrank = 8\nalpha = 16\ntarget_modules = [\"all-linear\"]");
    let r = plan(&load(&path), &PlanOptions::default()).unwrap();
    // all seven projections: q 8192, k 5120, v 5120, o 8192, gate/up/down 18432 (in + out)
    let per_layer = 8 * (8192 + 5120 + 5120 + 8192 + 3 * 18432);
    assert_eq!(r.lora.trainable_params, 32 * per_layer);
    let (_d, path) = setup("[lora]\nrank = 8\nalpha = 16\ntarget_modules = [\"qkv\"]");
    let err = plan(&load(&path), &PlanOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"qkv\"") && err.contains("all-linear"),
        "{err}"
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
            devices: Some(1),
            ..PlanOptions::default()
        },
    )
    .unwrap();
    let f = &r.full;
    let fixed = f.total(false) - f.optimizer;
    assert!(fixed < gpu && f.total(false) > gpu);
    let n = f.optimizer.div_ceil(gpu - fixed);
    assert!(fixed + f.optimizer.div_ceil(n) <= gpu && fixed + f.optimizer.div_ceil(n - 1) > gpu);
    let want = format!("train.zero_stage = 1 over >= {n} GPUs");
    assert!(r.advice[1].contains(&want), "{want} not in {:?}", r.advice);
    assert!(r.advice[0].contains("1 data-parallel GPU(s)"));
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
    let (_d, path) = setup("");
    // A GPU just above the checkpointed total but below the plain one.
    let probe = plan(&load(&path), &PlanOptions::default()).unwrap();
    let gpu = probe.full.total(true) + 1;
    assert!(gpu < probe.full.total(false));
    let options = PlanOptions {
        gpu_mem: Some(gpu),
        ..PlanOptions::default()
    };
    let r = plan(&load(&path), &options).unwrap();
    assert!(r.advice[0].contains("does NOT fit"), "{:?}", r.advice);
    assert!(
        r.advice[1].contains("only with activation checkpointing"),
        "{:?}",
        r.advice
    );
    let (_d, path) = setup("activation_checkpointing = true");
    let r = plan(&load(&path), &options).unwrap();
    assert!(
        r.advice[0].contains("checkpointing on") && r.advice[0].contains("— fits"),
        "{:?}",
        r.advice
    );
    assert!(
        r.advice[1].contains("train.zero_stage = 0"),
        "{:?}",
        r.advice
    );
    let text = render_text(&r);
    assert!(
        text.contains("16.06 GB")
            && text.contains("96.36 GB")
            && text.contains("logits/loss buffer")
            && text.contains("total, ZeRO-2 (checkpointing on)"),
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
