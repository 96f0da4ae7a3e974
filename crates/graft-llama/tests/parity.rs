//! Numeric parity with HuggingFace transformers (golden outputs in tests/fixtures/golden).

mod common;

use burn::tensor::{Tensor, TensorData};
use common::*;
use graft_llama::{causal_lm_loss, load, param_keys, IGNORE_INDEX};

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 data")
}

#[test]
fn logits_and_losses_match_transformers() {
    let device = Default::default();
    let (model, _) = load::<B>(fixtures().join("tiny-llama3"), &device).expect("load");
    let tokens = int_tensor::<B>("input_ids");
    let logits = model.forward(tokens.clone());
    assert_eq!(logits.dims(), [2, 32, 384]);

    let (_, golden_logits) = read_f32(&golden("forward.safetensors"), "logits");
    let diff = max_abs_diff(&values(logits.clone()), &golden_logits);
    assert!(diff <= 1e-4, "logits max abs diff {diff}");

    let loss = values(causal_lm_loss(logits.clone(), tokens, IGNORE_INDEX))[0];
    let (_, golden_loss) = read_f32(&golden("forward.safetensors"), "loss");
    assert!(
        (loss - golden_loss[0]).abs() <= 1e-5,
        "loss {loss} vs {}",
        golden_loss[0]
    );

    let labels = int_tensor::<B>("labels_masked");
    let masked = values(causal_lm_loss(logits, labels, IGNORE_INDEX))[0];
    let (_, golden_masked) = read_f32(&golden("forward.safetensors"), "loss_masked");
    assert!(
        (masked - golden_masked[0]).abs() <= 1e-5,
        "masked loss {masked} vs {}",
        golden_masked[0]
    );
    assert!((masked - loss).abs() > 1e-4, "masking must change the loss");
}

#[test]
fn bf16_checkpoint_matches_transformers() {
    let device = Default::default();
    let (model, config) =
        load::<B>(fixtures().join("tiny-llama3-bf16"), &device).expect("load bf16");
    assert_eq!(config.llama.torch_dtype.as_deref(), Some("bfloat16"));
    let tokens = int_tensor::<B>("input_ids");
    let logits = model.forward(tokens.clone());
    let (_, golden_logits) = read_f32(&golden("forward.safetensors"), "bf16_logits");
    let diff = max_abs_diff(&values(logits.clone()), &golden_logits);
    assert!(diff <= 1e-4, "bf16 logits max abs diff {diff}");
    let loss = values(causal_lm_loss(logits, tokens, IGNORE_INDEX))[0];
    let (_, golden_loss) = read_f32(&golden("forward.safetensors"), "bf16_loss");
    assert!(
        (loss - golden_loss[0]).abs() <= 1e-5,
        "bf16 loss {loss} vs {}",
        golden_loss[0]
    );
}

#[test]
fn every_gradient_matches_transformers() {
    let device = Default::default();
    let (model, config) = load::<AB>(fixtures().join("tiny-llama3"), &device).expect("load");
    let tokens = int_tensor::<AB>("input_ids");
    let loss = causal_lm_loss(model.forward(tokens.clone()), tokens, IGNORE_INDEX);
    let grads = loss.backward();
    let golden_grads = golden("grads.safetensors");
    let keys = param_keys(&config.llama);
    assert_eq!(
        keys.len(),
        read_all(&golden_grads).len(),
        "one golden gradient per parameter"
    );
    for key in keys {
        let name = key.hf_name();
        let grad = model
            .grad(key, &grads)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let (shape, expected) = read_f32(&golden_grads, &name);
        assert_eq!(grad.shape(), shape, "{name}");
        let actual = grad.into_data().to_vec::<f32>().expect("f32");
        let diff = max_abs_diff(&actual, &expected);
        let norm = expected.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            diff <= 1e-5 || diff <= 1e-3 * norm,
            "{name}: max abs diff {diff}, golden norm {norm}"
        );
    }
}

