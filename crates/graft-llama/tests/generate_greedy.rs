//! Generation: the KV cache gives the same greedy tokens as recomputing the whole sequence each
//! step; sampling is reproducible from the seed; stopping at EOS and at max_new_tokens.

mod common;

use burn::tensor::{Int, Tensor, TensorData};
use common::*;
use graft_llama::generate::{
    argmax, eos_token_ids, generate, nucleus, GenerateConfig, GenerateError, Sampling, StopReason,
};
use graft_llama::{load, Llama};

fn tiny() -> Llama<B> {
    load::<B>(fixtures().join("tiny-llama3"), &Default::default())
        .expect("load")
        .0
}

/// The first 6 golden input ids (BOS first).
fn prompt() -> Vec<u32> {
    let (_, ids) = read_i64(&golden("forward.safetensors"), "input_ids");
    ids[..6].iter().map(|&i| i as u32).collect()
}

fn run(model: &Llama<B>, prompt: &[u32], config: &GenerateConfig) -> (Vec<u32>, StopReason) {
    let mut streamed = Vec::new();
    let out = generate(model, prompt, config, &mut |t| streamed.push(t)).expect("generate");
    assert_eq!(streamed, out.tokens, "callback sees every token, in order");
    (out.tokens, out.stop)
}

#[test]
fn greedy_with_kv_cache_equals_full_recompute() {
    let model = tiny();
    let mut config = GenerateConfig::greedy(20, vec![]);
    let (cached, stop) = run(&model, &prompt(), &config);
    assert_eq!(stop, StopReason::MaxNewTokens);
    assert_eq!(cached.len(), 20);
    config.use_cache = false;
    let (full, _) = run(&model, &prompt(), &config);
    assert_eq!(cached, full);
    // Not a degenerate repetition of one token.
    assert!(cached.iter().any(|&t| t != cached[0]), "{cached:?}");
}

#[test]
fn greedy_picks_the_argmax_of_a_full_forward_pass() {
    let model = tiny();
    let config = GenerateConfig::greedy(3, vec![]);
    let (tokens, _) = run(&model, &prompt(), &config);
    let mut seq = prompt();
    for &t in &tokens {
        let ids: Vec<i64> = seq.iter().map(|&i| i as i64).collect();
        let input: Tensor<B, 2, Int> =
            Tensor::from_data(TensorData::new(ids, [1, seq.len()]), &Default::default());
        let logits = model.forward(input);
        let [_, n, v] = logits.dims();
        let last: Vec<f32> = logits
            .narrow(1, n - 1, 1)
            .reshape([v])
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(argmax(&last), t);
        seq.push(t);
    }
}

#[test]
fn stops_at_eos_without_emitting_it() {
    let model = tiny();
    let (free, _) = run(&model, &prompt(), &GenerateConfig::greedy(10, vec![]));
    // Make the 4th greedy token an EOS id: generation must stop right before it.
    let config = GenerateConfig::greedy(10, vec![free[3]]);
    let first = free.iter().position(|&t| t == free[3]).unwrap();
    let (tokens, stop) = run(&model, &prompt(), &config);
    assert_eq!(stop, StopReason::Eos(free[3]));
    assert_eq!(tokens, free[..first]);
}

#[test]
fn sampling_is_seeded() {
    let model = tiny();
    let mut config = GenerateConfig::greedy(15, vec![]);
    config.sampling = Sampling::new(1.0, 0.95);
    config.seed = 7;
    let (a, _) = run(&model, &prompt(), &config);
    let (b, _) = run(&model, &prompt(), &config);
    assert_eq!(a, b, "same seed, same tokens");
    let differs = (8..16).any(|seed| {
        config.seed = seed;
        run(&model, &prompt(), &config).0 != a
    });
    assert!(differs, "other seeds give other samples");
    let (greedy, _) = run(&model, &prompt(), &GenerateConfig::greedy(15, vec![]));
    config.sampling = Sampling::new(1e-4, 1.0);
    assert_eq!(run(&model, &prompt(), &config).0, greedy, "T→0 is greedy");
}

#[test]
fn nucleus_keeps_the_smallest_top_set() {
    // softmax([ln 5, ln 3, ln 2]) = [0.5, 0.3, 0.2].
    let logits = [2f32.ln(), 5f32.ln(), 3f32.ln()];
    let ids = |v: Vec<(u32, f64)>| v.into_iter().map(|(i, _)| i).collect::<Vec<_>>();
    assert_eq!(ids(nucleus(&logits, 1.0, 0.5)), vec![1]);
    assert_eq!(ids(nucleus(&logits, 1.0, 0.75)), vec![1, 2]);
    assert_eq!(ids(nucleus(&logits, 1.0, 1.0)), vec![1, 2, 0]);
    let p = nucleus(&logits, 1.0, 1.0);
    assert!((p[0].1 - 0.5).abs() < 1e-6 && (p[2].1 - 0.2).abs() < 1e-6);
}

#[test]
fn bad_prompts_are_errors() {
    let model = tiny();
    let config = GenerateConfig::greedy(3, vec![]);
    assert!(matches!(
        generate(&model, &[], &config, &mut |_| {}),
        Err(GenerateError::EmptyPrompt)
    ));
    let err = generate(&model, &[1, 384], &config, &mut |_| {}).unwrap_err();
    assert!(matches!(
        err,
        GenerateError::TokenOutOfRange {
            index: 1,
            id: 384,
            vocab: 384
        }
    ));
    let mut bad = config.clone();
    bad.sampling = Sampling::Sample {
        temperature: 1.0,
        top_p: 1.5,
    };
    assert!(matches!(
        generate(&model, &[1], &bad, &mut |_| {}),
        Err(GenerateError::Sampling(_))
    ));
}

#[test]
fn eos_ids_merge_config_and_generation_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("generation_config.json"),
        r#"{"bos_token_id": 1, "eos_token_id": [2, 9]}"#,
    )
    .unwrap();
    assert_eq!(eos_token_ids(dir.path(), &[2]).unwrap(), vec![2, 9]);
    let none = tempfile::tempdir().unwrap();
    assert_eq!(eos_token_ids(none.path(), &[2]).unwrap(), vec![2]);
    std::fs::write(none.path().join("generation_config.json"), "{").unwrap();
    let err = eos_token_ids(none.path(), &[2]).unwrap_err().to_string();
    assert!(err.contains("generation_config.json"), "{err}");
}
