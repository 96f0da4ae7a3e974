//! Parsing config.json as real Llama-3 / 3.1 / 3.2 checkpoints spell it.

mod common;

use common::configs;

use graft_llama::{Error, Llama3Scaling, ModelConfig};

fn parse(json: &str) -> graft_llama::Result<ModelConfig> {
    ModelConfig::from_json_str(json, "config.json")
}

fn with(json: &str, key: &str, value: serde_json::Value) -> String {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    v.as_object_mut().unwrap().insert(key.into(), value);
    v.to_string()
}

#[test]
fn llama3_without_rope_scaling() {
    let c = parse(configs::LLAMA3_8B).unwrap().llama;
    assert_eq!(c.rope_scaling, None);
    assert_eq!(c.rope_theta, 500000.0);
    assert_eq!(
        (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
        (32, 8, 128)
    );
    assert_eq!(c.eos_token_ids, vec![128001]);
    assert_eq!(c.bos_token_id, Some(128000));
    assert!(!c.tie_word_embeddings);
    assert_eq!(c.torch_dtype.as_deref(), Some("bfloat16"));
    assert_eq!(c.max_position_embeddings, 8192);
}

#[test]
fn llama31_with_llama3_scaling_and_eos_list() {
    let c = parse(configs::LLAMA31_8B_INSTRUCT).unwrap().llama;
    let expected = Llama3Scaling {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192,
    };
    assert_eq!(c.rope_scaling, Some(expected));
    assert_eq!(c.eos_token_ids, vec![128001, 128008, 128009]);
}

#[test]
fn llama32_tied_with_head_dim() {
    let c = parse(configs::LLAMA32_1B_INSTRUCT).unwrap().llama;
    assert!(c.tie_word_embeddings);
    assert_eq!(c.head_dim, 64);
    assert_eq!(c.rope_scaling.map(|s| s.factor), Some(32.0));
    assert_eq!(
        graft_llama::param_keys(&c).len(),
        1 + 16 * 9 + 1,
        "no lm_head when tied"
    );
}

#[test]
fn rope_parameters_block_and_dtype_key() {
    let c = parse(configs::ROPE_PARAMETERS_STYLE).unwrap().llama;
    assert_eq!(c.rope_theta, 500000.0);
    assert_eq!(
        c.rope_scaling.map(|s| s.original_max_position_embeddings),
        Some(8192)
    );
    assert_eq!(c.torch_dtype.as_deref(), Some("float32"));
    assert_eq!(c.head_dim, 16, "default head_dim = hidden / heads");
}

#[test]
fn fixture_config_parses_like_its_readme() {
    let cfg = ModelConfig::from_file(common::fixtures().join("tiny-llama3/config.json")).unwrap();
    let c = cfg.llama;
    assert_eq!(
        (c.vocab_size, c.hidden_size, c.intermediate_size),
        (384, 64, 176)
    );
    assert_eq!(
        (
            c.num_hidden_layers,
            c.num_attention_heads,
            c.num_key_value_heads
        ),
        (2, 4, 2)
    );
    assert_eq!(c.rope_scaling.map(|s| s.factor), Some(8.0));
}

#[test]
fn old_type_spelling_and_defaults() {
    let json = with(
        configs::LLAMA31_8B_INSTRUCT,
        "rope_scaling",
        serde_json::json!({"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                           "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    );
    assert!(parse(&json).unwrap().llama.rope_scaling.is_some());
    let mut v: serde_json::Value = serde_json::from_str(configs::LLAMA3_8B).unwrap();
    let map = v.as_object_mut().unwrap();
    for key in ["num_key_value_heads", "tie_word_embeddings", "rope_scaling"] {
        map.remove(key);
    }
    let c = parse(&v.to_string()).unwrap().llama;
    assert_eq!(c.num_key_value_heads, 32, "defaults to num_attention_heads");
    assert!(!c.tie_word_embeddings);
}

#[test]
fn unknown_model_type_is_an_error() {
    let json = with(configs::LLAMA3_8B, "model_type", "gemma".into());
    let err = parse(&json).unwrap_err();
    assert!(matches!(err, Error::UnsupportedConfig { .. }), "{err}");
    assert!(err.to_string().contains("gemma"), "{err}");
    // "mistral" is supported, but not with a Llama architecture.
    let json = with(configs::LLAMA3_8B, "model_type", "mistral".into());
    let err = parse(&json).unwrap_err();
    assert!(err.to_string().contains("LlamaForCausalLM"), "{err}");
}

#[test]
fn unknown_architecture_is_an_error() {
    let json = with(
        configs::LLAMA3_8B,
        "architectures",
        serde_json::json!(["LlamaForSequenceClassification"]),
    );
    let err = parse(&json).unwrap_err();
    assert!(
        err.to_string().contains("LlamaForSequenceClassification"),
        "{err}"
    );
}

#[test]
fn unsupported_rope_type_is_an_error() {
    let json = with(
        configs::LLAMA3_8B,
        "rope_scaling",
        serde_json::json!({"rope_type": "yarn", "factor": 4.0}),
    );
    let err = parse(&json).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedConfig { .. }) && err.to_string().contains("yarn"),
        "{err}"
    );
}

#[test]
fn biases_are_unsupported() {
    let err = parse(&with(configs::LLAMA3_8B, "attention_bias", true.into())).unwrap_err();
    assert!(err.to_string().contains("bias"), "{err}");
}

#[test]
fn malformed_and_missing_configs_name_the_file() {
    let err = parse("{\"model_type\": \"llama\"").unwrap_err();
    assert!(
        matches!(err, Error::Json { .. }) && err.to_string().contains("config.json"),
        "{err}"
    );
    let pretty = configs::LLAMA3_8B.replace("\"hidden_size\": 4096", "\"hidden_size\": \"big\"");
    let err = parse(&pretty).unwrap_err();
    assert!(
        err.to_string().contains("\"big\"") && err.to_string().contains("line 3"),
        "{err}"
    );
    let mut v: serde_json::Value = serde_json::from_str(configs::LLAMA3_8B).unwrap();
    v.as_object_mut().unwrap().remove("vocab_size");
    let err = parse(&v.to_string()).unwrap_err();
    assert!(
        err.to_string().contains("missing field `vocab_size`"),
        "{err}"
    );
    let err = ModelConfig::from_file("/nonexistent/config.json").unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("/nonexistent/config.json"),
        "{err}"
    );
}

#[test]
fn raw_json_round_trips_with_only_dtype_changed() {
    let cfg = parse(configs::LLAMA31_8B_INSTRUCT).unwrap();
    let mut out = cfg.raw_with_dtype("float32");
    assert_eq!(out["torch_dtype"], "float32");
    out["torch_dtype"] = "bfloat16".into();
    assert_eq!(
        out,
        serde_json::from_str::<serde_json::Value>(configs::LLAMA31_8B_INSTRUCT).unwrap()
    );
}
