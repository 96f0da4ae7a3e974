//! One optimizer step, logging, checkpoint save and resume of [`Trainer`].

use burn::module::AutodiffModule;
use graft_llama::BackwardOptions;

use super::*;
use crate::logging::console::{eval_table, StepLine};

impl<B: TrainBackend> Trainer<B> {
    /// One optimizer step over `grad_accum` micro-batches. A step whose loss or gradient norm is
    /// not finite is skipped (no update, moments untouched); too many in a row is an error.
    ///
    /// The backend RNG (LoRA dropout masks) is reseeded from `(seed, step, rank)` first: it is not
    /// part of a checkpoint, so this is what makes a resumed run draw the same masks as an
    /// uninterrupted one.
    pub fn train_step(&mut self, data: &mut dyn BatchSource) -> Result<StepReport> {
        let rank = self.grad_sync.as_ref().map_or(0, |s| s.rank());
        B::seed(
            &self.device,
            step_seed(self.config.seed, self.state.step, rank),
        );
        let lr = self.config.schedule.lr(self.state.lr_step);
        let model = self.model.take().expect("model is present between steps");
        let reduced = self
            .ensure_zero(&model)
            .and_then(|_| self.reduced_grads(&model, data));
        let (loss, grad_norm, grads) = match reduced {
            Ok(v) => v,
            Err(e) => {
                self.model = Some(model);
                return Err(e);
            }
        };
        self.state.step += 1;
        self.state.lr_step += 1;
        let skipped = !loss.is_finite() || !grad_norm.is_finite();
        if skipped {
            self.model = Some(model);
            self.state.consecutive_nonfinite += 1;
            self.state.total_nonfinite += 1;
            tracing::warn!(
                step = self.state.step,
                loss,
                grad_norm,
                "non-finite step skipped"
            );
            if self.state.consecutive_nonfinite >= self.config.max_nonfinite_steps {
                return Err(TrainError::NonFinite {
                    count: self.state.consecutive_nonfinite,
                    step: self.state.step,
                });
            }
        } else {
            self.state.consecutive_nonfinite = 0;
            let model = self.optim.step(lr, model, grads);
            // sharded: every rank updated its own tensors; gather the others' (crate::zero)
            let (model, gathered) = self.gather_weights(model);
            self.model = Some(model);
            gathered?;
        }
        Ok(StepReport {
            step: self.state.step,
            lr,
            loss,
            grad_norm,
            skipped,
        })
    }

    /// The step's loss, global gradient norm (before clipping) and clipped gradients, averaged
    /// over the data-parallel peers: all of them, or this rank's shard with ZeRO (see
    /// [`crate::zero`]).
    fn reduced_grads(
        &mut self,
        model: &Llama<B>,
        data: &mut dyn BatchSource,
    ) -> Result<(f64, f64, GradientsParams)> {
        if self.zero.as_ref().is_some_and(|z| z.stage == 2) {
            return self.reduced_grads_stage2(model, data);
        }
        let mut acc = GradAccumulator::new();
        let loss = self.accumulate(model, data, &mut |_, grads| {
            acc.accumulate(model, grads);
            Ok(())
        })?;
        let (loss, mut grads) = match self.grad_sync.as_mut() {
            Some(sync) => sync.sync(model, loss, acc.into_grads())?,
            None => (loss, acc.into_grads()),
        };
        let grad_norm = if self.config.clip_norm > 0.0 {
            clip_global_norm::<B, _>(model, &mut grads, self.config.clip_norm)
        } else {
            global_grad_norm::<B, _>(model, &grads)
        };
        if let Some(zero) = self.zero.as_ref() {
            zero.retain_owned(&mut grads); // stage 1: update only this rank's tensors
        }
        Ok((loss, grad_norm, grads))
    }

