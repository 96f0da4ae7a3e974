//! Run-directory and checkpoint management.
//!
//! Layout of a run directory:
//! ```text
//! <run>/
//!   recipe.toml                 the resolved recipe
//!   tensorboard/                event files
//!   checkpoints/
//!     step-<N>/                 one complete checkpoint per directory
//!       config.json, *.safetensors   the model as an HF checkpoint directory
//!       optimizer.safetensors        AdamW moments by parameter name
//!       training_state.json          step, tokens, data cursor, counters
//!     latest -> step-<N>        symlink to the newest checkpoint
//! ```
//! A checkpoint is written to `.step-<N>.<host>-<pid>-<n>.tmp/` (see [`graft_data::atomic`]), every file fsynced, then renamed into place, so a
//! `step-<N>` directory is always complete. Older checkpoints are deleted only after the new one
//! is in place; leftover `.tmp` directories from a crash are removed on the next save or resume.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};
use crate::state::TrainingState;

/// Name of the optimizer-state file in a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Name of the training-state file in a checkpoint.
pub const STATE_FILE: &str = "training_state.json";
/// Name of the symlink to the newest checkpoint.
pub const LATEST: &str = "latest";

/// The `checkpoints/` directory of a run.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    root: PathBuf,
}

/// A complete checkpoint found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The optimizer step it was taken after.
    pub step: u64,
    /// Its directory.
    pub path: PathBuf,
}

impl Checkpoint {
    /// Path of the optimizer-state file.
    pub fn optimizer_path(&self) -> PathBuf {
        self.path.join(OPTIMIZER_FILE)
    }

    /// Read `training_state.json`. A truncated or hand-edited file is an error naming the file
    /// and the field (and the line and column serde_json stopped at).
    pub fn read_state(&self) -> Result<TrainingState> {
        let path = self.path.join(STATE_FILE);
        let text = fs::read_to_string(&path).map_err(|e| TrainError::io("reading", &path, e))?;
        let bad = |message: String| TrainError::Checkpoint {
            path: path.clone(),
            message: format!(
                "{message}. Hint: the file is damaged or was edited; resume from an older \
                 checkpoint or start a new run"
            ),
        };
        let mut de = serde_json::Deserializer::from_str(&text);
        let state: TrainingState = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| {
                let field = e.path().to_string();
                let e = e.into_inner();
                let what = if e.is_eof() { "truncated" } else { "invalid" };
                match field.as_str() {
                    "." => format!("{what} training state: {e}"),
                    _ => format!("{what} training state, field `{field}`: {e}"),
                }
            })
            .and_then(|s| {
                de.end()
                    .map(|_| s)
                    .map_err(|e| format!("invalid training state: {e}"))
            })
            .map_err(bad)?;
        if state.step != self.step {
            return Err(bad(format!(
                "field `step` is {} but the checkpoint is step-{}",
                state.step, self.step
            )));
        }
        Ok(state)
    }
}

