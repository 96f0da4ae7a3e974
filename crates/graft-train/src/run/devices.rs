//! Which devices a run uses: [`Run::devices`](super::Run::devices) (`graft train --devices 0,1,…`),
//! else the recipe's `train.devices`, else `train.device`, else device 0. Several devices mean data
//! parallelism (one peer per device); several nodes join through an orchestrator ([`Nodes`]).

use crate::error::{Result, TrainError};
use crate::parallel::{GlobalConfig, ParallelConfig};
use crate::Recipe;

/// Joining several nodes (machines) into one data-parallel run, as torchrun's `--nnodes` and
/// `--node-rank`: every node runs the same recipe on the same number of devices, and they meet
/// through the orchestrator (`graft orchestrator`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nodes {
    /// Nodes of the run (each with the same devices); the global batch counts them all.
    pub nodes: u32,
    /// This node's index in 0..nodes (node 0 logs, evaluates and writes the checkpoints).
    pub node_rank: u32,
    /// The orchestrator every node registers with, e.g. ws://10.0.0.1:3000.
    pub orchestrator: String,
    /// This node's address as the other nodes reach it, e.g. ws://10.0.0.2:3001; its port is
    /// where this node serves tensors to the others.
    pub node_address: String,
}

impl Nodes {
    /// The layout from `graft train`'s flags (`--nodes`, `--node-rank`, `--orchestrator`,
    /// `--node-address`): `None` for one node; a flag that a multi-node run needs is named.
    pub fn from_flags(
        nodes: u32,
        node_rank: Option<u32>,
        orchestrator: Option<String>,
        node_address: Option<String>,
    ) -> Result<Option<Nodes>> {
        if nodes <= 1 {
            if node_rank.unwrap_or(0) != 0 || orchestrator.is_some() {
                return Err(TrainError::Config(
                    "--node-rank/--orchestrator need --nodes N with N > 1".into(),
                ));
            }
            return Ok(None);
        }
        let missing =
            |flag: &str| TrainError::Config(format!("--nodes {nodes} needs {flag}.\n{NODES_HINT}"));
        Ok(Some(Nodes {
            nodes,
            node_rank: node_rank.ok_or_else(|| missing("--node-rank"))?,
            orchestrator: orchestrator.ok_or_else(|| missing("--orchestrator"))?,
            node_address: node_address.ok_or_else(|| missing("--node-address"))?,
        }))
    }
}

/// What every node is told when its node flags are wrong.
pub const NODES_HINT: &str = "HINT: every node runs `graft train RECIPE --nodes N --node-rank R --orchestrator ws://HOST:PORT --node-address ws://THIS_HOST:PORT`";

/// The peer layout: `devices` local peers, on one node or joined with the others.
pub fn parallel_config(nodes: Option<&Nodes>, devices: usize) -> Result<ParallelConfig> {
    let Some(n) = nodes.filter(|n| n.nodes > 1) else {
        if nodes.is_some_and(|n| n.node_rank != 0) {
            return Err(TrainError::Config(
                "--node-rank/--orchestrator need --nodes N with N > 1".into(),
            ));
        }
        return Ok(ParallelConfig::local(devices));
    };
    if n.node_rank >= n.nodes {
        return Err(TrainError::Config(format!(
            "--node-rank {} is not in 0..{}.\n{NODES_HINT}",
            n.node_rank, n.nodes
        )));
    }
    let port = n
        .node_address
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .ok_or_else(|| {
            TrainError::Config(format!(
                "--node-address {:?} has no port.\n{NODES_HINT}",
                n.node_address
            ))
        })?;
    Ok(ParallelConfig {
        local_devices: devices,
        global: Some(GlobalConfig {
            num_nodes: n.nodes,
            node_rank: n.node_rank,
            orchestrator: n.orchestrator.clone(),
            node_address: n.node_address.clone(),
            data_service_port: port,
        }),
    })
}

