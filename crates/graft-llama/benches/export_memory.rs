//! Peak memory of `export_checkpoint` against the size of the model it exports.
//!
//! Generates a random ~100M-parameter Llama-shaped f32 checkpoint (2 shards) in a temporary
//! directory — in a child process, so generation does not count — then exports it to bf16 and
//! reports the process's peak RSS (`VmHWM` in /proc/self/status) before and after. Linux only.
//!
//! Run: `cargo bench -p graft-llama --bench export_memory` (or `cargo test ... --bench
//! export_memory` for an unoptimised build; memory does not depend on the profile).

use std::borrow::Cow;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use graft_llama::export::{
    export_checkpoint, write_hf_dir, Dtype, ExportDtype, ExportOptions, HfDirFiles, Result,
    TensorData, TensorSource, TensorSpec,
};
use graft_llama::ModelConfig;

/// ~100M parameters: vocab 32000, hidden 640, 12 layers, 10 heads (5 kv heads), mlp 1728.
const CONFIG: &str = r#"{
  "architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "vocab_size": 32000, "hidden_size": 640, "intermediate_size": 1728, "num_hidden_layers": 12,
  "num_attention_heads": 10, "num_key_value_heads": 5, "head_dim": 64, "rms_norm_eps": 1e-5,
  "max_position_embeddings": 8192, "rope_theta": 500000.0, "tie_word_embeddings": false,
  "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"
}"#;

/// Random f32 tensors of a model's HF names and shapes (xorshift, no dependencies).
struct RandomSource {
    specs: Vec<(String, Vec<usize>)>,
    state: u64,
}

impl TensorSource for RandomSource {
    fn specs(&self, dtype: ExportDtype) -> Vec<TensorSpec> {
        let dtype = dtype.safetensors();
        self.specs
            .iter()
            .map(|(name, shape)| TensorSpec {
                name: name.clone(),
                shape: shape.clone(),
                dtype,
            })
            .collect()
    }

    fn read(&mut self, name: &str) -> Result<TensorData<'_>> {
        let numel: usize = self
            .specs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.iter().product())
            .unwrap_or(0);
        let mut values = Vec::with_capacity(numel);
        for _ in 0..numel {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            values.push((self.state >> 40) as f32 / (1u64 << 24) as f32 * 0.2 - 0.1);
        }
        Ok(TensorData::F32(Cow::Owned(values)))
    }
}

fn generate(dir: &Path) {
    let config = ModelConfig::from_json_str(CONFIG, "bench config.json").expect("bench config");
    let mut source = RandomSource {
        specs: graft_llama::hf_params(&config.llama),
        state: 0x9E37_79B9_7F4A_7C15,
    };
    let files = HfDirFiles {
        config,
        generation_config: None,
        tokenizer_dir: None,
    };
    let options = ExportOptions {
        dtype: ExportDtype::F32,
        max_shard_size: 200_000_000,
        ..ExportOptions::default()
    };
    write_hf_dir(dir, &files, &mut source, &options, &mut |_, _| {}).expect("generate checkpoint");
}

/// A field of /proc/self/status in bytes (e.g. "VmHWM", "VmRSS").
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--generate-into") {
        generate(Path::new(&args[i + 1]));
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = tmp.path().join("src");
    let exe = std::env::current_exe().expect("current exe");
    let status = Command::new(exe)
        .arg("--generate-into")
        .arg(&src)
        .status()
        .expect("spawn generator");
    assert!(status.success(), "generating the checkpoint failed");
    let model_bytes =
        dir_bytes(&src) - std::fs::metadata(src.join("config.json")).map_or(0, |m| m.len());

    let before = status_bytes("VmHWM");
    let start = Instant::now();
    let out = tmp.path().join("out");
    let options = ExportOptions {
        dtype: ExportDtype::BF16,
        ..ExportOptions::default()
    };
    let summary = export_checkpoint(&src, &out, &options, &mut |_, _| {}).expect("export");
    let seconds = start.elapsed().as_secs_f64();
    let peak = status_bytes("VmHWM");
    assert_eq!(summary.shards.files.len(), 1);
    assert!(summary.shards.total_size > 0 && Dtype::BF16 == ExportDtype::BF16.safetensors());

    let mb = |b: u64| b as f64 / 1e6;
    println!("export_memory: {:.1}M parameters, f32 source {:.1} MB -> bf16 export {:.1} MB in {seconds:.2}s",
        summary.shards.total_parameters as f64 / 1e6, mb(model_bytes), mb(summary.shards.total_size));
    println!(
        "  peak RSS before export {:.1} MB, after {:.1} MB (growth {:.1} MB)",
        mb(before),
        mb(peak),
        mb(peak - before)
    );
    println!(
        "  peak RSS / model size = {:.3}; peak growth / model size = {:.3}",
        peak as f64 / model_bytes as f64,
        (peak - before) as f64 / model_bytes as f64
    );
}
