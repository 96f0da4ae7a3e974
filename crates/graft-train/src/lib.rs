//! graft-train: the training loop of graft and its parts — recipe, learning-rate schedule, AdamW,
//! global-norm clipping, checkpoints and TensorBoard logging — and [`run::Run`], which trains a
//! recipe end to end (model resolution, data preparation, one or several devices and nodes).

pub mod backend;
pub mod checkpoint;
pub mod clip;
pub mod error;
pub mod eval;
pub mod grad_accum;
pub mod logging;
pub mod lora;
pub mod model;
pub mod optim;
pub mod optim_file;
pub mod optim_state;
pub mod overrides;
pub mod parallel;
pub mod periodic_eval;
pub mod plan;
pub mod precision;
pub mod recipe;
pub mod run;
pub mod scalar;
pub mod schedule;
pub mod source;
pub mod state;
pub mod synthesize;
pub mod trainer;
pub mod zero;

pub use checkpoint::{Checkpoint, CheckpointDir};
pub use error::{Result, ResultExt, TrainError};
pub use grad_accum::GradAccumulator;
pub use optim::{AdamW, AdamWConfig, ParamState};
pub use periodic_eval::{Evaluator, PeriodicEval};
pub use recipe::{Method, ModelDtype, Recipe};
pub use run::{Observer, Run, RunOutcome};
pub use schedule::WarmupCosine;
pub use source::{BatchSource, TokenBatch, VecSource};
pub use state::TrainingState;
pub use trainer::{StepReport, TrainConfig, Trainer};

#[cfg(test)]
mod checkpoint_tests;
#[cfg(test)]
mod optim_tests;
#[cfg(test)]
mod toy;
