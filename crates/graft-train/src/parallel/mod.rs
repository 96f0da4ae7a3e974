//! Data parallelism over burn-collective: every peer (one thread per device, one or more
//! processes/nodes) trains a full replica on its own slice of the data; after the backward pass
//! of each optimizer step the gradients are all-reduced (mean) so every replica takes the same
//! AdamW step.
//!
//! # Semantics
//! Each peer accumulates `grad_accum` micro-batches with loss scaled by `1/grad_accum`, exactly
//! as a single-peer run does. The mean over `P` peers then gives
//! `Σ_all micro-batches ∇loss / (P · grad_accum)`: the gradient of a single peer running
//! `P · grad_accum` micro-batches. The reported loss is averaged the same way, and the gradient
//! norm and clipping are computed after the all-reduce, so they are the same on every peer and
//! equal to the single-peer values (up to float rounding of the sum). The gradients arrive as f32
//! sums whatever the parameters' dtype ([`crate::grad_accum`]), so the all-reduce runs in f32 (as
//! torchtitan's `reduce_dtype = float32`).
//!
//! # Order
//! Gradients are reduced in the module's visiting order (the same on every peer because the
//! architecture is the same), consecutive gradients concatenated into buckets of about 128 MB of
//! f32 (one all-reduce per bucket, as DDP), never by `ParamId`: ids are random per process,
//! so Burn's own `GradientsParams::all_reduce` (which sorts by id) would pair different tensors
//! across nodes that loaded the model separately.

use burn::collective::{self, CollectiveConfig, PeerId, ReduceOperation};
use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorPrimitive};

use crate::error::{Result, TrainError};

/// The per-step gradient synchronisation hook a [`crate::Trainer`] calls after accumulating a
/// step's micro-batches and before clipping.
pub trait GradSync<B: AutodiffBackend>: Send {
    /// Combine this peer's `(loss, grads)` with the other peers'; returns the global ones.
    fn sync(
        &mut self,
        model: &graft_llama::Llama<B>,
        loss: f64,
        grads: GradientsParams,
    ) -> Result<(f64, GradientsParams)>;
    /// Number of peers (1 for no parallelism).
    fn world_size(&self) -> usize;
    /// This peer's rank in `0..world_size`.
    fn rank(&self) -> usize;
    /// The collectives sharded training ([`crate::zero`]) is built on; `None` (the default)
    /// when this sync cannot shard, and `zero_stage` is then ignored.
    fn collectives(&mut self) -> Option<&mut dyn Collectives<B::InnerBackend>> {
        None
    }
}

/// The collective operations over 1-D tensors that [`crate::zero`] needs, in rank order.
pub trait Collectives<B: Backend>: Send {
    /// Number of peers.
    fn world_size(&self) -> usize;
    /// This peer's rank.
    fn rank(&self) -> usize;
    /// The element-wise sum of `tensor` over all peers.
    fn all_reduce_sum(&mut self, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>>;
    /// Rank `r` gets elements `counts[..r].sum()..counts[..=r].sum()` of the sum over all peers.
    fn reduce_scatter_sum(
        &mut self,
        tensor: Tensor<B, 1>,
        counts: &[usize],
    ) -> Result<Tensor<B, 1>>;
    /// Every peer gets the pieces of ranks `0..world` (`counts[r]` elements each) concatenated.
    fn all_gather(&mut self, piece: Tensor<B, 1>, counts: &[usize]) -> Result<Tensor<B, 1>>;
    /// The mean of `value` over all peers (also a barrier).
    fn mean(&mut self, value: f64) -> Result<f64>;
}

/// One registered peer of a data-parallel collective, on the (non-autodiff) backend `B`.
#[derive(Debug)]
pub struct DataParallel<B: Backend> {
    peer: PeerId,
    rank: usize,
    world: usize,
    device: B::Device,
    finished: bool,
}

/// Map a burn-collective error into a [`TrainError`] that says which operation failed.
fn collective_err(what: &str, e: collective::CollectiveError) -> TrainError {
    TrainError::Config(format!(
        "data parallel: {what} failed: {e:?}. Hint: every peer must use the same number of devices, nodes and \
         steps; for several nodes check that the orchestrator is running (see docs/distributed.md)"
    ))
}

impl<B: Backend> DataParallel<B> {
    /// Register peer `rank` of `world` (all devices of all nodes) on `device`. Blocks until every
    /// local peer of `config` has registered (and, with several nodes, every node).
    pub fn register(
        rank: usize,
        world: usize,
        device: B::Device,
        config: CollectiveConfig,
    ) -> Result<Self> {
        if rank >= world {
            return Err(TrainError::Config(format!(
                "data parallel: rank {rank} is not below world size {world}"
            )));
        }
        let peer = PeerId::from(rank);
        collective::register::<B>(peer, device.clone(), config)
            .map_err(|e| collective_err("register", e))?;
        tracing::info!(rank, world, "data-parallel peer registered");
        Ok(Self {
            peer,
            rank,
            world,
            device,
            finished: false,
        })
    }

