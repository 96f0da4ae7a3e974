//! Sharded data parallelism (ZeRO stages 1 and 2, `train.zero_stage`), as a wrapper around the
//! optimizer step: the loop stays the one of [`crate::Trainer`]; what changes is which rank owns
//! which tensor's optimizer state and gradient.
//!
//! # Who owns what
//! [`ShardPlan`] gives every trainable tensor, in module order, to one rank: the ranks take
//! consecutive runs of whole tensors, balanced by element count. Whole tensors (rather than
//! DeepSpeed's flat equal ranges or FSDP2's per-tensor dim-0 shards) keep every per-tensor
//! computation — the AdamW update with its weight decay rule and f32 master copy, the tensor's
//! gradient norm — exactly the one of stage 0, so sharded runs train bitwise the same model, and
//! the optimizer checkpoint stays one full-shape tensor per name. Consecutive runs make each
//! rank's part of a gradient bucket one range, so a bucket is one reduce-scatter with per-rank
//! counts. The price is balance: a rank may hold up to one tensor more than `1/N` (for
//! Llama-3-8B on 4 ranks the embedding, 6.5% of the parameters, is the largest tensor).
//!
//! # A step
//! - Stage 1: gradients are all-reduced as at stage 0 and clipped; each rank drops the gradients
//!   it does not own, AdamW updates (and holds state for) its tensors only, and the updated weights
//!   are all-gathered bucket by bucket.
//! - Stage 2: after each micro-batch the gradients are widened to f32 and reduce-scattered in
//!   buckets of consecutive tensors; each rank accumulates only its own tensors' sums. The global
//!   norm is the norm of the per-tensor norms, which the owners compute and an all-reduce (sum,
//!   other ranks contribute 0) shares, so clipping is identical to stage 0. Then the same update
//!   and all-gather as stage 1.
//!
//! With one micro-batch per step stages 1 and 2 are bit-identical to stage 0; with several, stage
//! 2 sums each micro-batch over the ranks before summing the micro-batches (DeepSpeed's order),
//! which differs from stage 0 by float rounding only.

// Burn's `slice` takes one range per dimension: `[a..b]` on a 1-D tensor is not a lone range
#![allow(clippy::single_range_in_vec_init)]

use std::collections::HashMap;
use std::ops::Range;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, FloatDType, Tensor};

use crate::error::{Result, TrainError};
use crate::parallel::Collectives;

/// Elements per gradient or weight bucket (128 MB of f32), as DDP's and DeepSpeed's buckets.
pub const DEFAULT_BUCKET_ELEMS: usize = 1 << 25;

/// Which rank owns which trainable tensor (indices in module order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    numels: Vec<usize>,
    owners: Vec<usize>,
    world: usize,
}

impl ShardPlan {
    /// Tensors of `numels` elements over `world` ranks: tensor `i` goes to the rank whose equal
    /// share of the total holds the tensor's middle element, so ranks own consecutive runs.
    pub fn new(numels: &[usize], world: usize) -> Self {
        let world = world.max(1);
        let total: usize = numels.iter().sum::<usize>().max(1);
        let mut before = 0usize;
        let owners = numels
            .iter()
            .map(|&n| {
                let middle = before as u128 * 2 + n as u128;
                before += n;
                ((middle * world as u128 / (2 * total as u128)) as usize).min(world - 1)
            })
            .collect();
        Self {
            numels: numels.to_vec(),
            owners,
            world,
        }
    }

    /// Number of ranks.
    pub fn world(&self) -> usize {
        self.world
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.numels.len()
    }

    /// True when there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.numels.is_empty()
    }

    /// The rank that owns tensor `i`.
    pub fn owner(&self, i: usize) -> usize {
        self.owners[i]
    }

    /// Elements of the tensors `rank` owns.
    pub fn shard_numel(&self, rank: usize) -> usize {
        (0..self.len())
            .filter(|&i| self.owners[i] == rank)
            .map(|i| self.numels[i])
            .sum()
    }

    /// Consecutive tensors grouped into buckets of at most `max_elems` elements (a larger tensor
    /// is a bucket of its own); `split` says where a bucket must end (a change of dtype).
    pub fn buckets(&self, max_elems: usize, split: impl Fn(usize) -> bool) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let (mut start, mut elems) = (0, 0);
        for i in 0..self.len() {
            if i > start && (elems + self.numels[i] > max_elems || split(i)) {
                out.push(start..i);
                (start, elems) = (i, 0);
            }
            elems += self.numels[i];
        }
        if start < self.len() {
            out.push(start..self.len());
        }
        out
    }

    /// Elements of `bucket` each rank owns (the counts of its reduce-scatter or all-gather).
    pub fn counts(&self, bucket: &Range<usize>) -> Vec<usize> {
        let mut counts = vec![0; self.world];
        for i in bucket.clone() {
            counts[self.owners[i]] += self.numels[i];
        }
        counts
    }
}

