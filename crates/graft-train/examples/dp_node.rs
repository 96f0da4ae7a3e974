//! Smoke test of a data-parallel setup: trains the tiny-llama3 fixture for 6 steps on its golden
//! batches (12 micro-batches split over all peers) and prints a checksum of the weights, which
//! must be the same on every peer, every node, and for any layout of the same world size.
//!
//! ```text
//! # one node, two peers
//! cargo run --release -p graft-train --example dp_node -- --devices 2
//! # two nodes of one peer each (orchestrator running on HOST0:3000)
//! cargo run --release -p graft-train --example dp_node -- --devices 1 --nodes 2 --node-rank 0 \
//!     --orchestrator ws://HOST0:3000 --node-address ws://HOST0:3001 --port 3001
//! cargo run --release -p graft-train --example dp_node -- --devices 1 --nodes 2 --node-rank 1 \
//!     --orchestrator ws://HOST0:3000 --node-address ws://HOST1:3001 --port 3001
//! ```

use std::path::PathBuf;

use burn::backend::{Autodiff, Flex};
use graft_train::parallel::{run_data_parallel, GlobalConfig, ParallelConfig};
use graft_train::{AdamWConfig, TokenBatch, TrainConfig, Trainer, VecSource, WarmupCosine};
use safetensors::SafeTensors;

type B = Autodiff<Flex>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let devices: usize = get("--devices").unwrap_or_else(|| "1".into()).parse()?;
    let global = match get("--nodes") {
        None => None,
        Some(n) => Some(GlobalConfig {
            num_nodes: n.parse()?,
            node_rank: get("--node-rank")
                .ok_or("--node-rank is required with --nodes")?
                .parse()?,
            orchestrator: get("--orchestrator").ok_or("--orchestrator is required with --nodes")?,
            node_address: get("--node-address").ok_or("--node-address is required with --nodes")?,
            data_service_port: get("--port")
                .ok_or("--port is required with --nodes")?
                .parse()?,
        }),
    };
    let config = ParallelConfig {
        local_devices: devices,
        global,
    };
    let world = config.world_size();
    if 12 % world != 0 {
        return Err(format!(
            "world size {world}: the 12 golden micro-batches need a world size dividing 12"
        )
        .into());
    }
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let batches = golden_batches(&fixtures)?;
    let per_step = 2usize.max(world);
    let steps = (batches.len() / per_step) as u64;
    let results =
        run_data_parallel::<Flex, _, _>(&config, &vec![Default::default(); devices], |dp| {
            let rank = dp.rank();
            let mine: Vec<_> = batches.iter().skip(rank).step_by(world).cloned().collect();
            let (model, model_config) =
                graft_llama::load::<B>(fixtures.join("tiny-llama3"), &Default::default())
                    .map_err(|e| graft_train::TrainError::Model(e.to_string()))?;
            let train = train_config(steps, per_step / world);
            let mut trainer = Trainer::<B>::new(model, model_config, train, Default::default())
                .with_grad_sync(Box::new(dp));
            let reports = trainer.run(&mut VecSource::new(mine))?;
            let sum: f64 = trainer
                .model()
                .named_params()
                .into_iter()
                .map(|(_, t)| {
                    t.into_data()
                        .convert::<f64>()
                        .to_vec::<f64>()
                        .unwrap_or_default()
                        .iter()
                        .map(|v| v.abs())
                        .sum::<f64>()
                })
                .sum();
            Ok((
                rank,
                reports.last().map(|r| r.loss).unwrap_or(f64::NAN),
                sum,
            ))
        })?;
    for (rank, loss, sum) in results {
        println!("rank {rank}/{world}: final loss {loss:.6}, sum |w| {sum:.6}");
    }
    Ok(())
}

fn train_config(steps: u64, grad_accum: usize) -> TrainConfig {
    TrainConfig {
        steps,
        grad_accum,
        micro_batch: [2, 32],
        schedule: WarmupCosine {
            peak: 1e-3,
            min_lr_ratio: 0.1,
            warmup_steps: 2,
            total_steps: steps,
        },
        adamw: AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            ..AdamWConfig::default()
        },
        clip_norm: 1.0,
        save_every: 0,
        keep_last: 0,
        log_every: 1,
        max_nonfinite_steps: 3,
        seed: 0,
        activation_checkpointing: false,
        zero_stage: 0,
    }
}

fn golden_batches(
    fixtures: &std::path::Path,
) -> Result<Vec<TokenBatch>, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(fixtures.join("golden/tiny-llama3/train_batches.safetensors"))?;
    let st = SafeTensors::deserialize(&bytes)?;
    let view = st.tensor("batches")?;
    let ids: Vec<i64> = view
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    Ok(ids
        .chunks(64)
        .map(|c| TokenBatch {
            tokens: c.to_vec(),
            batch_size: 2,
            seq_len: 32,
        })
        .collect())
}
