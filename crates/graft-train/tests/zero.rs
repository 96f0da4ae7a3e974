//! Sharded data parallelism (ZeRO stages 1 and 2) with two local peers on the CPU: burn-collective's
//! reduce-scatter and all-gather, stages 1 and 2 training tiny-llama3 bitwise like stage 0 with
//! half the optimizer state per rank, and checkpoints that resume across stages.

mod common;

use std::path::Path;
use std::sync::Mutex;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use common::*;
use graft_train::parallel::{run_data_parallel, Collectives, DataParallel, ParallelConfig};
use graft_train::{StepReport, Trainer, VecSource};

type Inner = <B as AutodiffBackend>::InnerBackend;

/// burn-collective keeps one local server per backend type and process: one test at a time.
static COLLECTIVE: Mutex<()> = Mutex::new(());

fn floats(t: Tensor<Inner, 1>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

#[test]
fn reduce_scatter_and_all_gather_with_two_local_peers() {
    let _guard = COLLECTIVE.lock().unwrap_or_else(|e| e.into_inner());
    burn::collective::reset_collective::<Inner>();
    let devices = vec![Default::default(); 2];
    let out = run_data_parallel::<Inner, _, _>(&ParallelConfig::local(2), &devices, |mut dp| {
        let r = dp.rank() as f32;
        let device = Default::default();
        // rank r gives [r, r+1, ..., r+7]; uneven chunks: rank 0 gets 3 rows, rank 1 gets 5
        let full: Vec<f32> = (0..8).map(|i| r + i as f32).collect();
        let t = Tensor::<Inner, 1>::from_data(TensorData::new(full, [8]), &device);
        let mine = floats(dp.reduce_scatter_sum(t, &[3, 5])?);
        // rank 0 gives 1 element, rank 1 gives 3; every rank gets all 4 in rank order
        let piece: Vec<f32> = (0..1 + 2 * dp.rank())
            .map(|i| 10.0 * (r + 1.0) + i as f32)
            .collect();
        let n = piece.len();
        let piece = Tensor::<Inner, 1>::from_data(TensorData::new(piece, [n]), &device);
        let all = floats(dp.all_gather(piece, &[1, 3])?);
        let sum = floats(dp.all_reduce_sum(Tensor::from_data([1.0f32, r], &device))?);
        Ok((mine, all, sum))
    })
    .unwrap();
    // element i summed over ranks: i + (1 + i)
    assert_eq!(out[0].0, [1.0, 3.0, 5.0]);
    assert_eq!(out[1].0, [7.0, 9.0, 11.0, 13.0, 15.0]);
    for (_, all, sum) in &out {
        assert_eq!(all, &[10.0, 20.0, 21.0, 22.0]);
        assert_eq!(sum, &[2.0, 1.0]);
    }
    // peers that disagree on the chunk counts get an error, not a wrong result
    burn::collective::reset_collective::<Inner>();
    let err = run_data_parallel::<Inner, (), _>(&ParallelConfig::local(2), &devices, |mut dp| {
        let counts = if dp.rank() == 0 { [2, 2] } else { [1, 3] };
        let t = Tensor::<Inner, 1>::zeros([4], &Default::default());
        dp.reduce_scatter_sum(t, &counts).map(|_| ())
    })
    .unwrap_err();
    assert!(err.to_string().contains("reduce-scatter"), "{err}");
}

/// What one peer ends with: its reports, weights and optimizer-state bytes.
type PeerRun = (Vec<StepReport>, Vec<(String, Vec<f32>)>, usize);

/// Two peers (one micro-batch each per step) train tiny-llama3 at `stage` for `steps` steps of
/// the 6-step golden run, resuming from `run_dir`'s checkpoint when it has one and saving at the
/// end; small buckets so that several reduce-scatters and all-gathers run per step.
fn two_peers(stage: u8, run_dir: Option<&Path>, steps: u64) -> Vec<PeerRun> {
    two_peers_accum(stage, run_dir, steps, 1)
}

/// [`two_peers`] with `grad_accum` micro-batches per peer and step.
fn two_peers_accum(stage: u8, run_dir: Option<&Path>, steps: u64, accum: usize) -> Vec<PeerRun> {
    burn::collective::reset_collective::<Inner>();
    let batches = golden_batches();
    let devices = vec![Default::default(); 2];
    run_data_parallel::<Inner, _, _>(&ParallelConfig::local(2), &devices, |dp| {
        let rank = dp.rank();
        let mut trainer = peer_trainer(dp, stage, steps, accum);
        let mut data = VecSource::new(batches.iter().skip(rank).step_by(2).cloned().collect());
        if let Some(dir) = run_dir {
            trainer = trainer.with_run_dir(dir)?;
            trainer.resume(&mut data)?;
        }
        let reports = trainer.run(&mut data)?;
        Ok((
            reports,
            params(trainer.model()),
            trainer.optimizer().state_bytes(),
        ))
    })
    .unwrap()
}

/// A peer's trainer of tiny-llama3 at `stage`, one micro-batch per step, small buckets.
fn peer_trainer(dp: DataParallel<Inner>, stage: u8, steps: u64, accum: usize) -> Trainer<B> {
    let device = Default::default();
    let (model, config) = graft_llama::load::<B>(fixtures().join("tiny-llama3"), &device).unwrap();
    let mut cfg = golden_config();
    cfg.grad_accum = accum;
    cfg.zero_stage = stage;
    cfg.steps = steps;
    Trainer::<B>::new(model, config, cfg, device)
        .with_zero_bucket_elems(5000)
        .with_grad_sync(Box::new(dp))
}

#[test]
fn ranks_that_resume_different_checkpoints_are_an_error_naming_them() {
    let _guard = COLLECTIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (saved, empty) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    two_peers(2, Some(saved.path()), 2);
    burn::collective::reset_collective::<Inner>();
    let devices = vec![Default::default(); 2];
    let err = run_data_parallel::<Inner, (), _>(&ParallelConfig::local(2), &devices, |dp| {
        // rank 1 looks at another run directory, with no checkpoint
        let dir = [saved.path(), empty.path()][dp.rank()];
        let mut trainer = peer_trainer(dp, 2, 6, 1).with_run_dir(dir)?;
        trainer
            .resume(&mut VecSource::new(golden_batches()))
            .map(|_| ())
    })
    .unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("rank 0 is at step 2") && err.contains("rank 1 at step 0"),
        "{err}"
    );
}