/// A trainable parameter: id, name, shape and dtype.
#[derive(Debug, Clone)]
pub struct TrainableParam {
    /// Burn's id of the parameter (this process only).
    pub id: ParamId,
    /// The optimizer state's name ([`crate::optim_state::param_name`]).
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Storage dtype of the weight.
    pub dtype: DType,
}

impl TrainableParam {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The trainable (require-grad) float parameters of `module`, in module order.
pub fn trainable_params<AB: AutodiffBackend, M: AutodiffModule<AB>>(
    module: &M,
) -> Vec<TrainableParam> {
    struct V(Vec<String>, Vec<TrainableParam>);
    impl<AB: AutodiffBackend> ModuleVisitor<AB> for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
            let t = param.val();
            if t.is_require_grad() {
                self.1.push(TrainableParam {
                    id: param.id,
                    name: crate::optim_state::param_name(&self.0.join(".")),
                    shape: t.shape().to_vec(),
                    dtype: t.dtype(),
                });
            }
        }
    }
    let mut v = V(Vec::new(), Vec::new());
    module.visit(&mut v);
    v.1
}

/// Sharding of one rank: the plan, this rank and (stage 2) its accumulating gradient sums.
#[derive(Debug)]
pub struct Zero<B: Backend> {
    /// 1 or 2.
    pub stage: u8,
    params: Vec<TrainableParam>,
    index: HashMap<ParamId, usize>,
    plan: ShardPlan,
    rank: usize,
    bucket_elems: usize,
    sums: Vec<Option<Tensor<B, 1>>>,
}

/// Take parameter `p`'s gradient out of `grads`, flattened (any rank up to 4).
fn take_flat<B: Backend>(grads: &mut GradientsParams, p: &TrainableParam) -> Option<Tensor<B, 1>> {
    let n = p.numel();
    match p.shape.len() {
        1 => grads.remove::<B, 1>(p.id),
        2 => grads.remove::<B, 2>(p.id).map(|t| t.reshape([n])),
        3 => grads.remove::<B, 3>(p.id).map(|t| t.reshape([n])),
        4 => grads.remove::<B, 4>(p.id).map(|t| t.reshape([n])),
        _ => None,
    }
}

/// Register `flat` as parameter `p`'s gradient, in its shape.
fn put_flat<B: Backend>(grads: &mut GradientsParams, p: &TrainableParam, flat: Tensor<B, 1>) {
    let s = &p.shape;
    match s.len() {
        1 => grads.register(p.id, flat),
        2 => grads.register(p.id, flat.reshape([s[0], s[1]])),
        3 => grads.register(p.id, flat.reshape([s[0], s[1], s[2]])),
        _ => grads.register(p.id, flat.reshape([s[0], s[1], s[2], s[3]])),
    }
}

/// The f32 L2 norm of parameter `p`'s gradient, computed as [`crate::clip`] does (in its shape).
fn grad_norm<B: Backend>(grads: &GradientsParams, p: &TrainableParam) -> Option<Tensor<B, 1>> {
    fn norm<B: Backend, const D: usize>(g: Tensor<B, D>) -> Tensor<B, 1> {
        g.cast(FloatDType::F32).square().sum().sqrt()
    }
    match p.shape.len() {
        1 => grads.get::<B, 1>(p.id).map(norm),
        2 => grads.get::<B, 2>(p.id).map(norm),
        3 => grads.get::<B, 3>(p.id).map(norm),
        4 => grads.get::<B, 4>(p.id).map(norm),
        _ => None,
    }
}

