//! The HF name map (both directions) and the size/memory helpers.

mod common;

use common::configs;

use burn::tensor::TensorData;
use common::*;
use graft_llama::memory::*;
use graft_llama::{hf_params, load, param_keys, LayerParam, ModelConfig, ParamKey};

fn llama(json: &str) -> graft_llama::LlamaConfig {
    ModelConfig::from_json_str(json, "config.json")
        .unwrap()
        .llama
}

#[test]
fn names_round_trip_and_match_the_checkpoint() {
    let (model, config) = load::<B>(fixtures().join("tiny-llama3"), &Default::default()).unwrap();
    let c = &config.llama;
    for key in param_keys(c) {
        assert_eq!(ParamKey::parse(&key.hf_name()), Some(key));
    }
    let mut names: Vec<String> = hf_params(c).into_iter().map(|(n, _)| n).collect();
    names.sort();
    let mut file_names: Vec<String> = read_all(&golden("grads.safetensors"))
        .into_iter()
        .map(|t| t.0)
        .collect();
    file_names.sort();
    assert_eq!(names, file_names, "key map names = HF parameter names");
    for (name, shape) in hf_params(c) {
        assert_eq!(model.param_by_name(&name).unwrap().shape(), shape, "{name}");
    }
    assert_eq!(
        hf_params(c)[2],
        (
            "model.layers.0.self_attn.k_proj.weight".to_string(),
            vec![32, 64]
        )
    );
    for bad in [
        "model.layers.2.mlp.up_proj.weight",
        "model.layers.x.mlp.up_proj.weight",
        "model.foo",
    ] {
        assert!(model.param_by_name(bad).is_err(), "{bad}");
    }
}

/// Every parameter's Burn module path (what Burn's visitor sees) names it as the checkpoints do:
/// the HF name of the weight with the same id, or the PEFT name of an adapter matrix.
#[test]
fn module_paths_map_to_checkpoint_names() {
    use burn::module::{Module, ModuleVisitor, Param, ParamId};
    use burn::tensor::Tensor;
    struct Paths(Vec<String>, Vec<(String, ParamId)>);
    impl ModuleVisitor<B> for Paths {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            self.1.push((self.0.join("."), p.id));
        }
    }
    let (model, config) = load::<B>(fixtures().join("tiny-llama3"), &Default::default()).unwrap();
    let targets = ["q_proj".to_string(), "down_proj".to_string()];
    let lora = graft_llama::LoraConfig::new(2, 4.0, 0.0, &targets).unwrap();
    let model = graft_llama::apply_lora(model, &lora, 0).unwrap();
    let mut paths = Paths(Vec::new(), Vec::new());
    model.visit(&mut paths);
    let mut want: Vec<String> = hf_params(&config.llama).into_iter().map(|p| p.0).collect();
    want.extend(
        graft_llama::lora::adapter_tensors(&model)
            .into_iter()
            .map(|t| t.0),
    );
    want.sort();
    let mut got = Vec::new();
    for (path, id) in &paths.1 {
        let name = graft_llama::checkpoint_name(path).unwrap_or_else(|| panic!("{path}"));
        if let Some(key) = ParamKey::parse(&name) {
            assert_eq!(model.param_id(key).unwrap(), *id, "{path} -> {name}");
            assert_eq!(ParamKey::from_module_path(path), Some(key));
        } else {
            let (i, p, part) = graft_llama::lora::parse_peft_name(&name).unwrap();
            let proj = graft_llama::lora::proj(&model.layers[i], p).unwrap();
            let adapter = proj.lora.as_ref().unwrap();
            let want = match part {
                graft_llama::lora::LoraPart::A => adapter.lora_a.id,
                graft_llama::lora::LoraPart::B => adapter.lora_b.id,
            };
            assert_eq!(want, *id, "{path} -> {name}");
        }
        got.push(name);
    }
    got.sort();
    assert_eq!(got, want);
    assert!(got.contains(&"base_model.model.model.layers.1.mlp.down_proj.lora_B.weight".into()));
    for bad in [
        "layers.0.self_attn.q_proj",
        "embed_tokens.weight",
        "model.norm.weight",
        "fc1.weight",
    ] {
        assert_eq!(graft_llama::checkpoint_name(bad), None, "{bad}");
    }
}

#[test]
fn set_param_replaces_values_and_checks_shapes() {
    let (mut model, _) = load::<B>(fixtures().join("tiny-llama3"), &Default::default()).unwrap();
    let key = ParamKey::Layer(1, LayerParam::PostAttentionLayernorm);
    let id = model.param_id(key).unwrap();
    model
        .set_param_data(key, TensorData::new(vec![2.5f32; 64], [64]))
        .unwrap();
    let values = model
        .param(key)
        .unwrap()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert!(values.iter().all(|&v| v == 2.5));
    assert_eq!(model.param_id(key).unwrap(), id, "id survives replacement");
    let err = model
        .set_param_data(key, TensorData::new(vec![0f32; 63], [63]))
        .unwrap_err();
    assert!(
        err.to_string().contains("[64]") && err.to_string().contains("[63]"),
        "{err}"
    );
}

#[test]
fn parameter_counts_of_real_models() {
    assert_eq!(
        param_counts(&llama(configs::LLAMA3_8B)).total(),
        8_030_261_248
    );
    let small = param_counts(&llama(configs::LLAMA32_1B_INSTRUCT));
    assert_eq!(small.total(), 1_235_814_400);
    assert_eq!(small.lm_head, 0, "tied");
    assert_eq!(small.embedding, 128_256 * 2048);
    let tiny = param_counts(&llama(configs::ROPE_PARAMETERS_STYLE));
    let from_files: u64 = read_all(&golden("grads.safetensors"))
        .iter()
        .map(|t| t.2.iter().product::<usize>() as u64)
        .sum();
    assert_eq!(tiny.total(), from_files);
}

#[test]
fn memory_estimates() {
    let c = llama(configs::LLAMA3_8B);
    let n = 8_030_261_248u64;
    assert_eq!(weight_bytes(&c, DTypeSize::BF16), 2 * n);
    let full = full_training_memory(&c, DTypeSize::BF16, 1, 2048);
    // one micro-batch: its bf16 gradients are widened into the f32 sums tensor by tensor
    assert_eq!(
        (full.weights, full.gradients, full.optimizer),
        (2 * n, 4 * n, 12 * n)
    );
    assert!(full.activations > 0 && full.total() > 16 * n);
    // 32 layers · 2 (k, v) · 8 heads · 128 dims · 2 bytes = 128 KiB per token.
    assert_eq!(kv_cache_bytes(&c, 1, 8192, DTypeSize::BF16), 8192 * 131_072);
    let inf = inference_memory(&c, DTypeSize::BF16, 1, 8192);
    assert_eq!(inf.kv_cache, 8192 * 131_072);
    assert_eq!(inf.gradients + inf.optimizer, 0);
    let targets = [LayerParam::QProj, LayerParam::VProj];
    // q: 16·(4096+4096), v: 16·(4096+1024) per layer.
    assert_eq!(lora_param_count(&c, 16, &targets), 32 * 16 * (8192 + 5120));
    let lora = lora_memory(&c, DTypeSize::BF16, 16, &targets, 1, 2048);
    assert_eq!(lora.optimizer, 2 * lora.adapters);
    assert!(lora.total() < full.total());
    assert_eq!(DTypeSize::from_torch("bfloat16"), Some(DTypeSize::BF16));
}
