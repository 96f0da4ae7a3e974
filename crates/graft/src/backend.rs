//! The compute backend the CLI runs on: Burn's pure-Rust CPU backend `flex` by default (f32),
//! or CUDA (bf16) with `--features cuda`.

#[cfg(not(feature = "cuda"))]
pub type Backend = burn::backend::Flex;
#[cfg(feature = "cuda")]
pub type Backend = burn::backend::Cuda<half::bf16, i32>;

/// The training backend: the compute backend under reverse-mode autodiff.
pub type TrainBackend = burn::backend::Autodiff<Backend>;

/// The device the CLI uses (GPU 0 on CUDA).
pub fn device() -> burn::tensor::Device<Backend> {
    Default::default()
}
