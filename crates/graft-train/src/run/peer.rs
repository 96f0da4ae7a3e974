//! Training on one device, or data-parallel on several (one peer thread per device, see
//! `crate::parallel` and docs/distributed.md).
//!
//! Every peer builds its own replica, reads its own slice of the data (`TrainStream` rank `r` of
//! `world`: global sequence `g` goes to rank `g % world`) and runs the recipe's `grad_accum`
//! micro-batches per step (`grad_accum` is per device, as in torchtune: the global batch is
//! `micro_batch_size × grad_accum × devices`); the gradients and the loss are averaged over the
//! peers after each step's backward passes, which makes the run equal (up to float rounding) to a
//! one-device run with `devices` times the micro-batches.
//! Rank 0 alone logs (TensorBoard, `scalars.tsv`, one line per logged step), shows progress,
//! evaluates and saves checkpoints; every rank resumes from rank 0's checkpoint (the data cursor
//! is the same on every rank).

use std::path::Path;
use std::sync::{Arc, Mutex};

use burn::tensor::Device;
use graft_data::{PreparedData, StreamOptions, TextTokenizer, TrainStream};

use super::observer::{CountingSource, ObservedLogger, Observer, TrainStart};
use crate::backend::{self, Backend, TrainBackend};
use crate::error::{error_chain, Result, ResultExt};
use crate::logging::{curves, MultiLogger, TensorBoardLogger, TextLogger};
use crate::model::{ModelOrigin, ModelSpec};
use crate::parallel::{run_data_parallel, DataParallel, ParallelConfig};
use crate::{BatchSource, PeriodicEval, Recipe, TrainConfig, TrainError, Trainer};

/// Everything the peers share: the resolved recipe, model and data, and the loop settings.
pub struct Job<'a> {
    pub recipe: &'a Recipe,
    /// The recipe file (relative paths, error messages).
    pub recipe_path: &'a Path,
    /// Continue from the run directory's newest checkpoint.
    pub resume: bool,
    /// Told about rank 0's progress.
    pub observer: Arc<dyn Observer>,
    pub run_dir: &'a Path,
    pub model: ModelSpec,
    pub data: Arc<PreparedData>,
    /// Taken by rank 0 for the evaluator's choice tasks.
    pub tokenizer: Mutex<Option<TextTokenizer>>,
    /// Loop settings; `grad_accum` is per device.
    pub config: TrainConfig,
    /// The first device's index (the GPU whose memory and FLOP/s the step lines report).
    pub first_device: usize,
    /// Steps of the whole run (`config.steps` is lower with --stop-after).
    pub total_steps: u64,
}

/// One peer: its rank among `world` peers and its device.
struct Peer {
    rank: usize,
    world: usize,
    device: Device<Backend>,
}

