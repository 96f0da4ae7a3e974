//! Sharded training (`train.zero_stage = 2`, two local devices) through the real binary, when
//! things go wrong: a run killed with SIGKILL resumes bit-exactly, and a save that fails on rank 0
//! stops every rank (the other rank must not wait forever in its next collective).

mod train_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use train_common::*;

/// Two CPU devices at stage 2, one micro-batch each, a checkpoint every step.
const STAGE_2: [&str; 12] = [
    "--devices",
    "0,1",
    "--set",
    "train.zero_stage=2",
    "--set",
    "train.grad_accum=1",
    "--set",
    "train.save_every=1",
    "--set",
    "train.eval_every=0",
    "--set",
    "train.steps=6",
];

/// `graft train RECIPE --out RUN ARGS` in the background, its output in `RUN.err`.
fn spawn(recipe: &Path, run: &Path, args: &[&str]) -> (Child, PathBuf) {
    let log = run.with_extension("err");
    let child = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args([
            "train",
            recipe.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

/// Wait at most `secs` for `child`; a hang kills it and fails the test.
fn wait(child: &mut Child, secs: u64, log: &Path) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("graft train did not finish in {secs} s (a rank hung?)\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stage_2_run_killed_with_sigkill_resumes_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let (full, killed) = (dir.path().join("full"), dir.path().join("killed"));
    train(&recipe, &full, &STAGE_2);

    // kill -9 as soon as the step-2 checkpoint is complete: mid-step or mid-save of step 3
    let (mut child, log) = spawn(&recipe, &killed, &STAGE_2);
    let done = killed.join("checkpoints/step-2/training_state.json");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(Instant::now() < deadline, "no step-2 checkpoint in 300 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !killed.join("checkpoints/step-6").exists(),
        "the run finished before it was killed"
    );

    let mut resume = STAGE_2.to_vec();
    resume.push("--resume");
    let (mut child, log2) = spawn(&recipe, &killed, &resume);
    let status = wait(&mut child, 300, &log2);
    let text = std::fs::read_to_string(&log2).unwrap();
    assert!(
        status.success(),
        "{}\n{text}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(text.contains("resuming"), "{text}");

    assert_eq!(losses(&full), losses(&killed), "loss curve differs");
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let at = |run: &Path| tensors(&run.join("checkpoints/step-6").join(file));
        assert!(
            at(&full) == at(&killed),
            "{file} differs after kill -9 and resume"
        );
    }
}

#[test]
fn a_save_failing_on_rank_0_stops_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = tiny_recipe(dir.path());
    let run = dir.path().join("run");
    // a file where rank 0 will rename the step-1 checkpoint: its commit fails after every rank
    // wrote its optimizer shard, while rank 1 moves on to step 2's collectives
    std::fs::create_dir_all(run.join("checkpoints")).unwrap();
    std::fs::write(run.join("checkpoints/step-1"), "in the way").unwrap();
    let mut args = STAGE_2.to_vec();
    args.push("--resume");
    let (mut child, log) = spawn(&recipe, &run, &args);
    let status = wait(&mut child, 120, &log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{text}");
    assert!(text.contains("step-1"), "{text}");
}