impl<B: Backend> Zero<B> {
    /// Shard the trainable parameters of `module` over the ranks of `coll`.
    pub fn new<AB, M>(stage: u8, module: &M, world: usize, rank: usize) -> Result<Self>
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        let params = trainable_params::<AB, M>(module);
        if let Some(p) = params
            .iter()
            .find(|p| p.shape.is_empty() || p.shape.len() > 4)
        {
            return Err(TrainError::Config(format!(
                "train.zero_stage: parameter `{}` has {} dimensions; sharding handles 1 to 4",
                p.name,
                p.shape.len()
            )));
        }
        let numels: Vec<usize> = params.iter().map(TrainableParam::numel).collect();
        let index = params.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        Ok(Self {
            stage,
            sums: vec![None; params.len()],
            plan: ShardPlan::new(&numels, world),
            params,
            index,
            rank,
            bucket_elems: DEFAULT_BUCKET_ELEMS,
        })
    }

    /// Use buckets of at most `elems` elements.
    pub fn with_bucket_elems(mut self, elems: usize) -> Self {
        self.bucket_elems = elems.max(1);
        self
    }

    /// The plan.
    pub fn plan(&self) -> &ShardPlan {
        &self.plan
    }

    /// The trainable parameters, in plan order.
    pub fn params(&self) -> &[TrainableParam] {
        &self.params
    }

    /// Whether this rank owns the parameter named `name`.
    pub fn owns_name(&self, name: &str) -> bool {
        self.params
            .iter()
            .position(|p| p.name == name)
            .is_some_and(|i| self.plan.owner(i) == self.rank)
    }

    fn buckets(&self) -> Vec<Range<usize>> {
        let params = &self.params;
        self.plan.buckets(self.bucket_elems, |i| {
            params[i].dtype != params[i - 1].dtype
        })
    }

    /// Stage 1: drop the gradients of the tensors other ranks own.
    pub fn retain_owned(&self, grads: &mut GradientsParams) {
        for (i, p) in self.params.iter().enumerate() {
            if self.plan.owner(i) != self.rank {
                let _ = take_flat::<B>(grads, p);
            }
        }
    }

    /// Stage 2: reduce-scatter one micro-batch's gradients (widened to f32, bucket by bucket) and
    /// add this rank's part to its sums.
    pub fn reduce_scatter_micro(
        &mut self,
        coll: &mut dyn Collectives<B>,
        mut grads: GradientsParams,
        device: &B::Device,
    ) -> Result<()> {
        for bucket in self.buckets() {
            let flat: Vec<Tensor<B, 1>> = bucket
                .clone()
                .map(|i| {
                    let p = &self.params[i];
                    match take_flat::<B>(&mut grads, p) {
                        Some(g) if g.dtype() == DType::F32 => g,
                        Some(g) => g.cast(FloatDType::F32),
                        None => Tensor::zeros([p.numel()], (device, DType::F32)),
                    }
                })
                .collect();
            let counts = self.plan.counts(&bucket);
            let mine = coll.reduce_scatter_sum(Tensor::cat(flat, 0), &counts)?;
            let mut offset = 0;
            for i in bucket.filter(|&i| self.plan.owner(i) == self.rank) {
                let n = self.params[i].numel();
                let part = mine.clone().slice([offset..offset + n]);
                offset += n;
                self.sums[i] = Some(match self.sums[i].take() {
                    Some(sum) => sum + part,
                    None => part,
                });
            }
        }
        Ok(())
    }

    /// Stage 2: this rank's summed gradients divided by the number of ranks (the mean), as
    /// gradients of the parameters in their shapes; the sums are reset.
    pub fn take_mean_grads(&mut self) -> GradientsParams {
        let mut grads = GradientsParams::new();
        let world = self.plan.world() as f32;
        for (i, p) in self.params.iter().enumerate() {
            if let Some(sum) = self.sums[i].take() {
                put_flat(&mut grads, p, sum.div_scalar(world));
            }
        }
        grads
    }

    /// Stage 2: the global gradient norm from this rank's gradients and the other ranks' (the
    /// norm of the per-tensor norms, as [`crate::clip::global_grad_norm`]); clips this rank's
    /// gradients to `max_norm` (0: no clipping) as [`crate::clip::clip_global_norm`] does.
    pub fn clip_sharded<AB, M>(
        &self,
        coll: &mut dyn Collectives<B>,
        module: &M,
        grads: &mut GradientsParams,
        max_norm: f64,
        device: &B::Device,
    ) -> Result<f64>
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        if self.params.is_empty() {
            return Ok(0.0);
        }
        let norms: Vec<Tensor<B, 1>> = self
            .params
            .iter()
            .map(|p| {
                grad_norm::<B>(grads, p).unwrap_or_else(|| Tensor::zeros([1], (device, DType::F32)))
            })
            .collect();
        let norms = coll.all_reduce_sum(Tensor::cat(norms, 0))?;
        let norm = norms
            .square()
            .sum()
            .sqrt()
            .into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .map(|v| v[0])
            .unwrap_or(f64::NAN);
        if max_norm > 0.0 {
            crate::clip::clip_to_norm::<AB, M>(module, grads, norm, max_norm);
        }
        Ok(norm)
    }

    /// After this rank's update: all-gather the weights bucket by bucket, so every rank holds
    /// every updated weight (in the weights' own dtype). On a failed collective the module is
    /// returned as far as it got, with the error.
    pub fn gather_weights<AB, M>(
        &self,
        coll: &mut dyn Collectives<B>,
        module: M,
        device: &B::Device,
    ) -> (M, Result<()>)
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        let mut module = module;
        for bucket in self.buckets() {
            let mut mine = OwnedValues::<AB> {
                zero: self,
                bucket: bucket.clone(),
                values: Vec::new(),
            };
            module.visit(&mut mine);
            let dtype = self.params[bucket.start].dtype;
            let piece = match mine.values.is_empty() {
                true => Tensor::zeros([0], (device, dtype)),
                false => Tensor::cat(mine.values, 0),
            };
            let full = match coll.all_gather(piece, &self.plan.counts(&bucket)) {
                Ok(full) => full,
                Err(e) => return (module, Err(e)),
            };
            let mut replace = ReplaceWeights::<AB> {
                zero: self,
                bucket: bucket.clone(),
                full,
                offsets: bucket_offsets(&self.params, &bucket),
            };
            module = module.map(&mut replace);
        }
        (module, Ok(()))
    }
}

