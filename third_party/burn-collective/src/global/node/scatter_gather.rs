//! Reduce-scatter and all-gather between nodes (added by graft, see PATCHED.md).
//!
//! Rows (dimension 0) go in chunks to peers: chunk `r`, `counts[r]` rows, belongs to the peer
//! whose id is `r`. A node owns the chunks of its peers (not necessarily contiguous rows). The
//! nodes form a ring ordered by their smallest peer id (so the ring, hence the summation order,
//! does not depend on the order in which the nodes registered), and both collectives are ring
//! algorithms over the nodes' row sets: each of the `N − 1` steps sends one node's rows to the
//! next node, so a node sends the rows it does not own once (reduce-scatter) or its own rows
//! `N − 1` times (all-gather) — with even chunks `(N − 1)/N` of the tensor each, half of what a
//! ring all-reduce moves, together exactly what it moves. Row sets with no rows are skipped
//! (both ends know they are empty).
//!
//! Summation order of a reduce-scatter: the rows of the node at ring position `k` are summed
//! along the ring starting at position `k + 1`, as a left fold over the peers in ring order and
//! peer-id order within a node: `((t_a + t_b) + t_c) + …` for the peers `a, b, c, …` of positions
//! `k + 1, k + 2, …, k − 1, k`. For the last position (and for any node of a two-node ring with
//! one peer each, addition being commutative) that is peer-id order, the local reduce-scatter's.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use burn_backend::{Backend, Slice, TensorData, TensorMetadata};
use burn_communication::{Address, Protocol, data_service::TensorDataService};

use crate::global::node::traffic::{expose_counted, expose_tensor_counted};
use crate::node::sync::SyncService;
use crate::{NodeId, PeerId, global::shared::GlobalCollectiveError};

/// Which rows every node owns, the nodes in ring order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowLayout {
    /// The nodes in ring order: ascending smallest peer id
    pub ring: Vec<NodeId>,
    /// This node's position in `ring`
    pub me: usize,
    /// The ranks (peer ids) of each ring position's peers, ascending
    pub ranks: Vec<Vec<usize>>,
    /// The rows of each rank's chunk
    pub chunks: Vec<Range<usize>>,
}

impl RowLayout {
    /// The layout for `counts` when `peers` lists every node's peers; the peer ids over all
    /// nodes must be the ranks `0..counts.len()`, each once.
    pub fn new(
        me: NodeId,
        peers: &HashMap<NodeId, Vec<PeerId>>,
        counts: &[usize],
    ) -> Result<Self, GlobalCollectiveError> {
        let mut nodes: Vec<(usize, NodeId, Vec<usize>)> = peers
            .iter()
            .map(|(node, ids)| {
                let mut ranks: Vec<usize> = ids.iter().map(|p| p.0 as usize).collect();
                ranks.sort_unstable();
                (ranks.first().copied().unwrap_or(usize::MAX), *node, ranks)
            })
            .collect();
        nodes.sort_unstable_by_key(|(first, node, _)| (*first, *node));
        let mut all: Vec<usize> = nodes.iter().flat_map(|(_, _, r)| r.clone()).collect();
        all.sort_unstable();
        if !all.iter().copied().eq(0..counts.len()) {
            return Err(GlobalCollectiveError::ScatterGatherPeers);
        }
        let me = nodes
            .iter()
            .position(|(_, node, _)| *node == me)
            .ok_or(GlobalCollectiveError::ScatterGatherPeers)?;
        let mut start = 0;
        let chunks = counts
            .iter()
            .map(|c| {
                start += c;
                start - c..start
            })
            .collect();
        Ok(Self {
            ring: nodes.iter().map(|(_, node, _)| *node).collect(),
            me,
            ranks: nodes.into_iter().map(|(_, _, ranks)| ranks).collect(),
            chunks,
        })
    }

    /// The rows of ring position `pos`, ascending, as maximal non-empty runs.
    pub fn rows(&self, pos: usize) -> Vec<Range<usize>> {
        let mut runs: Vec<Range<usize>> = Vec::new();
        let chunks = self.ranks[pos].iter().map(|r| self.chunks[*r].clone());
        for chunk in chunks.filter(|c| !c.is_empty()) {
            match runs.last_mut() {
                Some(last) if last.end == chunk.start => last.end = chunk.end,
                _ => runs.push(chunk),
            }
        }
        runs
    }

    /// How many rows ring position `pos` owns.
    pub fn num_rows(&self, pos: usize) -> usize {
        self.ranks[pos].iter().map(|r| self.chunks[*r].len()).sum()
    }
}