fn bits(reports: &[StepReport]) -> Vec<(u64, u64, u64)> {
    reports
        .iter()
        .map(|r| (r.step, r.loss.to_bits(), r.grad_norm.to_bits()))
        .collect()
}

fn assert_same_weights(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)], what: &str) {
    assert_eq!(a.len(), b.len());
    for ((n, x), (_, y)) in a.iter().zip(b) {
        assert!(
            x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{what}: {n} differs"
        );
    }
}

#[test]
fn stages_1_and_2_train_bitwise_like_stage_0_with_half_the_state_per_rank() {
    let _guard = COLLECTIVE.lock().unwrap_or_else(|e| e.into_inner());
    let stage0 = two_peers(0, None, 6);
    let total = stage0[0].2;
    assert_eq!(stage0[1].2, total, "stage 0 replicates the state");
    for stage in [1, 2] {
        let run = two_peers(stage, None, 6);
        for (rank, (reports, weights, bytes)) in run.iter().enumerate() {
            assert_eq!(
                bits(reports),
                bits(&stage0[0].0),
                "stage {stage} rank {rank}"
            );
            assert_same_weights(weights, &stage0[0].1, &format!("stage {stage} rank {rank}"));
            // about half, by whole tensors: tiny-llama3's largest tensor is 384 × 64 (embedding)
            let largest = 2 * 4 * 384 * 64;
            assert!(
                bytes.abs_diff(total / 2) <= largest,
                "stage {stage} rank {rank}: {bytes} of {total} state bytes"
            );
        }
        assert_eq!(
            run[0].2 + run[1].2,
            total,
            "stage {stage}: every tensor once"
        );
    }
}