/// Start of each tensor of `bucket` in the gathered bucket: tensors grouped by owner rank in rank
/// order (the all-gather's order), module order within a rank.
fn bucket_offsets(params: &[TrainableParam], bucket: &Range<usize>) -> HashMap<usize, usize> {
    // owners are non-decreasing in module order, so rank order is module order
    let mut offset = 0;
    bucket
        .clone()
        .map(|i| {
            offset += params[i].numel();
            (i, offset - params[i].numel())
        })
        .collect()
}

/// Collects this rank's weights of one bucket, flattened, in module order.
struct OwnedValues<'a, AB: AutodiffBackend> {
    zero: &'a Zero<AB::InnerBackend>,
    bucket: Range<usize>,
    values: Vec<Tensor<AB::InnerBackend, 1>>,
}

impl<AB: AutodiffBackend> ModuleVisitor<AB> for OwnedValues<'_, AB> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        let Some(&i) = self.zero.index.get(&param.id) else {
            return;
        };
        if self.bucket.contains(&i) && self.zero.plan.owner(i) == self.zero.rank {
            let n = self.zero.params[i].numel();
            self.values.push(param.val().inner().reshape([n]));
        }
    }
}

/// Replaces the weights other ranks own in one bucket with their gathered values.
struct ReplaceWeights<'a, AB: AutodiffBackend> {
    zero: &'a Zero<AB::InnerBackend>,
    bucket: Range<usize>,
    full: Tensor<AB::InnerBackend, 1>,
    offsets: HashMap<usize, usize>,
}

impl<AB: AutodiffBackend> ModuleMapper<AB> for ReplaceWeights<'_, AB> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let Some(&i) = self.zero.index.get(&param.id) else {
            return param;
        };
        if !self.bucket.contains(&i) || self.zero.plan.owner(i) == self.zero.rank {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let p = &self.zero.params[i];
        let start = self.offsets[&i];
        let shape: [usize; D] = std::array::from_fn(|d| p.shape[d]);
        let value = self
            .full
            .clone()
            .slice([start..start + p.numel()])
            .reshape(shape);
        let mut tensor_new = Tensor::from_inner(value);
        if tensor.is_require_grad() {
            tensor_new = tensor_new.require_grad();
        }
        Param::from_mapped_value(id, tensor_new, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_own_consecutive_balanced_runs() {
        let plan = ShardPlan::new(&[10, 10, 10, 10, 40, 10, 10], 2);
        assert_eq!(plan.owners, [0, 0, 0, 0, 1, 1, 1]);
        assert_eq!((plan.shard_numel(0), plan.shard_numel(1)), (40, 60));
        let plan = ShardPlan::new(&[5; 8], 4);
        assert_eq!(plan.owners, [0, 0, 1, 1, 2, 2, 3, 3]);
        // more ranks than tensors: some ranks own nothing, nothing is lost
        let plan = ShardPlan::new(&[7, 3], 4);
        assert_eq!((0..4).map(|r| plan.shard_numel(r)).sum::<usize>(), 10);
        assert!(plan.owners.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn buckets_cover_every_tensor_once_and_count_per_rank() {
        let plan = ShardPlan::new(&[4, 4, 4, 20, 4, 4], 2);
        let buckets = plan.buckets(8, |_| false);
        assert_eq!(buckets, [0..2, 2..3, 3..4, 4..6]);
        let split = plan.buckets(100, |i| i == 3);
        assert_eq!(split, [0..3, 3..6]);
        let counts: Vec<usize> = buckets
            .iter()
            .map(|b| plan.counts(b).iter().sum())
            .collect();
        assert_eq!(counts, [8, 4, 20, 8]);
        assert_eq!(
            plan.counts(&(0..6)),
            [plan.shard_numel(0), plan.shard_numel(1)]
        );
    }
}
