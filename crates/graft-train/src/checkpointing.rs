//! Activation checkpointing, a type-level choice in Burn: `Autodiff<B, BalancedCheckpointing>`
//! recomputes memory-bound ops (norms, RoPE, softmax, SiLU, element-wise products) in the backward
//! pass instead of keeping their outputs, while `Autodiff<B>` (= `NoCheckpointing`) keeps
//! everything. Gradients are the same either way; only memory and time differ.
//!
//! A recipe picks one at run time (`train.activation_checkpointing`), so the CLI is compiled for
//! both and [`dispatch`] calls the right monomorphization of a [`TrainJob`]:
//!
//! ```text
//! struct Job { recipe: Recipe }
//! impl TrainJob<Backend> for Job {
//!     type Output = anyhow::Result<()>;
//!     fn run<AB: AutodiffBackend<InnerBackend = Backend, Device = Device<Backend>>>(self) -> Self::Output { /* Trainer::<AB>… */ }
//! }
//! dispatch::<Backend, _>(recipe.train.activation_checkpointing, Job { recipe })
//! ```

use burn::backend::Autodiff;
use burn::tensor::backend::{AutodiffBackend, Backend};

pub use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};

/// Training backend that keeps every activation for the backward pass.
pub type Plain<B> = Autodiff<B, NoCheckpointing>;

/// Training backend with Burn's balanced activation checkpointing.
pub type Checkpointed<B> = Autodiff<B, BalancedCheckpointing>;

/// Work that runs on any training backend over the compute backend `B` (a generic closure).
pub trait TrainJob<B: Backend> {
    /// What the job returns.
    type Output;
    /// Run the job on the training backend `AB`.
    fn run<AB: AutodiffBackend<InnerBackend = B, Device = B::Device>>(self) -> Self::Output;
}

/// Run `job` on [`Checkpointed<B>`] when `checkpointing` is set, else on [`Plain<B>`].
pub fn dispatch<B: Backend, J: TrainJob<B>>(checkpointing: bool, job: J) -> J::Output {
    if checkpointing {
        tracing::info!("activation checkpointing: on (Burn BalancedCheckpointing)");
        job.run::<Checkpointed<B>>()
    } else {
        job.run::<Plain<B>>()
    }
}