/// Device indices to train on, in rank order. `--devices` (`cli`) wins over the recipe; every
/// index may appear once.
pub fn device_indices(cli: &[usize], recipe: &Recipe) -> Result<Vec<usize>> {
    let indices = if !cli.is_empty() {
        cli.to_vec()
    } else if let Some(list) = &recipe.train.devices {
        list.iter()
            .map(|d| parse_device("train.devices", d))
            .collect::<Result<_>>()?
    } else if let Some(d) = &recipe.train.device {
        vec![parse_device("train.device", d)?]
    } else {
        vec![0]
    };
    if indices.is_empty() {
        return Err(TrainError::Config("train.devices is empty.\nHINT: list at least one device, e.g. [\"cuda:0\"], or drop the key".into()));
    }
    for (i, d) in indices.iter().enumerate() {
        if indices[..i].contains(d) {
            return Err(TrainError::Config(format!(
                "device {d} is listed twice in {:?}.\nHINT: give every device once (data parallelism runs one peer per device)",
                indices
            )));
        }
    }
    Ok(indices)
}

/// The recipe spelling of device `index` in this build (`cuda:N`, or `cpu:N` on the CPU).
pub fn device_name(index: usize) -> String {
    let kind = if cfg!(feature = "cuda") {
        "cuda"
    } else {
        "cpu"
    };
    format!("{kind}:{index}")
}

/// `"cuda:3"` → 3, `"cuda"`/`"cpu"` → 0, `"cpu:1"` → 1; `key` names the recipe key in errors.
fn parse_device(key: &str, text: &str) -> Result<usize> {
    let (kind, index) = text.split_once(':').unwrap_or((text, "0"));
    match (kind, index.parse::<usize>()) {
        ("cuda" | "cpu", Ok(i)) => Ok(i),
        _ => Err(TrainError::Config(format!(
            "{key}: {text:?} is not a device.\nHINT: write \"cuda:N\" (GPU N) or \"cpu\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(train: &str) -> Recipe {
        let text = format!(
            "name = \"t\"\n[model]\nbase = \"m\"\n[data]\nseq_len = 8\n[[data.sources]]\nname = \"a\"\npath = \"a.jsonl\"\n[train]\nmicro_batch_size = 1\ngrad_accum = 1\nsteps = 1\nlr = 1e-3\n{train}\n"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn cli_then_devices_then_device_then_zero() {
        let r = recipe("devices = [\"cuda:2\", \"cuda:3\"]");
        assert_eq!(device_indices(&[0, 1], &r).unwrap(), [0, 1]);
        assert_eq!(device_indices(&[], &r).unwrap(), [2, 3]);
        assert_eq!(
            device_indices(&[], &recipe("device = \"cuda:1\"")).unwrap(),
            [1]
        );
        assert_eq!(
            device_indices(&[], &recipe("device = \"cpu\"")).unwrap(),
            [0]
        );
        assert_eq!(device_indices(&[], &recipe("")).unwrap(), [0]);
    }

    #[test]
    fn node_flags_make_a_global_layout() {
        let mut nodes = Nodes {
            nodes: 2,
            node_rank: 1,
            orchestrator: "ws://10.0.0.1:3000".into(),
            node_address: "ws://10.0.0.2:3001".into(),
        };
        let config = parallel_config(Some(&nodes), 4).unwrap();
        assert_eq!(
            (config.world_size(), config.rank(0), config.rank(3)),
            (8, 4, 7)
        );
        assert_eq!(config.global.as_ref().unwrap().data_service_port, 3001);
        nodes.node_address = "ws://10.0.0.2".into();
        assert!(parallel_config(Some(&nodes), 4)
            .unwrap_err()
            .to_string()
            .contains("has no port"));
        nodes.node_rank = 2;
        assert!(parallel_config(Some(&nodes), 4)
            .unwrap_err()
            .to_string()
            .contains("not in 0..2"));
        assert_eq!(parallel_config(None, 2).unwrap(), ParallelConfig::local(2));
        assert_eq!(Nodes::from_flags(1, None, None, None).unwrap(), None);
        let err = Nodes::from_flags(2, Some(0), None, None).unwrap_err();
        assert!(err.to_string().contains("needs --orchestrator"), "{err}");
    }

    #[test]
    fn bad_and_repeated_devices_are_named() {
        let err = device_indices(&[], &recipe("devices = [\"cuda:0\", \"gpu1\"]")).unwrap_err();
        assert!(err.to_string().contains("\"gpu1\""), "{err}");
        let err = device_indices(&[1, 1], &recipe("")).unwrap_err();
        assert!(
            err.to_string().contains("device 1 is listed twice"),
            "{err}"
        );
    }
}