/// With several micro-batches per step, stage 1 (which all-reduces the summed gradients as stage
/// 0 does) stays bitwise; stage 2 reduce-scatters every micro-batch, so it sums over the ranks
/// before the micro-batches and differs from stage 0 by float rounding only (docs/distributed.md).
#[test]
fn with_grad_accum_stage_1_is_bitwise_and_stage_2_within_rounding() {
    let _guard = COLLECTIVE.lock().unwrap_or_else(|e| e.into_inner());
    // 12 golden micro-batches: 2 peers × 2 micro-batches × 3 steps
    let stage0 = two_peers_accum(0, None, 3, 2);
    let stage1 = two_peers_accum(1, None, 3, 2);
    assert_eq!(bits(&stage1[0].0), bits(&stage0[0].0));
    assert_same_weights(&stage1[0].1, &stage0[0].1, "stage 1, grad_accum 2");
    let stage2 = two_peers_accum(2, None, 3, 2);
    let (a, b) = (&stage0[0].0, &stage2[0].0);
    assert_eq!(a.len(), 3);
    // the first loss comes before any update: the same bits
    assert_eq!(a[0].loss.to_bits(), b[0].loss.to_bits());
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x.loss - y.loss).abs() <= 1e-6 * x.loss.abs(),
            "{x:?} vs {y:?}"
        );
        assert!(
            (x.grad_norm - y.grad_norm).abs() <= 1e-5 * x.grad_norm,
            "{x:?} vs {y:?}"
        );
    }
    for peer in &stage2 {
        for ((n, x), (_, y)) in peer.1.iter().zip(&stage0[0].1) {
            let diff = x
                .iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            // AdamW magnifies rounding where a gradient is near 0: 1% of one update (lr 1e-3)
            assert!(diff <= 1e-5, "stage 2, grad_accum 2: {n} differs by {diff}");
        }
        assert_same_weights(&peer.1, &stage2[0].1, "stage 2 ranks agree");
    }
}

#[test]
fn a_stage_2_checkpoint_resumes_at_stage_0_and_the_reverse_bitwise() {
    let _guard = COLLECTIVE.lock().unwrap_or_else(|e| e.into_inner());
    let whole = two_peers(0, None, 6);
    for (first, second) in [(2, 0), (0, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let a = two_peers(first, Some(dir.path()), 3);
        let b = two_peers(second, Some(dir.path()), 6);
        let mut reports = a[0].0.clone();
        reports.extend(b[0].0.clone());
        let what = format!("stage {first} then {second}");
        assert_eq!(bits(&reports), bits(&whole[0].0), "{what}");
        for peer in &b {
            assert_same_weights(&peer.1, &whole[0].1, &what);
        }
        let ckpt = dir.path().join("checkpoints/step-6/optimizer.safetensors");
        let bytes = std::fs::read(&ckpt).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        // full-shape tensors by name whatever the stage
        assert!(
            st.tensors()
                .iter()
                .any(|(k, v)| k == "model.embed_tokens.weight.exp_avg" && v.shape() == [384, 64]),
            "{what}"
        );
    }
}

#[test]
fn a_truncated_or_edited_optimizer_file_is_an_error_naming_it() {
    let _guard = COLLECTIVE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    two_peers(2, Some(dir.path()), 1);
    let file = dir.path().join("checkpoints/step-1/optimizer.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    let read = |b: &[u8]| {
        std::fs::write(&file, b).unwrap();
        let keep_all = |_: &str| true;
        graft_train::optim_file::read_state_file::<Inner>(&file, &Default::default(), &keep_all)
            .unwrap_err()
            .to_string()
    };
    let err = read(&bytes[..bytes.len() / 2]);
    assert!(err.contains("step-1/optimizer.safetensors"), "{err}");
    // a hand-edited header: one parameter's update count is no longer a number
    // (same length, so the header stays well-formed: `{\"name\":1,…}` becomes `{\"name\":x,…}`)
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let at = bytes[8..header]
        .windows(4)
        .position(|w| w == b"\\\":1")
        .unwrap();
    let mut edited = bytes.clone();
    edited[8 + at + 3] = b'x';
    let err = read(&edited);
    assert!(
        err.contains("optimizer.safetensors") && err.contains("steps"),
        "{err}"
    );
}
