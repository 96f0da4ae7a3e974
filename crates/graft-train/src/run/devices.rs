//! Which devices `graft train` uses: `--devices 0,1,…`, else the recipe's `train.devices`, else
//! `train.device`, else device 0. Several devices mean data parallelism (one peer per device).

use anyhow::{bail, Context};
use graft_train::parallel::{GlobalConfig, ParallelConfig};
use graft_train::Recipe;

/// Joining several nodes (machines) into one data-parallel run, as torchrun's `--nnodes` and
/// `--node-rank`: every node runs `graft train` with the same recipe and `--devices`, and they
/// meet through `graft orchestrator`.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// Nodes of a multi-node run (each with the same devices); the global batch counts them all.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub nodes: u32,
    /// This node's index in 0..N (node 0 logs, evaluates and writes the checkpoints).
    #[arg(long, value_name = "R")]
    pub node_rank: Option<u32>,
    /// The orchestrator every node registers with, e.g. ws://10.0.0.1:3000 (`graft orchestrator`).
    #[arg(long, value_name = "URL")]
    pub orchestrator: Option<String>,
    /// This node's address as the other nodes reach it, e.g. ws://10.0.0.2:3001; its port is
    /// where this node serves tensors to the others.
    #[arg(long, value_name = "URL")]
    pub node_address: Option<String>,
}

impl NodeArgs {
    /// This node's rank (0 for one node).
    pub fn rank(&self) -> u32 {
        self.node_rank.unwrap_or(0)
    }

    /// The peer layout: `devices` local peers, on one node or joined with the others.
    pub fn parallel_config(&self, devices: usize) -> anyhow::Result<ParallelConfig> {
        if self.nodes <= 1 {
            if self.node_rank.unwrap_or(0) != 0 || self.orchestrator.is_some() {
                bail!("--node-rank/--orchestrator need --nodes N with N > 1");
            }
            return Ok(ParallelConfig::local(devices));
        }
        let hint = "HINT: every node runs `graft train RECIPE --nodes N --node-rank R --orchestrator ws://HOST:PORT --node-address ws://THIS_HOST:PORT`";
        let node_rank = self
            .node_rank
            .with_context(|| format!("--nodes {} needs --node-rank.\n{hint}", self.nodes))?;
        if node_rank >= self.nodes {
            bail!(
                "--node-rank {node_rank} is not in 0..{}.\n{hint}",
                self.nodes
            );
        }
        let orchestrator = self
            .orchestrator
            .clone()
            .with_context(|| format!("--nodes needs --orchestrator.\n{hint}"))?;
        let node_address = self
            .node_address
            .clone()
            .with_context(|| format!("--nodes needs --node-address.\n{hint}"))?;
        let port = node_address
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
            .with_context(|| format!("--node-address {node_address:?} has no port.\n{hint}"))?;
        Ok(ParallelConfig {
            local_devices: devices,
            global: Some(GlobalConfig {
                num_nodes: self.nodes,
                node_rank,
                orchestrator,
                node_address,
                data_service_port: port,
            }),
        })
    }
}

/// Device indices to train on, in rank order. `--devices` (`cli`) wins over the recipe; every
/// index may appear once.
pub fn device_indices(cli: &[usize], recipe: &Recipe) -> anyhow::Result<Vec<usize>> {
    let indices = if !cli.is_empty() {
        cli.to_vec()
    } else if let Some(list) = &recipe.train.devices {
        list.iter()
            .map(|d| parse_device("train.devices", d))
            .collect::<anyhow::Result<_>>()?
    } else if let Some(d) = &recipe.train.device {
        vec![parse_device("train.device", d)?]
    } else {
        vec![0]
    };
    if indices.is_empty() {
        bail!("train.devices is empty.\nHINT: list at least one device, e.g. [\"cuda:0\"], or drop the key");
    }
    for (i, d) in indices.iter().enumerate() {
        if indices[..i].contains(d) {
            bail!(
                "device {d} is listed twice in {:?}.\nHINT: give every device once (data parallelism runs one peer per device)",
                indices
            );
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
fn parse_device(key: &str, text: &str) -> anyhow::Result<usize> {
    let (kind, index) = text.split_once(':').unwrap_or((text, "0"));
    match (kind, index.parse::<usize>()) {
        ("cuda" | "cpu", Ok(i)) => Ok(i),
        _ => bail!("{key}: {text:?} is not a device.\nHINT: write \"cuda:N\" (GPU N) or \"cpu\""),
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
        let mut nodes = NodeArgs {
            nodes: 2,
            node_rank: Some(1),
            orchestrator: Some("ws://10.0.0.1:3000".into()),
            node_address: Some("ws://10.0.0.2:3001".into()),
        };
        let config = nodes.parallel_config(4).unwrap();
        assert_eq!(
            (config.world_size(), config.rank(0), config.rank(3)),
            (8, 4, 7)
        );
        assert_eq!(config.global.as_ref().unwrap().data_service_port, 3001);
        nodes.node_address = Some("ws://10.0.0.2".into());
        assert!(nodes
            .parallel_config(4)
            .unwrap_err()
            .to_string()
            .contains("has no port"));
        nodes.node_rank = Some(2);
        assert!(nodes
            .parallel_config(4)
            .unwrap_err()
            .to_string()
            .contains("not in 0..2"));
        let one = NodeArgs {
            nodes: 1,
            node_rank: None,
            orchestrator: None,
            node_address: None,
        };
        assert_eq!(one.parallel_config(2).unwrap(), ParallelConfig::local(2));
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
