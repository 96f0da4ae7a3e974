//! LoRA on tiny-llama3: a fresh adapter (B = 0) leaves the output unchanged; only adapters get
//! gradients; merging gives the adapted model's output; init, names and counts are PEFT's.

mod common;
mod lora_common;

use common::{max_abs_diff, AB, B};
use graft_llama::keymap::{param_keys, LayerParam};
use graft_llama::lora::{
    adapter_tensors, apply_lora, lora_config, merge_lora, parse_peft_name, peft_name, proj,
    trainable_param_count, LoraConfig, LoraPart,
};
use graft_llama::{causal_lm_loss, IGNORE_INDEX};
use lora_common::*;

#[test]
fn fresh_adapters_leave_logits_unchanged() {
    let base = tiny::<B>();
    let want = logits(&base);
    let cfg = all_linear(4);
    let model = apply_lora(base, &cfg, 7).unwrap();
    assert!(graft_llama::lora::has_adapters(&model));
    assert_eq!(
        logits(&model),
        want,
        "B = 0 must give exactly the base logits"
    );
}

#[test]
fn nonzero_adapters_change_logits_and_merge_reproduces_them() {
    let base = logits(&tiny::<B>());
    let cfg = all_linear(4);
    let model = adapted::<B>(&cfg, 3);
    let with_lora = logits(&model);
    assert!(
        max_abs_diff(&with_lora, &base) > 1e-3,
        "adapters should move the logits"
    );
    let merged = merge_lora(model);
    assert!(!graft_llama::lora::has_adapters(&merged));
    let diff = max_abs_diff(&logits(&merged), &with_lora);
    assert!(diff < 1e-4, "merged logits differ by {diff}");
}

#[test]
fn only_adapters_receive_gradients() {
    let cfg = LoraConfig::new(2, 4.0, 0.0, &["q_proj".into(), "v_proj".into()]).unwrap();
    let model = adapted::<AB>(&cfg, 1);
    let tokens = common::int_tensor::<AB>("input_ids");
    let loss = causal_lm_loss(model.forward(tokens.clone()), tokens, IGNORE_INDEX);
    let grads = loss.backward();
    for key in param_keys(model.config()) {
        assert!(
            model.grad(key, &grads).is_none(),
            "{} is frozen but got a gradient",
            key.hf_name()
        );
    }
    for layer in &model.layers {
        for (target, _) in graft_llama::lora::TARGETS {
            let adapter = proj(layer, target).unwrap().lora.as_ref();
            assert_eq!(adapter.is_some(), cfg.targets.contains(&target));
            if let Some(a) = adapter {
                let ga = a.lora_a.val().grad(&grads).expect("lora_A gradient");
                let gb = a.lora_b.val().grad(&grads).expect("lora_B gradient");
                assert!(values(ga).iter().any(|v| *v != 0.0));
                assert!(values(gb).iter().any(|v| *v != 0.0));
            }
        }
    }
}

#[test]
fn fresh_a_is_kaiming_uniform_and_seeded() {
    let cfg = all_linear(8);
    let a = apply_lora(tiny::<B>(), &cfg, 11).unwrap();
    let b = apply_lora(tiny::<B>(), &cfg, 11).unwrap();
    let c = apply_lora(tiny::<B>(), &cfg, 12).unwrap();
    let (ta, tb, tc) = (
        adapter_tensors(&a),
        adapter_tensors(&b),
        adapter_tensors(&c),
    );
    assert_eq!(ta.len(), 2 * 7 * 2);
    for (((name, x), (_, y)), (_, z)) in ta.into_iter().zip(tb).zip(tc) {
        let (x, y, z) = (values(x), values(y), values(z));
        assert_eq!(x, y, "{name}: same seed, same values");
        if name.contains("lora_B") {
            assert!(x.iter().all(|v| *v == 0.0), "{name} must start at zero");
            continue;
        }
        assert_ne!(x, z, "{name}: another seed should give other values");
        let fan_in = if name.contains("down_proj") { 176 } else { 64 };
        let bound = 1.0 / (fan_in as f32).sqrt();
        assert!(
            x.iter().all(|v| v.abs() <= bound),
            "{name} outside ±1/sqrt(fan_in)"
        );
        let mean_sq = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
        let want = bound * bound / 3.0;
        assert!(
            (mean_sq - want).abs() < 0.25 * want,
            "{name}: variance {mean_sq} vs {want}"
        );
    }
}

#[test]
fn names_counts_and_config_roundtrip() {
    let name = peft_name(3, LayerParam::QProj, LoraPart::A);
    assert_eq!(
        name,
        "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"
    );
    assert_eq!(
        peft_name(0, LayerParam::DownProj, LoraPart::B),
        "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"
    );
    assert_eq!(
        parse_peft_name(&name),
        Some((3, LayerParam::QProj, LoraPart::A))
    );
    assert_eq!(
        parse_peft_name("base_model.model.model.layers.0.input_layernorm.lora_A.weight"),
        None
    );

    let cfg = LoraConfig::new(
        4,
        16.0,
        0.1,
        &["v_proj".into(), "q_proj".into(), "down_proj".into()],
    )
    .unwrap();
    assert_eq!(cfg.target_names(), ["q_proj", "v_proj", "down_proj"]);
    assert_eq!(cfg.scale(), 4.0);
    let model = apply_lora(tiny::<B>(), &cfg, 0).unwrap();
    assert_eq!(lora_config(&model), Some(cfg.clone()));
    let counted: u64 = adapter_tensors(&model)
        .iter()
        .map(|(_, t)| t.shape().num_elements() as u64)
        .sum();
    assert_eq!(trainable_param_count(model.config(), &cfg), counted);
    // q: 4·(64+64), v: 4·(64+32), down: 4·(176+64), two layers.
    assert_eq!(counted, 2 * (4 * 128 + 4 * 96 + 4 * 240));
}

#[test]
fn bad_settings_are_errors() {
    let err = LoraConfig::new(4, 8.0, 0.0, &["qproj".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("qproj") && err.contains("q_proj"), "{err}");
    assert!(LoraConfig::new(0, 8.0, 0.0, &["q_proj".into()]).is_err());
    assert!(LoraConfig::new(4, 8.0, 1.0, &["q_proj".into()]).is_err());
    assert!(LoraConfig::new(4, 8.0, 0.0, &[]).is_err());
    let twice = apply_lora(
        apply_lora(tiny::<B>(), &all_linear(2), 0).unwrap(),
        &all_linear(2),
        0,
    );
    assert!(twice.is_err());
}

/// Frozen base parameters stay frozen through a load (set_param_data keeps `require_grad`).
#[test]
fn base_stays_frozen_after_reload() {
    let mut model = apply_lora(tiny::<AB>(), &all_linear(2), 0).unwrap();
    graft_llama::load_weights(&mut model, &common::fixtures().join("tiny-llama3")).unwrap();
    let w = model.layers[0].self_attn.q_proj.weight.val();
    assert!(!w.is_require_grad());
    let a = model.layers[0]
        .self_attn
        .q_proj
        .lora
        .as_ref()
        .unwrap()
        .lora_a
        .val();
    assert!(a.is_require_grad());
}
