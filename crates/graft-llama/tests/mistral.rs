//! Mistral (the instruction synthesizer's architecture) on `tiny-mistral`, whose sliding window
//! (16) is shorter than the golden input (48): logits, loss and greedy generations equal
//! transformers'; the batched generator equals the one-sequence one.

mod common;

use burn::tensor::{Int, Tensor, TensorData};
use common::*;
use graft_llama::batch::{generate_greedy_batch, BatchConfig};
use graft_llama::generate::{generate, GenerateConfig, StopReason};
use graft_llama::{causal_lm_loss, load, Llama, ModelConfig, IGNORE_INDEX};
use serde_json::Value;

fn tiny() -> Llama<B> {
    load::<B>(fixtures().join("tiny-mistral"), &Default::default())
        .expect("load tiny-mistral")
        .0
}

fn forward_golden() -> std::path::PathBuf {
    fixtures().join("golden/tiny-mistral/forward.safetensors")
}

fn logits_of(model: &Llama<B>) -> (Vec<f32>, f32) {
    let (shape, ids) = read_i64(&forward_golden(), "input_ids");
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, shape), &Default::default());
    let logits = model.forward(tokens.clone());
    let loss = causal_lm_loss(logits.clone(), tokens, IGNORE_INDEX).into_scalar();
    (logits.into_data().into_vec::<f32>().unwrap(), loss)
}

#[test]
fn mistral_config_loads_with_its_sliding_window() {
    let c = ModelConfig::from_file(fixtures().join("tiny-mistral/config.json")).unwrap();
    assert_eq!(c.llama.sliding_window, Some(16));
    let text = std::fs::read_to_string(fixtures().join("tiny-mistral/config.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["sliding_window"] = Value::Null;
    let c = ModelConfig::from_json_str(&v.to_string(), "config.json").unwrap();
    assert_eq!(c.llama.sliding_window, None, "null means full attention");
    // A Mistral architecture under a Llama model_type is refused, naming both.
    v["model_type"] = "llama".into();
    let err = ModelConfig::from_json_str(&v.to_string(), "config.json").unwrap_err();
    assert!(err.to_string().contains("MistralForCausalLM"), "{err}");
    // Llama configs never get a window.
    let llama = ModelConfig::from_file(fixtures().join("tiny-llama3/config.json")).unwrap();
    assert_eq!(llama.llama.sliding_window, None);
}

#[test]
fn logits_and_loss_match_transformers_with_the_window() {
    let mut model = tiny();
    let (_, want) = read_f32(&forward_golden(), "logits");
    let (_, want_loss) = read_f32(&forward_golden(), "loss");
    let (got, loss) = logits_of(&model);
    let diff = max_abs_diff(&got, &want);
    assert!(diff <= 1e-4, "logits differ by {diff}");
    assert!(
        (loss - want_loss[0]).abs() <= 1e-4,
        "loss {loss} vs {}",
        want_loss[0]
    );
    // The window matters (positions ≥ 16 move by up to 3.42 without it), and off by one is caught.
    for (window, min_diff) in [(None, 1.0), (Some(17), 0.5), (Some(15), 0.5)] {
        model.config.sliding_window = window;
        let diff = max_abs_diff(&logits_of(&model).0, &want);
        assert!(
            diff > min_diff,
            "window {window:?}: logits differ by only {diff}"
        );
    }
}

struct Row {
    prompt: Vec<u32>,
    output: Vec<u32>,
}

fn golden_generations() -> Vec<Row> {
    let path = fixtures().join("golden/tiny-mistral/generate.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ids = |x: &Value| -> Vec<u32> { serde_json::from_value(x.clone()).unwrap() };
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Row {
            prompt: ids(&r["prompt_ids"]),
            output: ids(&r["output_ids"]),
        })
        .collect()
}

#[test]
fn greedy_generation_with_kv_cache_matches_transformers() {
    let model = tiny();
    for (i, row) in golden_generations().iter().enumerate() {
        let config = GenerateConfig::greedy(row.output.len(), vec![2]);
        let out = generate(&model, &row.prompt, &config, &mut |_| {}).unwrap();
        assert_eq!(out.tokens, row.output, "row {i}");
    }
}

#[test]
fn batched_generation_matches_transformers_and_stops_per_sequence() {
    let model = tiny();
    let rows = golden_generations();
    let prompts: Vec<Vec<u32>> = rows.iter().map(|r| r.prompt.clone()).collect();
    let lens: Vec<usize> = prompts.iter().map(Vec::len).collect();
    assert!(
        lens.iter().any(|&l| l != lens[0]),
        "prompts of different lengths: {lens:?}"
    );
    let config = BatchConfig {
        max_new_tokens: 24,
        eos_token_ids: vec![2],
        max_len: 4096,
    };
    let mut steps = 0;
    let out = generate_greedy_batch(&model, &prompts, &config, &mut |_| steps += 1).unwrap();
    for (i, (got, row)) in out.iter().zip(&rows).enumerate() {
        assert_eq!(got.tokens, row.output, "row {i}");
        assert_eq!(got.stop, StopReason::MaxNewTokens);
    }
    assert_eq!(steps, 24);
    // Row 1 stops at its 6th token (made an EOS id here), the others run on unchanged; row 2 is
    // capped by the context length.
    let eos = rows[1].output[5];
    let config = BatchConfig {
        eos_token_ids: vec![2, eos],
        max_len: lens[2] + 10,
        ..config
    };
    let mut produced = 0;
    let out = generate_greedy_batch(&model, &prompts, &config, &mut |n| produced += n).unwrap();
    assert_eq!(out[1].tokens, rows[1].output[..5]);
    assert_eq!(out[1].stop, StopReason::Eos(eos));
    assert_eq!(out[2].tokens, rows[2].output[..10]);
    assert_eq!(out[2].stop, StopReason::MaxPositions);
    for i in [0, 3] {
        let cut = rows[i].output.iter().position(|&t| t == eos).unwrap_or(24);
        assert_eq!(out[i].tokens, rows[i].output[..cut], "row {i}");
    }
    assert_eq!(produced, out.iter().map(|g| g.tokens.len()).sum::<usize>());
}