#[test]
fn kv_cache_decoding_matches_full_forward() {
    let device = Default::default();
    let (model, config) = load::<B>(fixtures().join("tiny-llama3"), &device).expect("load");
    let tokens = int_tensor::<B>("input_ids");
    let full = values(model.forward(tokens.clone()));
    let mut cache = graft_llama::KvCache::new(config.llama.num_hidden_layers);
    let mut pieces = Vec::new();
    for (start, len) in [(0, 20), (20, 1), (21, 11)] {
        let chunk = tokens.clone().narrow(1, start, len);
        pieces.push(model.forward_cached(chunk, &mut cache));
    }
    assert_eq!(cache.len(), 32);
    let cached = values(Tensor::cat(pieces, 1));
    let diff = max_abs_diff(&cached, &full);
    assert!(diff <= 1e-4, "cached vs full logits differ by {diff}");
}

#[test]
fn tied_head_uses_embeddings() {
    let device = Default::default();
    let (model, _) = load::<B>(fixtures().join("tiny-llama3"), &device).expect("load");
    let mut config = model.config().clone();
    config.tie_word_embeddings = true;
    let mut tied = config.init::<B>(&device);
    for (name, tensor) in model.named_params() {
        if name != "lm_head.weight" {
            let key = graft_llama::ParamKey::lookup(&name, &config).expect("key");
            tied.set_param(key, tensor).expect("set");
        }
    }
    let hidden = Tensor::<B, 3>::from_data(TensorData::new(vec![0.5f32; 64], [1, 1, 64]), &device);
    let head = values(tied.head(hidden.clone()));
    let embed = model
        .param_by_name("model.embed_tokens.weight")
        .expect("embed")
        .into_data();
    let embed = embed.to_vec::<f32>().expect("f32");
    let expected: Vec<f32> = embed
        .chunks(64)
        .map(|row| row.iter().sum::<f32>() * 0.5)
        .collect();
    assert!(max_abs_diff(&head, &expected) < 1e-4);
}

/// The training path — fused chunked head + loss, flash attention, with and without per-layer
/// activation checkpointing — gives transformers' loss and every gradient.
#[test]
fn training_path_matches_transformers_with_and_without_checkpointing() {
    let device = Default::default();
    let (model, config) = load::<AB>(fixtures().join("tiny-llama3"), &device).expect("load");
    let tokens = int_tensor::<AB>("input_ids");
    let (_, golden_loss) = read_f32(&golden("forward.safetensors"), "loss");
    let golden_grads = golden("grads.safetensors");
    for checkpointing in [false, true] {
        let options = graft_llama::BackwardOptions {
            scale: 1.0,
            ignore_index: IGNORE_INDEX,
            checkpointing,
            seed: 7,
        };
        let (loss, grads) =
            graft_llama::loss_and_grads(&model, tokens.clone(), tokens.clone(), &options);
        let loss = values(loss)[0];
        assert!(
            (loss - golden_loss[0]).abs() <= 1e-5,
            "checkpointing {checkpointing}: loss {loss} vs {}",
            golden_loss[0]
        );
        for key in param_keys(&config.llama) {
            let name = key.hf_name();
            let id = model.param_id(key).expect("param id");
            // the rank only types the handle: the data keeps the gradient's own shape
            let grad = grads
                .get::<B, 2>(id)
                .unwrap_or_else(|| panic!("checkpointing {checkpointing}: no gradient for {name}"));
            let (shape, expected) = read_f32(&golden_grads, &name);
            let data = grad.into_data();
            assert_eq!(data.shape.to_vec(), shape, "{name}");
            let diff = max_abs_diff(&data.to_vec::<f32>().expect("f32"), &expected);
            let norm = expected.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!(
                diff <= 1e-5 || diff <= 1e-3 * norm,
                "checkpointing {checkpointing}, {name}: max abs diff {diff}, golden norm {norm}"
            );
        }
    }
}
