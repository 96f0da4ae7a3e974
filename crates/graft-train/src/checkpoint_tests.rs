//! Tests of the checkpoint directory: atomic saves, `latest`, pruning, resume discovery.

use std::fs;
use std::path::Path;

use crate::checkpoint::{CheckpointDir, LATEST, OPTIMIZER_FILE, STATE_FILE};
use crate::error::TrainError;
use crate::state::TrainingState;

fn state(step: u64) -> TrainingState {
    TrainingState {
        version: crate::state::STATE_VERSION,
        step,
        lr_step: step,
        tokens_seen: step * 128,
        tokens_per_source: [
            ("web".to_string(), step * 100),
            ("qa".to_string(), step * 28),
        ]
        .into(),
        consecutive_nonfinite: 0,
        total_nonfinite: 1,
        data_cursor: serde_json::json!({"shard": 3, "offset": step * 7}),
    }
}

fn model_writer(step: u64) -> impl FnOnce(&Path) -> crate::Result<()> {
    move |dir: &Path| {
        fs::write(dir.join("config.json"), format!("{{\"step\": {step}}}"))
            .map_err(|e| TrainError::io("writing", dir, e))
    }
}

#[test]
fn save_writes_complete_directory_and_latest_link() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::new(tmp.path()).unwrap();
    let ck = dir
        .save(5, model_writer(5), b"optim-bytes", &state(5), 3)
        .unwrap();
    assert_eq!(ck.path, tmp.path().join("checkpoints/step-5"));
    assert_eq!(
        fs::read(ck.path.join(OPTIMIZER_FILE)).unwrap(),
        b"optim-bytes"
    );
    assert_eq!(
        fs::read_to_string(ck.path.join("config.json")).unwrap(),
        "{\"step\": 5}"
    );
    assert_eq!(ck.read_state().unwrap(), state(5));
    let latest = dir.root().join(LATEST);
    assert_eq!(fs::read_link(&latest).unwrap(), Path::new("step-5"));
    assert!(latest.join(STATE_FILE).is_file());
    assert!(tmp_entries(dir.root(), ".step-5.").is_empty());
}

/// Names in `root` that start with `prefix` and end with `.tmp` (a save's temporaries).
fn tmp_entries(root: &Path, prefix: &str) -> Vec<String> {
    fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".tmp"))
        .collect()
}

#[test]
fn keeps_last_k_and_latest_follows_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::new(tmp.path()).unwrap();
    for step in [2, 4, 6, 8] {
        dir.save(step, model_writer(step), b"x", &state(step), 2)
            .unwrap();
    }
    let steps: Vec<u64> = dir.list().unwrap().iter().map(|c| c.step).collect();
    assert_eq!(steps, [6, 8]);
    assert_eq!(
        fs::read_link(dir.root().join(LATEST)).unwrap(),
        Path::new("step-8")
    );
    assert_eq!(dir.latest().unwrap().unwrap().step, 8);
}

#[test]
fn interrupted_save_is_ignored_and_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::new(tmp.path()).unwrap();
    dir.save(3, model_writer(3), b"x", &state(3), 0).unwrap();
    // a crash in the middle of saving step 6 leaves a tmp dir behind
    let failing = |d: &Path| -> crate::Result<()> {
        fs::write(d.join("config.json"), "{").unwrap();
        Err(TrainError::Model("disk full".into()))
    };
    assert!(dir.save(6, failing, b"x", &state(6), 0).is_err());
    assert_eq!(tmp_entries(dir.root(), ".step-6.").len(), 1);
    let latest = dir.latest().unwrap().unwrap();
    assert_eq!(latest.step, 3);
    assert!(
        tmp_entries(dir.root(), ".step-6.").is_empty(),
        "leftover tmp dir must be removed"
    );
    // a directory without training_state.json is not a checkpoint
    fs::create_dir(dir.root().join("step-9")).unwrap();
    assert_eq!(dir.latest().unwrap().unwrap().step, 3);
}

#[test]
fn saving_the_same_step_twice_replaces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::new(tmp.path()).unwrap();
    dir.save(4, model_writer(4), b"first", &state(4), 0)
        .unwrap();
    let ck = dir
        .save(4, model_writer(4), b"second", &state(4), 0)
        .unwrap();
    assert_eq!(fs::read(ck.optimizer_path()).unwrap(), b"second");
    assert_eq!(dir.list().unwrap().len(), 1);
}

#[test]
fn a_truncated_or_edited_state_file_is_an_error_naming_the_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::new(tmp.path()).unwrap();
    let ck = dir.save(1, model_writer(1), b"x", &state(1), 0).unwrap();
    let file = ck.path.join(STATE_FILE);
    let good = fs::read_to_string(&file).unwrap();
    let read = |text: &str| {
        fs::write(&file, text).unwrap();
        ck.read_state().unwrap_err().to_string()
    };
    let cases = [
        // (what is done to the file, what the error must name)
        (good[..good.len() / 2].to_string(), "truncated"),
        (
            good.replace("\"lr_step\": 1,", ""),
            "missing field `lr_step`",
        ),
        (
            good.replace("\"lr_step\": 1", "\"lr_step\": \"one\""),
            "field `lr_step`",
        ),
        (
            good.replace("\"total_nonfinite\": 1", "\"total_nonfinite\": -1"),
            "field `total_nonfinite`",
        ),
        (
            good.replace("\"web\": 100", "\"web\": [100]"),
            "field `tokens_per_source.web`",
        ),
        (
            good.replace("\"step\": 1,", "\"step\": 7,"),
            "field `step` is 7 but the checkpoint is step-1",
        ),
        (format!("{good} {{}}"), "trailing characters"),
    ];
    for (text, field) in cases {
        assert_ne!(text, good, "{field}: the edit must change the file");
        let err = read(&text);
        assert!(
            err.contains("step-1/training_state.json") && err.contains(field),
            "{field}: {err}"
        );
    }
}
