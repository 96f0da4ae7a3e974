//! Reduce-scatter and all-gather (added by graft, see PATCHED.md).
//!
//! Both split or join tensors along dimension 0 into one chunk per peer, in the order of the
//! peers' ids: the ids must be `0..P` over all nodes (the ranks), and `counts[r]` is the number
//! of rows of peer `r`'s chunk (chunks may differ in size, as MPI's `Reduce_scatter` and
//! `Allgatherv`).
//!
//! Locally each chunk goes straight from its owner to the peers that need it, so a reduce-scatter
//! followed by an all-gather moves the same bytes as one all-reduce: `(P−1)/P` of the tensor per
//! peer each. Between nodes they are built on the global all-reduce (reduce on one device, global
//! all-reduce, scatter or broadcast locally): correct, but the inter-node traffic is that of an
//! all-reduce (see PATCHED.md).

use crate::global::node::base::Node;
use crate::local::tensor_map::CollectiveTensorMap;
use crate::local::{broadcast_tree, reduce_sum_tree, tensor_map::get_peer_devices};
use crate::{CollectiveConfig, CollectiveError, PeerId, ReduceOperation};
use burn_backend::{Backend, Slice, TensorMetadata};
use burn_communication::Protocol;
use burn_std::{FloatDType, Shape};
use std::ops::Range;
use std::sync::mpsc::SyncSender;

/// Result sent back to each caller.
pub(crate) type ScatterGatherResult<T> = Result<T, CollectiveError>;

/// Which collective an [`ScatterGatherOp`] runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ScatterGatherKind {
    /// Every peer gives the whole tensor; peer `r` gets chunk `r` reduced over the peers.
    ReduceScatter(ReduceOperation),
    /// Every peer gives its chunk; every peer gets all chunks concatenated.
    AllGather,
}

/// An on-going reduce-scatter or all-gather: the calls of the local peers so far.
#[derive(Debug)]
pub(crate) struct ScatterGatherOp<B: Backend> {
    kind: ScatterGatherKind,
    counts: Vec<usize>,
    /// Shape of the first caller's tensor: every caller's must match (all dims but 0 for a gather)
    shape: Shape,
    calls: Vec<(PeerId, B::FloatTensorPrimitive, SyncSender<ScatterGatherResult<B::FloatTensorPrimitive>>)>,
}

impl<B: Backend> ScatterGatherOp<B> {
    pub fn new(kind: ScatterGatherKind, counts: Vec<usize>, shape: Shape) -> Self {
        Self {
            kind,
            counts,
            shape,
            calls: vec![],
        }
    }

    /// Register one peer's call; `Ok(true)` when every local peer has called.
    pub fn register_call(
        &mut self,
        caller: PeerId,
        kind: ScatterGatherKind,
        counts: Vec<usize>,
        input: B::FloatTensorPrimitive,
        sender: SyncSender<ScatterGatherResult<B::FloatTensorPrimitive>>,
        peer_count: usize,
    ) -> Result<bool, CollectiveError> {
        let shape = input.shape();
        let valid = match &kind {
            ScatterGatherKind::ReduceScatter(_) => {
                shape == self.shape && shape.num_dims() > 0 && shape[0] == counts.iter().sum::<usize>()
            }
            ScatterGatherKind::AllGather => {
                let rank = peer_rank(caller);
                shape.num_dims() == self.shape.num_dims()
                    && shape.num_dims() > 0
                    && shape.iter().skip(1).eq(self.shape.iter().skip(1))
                    && counts.get(rank) == Some(&shape[0])
            }
        };
        if kind != self.kind || counts != self.counts || !valid || peer_rank(caller) >= counts.len()
        {
            return Err(CollectiveError::ScatterGatherMismatch);
        }
        self.calls.push((caller, input, sender));
        Ok(self.calls.len() == peer_count)
    }

    /// Run the collective and answer every caller.
    pub async fn execute<P: Protocol>(
        self,
        config: &CollectiveConfig,
        global_client: &mut Option<Node<B, P>>,
    ) {
        let tensors: CollectiveTensorMap<B> = self
            .calls
            .iter()
            .map(|(id, t, _)| (*id, t.clone()))
            .collect();
        let result = match (&self.kind, global_client.as_mut()) {
            (ScatterGatherKind::ReduceScatter(op), None) => {
                Ok(reduce_scatter_local::<B>(tensors, &self.counts, *op))
            }
            (ScatterGatherKind::AllGather, None) => Ok(all_gather_local::<B>(tensors)),
            (ScatterGatherKind::ReduceScatter(op), Some(node)) => {
                reduce_scatter_global(tensors, &self.counts, *op, config, node).await
            }
            (ScatterGatherKind::AllGather, Some(node)) => {
                all_gather_global(tensors, &self.counts, config, node).await
            }
        };
        match result {
            Ok(mut out) => {
                for (id, _, sender) in &self.calls {
                    let tensor = out.remove(id).expect("tensor/peer internal mismatch.");
                    sender.send(Ok(tensor)).unwrap();
                }
            }
            Err(err) => self.fail(err),
        }
    }

    /// Send `err` to every caller.
    pub fn fail(self, err: CollectiveError) {
        for (_, _, sender) in self.calls {
            let _ = sender.send(Err(err.clone()));
        }
    }
}

