//! Where a step line's memory and MFU come from: model FLOPs per token (torchtitan's formula),
//! the peak bf16 FLOP/s of known GPUs, and memory probes (the process's peak RSS on the CPU,
//! `nvidia-smi` on CUDA). Linux only for memory; elsewhere the figures are left out.

use graft_llama::LlamaConfig;

use super::console::MemoryFigure;

/// A source of memory figures, read at each logged step.
pub type MemoryProbe = Box<dyn FnMut() -> Option<MemoryFigure>>;

/// What the trainer needs to add memory and MFU to its step lines (see
/// [`crate::Trainer::with_meter`]); every part is optional.
#[derive(Default)]
pub struct StepMeter {
    /// Model FLOPs per trained token, forward and backward ([`flops_per_token`]).
    pub flops_per_token: Option<f64>,
    /// Peak FLOP/s of all data-parallel devices together ([`peak_flops`] × devices).
    pub peak_flops: Option<f64>,
    /// Memory figures ([`process_memory`], [`gpu_memory`]).
    pub memory: Option<MemoryProbe>,
}

impl StepMeter {
    /// Model FLOP utilisation at `tokens_per_s`, when FLOPs per token and the peak are known.
    pub fn mfu(&self, tokens_per_s: f64) -> Option<f64> {
        match (self.flops_per_token, self.peak_flops) {
            (Some(f), Some(p)) if p > 0.0 => Some(tokens_per_s * f / p),
            _ => None,
        }
    }
}

/// Training FLOPs per token of a Llama of `config` at `seq_len` (torchtitan's
/// `6·N + 12·L·H·Q·T`): N counts every matmul weight (attention, MLP, LM head; the embedding
/// lookup is free), the second term is attention's scores and weighted sum, forward and backward,
/// without causal sparsity or recomputation.
pub fn flops_per_token(config: &LlamaConfig, seq_len: usize) -> f64 {
    let counts = graft_llama::memory::param_counts(config);
    let head = (config.vocab_size * config.hidden_size) as f64;
    let n = (counts.attention + counts.mlp + counts.norm) as f64 + head;
    let attention = 12.0
        * (config.num_hidden_layers * config.num_attention_heads * config.head_dim * seq_len)
            as f64;
    6.0 * n + attention
}

/// Peak dense bf16 FLOP/s of a GPU from its name (as `nvidia-smi` or CUDA report it), for the
/// GPUs whose vendor figure is known (the table torchtitan uses); `None` otherwise (and on CPUs).
pub fn peak_flops(device_name: &str) -> Option<f64> {
    let name = device_name.to_uppercase();
    const TABLE: [(&[&str], f64); 10] = [
        (&["GB200"], 2.5e15),
        (&["B200"], 2.25e15),
        (&["H200"], 989e12),
        (&["H100", "NVL"], 835e12),
        (&["H100", "PCIE"], 756e12),
        (&["H100"], 989e12),
        (&["A100"], 312e12),
        (&["L40S"], 362e12),
        (&["L4"], 121e12),
        (&["MI300X"], 1307.4e12),
    ];
    TABLE
        .iter()
        .find(|(keys, _)| keys.iter().all(|k| name.contains(k)))
        .map(|(_, flops)| *flops)
}

/// The process's peak resident memory (`VmHWM`) as a share of the machine's (`MemTotal`).
pub fn process_memory() -> Option<MemoryFigure> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    Some(MemoryFigure {
        used: kib_field(&status, "VmHWM")?,
        capacity: meminfo.and_then(|m| kib_field(&m, "MemTotal")),
    })
}

/// A `Name:   1234 kB` field of a /proc file, in bytes.
fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// Memory used on GPU `index` now and its total, from `nvidia-smi` (what the device has in use,
/// all processes included); `None` when `nvidia-smi` is missing or fails.
pub fn gpu_memory(index: usize) -> Option<MemoryFigure> {
    let out = nvidia_smi(index, "memory.used,memory.total")?;
    let mut mib = out.split(',').map(|v| v.trim().parse::<u64>().ok());
    let used = mib.next()??;
    let total = mib.next()?;
    Some(MemoryFigure {
        used: used << 20,
        capacity: total.map(|t| t << 20),
    })
}

/// The name of GPU `index` from `nvidia-smi` (e.g. `NVIDIA H100 80GB HBM3`).
pub fn gpu_name(index: usize) -> Option<String> {
    nvidia_smi(index, "name")
}

fn nvidia_smi(index: usize, query: &str) -> Option<String> {
    let out = std::process::Command::new("nvidia-smi")
        .arg(format!("--query-gpu={query}"))
        .args(["--format=csv,noheader,nounits", &format!("--id={index}")])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().next()?.trim().to_string();
    (out.status.success() && !line.is_empty()).then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_flops_of_known_gpus() {
        assert_eq!(peak_flops("NVIDIA H100 80GB HBM3"), Some(989e12));
        assert_eq!(peak_flops("NVIDIA H100 PCIe"), Some(756e12));
        assert_eq!(peak_flops("NVIDIA H100 NVL"), Some(835e12));
        assert_eq!(peak_flops("NVIDIA A100-SXM4-80GB"), Some(312e12));
        assert_eq!(peak_flops("NVIDIA H200"), Some(989e12));
        assert_eq!(peak_flops("cpu"), None);
        assert_eq!(peak_flops("NVIDIA GeForce GTX 1080"), None);
    }

    #[test]
    fn flops_per_token_of_llama3_8b() {
        let json = r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
            "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "tie_word_embeddings": false, "hidden_act": "silu"}"#;
        let config = graft_llama::ModelConfig::from_json_str(json, "8b.json")
            .unwrap()
            .llama;
        // N = 8.03e9 parameters less the 0.525e9 of the embedding (the head is counted)
        let n = 8_030_261_248f64 - 128256.0 * 4096.0;
        let expected = 6.0 * n + 12.0 * 32.0 * 32.0 * 128.0 * 4096.0;
        assert_eq!(flops_per_token(&config, 4096), expected);
        let meter = StepMeter {
            flops_per_token: Some(expected),
            peak_flops: Some(989e12),
            memory: None,
        };
        // 3,000 tok/s of 8B at seq 4096 on one H100: about 16%
        let mfu = meter.mfu(3000.0).unwrap();
        assert!((mfu - 0.15613).abs() < 1e-4, "{mfu}");
        assert_eq!(StepMeter::default().mfu(3000.0), None);
    }

    #[test]
    fn proc_fields_in_bytes() {
        let status = "Name:\tgraft\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(kib_field(status, "VmHWM"), Some(2 << 20));
        assert_eq!(kib_field(status, "VmPeak"), None);
        if cfg!(target_os = "linux") {
            let m = process_memory().unwrap();
            assert!(m.used > 0 && m.capacity.unwrap() > m.used, "{m:?}");
        }
    }
}