    /// Forward/backward of every micro-batch, handing each one's gradients to `sink`; returns
    /// Σ loss/grad_accum.
    pub(super) fn accumulate(
        &mut self,
        model: &Llama<B>,
        data: &mut dyn BatchSource,
        sink: &mut dyn FnMut(&mut Self, GradientsParams) -> Result<()>,
    ) -> Result<f64> {
        let accum = self.config.grad_accum;
        // every data-parallel peer takes a micro-batch of the same shape: count them all
        let peers = self.grad_sync.as_ref().map_or(1, |s| s.world_size()) as u64;
        let mut loss_sum = 0.0;
        let rank = self.grad_sync.as_ref().map_or(0, |s| s.rank());
        for micro in 0..accum {
            let batch = data.next_batch()?;
            let tokens = self.tokens(batch)?;
            self.state.tokens_seen += tokens.shape().num_elements() as u64 * peers;
            let options = BackwardOptions {
                scale: 1.0 / accum as f64,
                ignore_index: graft_llama::IGNORE_INDEX,
                checkpointing: self.config.activation_checkpointing,
                seed: step_seed(self.config.seed, self.state.step, rank) ^ micro as u64,
            };
            let (loss, grads) =
                graft_llama::loss_and_grads(model, tokens.clone(), tokens, &options);
            loss_sum += crate::scalar::scalar(loss);
            sink(self, grads)?;
        }
        Ok(loss_sum)
    }

    /// A micro-batch as a `[batch, seq]` Int tensor, after checking its shape.
    fn tokens(&self, batch: TokenBatch) -> Result<Tensor<B, 2, Int>> {
        let shape = [batch.batch_size, batch.seq_len];
        if shape != self.config.micro_batch || batch.tokens.len() != shape[0] * shape[1] {
            return Err(TrainError::Shape {
                what: "micro-batch".into(),
                expected: self.config.micro_batch.to_vec(),
                actual: vec![batch.batch_size, batch.seq_len, batch.tokens.len()],
            });
        }
        Ok(Tensor::from_data(
            TensorData::new(batch.tokens, shape),
            &self.device,
        ))
    }

    /// Log the step's scalars and the token throughput since the last log.
    pub(super) fn log(
        &mut self,
        r: &StepReport,
        data: &dyn BatchSource,
        last: &mut (Instant, u64),
    ) -> Result<()> {
        let elapsed = last.0.elapsed().as_secs_f64().max(1e-9);
        let tokens_per_s = (self.state.tokens_seen - last.1) as f64 / elapsed;
        *last = (Instant::now(), self.state.tokens_seen);
        let line = StepLine {
            step: r.step,
            total_steps: self.config.schedule.total_steps,
            loss: r.loss,
            lr: r.lr,
            grad_norm: r.grad_norm,
            tokens_per_s,
            memory: self.meter.memory.as_mut().and_then(|probe| probe()),
            mfu: self.meter.mfu(tokens_per_s),
        };
        tracing::info!("{line}");
        let Some(logger) = self.logger.as_mut() else {
            return Ok(());
        };
        for (tag, v) in [
            ("train/loss", r.loss),
            ("train/lr", r.lr),
            ("train/grad_norm", r.grad_norm),
            ("train/tokens_per_s", tokens_per_s),
        ] {
            logger.scalar(tag, v, r.step)?;
        }
        for (source, tokens) in data.tokens_per_source() {
            logger.scalar(
                &format!("train/tokens_seen/{source}"),
                tokens as f64,
                r.step,
            )?;
        }
        for (source, epochs) in data.epochs_per_source() {
            logger.scalar(&format!("train/epochs/{source}"), epochs, r.step)?;
        }
        logger.flush()
    }

    /// Run the evaluator if one is set and `step` is an evaluation step; log what it returns.
    pub(super) fn maybe_evaluate(&mut self, step: u64) -> Result<()> {
        let last = step == self.config.steps;
        let Some((every, evaluator)) = self.evaluator.as_mut() else {
            return Ok(());
        };
        if !(last || (*every > 0 && step.is_multiple_of(*every))) {
            return Ok(());
        }
        let model = self
            .model
            .as_ref()
            .expect("model is present between steps")
            .valid();
        let scalars = evaluator.evaluate(&model)?;
        if !scalars.is_empty() {
            tracing::info!("{}", eval_table(step, &scalars));
        }
        let Some(logger) = self.logger.as_mut() else {
            return Ok(());
        };
        for (tag, value) in &scalars {
            logger.scalar(tag, *value, step)?;
        }
        logger.flush()
    }

