//! Data parallelism over burn-collective on the CPU backend: two peers with one micro-batch each
//! per step train tiny-llama3 to the same weights as one peer accumulating both micro-batches;
//! rank 0's random init is copied to every peer; a failing peer does not hang the others.

mod common;

use std::sync::Mutex;

use burn::tensor::backend::AutodiffBackend;
use common::*;
use graft_train::parallel::{run_data_parallel, DataParallel, ParallelConfig};
use graft_train::{StepReport, TokenBatch, Trainer, VecSource};

type Inner = <B as AutodiffBackend>::InnerBackend;

/// burn-collective keeps one local server per backend type and process: one test at a time.
static COLLECTIVE: Mutex<()> = Mutex::new(());

/// Train tiny-llama3 on `batches` with `grad_accum`, optionally as a data-parallel peer.
fn train(
    batches: Vec<TokenBatch>,
    grad_accum: usize,
    dp: Option<DataParallel<Inner>>,
) -> (Vec<StepReport>, Vec<(String, Vec<f32>)>) {
    let device = Default::default();
    let (model, config) = graft_llama::load::<B>(fixtures().join("tiny-llama3"), &device).unwrap();
    let mut train_config = golden_config();
    train_config.grad_accum = grad_accum;
    let mut trainer = Trainer::<B>::new(model, config, train_config, device);
    if let Some(dp) = dp {
        trainer = trainer.with_grad_sync(Box::new(dp));
    }
    let reports = trainer.run(&mut VecSource::new(batches)).unwrap();
    (reports, params(trainer.model()))
}

#[test]
fn two_peers_equal_one_peer_with_twice_the_micro_batches() {
    let _guard = COLLECTIVE.lock().unwrap_or_else(|e| e.into_inner());
    burn::collective::reset_collective::<Inner>();
    let batches = golden_batches(); // 6 steps × 2 micro-batches, step-major
    let (single_reports, single) = train(batches.clone(), 2, None);

    let devices = vec![Default::default(); 2];
    let peers = run_data_parallel::<Inner, _, _>(&ParallelConfig::local(2), &devices, |dp| {
        // rank r takes micro-batch r of every step: a disjoint half of the stream
        let rank = dp.rank();
        let mine: Vec<_> = batches.iter().skip(rank).step_by(2).cloned().collect();
        Ok(train(mine, 1, Some(dp)))
    })
    .unwrap();
    assert_eq!(peers.len(), 2);

    for (rank, (reports, weights)) in peers.iter().enumerate() {
        assert_eq!(reports.len(), single_reports.len());
        for (a, b) in reports.iter().zip(&single_reports) {
            assert!(!a.skipped && a.lr == b.lr);
            assert!(
                (a.loss - b.loss).abs() < 1e-5,
                "rank {rank} step {}: loss {} vs {}",
                a.step,
                a.loss,
                b.loss
            );
            assert!(
                (a.grad_norm - b.grad_norm).abs() < 1e-5 * b.grad_norm,
                "rank {rank} step {}: norm {} vs {}",
                a.step,
                a.grad_norm,
                b.grad_norm
            );
        }
        assert_eq!(weights.len(), single.len());
        let mut worst = (0.0f32, String::new());
        for ((name, got), (name2, want)) in weights.iter().zip(&single) {
            assert_eq!(name, name2);
            let diff = got
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            if diff > worst.0 {
                worst = (diff, name.clone());
            }
        }
        assert!(
            worst.0 <= 1e-6,
            "rank {rank}: max abs diff {} in {}",
            worst.0,
            worst.1
        );
    }
    // the two replicas are bit-identical: they took the same averaged step
    assert_eq!(peers[0].1, peers[1].1);
    // and training moved the weights (the comparison is not against the initial model)
    let (init, _) =
        graft_llama::load::<B>(fixtures().join("tiny-llama3"), &Default::default()).unwrap();
    assert!(params(&init)
        .iter()
        .zip(&single)
        .any(|((_, a), (_, b))| a != b));
}

#[test]
fn rank0_init_is_copied_to_every_peer() {
    let _guard = COLLECTIVE.lock().unwrap_or_else(|e| e.into_inner());
    burn::collective::reset_collective::<Inner>();
    let config = graft_llama::ModelConfig::from_file(fixtures().join("tiny-llama3/config.json"))
        .unwrap()
        .llama;
    let devices = vec![Default::default(); 3];
    let out = run_data_parallel::<Inner, _, _>(&ParallelConfig::local(3), &devices, |dp| {
        let model = config.init::<B>(&Default::default());
        let before = params(&model);
        let model = dp.sync_params::<B, _>(model)?;
        Ok((before, params(&model)))
    })
    .unwrap();
    let rank0 = &out[0].0;
    assert_eq!(&out[0].1, rank0, "rank 0 keeps its own weights");
    for (before, after) in &out[1..] {
        assert_ne!(before, rank0, "peers start from different random weights");
        assert_eq!(
            after, rank0,
            "after the sync every peer holds rank 0's weights exactly"
        );
    }
}

#[test]
fn a_failing_peer_stops_the_others() {
    let _guard = COLLECTIVE.lock().unwrap_or_else(|e| e.into_inner());
    burn::collective::reset_collective::<Inner>();
    let devices = vec![Default::default(); 2];
    let err = run_data_parallel::<Inner, (), _>(&ParallelConfig::local(2), &devices, |dp| {
        if dp.rank() == 1 {
            return Err(graft_train::TrainError::Data(
                "rank 1 ran out of data".into(),
            ));
        }
        // rank 0 waits in an all-reduce that rank 1 never joins
        dp.mean_scalar(1.0).map(|_| ())
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("ran out of data") || err.to_string().contains("data parallel"),
        "{err}"
    );
    let bad =
        run_data_parallel::<Inner, (), _>(&ParallelConfig::local(2), &devices[..1], |_| Ok(()))
            .unwrap_err();
    assert!(
        bad.to_string()
            .contains("1 device(s) given for 2 local peer(s)"),
        "{bad}"
    );
}

#[test]
fn multi_node_layout_and_addresses() {
    use graft_train::parallel::GlobalConfig;
    let global = |node_rank, orchestrator: &str| GlobalConfig {
        num_nodes: 2,
        node_rank,
        orchestrator: orchestrator.into(),
        node_address: "ws://10.0.0.2:3001".into(),
        data_service_port: 3001,
    };
    let node1 = ParallelConfig {
        local_devices: 4,
        global: Some(global(1, "ws://10.0.0.1:3000")),
    };
    assert_eq!(node1.world_size(), 8);
    assert_eq!(
        (0..4).map(|l| node1.rank(l)).collect::<Vec<_>>(),
        vec![4, 5, 6, 7]
    );
    assert!(node1.collective_config().is_ok());
    let bad = ParallelConfig {
        local_devices: 4,
        global: Some(global(1, "10.0.0.1:3000")),
    };
    let err = bad.collective_config().unwrap_err().to_string();
    assert!(
        err.contains("orchestrator address") && err.contains("ws://HOST:PORT"),
        "{err}"
    );
}
