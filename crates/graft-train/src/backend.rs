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