    /// This peer's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of peers.
    pub fn world_size(&self) -> usize {
        self.world
    }

    /// The mean of `value` over all peers.
    pub fn mean_scalar(&self, value: f64) -> Result<f64> {
        // one element per peer: a ring all-reduce between nodes splits the tensor into one slice
        // per node and refuses anything shorter (burn-collective's RingReduceImpossible)
        let t = Tensor::<B, 1>::from_floats(
            vec![value as f32; self.world.max(1)].as_slice(),
            &self.device,
        );
        let out = collective::all_reduce::<B>(
            self.peer,
            t.into_primitive().tensor(),
            ReduceOperation::Mean,
        )
        .map_err(|e| collective_err("all-reduce of the loss", e))?;
        let t = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(out));
        Ok(crate::scalar::scalar(t))
    }

    /// All-reduce (mean) every gradient of a parameter of `module`, in module order, in buckets.
    pub fn all_reduce_grads<AB, M>(
        &self,
        module: &M,
        grads: GradientsParams,
    ) -> Result<GradientsParams>
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        let mut visitor = ReduceVisitor::<AB> {
            peer: self.peer,
            grads,
            error: None,
            bucket_elems: crate::zero::DEFAULT_BUCKET_ELEMS,
            pending: Vec::new(),
            pending_elems: 0,
        };
        module.visit(&mut visitor);
        visitor.flush();
        match visitor.error {
            Some(e) => Err(collective_err("all-reduce of the gradients", e)),
            None => Ok(visitor.grads),
        }
    }

    /// Make every peer's parameters equal to rank 0's (for randomly initialised models): an
    /// all-reduce sum in which the other peers contribute zeros, so the values are copied exactly.
    pub fn sync_params<AB, M>(&self, module: M) -> Result<M>
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: Module<AB>,
    {
        let mut mapper = CopyFromRootMapper::<AB> {
            _backend: std::marker::PhantomData,
            peer: self.peer,
            root: self.rank == 0,
            error: None,
        };
        let module = module.map(&mut mapper);
        match mapper.error {
            Some(e) => Err(collective_err("copying rank 0's parameters", e)),
            None => Ok(module),
        }
    }

    /// Unregister this peer (also done on drop).
    pub fn finish(mut self) -> Result<()> {
        self.finished = true;
        collective::finish_collective::<B>(self.peer).map_err(|e| collective_err("finish", e))
    }
}

impl<B: Backend> Drop for DataParallel<B> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = collective::finish_collective::<B>(self.peer);
        }
    }
}

impl<AB: AutodiffBackend> GradSync<AB> for DataParallel<AB::InnerBackend> {
    fn sync(
        &mut self,
        model: &graft_llama::Llama<AB>,
        loss: f64,
        grads: GradientsParams,
    ) -> Result<(f64, GradientsParams)> {
        let grads = self.all_reduce_grads::<AB, _>(model, grads)?;
        Ok((self.mean_scalar(loss)?, grads))
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn rank(&self) -> usize {
        self.rank
    }

    fn collectives(&mut self) -> Option<&mut dyn Collectives<AB::InnerBackend>> {
        Some(self)
    }
}

impl<B: Backend> Collectives<B> for DataParallel<B> {
    fn world_size(&self) -> usize {
        self.world
    }

    fn rank(&self) -> usize {
        self.rank
    }

    fn all_reduce_sum(&mut self, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        let out = collective::all_reduce::<B>(
            self.peer,
            tensor.into_primitive().tensor(),
            ReduceOperation::Sum,
        )
        .map_err(|e| collective_err("all-reduce", e))?;
        Ok(Tensor::from_primitive(TensorPrimitive::Float(out)))
    }

    fn reduce_scatter_sum(
        &mut self,
        tensor: Tensor<B, 1>,
        counts: &[usize],
    ) -> Result<Tensor<B, 1>> {
        let out = collective::reduce_scatter::<B>(
            self.peer,
            tensor.into_primitive().tensor(),
            ReduceOperation::Sum,
            counts.to_vec(),
        )
        .map_err(|e| collective_err("reduce-scatter of the gradients", e))?;
        Ok(Tensor::from_primitive(TensorPrimitive::Float(out)))
    }

