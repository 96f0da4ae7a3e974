//! The parts of [`Trainer`] that sharded training (`zero_stage` 1 or 2, [`crate::zero`]) changes:
//! the stage-2 gradient reduction, the weight all-gather and the optimizer checkpoint, which every
//! rank writes its part of.

use crate::optim_file::{
    read_state_file, state_entries, write_state_tensors, StateEntry, StateLayout,
};
use crate::zero::Zero;

use super::*;

impl<B: TrainBackend> Trainer<B> {
    /// Set up sharding at the first step or resume: with `zero_stage` > 0 and several peers.
    pub(super) fn ensure_zero(&mut self, model: &Llama<B>) -> Result<()> {
        let stage = self.config.zero_stage;
        let Some(sync) = self.grad_sync.as_ref() else {
            return Ok(());
        };
        if self.zero.is_some() || stage == 0 || sync.world_size() < 2 {
            return Ok(());
        }
        let Some(sync) = self.grad_sync.as_mut() else {
            return Ok(());
        };
        if sync.collectives().is_none() {
            tracing::warn!(
                stage,
                "this gradient sync cannot shard: train.zero_stage ignored"
            );
            return Ok(());
        }
        if stage > 2 {
            return Err(TrainError::Config(format!(
                "train.zero_stage = {stage}: must be 0, 1 or 2"
            )));
        }
        let zero = Zero::new::<B, _>(stage, model, sync.world_size(), sync.rank())?
            .with_bucket_elems(self.zero_bucket_elems);
        tracing::info!(
            stage,
            rank = sync.rank(),
            shard_elems = zero.plan().shard_numel(sync.rank()),
            "sharded optimizer state (ZeRO)"
        );
        self.zero = Some(zero);
        Ok(())
    }

    /// Stage 2: every micro-batch's gradients reduce-scattered into this rank's shard, the mean
    /// loss, the global norm across shards and the clipped shard.
    pub(super) fn reduced_grads_stage2(
        &mut self,
        model: &Llama<B>,
        data: &mut dyn BatchSource,
    ) -> Result<(f64, f64, GradientsParams)> {
        let device = self.device.clone();
        let loss = self.accumulate(model, data, &mut |t, grads| {
            let (Some(zero), Some(sync)) = (t.zero.as_mut(), t.grad_sync.as_mut()) else {
                return Err(TrainError::Config("stage 2 without peers".into()));
            };
            zero.reduce_scatter_micro(coll(sync)?, grads, &device)
        })?;
        let (Some(zero), Some(sync)) = (self.zero.as_mut(), self.grad_sync.as_mut()) else {
            return Err(TrainError::Config("stage 2 without peers".into()));
        };
        let coll = coll(sync)?;
        let mut grads = zero.take_mean_grads();
        let loss = coll.mean(loss)?;
        let max = self.config.clip_norm;
        let norm = zero.clip_sharded::<B, _>(coll, model, &mut grads, max, &device)?;
        Ok((loss, norm, grads))
    }

    /// After the update: with sharding, all-gather the weights other ranks updated.
    pub(super) fn gather_weights(&mut self, model: Llama<B>) -> (Llama<B>, Result<()>) {
        let (Some(zero), Some(sync)) = (self.zero.as_ref(), self.grad_sync.as_mut()) else {
            return (model, Ok(()));
        };
        match coll(sync) {
            Ok(c) => zero.gather_weights::<B, _>(c, model, &self.device),
            Err(e) => (model, Err(e)),
        }
    }

