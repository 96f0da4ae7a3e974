//! Periodic evaluation: the trainer calls its evaluator every `eval_every` steps and at the last
//! step with the current weights and logs what it returns; `PeriodicEval`'s held-out loss is the
//! token-weighted mean next-token loss over the source's validation batches, capped by
//! `max_batches`, with ppl = exp(loss).

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::sync::Arc;

use burn::backend::Flex;
use burn::module::AutodiffModule;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use common::*;
use graft_data::{DataConfig, PreparedData, TextTokenizer};
use graft_llama::Llama;
use graft_train::logging::TextLogger;
use graft_train::{Evaluator, PeriodicEval, Trainer, VecSource};

/// Reports the sum of the final norm's weights: it changes every step, so it shows which weights
/// the evaluator was given.
struct NormProbe;

fn norm_sum<Bk: burn::tensor::backend::Backend>(model: &Llama<Bk>) -> f64 {
    model.norm.weight.val().sum().into_scalar().elem::<f64>()
}

impl Evaluator<Flex> for NormProbe {
    fn evaluate(&mut self, model: &Llama<Flex>) -> graft_train::Result<Vec<(String, f64)>> {
        Ok(vec![("eval/probe".into(), norm_sum(model))])
    }
}

#[test]
fn evaluator_runs_every_n_steps_and_at_the_end_on_the_current_weights() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("scalars.tsv");
    let device = Default::default();
    let (model, config) = graft_llama::load::<B>(fixtures().join("tiny-llama3"), &device).unwrap();
    let mut cfg = golden_config();
    cfg.steps = 5;
    cfg.schedule.total_steps = 5;
    let mut t = Trainer::<B>::new(model, config, cfg, device)
        .with_logger(Box::new(TextLogger::new(&log).unwrap()))
        .with_evaluator(2, Box::new(NormProbe));
    t.run(&mut VecSource::new(golden_batches())).unwrap();

    let text = std::fs::read_to_string(&log).unwrap();
    let probes: Vec<(u64, f64)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[1] == "eval/probe").then(|| (f[0].parse().unwrap(), f[2].parse().unwrap()))
        })
        .collect();
    assert_eq!(
        probes.iter().map(|p| p.0).collect::<Vec<_>>(),
        [2, 4, 5],
        "every 2 steps and at the last"
    );
    assert_eq!(
        probes[2].1,
        norm_sum(&t.model().valid()),
        "the evaluator saw the final weights"
    );
    assert_ne!(probes[0].1, probes[2].1);
}

/// The biomedicine sample, prepared with the Llama-3 tokenizer into `dir`.
fn prepared(dir: &Path) -> Arc<PreparedData> {
    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/biomedicine/biomedicine-00.jsonl");
    let toml = format!(
        "seq_len = 16\nval_fraction = 0.1\n[[sources]]\nname = \"bio\"\npath = \"{}\"\nformat = \"instruction-augmented\"\n",
        data.display()
    );
    let config = DataConfig::from_toml_str(&toml, Path::new("test.toml")).unwrap();
    let tok_path = fixtures().join("llama3-tokenizer/tokenizer.json");
    let tok = TextTokenizer::from_file(&tok_path, Some(128000), Some(128001)).unwrap();
    graft_data::prepare(&config, &tok, dir).unwrap();
    PreparedData::open(&config, dir).unwrap()
}

/// A small random model over the Llama-3 vocabulary.
fn small_model() -> Llama<Flex> {
    let json = r#"{"model_type": "llama", "vocab_size": 128256, "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "tie_word_embeddings": true}"#;
    let config = graft_llama::ModelConfig::from_json_str(json, "test.json").unwrap();
    config.llama.init::<Flex>(&Default::default())
}

/// (Σ loss, tokens scored) of one batch, computed directly.
fn batch_loss(model: &Llama<Flex>, b: &graft_data::Batch) -> (f64, f64) {
    let ids: Vec<i64> = b.tokens.iter().map(|&t| t as i64).collect();
    let tokens = Tensor::<Flex, 2, Int>::from_data(
        TensorData::new(ids, [b.batch_size, b.seq_len]),
        &Default::default(),
    );
    let mean = graft_llama::causal_lm_loss(
        model.forward(tokens.clone()),
        tokens,
        graft_llama::IGNORE_INDEX,
    );
    let n = (b.batch_size * (b.seq_len - 1)) as f64;
    (mean.into_scalar().elem::<f64>() * n, n)
}

#[test]
fn held_out_loss_is_the_token_weighted_mean_over_capped_eval_batches() {
    let dir = tempfile::tempdir().unwrap();
    let data = prepared(dir.path());
    let model = small_model();
    let batches: Vec<_> = data.eval_iter("bio", 2, 0, 1).unwrap().take(2).collect();
    assert_eq!(batches.len(), 2, "the sample has enough held-out tokens");
    let (s0, n0) = batch_loss(&model, &batches[0]);
    let (s1, n1) = batch_loss(&model, &batches[1]);

    for (cap, expected) in [(1, s0 / n0), (2, (s0 + s1) / (n0 + n1))] {
        let mut eval = PeriodicEval::<Flex>::new(data.clone(), 2, cap, Default::default()).unwrap();
        let scalars = eval.evaluate(&model).unwrap();
        let get = |tag: &str| {
            scalars
                .iter()
                .find(|(t, _)| t == tag)
                .map(|(_, v)| *v)
                .unwrap()
        };
        let (loss, ppl) = (get("eval/bio/loss"), get("eval/bio/ppl"));
        assert!(
            (loss - expected).abs() < 1e-4 * expected,
            "cap {cap}: {loss} vs {expected}"
        );
        assert!((ppl - loss.exp()).abs() < 1e-9 * ppl);
        assert!(
            (loss - (128256f64).ln()).abs() < 1.0,
            "a random model is near ln(vocab): {loss}"
        );
    }
}