/// Ring reduce-scatter, step `s` of `n − 1` at ring position `i` of `n`: the row set whose partial
/// sum it sends to position `i + 1` and the one it receives from position `i − 1` (and adds its
/// peers' rows to). After the last step a position has received its own rows.
pub(crate) fn reduce_scatter_step(i: usize, s: usize, n: usize) -> (usize, usize) {
    ((i + 2 * n - s - 1) % n, (i + 2 * n - s - 2) % n)
}

/// Ring all-gather, step `s` of `n − 1` at ring position `i` of `n`: the row set it sends to
/// position `i + 1` (its own first, then what it received the step before) and the one it receives
/// from position `i − 1`.
pub(crate) fn all_gather_step(i: usize, s: usize, n: usize) -> (usize, usize) {
    ((i + n - s) % n, (i + 2 * n - s - 1) % n)
}

/// Rows `range` of `tensor`, all of the other dimensions.
pub(crate) fn rows<B: Backend>(
    tensor: &B::FloatTensorPrimitive,
    range: Range<usize>,
) -> B::FloatTensorPrimitive {
    let shape = tensor.shape();
    let mut slices: Vec<Slice> = shape.iter().map(|d| Slice::from(0..*d)).collect();
    slices[0] = Slice::from(range);
    B::float_slice(tensor.clone(), &slices)
}

/// The rows `runs` of `tensor` one after the other; `None` when there are none.
fn pack<B: Backend>(
    tensor: &B::FloatTensorPrimitive,
    runs: &[Range<usize>],
) -> Option<B::FloatTensorPrimitive> {
    let mut parts: Vec<_> = runs.iter().map(|r| rows::<B>(tensor, r.clone())).collect();
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(B::float_cat(parts, 0)),
    }
}

/// Split ring position `pos`'s packed rows into its ranks' chunks.
///
/// # Shapes
/// - `packed`: `[layout.num_rows(pos), ...]`; each chunk `[counts[rank], ...]`
fn unpack<B: Backend>(
    layout: &RowLayout,
    pos: usize,
    packed: &B::FloatTensorPrimitive,
) -> Vec<(usize, B::FloatTensorPrimitive)> {
    let mut offset = 0;
    layout.ranks[pos]
        .iter()
        .map(|rank| {
            let len = layout.chunks[*rank].len();
            offset += len;
            (*rank, rows::<B>(packed, offset - len..offset))
        })
        .collect()
}

/// What a node needs to exchange tensors with its ring neighbours.
pub(crate) struct Ring<'a, B: Backend, P: Protocol> {
    pub layout: RowLayout,
    pub nodes: &'a HashMap<NodeId, Address>,
    pub data_service: &'a Arc<TensorDataService<B, P>>,
    pub sync_service: &'a Arc<SyncService<P>>,
}

