//! The vendored burn-collective's reduce-scatter and all-gather between nodes (PATCHED.md change
//! 4), in one process: three nodes on loopback, with an orchestrator. burn-collective keeps one
//! node per backend type and process, so each node uses its own CPU backend type (`Flex`,
//! `Autodiff<Flex>` and `Autodiff<Flex, BalancedCheckpointing>`: the same arithmetic). Peer ids
//! interleave over the nodes (node 0 has peers 0 and 3, node 1 peer 1, node 2 peers 2 and 4) and
//! the chunks are uneven, one of them empty. Checked bitwise: the reduce-scatter sums in the
//! documented ring order, the all-gather is exact (-0.0 stays -0.0), and the bytes each node
//! sends are the ring's, a reduce-scatter plus an all-gather moving what one all-reduce moves.
//! Five rounds run back to back: node 1 owns no rows, so it finishes a reduce-scatter without
//! waiting and is a sync ahead of the others (PATCHED.md change 1).

use std::net::TcpListener;
use std::time::Duration;

use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burn_collective::{
    global_bytes_sent, AllReduceStrategy, CollectiveConfig, PeerId, ReduceOperation,
};
use burn_communication::Address;

/// Rows of each peer's chunk (peer `r` owns `COUNTS[r]` rows); 10 rows in all.
const COUNTS: [usize; 5] = [3, 0, 2, 4, 1];
/// Columns of every tensor.
const COLS: usize = 3;
/// The peers of each node; the ring orders the nodes by smallest peer id: 0, 1, 2.
const NODES: [&[u32]; 3] = [&[0, 3], &[1], &[2, 4]];
/// Rounds of collectives: back-to-back collectives must not lose a node's sync or data request.
const ROUNDS: usize = 5;

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Peer `p`'s input to the reduce-scatter: values of mixed magnitudes, so that the order of the
/// additions shows in the rounding.
fn rs_input(p: u32) -> Vec<f32> {
    let mut state = 0x9e37_79b9u32.wrapping_mul(p + 1);
    (0..COUNTS.iter().sum::<usize>() * COLS)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let unit = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            unit * [1.0, 1e4, 1e-3][(state % 3) as usize]
        })
        .collect()
}

/// Peer `p`'s chunk for the all-gather, with a negative zero.
fn ag_input(p: u32) -> Vec<f32> {
    (0..COUNTS[p as usize] * COLS)
        .map(|i| match i {
            0 => -0.0,
            _ => p as f32 * 100.0 + i as f32 * 0.1,
        })
        .collect()
}

fn addr(port: u16) -> Address {
    format!("ws://127.0.0.1:{port}").parse().unwrap()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Position in the ring of the node holding peer `p`.
fn node_of(p: usize) -> usize {
    NODES.iter().position(|n| n.contains(&(p as u32))).unwrap()
}

/// Peer `p`'s expected reduce-scatter output: its rows summed as a left fold over the peers of
/// the ring positions after its node's, wrapping around and ending with its own node's, each
/// node's peers in id order (the order documented in burn-collective's `scatter_gather`).
fn expected_rs(p: usize) -> Vec<u32> {
    let start: usize = COUNTS[..p].iter().sum::<usize>() * COLS;
    let len = COUNTS[p] * COLS;
    let owner = node_of(p);
    let order: Vec<u32> = (1..=NODES.len())
        .flat_map(|k| NODES[(owner + k) % NODES.len()].iter().copied())
        .collect();
    let inputs: Vec<Vec<f32>> = order.iter().map(|q| rs_input(*q)).collect();
    let sums: Vec<f32> = (start..start + len)
        .map(|i| {
            let mut acc = inputs[0][i];
            for input in &inputs[1..] {
                acc += input[i];
            }
            acc
        })
        .collect();
    bits(&sums)
}

/// What one peer got: reduce-scatter, all-gather and all-reduce outputs.
type PeerOut = (Vec<u32>, Vec<u32>, Vec<f32>);

fn tensor<B: Backend>(values: Vec<f32>, rows: usize) -> B::FloatTensorPrimitive {
    let data = TensorData::new(values, [rows, COLS]);
    Tensor::<B, 2>::from_data(data, &Default::default())
        .into_primitive()
        .tensor()
}

fn values<B: Backend>(t: B::FloatTensorPrimitive) -> Vec<f32> {
    Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(t))
        .into_data()
        .to_vec::<f32>()
        .unwrap()
}