    /// Write a checkpoint of the current step (model as an HF directory, optimizer, state), every
    /// trainable tensor in the precision it is trained in (see [`crate::precision`]).
    pub fn save_checkpoint(&mut self, data: &dyn BatchSource) -> Result<Checkpoint> {
        let dir = self
            .checkpoints
            .clone()
            .ok_or_else(|| TrainError::Config("no run directory set: call with_run_dir".into()))?;
        self.state.data_cursor = data.cursor()?;
        self.state.tokens_per_source = data.tokens_per_source();
        let step = self.state.step;
        let rank = self.grad_sync.as_ref().map_or(0, |s| s.rank());
        let layout = self.optimizer_layout()?; // every rank of a sharded run takes part
        let tmp = dir.tmp_path(step);
        let opt_path = tmp.join(crate::checkpoint::OPTIMIZER_FILE);
        let files = HfDirFiles {
            config: self.model_config.clone(),
            generation_config: None,
            tokenizer_dir: self.tokenizer_dir.clone(),
        };
        let model = self.model();
        // every weight in the precision it is trained in (see crate::precision)
        let options = ExportOptions {
            dtype: crate::precision::weights_dtype(model),
            force: true,
            ..Default::default()
        };
        let write_model = |out: &Path| -> Result<()> {
            if graft_llama::lora::has_adapters(model) {
                // LoRA: the checkpoint holds the adapter only (see crate::lora).
                return crate::lora::write_adapter_checkpoint(model, out, &files);
            }
            graft_llama::export::write_hf_dir(
                out,
                &files,
                &mut ModelSource::new(model),
                &options,
                &mut |_, _| {},
            )
            .map(|_| ())
            .map_err(|e| TrainError::Model(format!("writing checkpoint weights: {e}")))
        };
        // rank 0: the directory, the model (written first: it replaces the directory's files)
        // and the optimizer file's header; then every rank writes its optimizer tensors
        let prepared = match rank {
            0 => dir
                .begin(step)
                .and_then(|_| write_model(&tmp))
                .and_then(|_| crate::optim_file::create_state_file(&opt_path, &layout)),
            _ => Ok(()),
        };
        self.write_optimizer_part(prepared, &opt_path, &layout)?;
        if rank != 0 {
            // a sharded run's other ranks wrote their part; rank 0 finishes the checkpoint
            return Ok(Checkpoint {
                step,
                path: dir.root().join(format!("step-{step}")),
            });
        }
        dir.commit(step, &tmp, &self.state, self.config.keep_last)
    }

    /// Continue from the newest checkpoint in the run directory, if any: weights, optimizer
    /// moments, step/tokens/counters and the data stream's position. Returns its step.
    ///
    /// With data-parallel peers every rank calls this, and the ranks then check that they agree
    /// on the step and on a checksum of the weights (an error names the ranks that differ).
    pub fn resume(&mut self, data: &mut dyn BatchSource) -> Result<Option<u64>> {
        let resumed = self.resume_local(data)?;
        self.check_ranks_agree()?;
        Ok(resumed)
    }

    fn resume_local(&mut self, data: &mut dyn BatchSource) -> Result<Option<u64>> {
        let Some(dir) = self.checkpoints.clone() else {
            return Ok(None);
        };
        // rank 0 alone removes leftovers of interrupted saves (ranks racing to remove the same
        // directory would fail); the others only look at complete checkpoints
        let rank = self.grad_sync.as_ref().map_or(0, |s| s.rank());
        let latest = match rank {
            0 => dir.latest()?,
            _ => dir.list()?.pop(),
        };
        let Some(ckpt) = latest else {
            return Ok(None);
        };
        let state = ckpt.read_state()?;
        if state.version != STATE_VERSION {
            return Err(TrainError::Checkpoint {
                path: ckpt.path.clone(),
                message: format!(
                    "training state version {} is not supported (expected {STATE_VERSION})",
                    state.version
                ),
            });
        }
        let mut model = self.model.take().expect("model is present between steps");
        let loaded = crate::lora::load_checkpoint_model(&mut model, &ckpt.path);
        self.model = Some(model);
        loaded.map_err(|e| {
            TrainError::Model(format!("loading checkpoint {}: {e}", ckpt.path.display()))
        })?;
        let path = ckpt.optimizer_path();
        let optim = self.read_optimizer(&path)?;
        check_state_matches::<B, _>(&optim, self.model()).map_err(|e| TrainError::Checkpoint {
            path: path.clone(),
            message: e.to_string(),
        })?;
        self.optim.set_state(optim);
        data.restore(&state.data_cursor)?;
        self.state = state;
        tracing::info!(step = self.state.step, path = %ckpt.path.display(), "resumed");
        Ok(Some(self.state.step))
    }
}

/// The backend-RNG seed of the step after `step` on `rank`: SplitMix64 of the three, so that
/// neighbouring steps and ranks get unrelated streams.
pub(crate) fn step_seed(seed: u64, step: u64, rank: usize) -> u64 {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    mix(mix(mix(seed) ^ step) ^ rank as u64)
}