impl<B: Backend, P: Protocol> Ring<'_, B, P> {
    /// Download transfer `id`, which the previous node exposed: ring position `pos`'s rows, with
    /// the other dimensions and the dtype of `like`.
    async fn receive(
        &self,
        id: u64,
        pos: usize,
        like: &B::FloatTensorPrimitive,
    ) -> Result<TensorData, GlobalCollectiveError> {
        let n = self.layout.ring.len();
        let prev = self.layout.ring[(self.layout.me + n - 1) % n];
        let address = self
            .nodes
            .get(&prev)
            .ok_or(GlobalCollectiveError::PeerLost(prev))?;
        let data = self
            .data_service
            .download_tensor(address.clone(), id.into())
            .await
            .ok_or(GlobalCollectiveError::PeerLost(prev))?;
        let mut expected = like.shape().to_vec();
        expected[0] = self.layout.num_rows(pos);
        if data.shape.to_vec() != expected || data.dtype != like.dtype() {
            return Err(GlobalCollectiveError::PeerSentIncoherentTensor);
        }
        Ok(data)
    }

    /// Add the local peers' rows of ring position `pos` to `acc`, in peer-id order.
    fn contribute(
        &self,
        acc: Option<B::FloatTensorPrimitive>,
        local: &[(PeerId, B::FloatTensorPrimitive)],
        pos: usize,
    ) -> Option<B::FloatTensorPrimitive> {
        let runs = self.layout.rows(pos);
        local
            .iter()
            .fold(acc, |acc, (_, t)| match (acc, pack::<B>(t, &runs)) {
                (Some(acc), Some(part)) => Some(B::float_add(acc, part)),
                (acc, part) => acc.or(part),
            })
    }

    /// Ring reduce-scatter (sum) of the local peers' tensors (sorted by peer id, all on
    /// `device`): each local peer's chunk summed over every peer of every node.
    ///
    /// # Shapes
    /// - `local`: each `[counts.sum(), ...]`; returns each peer's `[counts[peer], ...]`
    pub async fn reduce_scatter_sum(
        &self,
        local: &[(PeerId, B::FloatTensorPrimitive)],
        device: &B::Device,
    ) -> Result<Vec<(PeerId, B::FloatTensorPrimitive)>, GlobalCollectiveError> {
        let (me, n) = (self.layout.me, self.layout.ring.len());
        let like = &local[0].1;
        // (one node: step 0's set is its own)
        let mut partial = self.contribute(None, local, reduce_scatter_step(me, 0, n).0);
        for s in 0..n - 1 {
            let (_, recv) = reduce_scatter_step(me, s, n);
            if let Some(p) = partial.take() {
                expose_tensor_counted(self.data_service, p, 1, s as u64).await;
            }
            let incoming = match self.layout.num_rows(recv) {
                0 => None,
                _ => Some(B::float_from_data(
                    self.receive(s as u64, recv, like).await?,
                    device,
                )),
            };
            partial = self.contribute(incoming, local, recv);
        }
        self.sync_service.sync().await;
        Ok(self.split_own(partial, local))
    }

    /// The local peers' chunks from this node's summed rows (`None`: it owns no rows).
    fn split_own(
        &self,
        own: Option<B::FloatTensorPrimitive>,
        local: &[(PeerId, B::FloatTensorPrimitive)],
    ) -> Vec<(PeerId, B::FloatTensorPrimitive)> {
        let mut chunks: HashMap<usize, _> = match &own {
            Some(own) => unpack::<B>(&self.layout, self.layout.me, own)
                .into_iter()
                .collect(),
            None => HashMap::new(),
        };
        local
            .iter()
            .map(|(id, t)| {
                let chunk = chunks
                    .remove(&(id.0 as usize))
                    .unwrap_or_else(|| rows::<B>(t, 0..0));
                (*id, chunk)
            })
            .collect()
    }

    /// Ring all-gather of the local peers' chunks (sorted by peer id, all on `device`): every
    /// peer's chunk, concatenated in peer-id order. Exact: chunks are copied, never added.
    ///
    /// # Shapes
    /// - `local`: each `[counts[peer], ...]`; returns `[counts.sum(), ...]`
    pub async fn all_gather(
        &self,
        local: &[(PeerId, B::FloatTensorPrimitive)],
        device: &B::Device,
    ) -> Result<B::FloatTensorPrimitive, GlobalCollectiveError> {
        let (me, n) = (self.layout.me, self.layout.ring.len());
        let like = &local[0].1;
        let own: Vec<_> = local
            .iter()
            .filter(|(_, t)| t.shape()[0] > 0)
            .map(|(_, t)| t.clone())
            .collect();
        let mut parts: Vec<Option<B::FloatTensorPrimitive>> = vec![None; n];
        parts[me] = (!own.is_empty()).then(|| B::float_cat(own, 0));
        let mut forward: Option<TensorData> = None;
        for s in 0..n - 1 {
            let (send, recv) = all_gather_step(me, s, n);
            match (s, forward.take()) {
                (0, _) => {
                    if let Some(p) = parts[send].clone() {
                        expose_tensor_counted(self.data_service, p, 1, s as u64).await;
                    }
                }
                (_, Some(data)) => expose_counted(self.data_service, data, 1, s as u64).await,
                (_, None) => {}
            }
            if self.layout.num_rows(recv) > 0 {
                let data = self.receive(s as u64, recv, like).await?;
                parts[recv] = Some(B::float_from_data(data.clone(), device));
                forward = Some(data);
            }
        }
        self.sync_service.sync().await;
        Ok(self.assemble(parts, local))
    }

    /// Every rank's chunk, in rank order, from the ring positions' packed rows.
    fn assemble(
        &self,
        parts: Vec<Option<B::FloatTensorPrimitive>>,
        local: &[(PeerId, B::FloatTensorPrimitive)],
    ) -> B::FloatTensorPrimitive {
        let mut chunks: Vec<(usize, B::FloatTensorPrimitive)> = parts
            .iter()
            .enumerate()
            .filter_map(|(pos, p)| p.as_ref().map(|p| unpack::<B>(&self.layout, pos, p)))
            .flatten()
            .filter(|(_, t)| t.shape()[0] > 0)
            .collect();
        chunks.sort_by_key(|(rank, _)| *rank);
        match chunks.len() {
            0 => local[0].1.clone(),
            _ => B::float_cat(chunks.into_iter().map(|(_, t)| t).collect(), 0),
        }
    }
}