/// The rank of a peer: its id.
fn peer_rank(id: PeerId) -> usize {
    id.0 as usize
}

/// The rows of each chunk.
fn chunk_ranges(counts: &[usize]) -> Vec<Range<usize>> {
    let mut start = 0;
    counts
        .iter()
        .map(|c| {
            start += c;
            start - c..start
        })
        .collect()
}

/// Rows `range` of `tensor` (all of the other dimensions).
fn rows<B: Backend>(tensor: &B::FloatTensorPrimitive, range: Range<usize>) -> B::FloatTensorPrimitive {
    let shape = tensor.shape();
    let mut slices: Vec<Slice> = shape.iter().map(|d| Slice::from(0..*d)).collect();
    slices[0] = Slice::from(range);
    B::float_slice(tensor.clone(), &slices)
}

/// Local reduce-scatter: chunk `r` of every peer's tensor is summed on peer `r`'s device, in
/// peer-id order.
fn reduce_scatter_local<B: Backend>(
    tensors: CollectiveTensorMap<B>,
    counts: &[usize],
    op: ReduceOperation,
) -> CollectiveTensorMap<B> {
    let mut peers: Vec<_> = tensors.keys().copied().collect();
    peers.sort_by_key(|p| p.0);
    let ranges = chunk_ranges(counts);
    let mut out = CollectiveTensorMap::<B>::new();
    for id in &peers {
        let device = B::float_device(&tensors[id]);
        let range = ranges[peer_rank(*id)].clone();
        let mut sum: Option<B::FloatTensorPrimitive> = None;
        for from in &peers {
            let chunk = B::float_to_device(rows::<B>(&tensors[from], range.clone()), &device);
            sum = Some(match sum {
                None => chunk,
                Some(s) => B::float_add(s, chunk),
            });
        }
        let mut sum = sum.expect("at least one peer");
        if op == ReduceOperation::Mean {
            sum = B::float_div_scalar(sum, (peers.len() as f32).into());
        }
        out.insert(*id, sum);
    }
    out
}

/// Local all-gather: every peer gets the chunks of all peers, concatenated in peer-id order.
fn all_gather_local<B: Backend>(tensors: CollectiveTensorMap<B>) -> CollectiveTensorMap<B> {
    let mut peers: Vec<_> = tensors.keys().copied().collect();
    peers.sort_by_key(|p| p.0);
    let devices = get_peer_devices::<B>(&tensors);
    peers
        .iter()
        .map(|id| {
            let parts = peers
                .iter()
                .map(|from| B::float_to_device(tensors[from].clone(), &devices[id]))
                .collect();
            (*id, B::float_cat(parts, 0))
        })
        .collect()
}

/// Reduce-scatter with other nodes: local tree reduce, global all-reduce, local slicing.
async fn reduce_scatter_global<B: Backend, P: Protocol>(
    tensors: CollectiveTensorMap<B>,
    counts: &[usize],
    op: ReduceOperation,
    config: &CollectiveConfig,
    node: &mut Node<B, P>,
) -> Result<CollectiveTensorMap<B>, CollectiveError> {
    let devices = get_peer_devices::<B>(&tensors);
    let main = *tensors.keys().min_by_key(|p| p.0).expect("at least one peer");
    let reduced = reduce_sum_tree::<B>(tensors, &main, 2);
    let strategy = config
        .global_all_reduce_strategy
        .ok_or(CollectiveError::InvalidConfig)?;
    let reduced = node
        .all_reduce(reduced, strategy, op)
        .await
        .map_err(CollectiveError::Global)?;
    let ranges = chunk_ranges(counts);
    Ok(devices
        .iter()
        .map(|(id, device)| {
            let chunk = rows::<B>(&reduced, ranges[peer_rank(*id)].clone());
            (*id, B::float_to_device(chunk, device))
        })
        .collect())
}

/// All-gather with other nodes: each node places its peers' chunks in a zero tensor of the full
/// shape, a global all-reduce (sum) fills in the other nodes' chunks, a local broadcast follows.
async fn all_gather_global<B: Backend, P: Protocol>(
    tensors: CollectiveTensorMap<B>,
    counts: &[usize],
    config: &CollectiveConfig,
    node: &mut Node<B, P>,
) -> Result<CollectiveTensorMap<B>, CollectiveError> {
    let devices = get_peer_devices::<B>(&tensors);
    let main = *tensors.keys().min_by_key(|p| p.0).expect("at least one peer");
    let main_device = devices[&main].clone();
    let first = &tensors[&main];
    let dtype = FloatDType::from(first.dtype());
    let parts: Vec<_> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(rank, c)| match tensors.get(&PeerId::from(rank)) {
            Some(t) => B::float_to_device(t.clone(), &main_device),
            None => {
                let mut dims = first.shape().to_vec();
                dims[0] = *c;
                B::float_zeros(Shape::from(dims), &main_device, dtype)
            }
        })
        .collect();
    if parts.is_empty() {
        return Ok(tensors);
    }
    let full = B::float_cat(parts, 0);
    let strategy = config
        .global_all_reduce_strategy
        .ok_or(CollectiveError::InvalidConfig)?;
    let full = node
        .all_reduce(full, strategy, ReduceOperation::Sum)
        .await
        .map_err(CollectiveError::Global)?;
    Ok(broadcast_tree::<B>(devices, main, full, 2))
}
