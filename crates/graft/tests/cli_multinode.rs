//! Multi-node data parallelism through the real binary, on loopback: `graft orchestrator` and two
//! `graft train --nodes 2 --node-rank R` processes (one CPU device each) train the same model as
//! one process with `--devices 0,1` — the same peers, joined through burn-collective's global
//! orchestrator instead of inside one process. The nodes shard the optimizer state and the
//! gradients (`train.zero_stage = 2`: reduce-scatter, all-gather and a checkpoint both nodes write
//! into); the local reference replicates them (stage 0). Losses and weights are bitwise equal.

mod train_common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use train_common::*;

/// A child process killed when dropped (the orchestrator runs until stopped).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a node process ended with: success, stdout, stderr.
type NodeOutput = (bool, String, String);

/// `graft orchestrator` and two `graft train … --nodes 2 --node-rank R` processes on loopback
/// (one CPU device each) training `recipe` into `run` with `args`; waits (at most 300 s: a hung
/// collective fails the test instead of stalling it) and returns each node's outcome.
fn run_two_nodes(
    dir: &std::path::Path,
    recipe: &std::path::Path,
    run: &std::path::Path,
    args: &[&str],
) -> Vec<NodeOutput> {
    let port = free_port();
    let orchestrator = Killed(
        Command::new(env!("CARGO_BIN_EXE_graft"))
            .args(["orchestrator", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the orchestrator did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let orchestrator_url = format!("ws://127.0.0.1:{port}");
    let mut nodes: Vec<(Killed, std::path::PathBuf, std::path::PathBuf)> = (0..2)
        .map(|rank| {
            let address = format!("ws://127.0.0.1:{}", free_port());
            let (out, err) = (
                dir.join(format!("node{rank}.out")),
                dir.join(format!("node{rank}.err")),
            );
            let rank = rank.to_string();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_graft"));
            cmd.args([
                "train",
                recipe.to_str().unwrap(),
                "--out",
                run.to_str().unwrap(),
            ])
            .args(args)
            .args(["--nodes", "2", "--node-rank", &rank])
            .args([
                "--orchestrator",
                &orchestrator_url,
                "--node-address",
                &address,
            ])
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
            (Killed(cmd.spawn().unwrap()), out, err)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut status = vec![None; nodes.len()];
    while status.iter().any(Option::is_none) {
        for (i, (child, _, _)) in nodes.iter_mut().enumerate() {
            if status[i].is_none() {
                status[i] = child.0.try_wait().unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the nodes did not finish in 300 s: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(orchestrator);
    nodes
        .iter()
        .zip(&status)
        .map(|((_, out, err), st)| {
            let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
            (st.is_some_and(|s| s.success()), read(out), read(err))
        })
        .collect()
}

/// A node that fails (its checkpoint cannot be committed) does not leave the other node waiting
/// in a collective: its process exits, burn-collective sees the peer lost, and the other node
/// stops with an error that says so.
#[test]
fn a_failed_node_does_not_leave_the_other_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let prepared = graft(&["prepare", recipe.to_str().unwrap()]);
    assert!(prepared.status.success(), "{:?}", text(&prepared));
    let run = dir.path().join("nodes");
    // a file where rank 0 will rename the step-1 checkpoint: its commit fails after every rank
    // wrote its optimizer part, while rank 1 moves on to step 2's collectives
    std::fs::create_dir_all(run.join("checkpoints")).unwrap();
    std::fs::write(run.join("checkpoints/step-1"), "in the way").unwrap();
    let args = [
        "--set",
        "train.steps=3",
        "--set",
        "train.grad_accum=1",
        "--set",
        "train.zero_stage=2",
        "--set",
        "train.save_every=1",
        "--set",
        "train.eval_every=0",
        "--resume",
    ];
    let outputs = run_two_nodes(dir.path(), &recipe, &run, &args);
    let (ok0, _, err0) = &outputs[0];
    let (ok1, _, err1) = &outputs[1];
    assert!(!ok0, "node 0 should fail on its save\n{err0}");
    assert!(err0.contains("step-1"), "{err0}");
    assert!(!ok1, "node 1 should not succeed without node 0\n{err1}");
    assert!(err1.contains("PeerLost"), "node 1:\n{err1}");
}

#[test]
fn two_nodes_train_the_same_model_as_two_local_devices() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let steps = ["--set", "train.steps=3", "--set", "train.grad_accum=1"];

    // the reference: both peers in one process (this also prepares the data the nodes reuse)
    let local_run = dir.path().join("local");
    let mut args = steps.to_vec();
    args.extend(["--devices", "0,1"]);
    train(&recipe, &local_run, &args);

    let nodes_run = dir.path().join("nodes");
    let mut args = steps.to_vec();
    args.extend(["--set", "train.zero_stage=2"]);
    let outputs = run_two_nodes(dir.path(), &recipe, &nodes_run, &args);
    for (rank, (ok, stdout, stderr)) in outputs.iter().enumerate() {
        assert!(
            ok,
            "node {rank} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
    assert!(
        outputs[0].1.contains("nodes/checkpoints/step-3"),
        "{}",
        outputs[0].1
    );
    assert!(
        outputs[1].1.contains("node 1 trained to step 3"),
        "{}",
        outputs[1].1
    );
    assert!(outputs[0].2.contains("global_batch=4"), "{}", outputs[0].2);

    // bitwise: with one device per node the ring reduce-scatter adds the two peers' gradients as
    // the local all-reduce does, and the all-gather copies the weights exactly
    assert_eq!(losses(&local_run), losses(&nodes_run));
    let file = "checkpoints/step-3/model.safetensors";
    assert_weights_bitwise(&local_run.join(file), &nodes_run.join(file));
    // the optimizer state both nodes wrote their halves of: the same full-shape tensors by name
    let file = "checkpoints/step-3/optimizer.safetensors";
    assert_weights_bitwise(&local_run.join(file), &nodes_run.join(file));
    let saved = std::fs::read_to_string(nodes_run.join("recipe.toml")).unwrap();
    assert!(saved.contains("nodes = 2"), "{saved}");
}

/// `graft bench zero` (issue 11, item 7) at tiny size: every stage runs as two `graft train`
/// processes on loopback and reports each rank's peak RSS beside the plan, whose per-GPU optimizer
/// state halves from stage 1.
#[test]
fn bench_zero_reports_each_ranks_peak_rss_at_three_stages() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let out = graft(&[
        "bench",
        "zero",
        recipe.to_str().unwrap(),
        "--set",
        "train.steps=1",
        "--set",
        "train.grad_accum=1",
        "--set",
        "eval.tasks=[]",
        "--set",
        "train.eval_every=0",
        "--timeout",
        "300",
        "--json",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let runs = v["runs"].as_array().unwrap();
    let stages: Vec<u64> = runs
        .iter()
        .map(|r| r["zero_stage"].as_u64().unwrap())
        .collect();
    assert_eq!(stages, [0, 1, 2], "{v}");
    for r in runs {
        let rss: Vec<u64> = r["peak_rss"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        // both ranks ran as processes of their own, each at least as large as its model (4.2M f32)
        assert_eq!(rss.len(), 2, "{v}");
        assert!(rss.iter().all(|&b| b > 16_000_000), "{v}");
    }
    let plan = |i: usize, k: &str| runs[i][k].as_u64().unwrap();
    let half = plan(0, "plan_optimizer").div_ceil(2);
    assert!(plan(1, "plan_optimizer").abs_diff(half) <= 1, "{v}");
    assert!(plan(1, "plan_total") < plan(0, "plan_total"), "{v}");
}