    /// Every parameter with optimizer state, over all ranks (with sharding, the owners' counts
    /// are shared through an all-reduce).
    fn optimizer_entries(&mut self) -> Result<Vec<StateEntry>> {
        let (Some(zero), Some(sync)) = (self.zero.as_ref(), self.grad_sync.as_mut()) else {
            return Ok(state_entries(&self.optim));
        };
        let params = zero.params();
        let mut mine = vec![0f32; 2 * params.len()];
        for (i, p) in params.iter().enumerate() {
            if let Some(st) = self.optim.state().get(&p.name) {
                if st.step >= 1 << 24 {
                    return Err(TrainError::OptimizerState {
                        param: p.name.clone(),
                        message: format!("{} updates: more than a sharded save can count", st.step),
                    });
                }
                mine[2 * i] = st.step as f32;
                mine[2 * i + 1] = f32::from(st.master.is_some());
            }
        }
        let n = mine.len();
        let local = Tensor::from_data(TensorData::new(mine, [n]), &self.device);
        let all = coll(sync)?.all_reduce_sum(local)?;
        let all = all
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| {
                TrainError::Config(format!("reading the shared optimizer counts: {e:?}"))
            })?;
        Ok(params
            .iter()
            .enumerate()
            .filter(|(i, _)| all[2 * i] > 0.0)
            .map(|(i, p)| StateEntry {
                name: p.name.clone(),
                shape: p.shape.clone(),
                step: all[2 * i] as u64,
                master: all[2 * i + 1] > 0.0,
            })
            .collect())
    }

    /// The layout of `optimizer.safetensors` (with sharding, every rank must call this: the
    /// owners' counts are shared).
    pub(super) fn optimizer_layout(&mut self) -> Result<StateLayout> {
        StateLayout::new(&self.optimizer_entries()?)
    }

    /// After rank 0 `prepared` the checkpoint directory and the file's header: every rank (all
    /// of them when sharded, else rank 0 alone) writes its tensors into `path`, between barriers.
    pub(super) fn write_optimizer_part(
        &mut self,
        prepared: Result<()>,
        path: &Path,
        layout: &StateLayout,
    ) -> Result<()> {
        let sharded = self.zero.is_some();
        self.barrier(sharded, prepared)?; // the file exists
        let result = write_state_tensors(path, layout, &self.optim);
        self.barrier(sharded, result) // every part is written and synced
    }

    /// With sharding, wait for every rank (after `result`, which is returned first if an error).
    fn barrier(&mut self, sharded: bool, result: Result<()>) -> Result<()> {
        result?;
        match (sharded, self.grad_sync.as_mut()) {
            (true, Some(sync)) => coll(sync)?.mean(0.0).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// Read this rank's part of the optimizer state of checkpoint file `path` (all of it without
    /// sharding), memory-mapped.
    pub(super) fn read_optimizer(
        &mut self,
        path: &Path,
    ) -> Result<std::collections::BTreeMap<String, crate::optim::ParamState<B::InnerBackend>>> {
        let model = self.model.take().expect("model is present between steps");
        let made = self.ensure_zero(&model);
        self.model = Some(model);
        made?;
        let zero = self.zero.as_ref();
        let keep = |name: &str| zero.is_none_or(|z| z.owns_name(name));
        read_state_file::<B::InnerBackend>(path, &self.device, &keep)
    }
}

/// The collectives of a sync that sharding was set up with.
fn coll<B: TrainBackend>(
    sync: &mut Box<dyn GradSync<B>>,
) -> Result<&mut dyn crate::parallel::Collectives<B::InnerBackend>> {
    sync.collectives()
        .ok_or_else(|| TrainError::Config("sharded training needs collectives".into()))
}

impl<B: TrainBackend> Trainer<B> {
    /// After resuming, with data-parallel peers: all ranks must hold the same step and weights
    /// (e.g. every node read the same run directory), else an error naming the ranks.
    pub(super) fn check_ranks_agree(&mut self) -> Result<()> {
        let checksum: f64 = self
            .model()
            .named_params()
            .into_iter()
            .map(|(_, t)| {
                let sum = match t {
                    graft_llama::ParamTensor::D1(t) => t.cast(burn::tensor::FloatDType::F32).sum(),
                    graft_llama::ParamTensor::D2(t) => t.cast(burn::tensor::FloatDType::F32).sum(),
                };
                sum.into_data()
                    .convert::<f64>()
                    .to_vec::<f64>()
                    .map_or(f64::NAN, |v| v[0])
            })
            .sum();
        let step = self.state.step;
        let Some(sync) = self.grad_sync.as_mut() else {
            return Ok(());
        };
        let (rank, world) = (sync.rank(), sync.world_size());
        let Some(coll) = sync.collectives() else {
            return Ok(());
        };
        let mut mine = vec![0f32; 2 * world];
        mine[2 * rank] = step as f32;
        mine[2 * rank + 1] = checksum as f32;
        let local = Tensor::from_data(TensorData::new(mine, [2 * world]), &self.device);
        let all = coll.all_reduce_sum(local)?;
        let all = all
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| TrainError::Config(format!("reading the ranks' resume checks: {e:?}")))?;
        let differ: Vec<String> = (1..world)
            .filter(|r| {
                all[2 * r].to_bits() != all[0].to_bits()
                    || all[2 * r + 1].to_bits() != all[1].to_bits()
            })
            .map(|r| {
                format!(
                    "rank {r} at step {} (weights checksum {})",
                    all[2 * r],
                    all[2 * r + 1]
                )
            })
            .collect();
        if differ.is_empty() {
            return Ok(());
        }
        Err(TrainError::Config(format!(
            "data parallel: after resuming, rank 0 is at step {} (weights checksum {}) but {}. Hint: every \
             node must resume from the same run directory (--out on a shared filesystem) with the same recipe",
            all[0],
            all[1],
            differ.join(", ")
        )))
    }
}