    fn all_gather(&mut self, piece: Tensor<B, 1>, counts: &[usize]) -> Result<Tensor<B, 1>> {
        let out = collective::all_gather::<B>(
            self.peer,
            piece.into_primitive().tensor(),
            counts.to_vec(),
        )
        .map_err(|e| collective_err("all-gather of the weights", e))?;
        Ok(Tensor::from_primitive(TensorPrimitive::Float(out)))
    }

    fn mean(&mut self, value: f64) -> Result<f64> {
        self.mean_scalar(value)
    }
}

/// All-reduces (mean) the gradients in module order, bucket by bucket: consecutive gradients of
/// one dtype are concatenated into buckets of about [`crate::zero::DEFAULT_BUCKET_ELEMS`]
/// elements (as DDP's and DeepSpeed's buckets), one collective per bucket instead of one per
/// tensor. Between two peers each element's sum is `a + b` whatever its bucket, so the result is
/// bit for bit the per-tensor one; with more, the ring's order of a sum depends on where an
/// element falls, as for any all-reduce.
struct ReduceVisitor<AB: AutodiffBackend> {
    peer: PeerId,
    grads: GradientsParams,
    error: Option<collective::CollectiveError>,
    bucket_elems: usize,
    pending: Vec<Pending<AB::InnerBackend>>,
    pending_elems: usize,
}

/// A gradient waiting in the current bucket: flattened, and how to put its reduced value back.
struct Pending<B: Backend> {
    flat: Tensor<B, 1>,
    put: Box<dyn FnOnce(Tensor<B, 1>, &mut GradientsParams)>,
}

impl<AB: AutodiffBackend> ReduceVisitor<AB> {
    /// All-reduce the pending bucket and register its gradients.
    fn flush(&mut self) {
        if self.pending.is_empty() || self.error.is_some() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        self.pending_elems = 0;
        let flat: Vec<_> = pending.iter().map(|p| p.flat.clone()).collect();
        let bucket = Tensor::cat(flat, 0);
        let reduced = match collective::all_reduce::<AB::InnerBackend>(
            self.peer,
            bucket.into_primitive().tensor(),
            ReduceOperation::Mean,
        ) {
            Ok(out) => Tensor::<AB::InnerBackend, 1>::from_primitive(TensorPrimitive::Float(out)),
            Err(e) => {
                self.error = Some(e);
                return;
            }
        };
        let mut at = 0;
        for p in pending {
            let n = p.flat.dims()[0];
            (p.put)(reduced.clone().slice(at..at + n), &mut self.grads);
            at += n;
        }
    }
}

impl<AB: AutodiffBackend> ModuleVisitor<AB> for ReduceVisitor<AB> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        if self.error.is_some() {
            return;
        }
        let Some(grad) = self.grads.remove::<AB::InnerBackend, D>(param.id) else {
            return;
        };
        if (self.pending.first()).is_some_and(|p| p.flat.dtype() != grad.dtype()) {
            self.flush();
        }
        let (id, dims) = (param.id, grad.dims());
        let n = dims.iter().product::<usize>();
        self.pending.push(Pending {
            flat: grad.reshape([n]),
            put: Box::new(move |t, grads| grads.register(id, t.reshape(dims))),
        });
        self.pending_elems += n;
        if self.pending_elems >= self.bucket_elems {
            self.flush();
        }
    }
}

struct CopyFromRootMapper<AB: AutodiffBackend> {
    _backend: std::marker::PhantomData<AB>,
    peer: PeerId,
    root: bool,
    error: Option<collective::CollectiveError>,
}

impl<AB: AutodiffBackend> ModuleMapper<AB> for CopyFromRootMapper<AB> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        if self.error.is_some() {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        let inner = tensor.inner();
        let contribution = if self.root {
            inner.clone()
        } else {
            inner.zeros_like()
        };
        let tensor = match collective::all_reduce::<AB::InnerBackend>(
            self.peer,
            contribution.into_primitive().tensor(),
            ReduceOperation::Sum,
        ) {
            Ok(out) => Tensor::from_inner(Tensor::from_primitive(TensorPrimitive::Float(out))),
            Err(e) => {
                self.error = Some(e);
                Tensor::from_inner(inner)
            }
        };
        let tensor = if require_grad {
            tensor.require_grad()
        } else {
            tensor
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

mod run;
pub use run::{run_data_parallel, run_orchestrator, GlobalConfig, ParallelConfig};
