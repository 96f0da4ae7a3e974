//! Reduce-scatter and all-gather (added by graft, see PATCHED.md).
//!
//! Both split or join tensors along dimension 0 into one chunk per peer, in the order of the
//! peers' ids: the ids must be `0..P` over all nodes (the ranks), and `counts[r]` is the number
//! of rows of peer `r`'s chunk (chunks may differ in size, as MPI's `Reduce_scatter` and
//! `Allgatherv`).
//!
//! Locally each chunk goes straight from its owner to the peers that need it, so a reduce-scatter
//! followed by an all-gather moves the same bytes as one all-reduce: `(P−1)/P` of the tensor per
//! peer each. Between nodes both are rings over the nodes (`global::node::scatter_gather`): each
//! node sends `(N−1)/N` of the tensor per collective (with even chunks), half of a ring
//! all-reduce, and the all-gather is exact.

use crate::global::node::base::Node;
use crate::global::node::scatter_gather::rows;
use crate::local::tensor_map::CollectiveTensorMap;
use crate::local::{broadcast_tree, tensor_map::get_peer_devices};
use crate::{CollectiveConfig, CollectiveError, PeerId, ReduceOperation};
use burn_backend::{Backend, TensorMetadata};
use burn_communication::Protocol;
use burn_std::Shape;
use std::collections::HashMap;
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
    calls: Vec<(
        PeerId,
        B::FloatTensorPrimitive,
        SyncSender<ScatterGatherResult<B::FloatTensorPrimitive>>,
    )>,
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
                shape == self.shape
                    && shape.num_dims() > 0
                    && shape[0] == counts.iter().sum::<usize>()
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
        _config: &CollectiveConfig,
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
                reduce_scatter_global(tensors, &self.counts, *op, node).await
            }
            (ScatterGatherKind::AllGather, Some(node)) => {
                all_gather_global(tensors, &self.counts, node).await
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

/// This node's peers' tensors sorted by peer id, moved to the device of the first, and their
/// devices.
fn on_main_device<B: Backend>(
    tensors: CollectiveTensorMap<B>,
) -> (
    Vec<(PeerId, B::FloatTensorPrimitive)>,
    HashMap<PeerId, B::Device>,
    B::Device,
) {
    let devices = get_peer_devices::<B>(&tensors);
    let mut local: Vec<_> = tensors.into_iter().collect();
    local.sort_by_key(|(id, _)| id.0);
    let main = devices[&local[0].0].clone();
    let local = local
        .into_iter()
        .map(|(id, t)| (id, B::float_to_device(t, &main)))
        .collect();
    (local, devices, main)
}

/// Reduce-scatter with other nodes: a ring over the nodes (`global::node::scatter_gather`), each
/// node adding its peers' rows in peer-id order; each peer's chunk then goes to its device.
async fn reduce_scatter_global<B: Backend, P: Protocol>(
    tensors: CollectiveTensorMap<B>,
    counts: &[usize],
    op: ReduceOperation,
    node: &mut Node<B, P>,
) -> Result<CollectiveTensorMap<B>, CollectiveError> {
    let (local, devices, main) = on_main_device::<B>(tensors);
    let out = node
        .reduce_scatter(&local, counts, op, &main)
        .await
        .map_err(CollectiveError::Global)?;
    Ok(out
        .into_iter()
        .map(|(id, t)| (id, B::float_to_device(t, &devices[&id])))
        .collect())
}

/// All-gather with other nodes: a ring over the nodes (`global::node::scatter_gather`), then a
/// local broadcast. Exact (chunks are copied, never added).
async fn all_gather_global<B: Backend, P: Protocol>(
    tensors: CollectiveTensorMap<B>,
    counts: &[usize],
    node: &mut Node<B, P>,
) -> Result<CollectiveTensorMap<B>, CollectiveError> {
    let (local, devices, main) = on_main_device::<B>(tensors);
    let full = node
        .all_gather(&local, counts, &main)
        .await
        .map_err(CollectiveError::Global)?;
    Ok(broadcast_tree::<B>(devices, local[0].0, full, 2))
}
