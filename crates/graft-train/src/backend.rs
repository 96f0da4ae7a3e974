//! The compute backend graft runs on (the CLI and [`crate::run::Run`]): Burn's pure-Rust CPU backend `flex` by default (f32),
//! or CUDA (bf16) with `--features cuda`.

#[cfg(not(feature = "cuda"))]
pub type Backend = burn::backend::Flex;
#[cfg(feature = "cuda")]
pub type Backend = burn::backend::Cuda<half::bf16, i32>;

/// The training backend: the compute backend under reverse-mode autodiff.
pub type TrainBackend = burn::backend::Autodiff<Backend>;

/// The default device (GPU 0 on CUDA).
pub fn device() -> burn::tensor::Device<Backend> {
    Default::default()
}

/// Device `index`: GPU `index` on CUDA; on the CPU every index is the one CPU device (several
/// data-parallel peers then share the CPU, which is only useful for testing).
#[cfg(feature = "cuda")]
pub fn device_at(index: usize) -> burn::tensor::Device<Backend> {
    burn::backend::cuda::CudaDevice::new(index)
}

/// Device `index`: GPU `index` on CUDA; on the CPU every index is the one CPU device (several
/// data-parallel peers then share the CPU, which is only useful for testing).
#[cfg(not(feature = "cuda"))]
pub fn device_at(_index: usize) -> burn::tensor::Device<Backend> {
    Default::default()
}

/// Memory and MFU figures for the step lines of a run on `gpu` (its index; unused on the CPU)
/// with `world` data-parallel peers: the process's peak RSS on the CPU (no MFU: a CPU's peak
/// FLOP/s is not known), used memory and the peak FLOP/s of known GPUs on CUDA.
pub fn step_meter(
    config: &graft_llama::LlamaConfig,
    seq_len: usize,
    world: usize,
    gpu: usize,
) -> crate::logging::StepMeter {
    use crate::logging::meter;
    let flops_per_token = Some(meter::flops_per_token(config, seq_len));
    if cfg!(feature = "cuda") {
        let peak = meter::gpu_name(gpu).and_then(|name| meter::peak_flops(&name));
        crate::logging::StepMeter {
            flops_per_token,
            peak_flops: peak.map(|p| p * world as f64),
            memory: Some(Box::new(move || meter::gpu_memory(gpu))),
        }
    } else {
        crate::logging::StepMeter {
            flops_per_token,
            peak_flops: None,
            memory: Some(Box::new(meter::process_memory)),
        }
    }
}
