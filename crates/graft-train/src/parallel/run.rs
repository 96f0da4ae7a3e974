//! Launching data-parallel peers: one thread per local device, each a burn-collective peer, and
//! optionally several nodes joined through burn-collective's global orchestrator.

use std::str::FromStr;

use burn::collective::{self, AllReduceStrategy, CollectiveConfig};
use burn::tensor::backend::Backend;

use super::DataParallel;
use crate::error::{Result, TrainError};

/// Settings for joining several nodes (processes, usually machines) into one collective.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalConfig {
    /// Number of nodes; every node runs the same number of local devices.
    pub num_nodes: u32,
    /// This node's index in `0..num_nodes` (ranks of its peers start at `node_rank · devices`).
    pub node_rank: u32,
    /// WebSocket address of the global orchestrator, e.g. `ws://10.0.0.1:3000`.
    pub orchestrator: String,
    /// This node's address as the other nodes reach it, e.g. `ws://10.0.0.2:3001`.
    pub node_address: String,
    /// Port of this node's tensor data service (the port of `node_address`).
    pub data_service_port: u16,
}

/// How peers are laid out: devices on this node and, optionally, several nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParallelConfig {
    /// Devices (peers) on this node.
    pub local_devices: usize,
    /// Several nodes; `None` for one node.
    pub global: Option<GlobalConfig>,
}

impl ParallelConfig {
    /// One node with `devices` devices.
    pub fn local(devices: usize) -> Self {
        Self {
            local_devices: devices,
            global: None,
        }
    }

    /// Number of peers over all nodes.
    pub fn world_size(&self) -> usize {
        self.local_devices * self.global.as_ref().map_or(1, |g| g.num_nodes as usize)
    }

    /// Global rank of local device `local`.
    pub fn rank(&self, local: usize) -> usize {
        self.global.as_ref().map_or(0, |g| g.node_rank as usize) * self.local_devices + local
    }

    /// The burn-collective configuration of this node: a binary tree locally, a ring between
    /// nodes (burn-collective's recommendation).
    pub fn collective_config(&self) -> Result<CollectiveConfig> {
        let mut c = CollectiveConfig::default()
            .with_num_devices(self.local_devices)
            .with_local_all_reduce_strategy(AllReduceStrategy::Tree(2));
        if let Some(g) = &self.global {
            let addr = |what: &str, s: &str| {
                if !s.starts_with("ws://") {
                    return Err(TrainError::Config(format!(
                        "{what} {s:?} must look like ws://HOST:PORT"
                    )));
                }
                burn_communication::Address::from_str(s)
                    .map_err(|e| TrainError::Config(format!("{what} {s:?}: {e}")))
            };
            c = c
                .with_num_nodes(g.num_nodes)
                .with_global_address(addr("orchestrator address", &g.orchestrator)?)
                .with_node_address(addr("node address", &g.node_address)?)
                .with_data_service_port(g.data_service_port)
                .with_global_all_reduce_strategy(AllReduceStrategy::Ring);
        }
        Ok(c)
    }

    fn check(&self, devices: usize) -> Result<()> {
        if self.local_devices == 0 || devices != self.local_devices {
            return Err(TrainError::Config(format!(
                "data parallel: {devices} device(s) given for {} local peer(s)",
                self.local_devices
            )));
        }
        match &self.global {
            Some(g) if g.num_nodes == 0 || g.node_rank >= g.num_nodes => {
                Err(TrainError::Config(format!(
                    "data parallel: node rank {} must be below the number of nodes {}",
                    g.node_rank, g.num_nodes
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Run `body` once per local device, each on its own thread with a registered [`DataParallel`]
/// peer (hand it to [`crate::Trainer::with_grad_sync`]). Returns the results in local-rank order,
/// or the first error. When a peer fails, the local collective is reset so that the other peers
/// stop waiting for it and fail too, instead of hanging.
pub fn run_data_parallel<B, T, F>(
    config: &ParallelConfig,
    devices: &[B::Device],
    body: F,
) -> Result<Vec<T>>
where
    B: Backend,
    T: Send,
    F: Fn(DataParallel<B>) -> Result<T> + Sync,
{
    config.check(devices.len())?;
    let collective = config.collective_config()?;
    let world = config.world_size();
    let body = &body;
    let results: Vec<Result<T>> = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(local, device)| {
                let (rank, device, collective) = (config.rank(local), device.clone(), collective.clone());
                scope.spawn(move || {
                    let run = || DataParallel::<B>::register(rank, world, device, collective).and_then(body);
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| {
                        Err(TrainError::Config(format!("data parallel: the thread of peer {rank} panicked")))
                    });
                    if let Err(e) = &result {
                        tracing::error!(rank, error = %e, "data-parallel peer failed; stopping the others");
                        collective::reset_collective::<B>();
                    }
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(local, h)| {
                h.join().unwrap_or_else(|_| {
                    Err(TrainError::Config(format!(
                        "data parallel: local peer {local} panicked"
                    )))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Run burn-collective's global orchestrator on `port` (all interfaces) until the process is
/// stopped: every node of a multi-node run registers with it (see docs/distributed.md).
pub fn run_orchestrator(port: u16) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            TrainError::Config(format!(
                "cannot start the orchestrator's async runtime: {e}"
            ))
        })?;
    tracing::info!(
        port,
        "burn-collective global orchestrator listening on ws://0.0.0.0:{port}"
    );
    runtime.block_on(burn_collective::start_global_orchestrator(port));
    Ok(())
}