impl CheckpointDir {
    /// The checkpoints directory of run directory `run_dir` (created if missing).
    pub fn new(run_dir: &Path) -> Result<Self> {
        let root = run_dir.join("checkpoints");
        fs::create_dir_all(&root).map_err(|e| TrainError::io("creating", &root, e))?;
        Ok(Self { root })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Write a checkpoint for `step`: `write_model` writes the model files into the directory it
    /// is given, then the optimizer bytes and the training state are added. Keeps the newest
    /// `keep_last` checkpoints (0 keeps all). Returns the final checkpoint.
    pub fn save(
        &self,
        step: u64,
        write_model: impl FnOnce(&Path) -> Result<()>,
        optimizer: &[u8],
        state: &TrainingState,
        keep_last: usize,
    ) -> Result<Checkpoint> {
        let tmp = self.begin(step)?;
        write_model(&tmp)?;
        write_file(&tmp.join(OPTIMIZER_FILE), optimizer)?;
        self.commit(step, &tmp, state, keep_last)
    }

    /// The temporary directory a checkpoint of `step` is written in before its rename (every
    /// rank of a sharded run writes its part of the optimizer state there).
    pub fn tmp_path(&self, step: u64) -> PathBuf {
        self.root.join(format!(".step-{step}.tmp"))
    }

    /// Start a checkpoint of `step`: remove leftovers of interrupted saves and create its
    /// temporary directory ([`Self::tmp_path`]).
    pub fn begin(&self, step: u64) -> Result<PathBuf> {
        self.clean_tmp()?;
        let tmp = self.tmp_path(step);
        fs::create_dir_all(&tmp).map_err(|e| TrainError::io("creating", &tmp, e))?;
        Ok(tmp)
    }

    /// Finish the checkpoint whose files are in `tmp`: add the training state, fsync everything,
    /// rename it into place, point `latest` at it and keep the newest `keep_last` (0: all).
    pub fn commit(
        &self,
        step: u64,
        tmp: &Path,
        state: &TrainingState,
        keep_last: usize,
    ) -> Result<Checkpoint> {
        let json = serde_json::to_vec_pretty(state).map_err(|e| TrainError::Checkpoint {
            path: tmp.to_path_buf(),
            message: e.to_string(),
        })?;
        write_file(&tmp.join(STATE_FILE), &json)?;
        sync_tree(tmp)?;

        let dest = self.root.join(format!("step-{step}"));
        if dest.exists() {
            let old = self.root.join(format!(".step-{step}.old.tmp"));
            fs::rename(&dest, &old).map_err(|e| TrainError::io("renaming", &dest, e))?;
            fs::remove_dir_all(&old).map_err(|e| TrainError::io("removing", &old, e))?;
        }
        fs::rename(tmp, &dest).map_err(|e| TrainError::io("renaming", tmp, e))?;
        self.point_latest(step)?;
        sync_dir(&self.root)?;
        if keep_last > 0 {
            self.prune(keep_last)?;
        }
        tracing::info!(step, path = %dest.display(), "saved checkpoint");
        Ok(Checkpoint { step, path: dest })
    }

    /// All complete checkpoints, oldest first.
    pub fn list(&self) -> Result<Vec<Checkpoint>> {
        let entries =
            fs::read_dir(&self.root).map_err(|e| TrainError::io("listing", &self.root, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| TrainError::io("listing", &self.root, e))?;
            let name = entry.file_name();
            let Some(step) = name
                .to_str()
                .and_then(|n| n.strip_prefix("step-"))
                .and_then(|n| n.parse().ok())
            else {
                continue;
            };
            let path = entry.path();
            if path.is_dir() && path.join(STATE_FILE).is_file() {
                out.push(Checkpoint { step, path });
            }
        }
        out.sort_by_key(|c| c.step);
        Ok(out)
    }

    /// The newest complete checkpoint, after removing leftovers of interrupted saves.
    pub fn latest(&self) -> Result<Option<Checkpoint>> {
        self.clean_tmp()?;
        Ok(self.list()?.pop())
    }

    /// Remove `.tmp` directories and files left by an interrupted save.
    fn clean_tmp(&self) -> Result<()> {
        let entries =
            fs::read_dir(&self.root).map_err(|e| TrainError::io("listing", &self.root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| TrainError::io("listing", &self.root, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") || (name.starts_with('.') && name.contains(".tmp-")) {
                let path = entry.path();
                tracing::warn!(path = %path.display(), "removing incomplete checkpoint");
                let res = if path.is_dir() && !path.is_symlink() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                res.map_err(|e| TrainError::io("removing", &path, e))?;
            }
        }
        Ok(())
    }

    /// Delete all but the newest `keep` checkpoints.
    fn prune(&self, keep: usize) -> Result<()> {
        let all = self.list()?;
        let excess = all.len().saturating_sub(keep);
        for ckpt in &all[..excess] {
            fs::remove_dir_all(&ckpt.path)
                .map_err(|e| TrainError::io("removing", &ckpt.path, e))?;
        }
        Ok(())
    }

    /// Atomically point `latest` at `step-<step>`.
    fn point_latest(&self, step: u64) -> Result<()> {
        let link = self.root.join(LATEST);
        let tmp = graft_fs::temp_path(&link);
        #[cfg(unix)]
        std::os::unix::fs::symlink(format!("step-{step}"), &tmp)
            .map_err(|e| TrainError::io("linking", &tmp, e))?;
        #[cfg(not(unix))]
        fs::write(&tmp, format!("step-{step}\n"))
            .map_err(|e| TrainError::io("writing", &tmp, e))?;
        fs::rename(&tmp, &link).map_err(|e| TrainError::io("renaming", &tmp, e))
    }
}

/// Write `bytes` to `path` and fsync it (the caller renames the directory into place).
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    graft_fs::write_synced(path, bytes).map_err(|e| TrainError::io("writing", e.path, e.source))
}

/// fsync every file under `dir` and the directories themselves.
fn sync_tree(dir: &Path) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| TrainError::io("listing", dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| TrainError::io("listing", dir, e))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            let f = fs::File::open(&path).map_err(|e| TrainError::io("opening", &path, e))?;
            f.sync_all()
                .map_err(|e| TrainError::io("syncing", &path, e))?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    graft_fs::sync_dir(dir).map_err(|e| TrainError::io("syncing", e.path, e.source))
}