/// Run node `node`'s peers (one thread each) through [`ROUNDS`] rounds of a reduce-scatter, an
/// all-gather and an all-reduce; returns each peer's outputs of every round and the bytes the
/// node sent in each collective of the first round.
fn run_node<B: Backend>(node: usize, orchestrator: u16) -> (Vec<(u32, Vec<PeerOut>)>, [u64; 3]) {
    let port = free_port();
    let config = CollectiveConfig::default()
        .with_num_devices(NODES[node].len())
        .with_local_all_reduce_strategy(AllReduceStrategy::Tree(2))
        .with_num_nodes(NODES.len() as u32)
        .with_global_address(addr(orchestrator))
        .with_node_address(addr(port))
        .with_data_service_port(port)
        .with_global_all_reduce_strategy(AllReduceStrategy::Ring);
    let sent = std::sync::Mutex::new([0u64; 3]);
    let outs = std::thread::scope(|scope| {
        let handles: Vec<_> = NODES[node]
            .iter()
            .map(|&p| {
                let (config, sent) = (config.clone(), &sent);
                scope.spawn(move || {
                    let id = PeerId(p);
                    burn_collective::register::<B>(id, Default::default(), config).unwrap();
                    let outs = (0..ROUNDS)
                        .map(|round| {
                            let (out, bytes) = one_round::<B>(id);
                            if round == 0 && p == NODES[node][0] {
                                *sent.lock().unwrap() = bytes;
                            }
                            out
                        })
                        .collect();
                    burn_collective::finish_collective::<B>(id).unwrap();
                    (p, outs)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (outs, sent.into_inner().unwrap())
}

/// One reduce-scatter, all-gather and all-reduce of peer `id`: the outputs, and the bytes its
/// node sent in each.
fn one_round<B: Backend>(id: PeerId) -> (PeerOut, [u64; 3]) {
    let p = id.0;
    let rows = COUNTS.iter().sum();
    let before = global_bytes_sent::<B>();
    let t = tensor::<B>(rs_input(p), rows);
    let rs =
        burn_collective::reduce_scatter::<B>(id, t, ReduceOperation::Sum, COUNTS.to_vec()).unwrap();
    let after_rs = global_bytes_sent::<B>();
    let chunk = tensor::<B>(ag_input(p), COUNTS[p as usize]);
    let ag = burn_collective::all_gather::<B>(id, chunk, COUNTS.to_vec()).unwrap();
    let after_ag = global_bytes_sent::<B>();
    let t = tensor::<B>(rs_input(p), rows);
    let ar = burn_collective::all_reduce::<B>(id, t, ReduceOperation::Sum).unwrap();
    let after_ar = global_bytes_sent::<B>();
    let out = (
        bits(&values::<B>(rs)),
        bits(&values::<B>(ag)),
        values::<B>(ar),
    );
    (
        out,
        [after_rs - before, after_ag - after_rs, after_ar - after_ag],
    )
}

#[test]
fn three_nodes_reduce_scatter_and_all_gather_over_a_ring() {
    // three local servers each block a runtime thread while they wait for their peers
    std::env::set_var("TOKIO_WORKER_THREADS", "16");
    let orchestrator = free_port();
    std::thread::spawn(move || graft_train::parallel::run_orchestrator(orchestrator));
    std::thread::sleep(Duration::from_millis(200));

    let (a, b, c) = std::thread::scope(|scope| {
        let a = scope.spawn(|| run_node::<Flex>(0, orchestrator));
        let b = scope.spawn(|| run_node::<Autodiff<Flex>>(1, orchestrator));
        let c = scope.spawn(|| run_node::<Autodiff<Flex, BalancedCheckpointing>>(2, orchestrator));
        (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
    });

    let gathered: Vec<u32> = (0..COUNTS.len() as u32)
        .flat_map(|p| bits(&ag_input(p)))
        .collect();
    let rows: usize = COUNTS.iter().sum();
    let full_sum: Vec<f32> = (0..rows * COLS)
        .map(|i| (0..COUNTS.len() as u32).map(|p| rs_input(p)[i]).sum())
        .collect();
    for (p, rounds) in a.0.iter().chain(&b.0).chain(&c.0) {
        assert_eq!(rounds.len(), ROUNDS);
        for (rs, ag, ar) in rounds {
            assert_eq!(rs, &expected_rs(*p as usize), "reduce-scatter of peer {p}");
            assert_eq!(ag, &gathered, "all-gather of peer {p}");
            for (got, want) in ar.iter().zip(&full_sum) {
                assert!(
                    (got - want).abs() <= 1e-2,
                    "all-reduce of peer {p}: {got} vs {want}"
                );
            }
        }
    }

    // bytes each node served: the reduce-scatter sends every row set but the node's own once,
    // the all-gather every row set but the next node's (f32: 4 bytes a value)
    let own = |k: usize| NODES[k].iter().map(|p| COUNTS[*p as usize]).sum::<usize>();
    let row_bytes = (COLS * 4) as u64;
    let sent = [a.1, b.1, c.1];
    for k in 0..NODES.len() {
        assert_eq!(
            sent[k][0],
            (rows - own(k)) as u64 * row_bytes,
            "reduce-scatter, node {k}"
        );
        let next = (k + 1) % NODES.len();
        assert_eq!(
            sent[k][1],
            (rows - own(next)) as u64 * row_bytes,
            "all-gather, node {k}"
        );
    }
    // together, what one ring all-reduce of the same tensor moves: 2 (N − 1)/N of it per node
    let total = |i: usize| sent.iter().map(|s| s[i]).sum::<u64>();
    assert_eq!(total(0) + total(1), total(2));
    assert_eq!(
        total(2),
        2 * (NODES.len() as u64 - 1) * rows as u64 * row_bytes
    );
}