impl Job<'_> {
    /// Train on `devices` (one or more); returns the step the run ended at.
    pub fn run(&self, devices: Vec<Device<Backend>>, parallel: &ParallelConfig) -> Result<u64> {
        // the backend RNG is process-wide: peers build their models one at a time
        let build_lock = Mutex::new(());
        if parallel.world_size() == 1 {
            if self.config.zero_stage > 0 {
                // as DeepSpeed and torchtitan with a world size of 1: one rank owns every shard
                tracing::info!(
                    zero_stage = self.config.zero_stage,
                    "one data-parallel rank: nothing to shard, the optimizer state and gradients \
                     are held whole (the same as train.zero_stage = 0)"
                );
            }
            let peer = Peer {
                rank: 0,
                world: 1,
                device: devices[0].clone(),
            };
            return self.run_peer(peer, None, &build_lock);
        }
        let grad_accum = self.config.grad_accum;
        tracing::info!(
            devices = devices.len(),
            world = parallel.world_size(),
            grad_accum_per_device = grad_accum,
            global_batch = self.recipe.train.micro_batch_size * grad_accum * parallel.world_size(),
            "data-parallel training"
        );
        // the first error in time is the cause; the other peers then fail in the collective
        let first_error: Mutex<Option<TrainError>> = Mutex::new(None);
        let result = run_data_parallel::<Backend, _, _>(parallel, &devices, |dp| {
            let local = dp.rank() % devices.len();
            let peer = Peer {
                rank: dp.rank(),
                world: dp.world_size(),
                device: devices[local].clone(),
            };
            self.run_peer(peer, Some(dp), &build_lock).map_err(|e| {
                let message = error_chain(&e);
                if let Ok(mut first) = first_error.lock() {
                    first.get_or_insert(e);
                }
                TrainError::Config(message)
            })
        });
        match result {
            Ok(steps) => Ok(steps[0]),
            Err(e) => {
                let first = first_error.lock().ok().and_then(|mut f| f.take());
                Err(first.unwrap_or(e))
            }
        }
    }

    /// Build this peer's replica, resume it if asked, train it.
    fn run_peer(
        &self,
        peer: Peer,
        dp: Option<DataParallel<Backend>>,
        build_lock: &Mutex<()>,
    ) -> Result<u64> {
        let model = {
            let _one_at_a_time = build_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.model.build::<TrainBackend>(&peer.device)?
        };
        let model = match (&dp, &self.model.origin) {
            // random init: every replica takes rank 0's weights exactly
            (Some(dp), ModelOrigin::Init(_)) => dp.sync_params::<TrainBackend, _>(model)?,
            _ => model,
        };
        // LoRA (train.method = "lora"): freeze the base, attach the [lora] adapters (seeded, the
        // same on every peer); checkpoints then hold the adapter only (crate::lora).
        let model = crate::lora::prepare_model(model, self.recipe)?;
        let mut stream = TrainStream::new(
            self.data.clone(),
            StreamOptions {
                batch_size: self.recipe.train.micro_batch_size,
                rank: peer.rank,
                world_size: peer.world,
            },
        )
        .map_err(|e| TrainError::Data(e.to_string()))?;
        let mut trainer = Trainer::new(
            model,
            self.model.config.clone(),
            self.config.clone(),
            peer.device.clone(),
        )
        .with_run_dir(self.run_dir)?;
        let observer = if peer.rank == 0 {
            self.observer.train_started(&TrainStart {
                total_steps: self.total_steps,
                stop_step: self.config.steps,
                tokens_per_step: self.recipe.tokens_per_step(),
            });
            trainer = self.primary_extras(trainer, peer.device.clone())?;
            let (llama, seq_len) = (&self.model.config.llama, self.recipe.data.seq_len);
            let meter = backend::step_meter(llama, seq_len, peer.world, self.first_device);
            trainer = trainer.with_meter(meter);
            Some(self.observer.clone())
        } else {
            None
        };
        if let Some(dp) = dp {
            trainer = trainer.with_grad_sync(Box::new(dp));
        }
        let result = self.train(&mut trainer, &mut stream, observer.clone(), &peer);
        if let Some(observer) = observer {
            observer.train_ended();
        }
        result?;
        Ok(trainer.state().step)
    }

    /// Resume if asked, then run the loop (rank 0 reports the tokens it hands out).
    fn train(
        &self,
        trainer: &mut Trainer<TrainBackend>,
        stream: &mut TrainStream,
        observer: Option<Arc<dyn Observer>>,
        peer: &Peer,
    ) -> Result<()> {
        self.resume(trainer, stream, observer.as_deref(), peer.rank)?;
        let mut counting;
        let source: &mut dyn BatchSource = match observer {
            Some(observer) => {
                counting = CountingSource {
                    inner: stream,
                    observer,
                    peers: peer.world as u64,
                };
                &mut counting
            }
            None => stream,
        };
        trainer.run(source).context_with(|| "training".into())?;
        Ok(())
    }

    /// Rank 0's loggers (TensorBoard, and `scalars.tsv` for the curves), evaluator and
    /// tokenizer files.
    fn primary_extras(
        &self,
        trainer: Trainer<TrainBackend>,
        device: Device<Backend>,
    ) -> Result<Trainer<TrainBackend>> {
        let logger = MultiLogger(vec![
            Box::new(TensorBoardLogger::new(&self.run_dir.join("tensorboard"))?),
            Box::new(TextLogger::new(&self.run_dir.join(curves::SCALARS_FILE))?),
        ]);
        let tokenizer = self
            .tokenizer
            .lock()
            .ok()
            .and_then(|mut t| t.take())
            .ok_or_else(|| {
                TrainError::Config("the tokenizer was already taken by another rank 0".into())
            })?;
        let evaluator = evaluator(self.recipe, self.data.clone(), tokenizer, device)?;
        Ok(trainer
            .with_logger(Box::new(ObservedLogger {
                inner: Box::new(logger),
                observer: self.observer.clone(),
            }))
            .with_tokenizer_dir(
                self.model
                    .tokenizer
                    .dir(self.recipe_path)
                    .map_err(|e| TrainError::Data(e.to_string()))?,
            )
            .with_evaluator(self.recipe.train.eval_every, Box::new(evaluator)))
    }

    /// With --resume, continue from the run's newest checkpoint (every rank reads rank 0's).
    fn resume(
        &self,
        trainer: &mut Trainer<TrainBackend>,
        stream: &mut TrainStream,
        observer: Option<&dyn Observer>,
        rank: usize,
    ) -> Result<()> {
        if !self.resume {
            return Ok(());
        }
        let run = self.run_dir.display();
        match trainer.resume(stream)? {
            Some(step) => {
                if let Some(observer) = observer {
                    observer.resumed(step);
                }
                if rank == 0 {
                    tracing::info!(step, run = %run, "resuming");
                }
            }
            None if rank == 0 => {
                tracing::info!(run = %run, "--resume: no checkpoint yet, starting at step 0")
            }
            None => {}
        }
        Ok(())
    }
}

/// Held-out loss per source, plus the recipe's multiple-choice tasks.
fn evaluator(
    recipe: &Recipe,
    data: Arc<PreparedData>,
    tokenizer: TextTokenizer,
    device: Device<Backend>,
) -> Result<PeriodicEval<Backend>> {
    let eval = PeriodicEval::<Backend>::new(
        data,
        recipe.train.micro_batch_size,
        recipe.train.eval_batches,
        device,
    )?;
    let tasks = recipe
        .eval
        .as_ref()
        .map(|e| e.tasks.clone())
        .unwrap_or_default();
    if tasks.is_empty() {
        return Ok(eval);
    }
    Ok(eval.with_tasks(&tasks, tokenizer)?)
}
