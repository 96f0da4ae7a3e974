//! Atomic output directories: build the export in `.NAME.<host>-<pid>-<n>.tmp` beside `NAME`
//! ([`graft_fs::temp_path`], unique across hosts sharing a file system), fsync, then rename it
//! into place. A failed or interrupted export leaves no directory named `NAME` that looks
//! finished; `--force` replaces an existing directory only after the new one is complete.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{ExportError, Result};

/// A staging directory that becomes the output directory on [`StagingDir::commit`], and is
/// removed if dropped before that.
#[derive(Debug)]
pub struct StagingDir {
    target: PathBuf,
    staging: PathBuf,
    force: bool,
    committed: bool,
}

impl StagingDir {
    /// Checks that `target` is absent, an empty directory, or (with `force`) any directory, and
    /// creates the staging directory beside it (creating missing parents).
    pub fn create(target: &Path, force: bool) -> Result<Self> {
        let (parent, name) = split_target(target)?;
        check_target(target, force)?;
        fs::create_dir_all(&parent).map_err(|e| ExportError::io(&parent, e))?;
        let staging = graft_fs::temp_path(&parent.join(&name));
        if staging.exists() {
            // left by a crashed process of this host whose pid this one reuses: ours to remove
            fs::remove_dir_all(&staging).map_err(|e| ExportError::io(&staging, e))?;
        }
        fs::create_dir(&staging).map_err(|e| ExportError::io(&staging, e))?;
        Ok(Self {
            target: target.to_path_buf(),
            staging,
            force,
            committed: false,
        })
    }

    /// The directory to write into.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The final output directory.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Fsyncs the staging directory and moves it to the target, replacing what was there.
    pub fn commit(mut self) -> Result<()> {
        sync_dir(&self.staging)?;
        check_target(&self.target, self.force)?;
        let (parent, name) = split_target(&self.target)?;
        let old = graft_fs::unique_sibling(&parent.join(name), "old");
        let displaced = match fs::symlink_metadata(&self.target) {
            Ok(_) => {
                fs::rename(&self.target, &old).map_err(|e| ExportError::io(&self.target, e))?;
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(ExportError::io(&self.target, e)),
        };
        if let Err(e) = fs::rename(&self.staging, &self.target) {
            if displaced {
                let _ = fs::rename(&old, &self.target);
            }
            return Err(ExportError::io(&self.target, e));
        }
        self.committed = true;
        if displaced {
            fs::remove_dir_all(&old).map_err(|e| ExportError::io(&old, e))?;
        }
        sync_dir(&parent)
    }
}

/// Fsyncs a directory so that renames and new entries in it are durable.
fn sync_dir(dir: &Path) -> Result<()> {
    graft_fs::sync_dir(dir).map_err(|e| crate::Error::from(e).into())
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.committed {
            if let Err(e) = fs::remove_dir_all(&self.staging) {
                tracing::warn!(
                    "could not remove the unfinished export {}: {e}",
                    self.staging.display()
                );
            }
        }
    }
}

/// The parent directory (`.` for a bare name) and the final component of `target`.
fn split_target(target: &Path) -> Result<(PathBuf, String)> {
    let name = target.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        let error = io::Error::new(
            io::ErrorKind::InvalidInput,
            "the output path must end in a directory name",
        );
        ExportError::io(target, error)
    })?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_string()))
}

/// Refuses a target that is a file, or a non-empty directory without `force`.
fn check_target(target: &Path, force: bool) -> Result<()> {
    let meta = match fs::symlink_metadata(target) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ExportError::io(target, e)),
    };
    if !meta.is_dir() {
        let error = io::Error::new(
            io::ErrorKind::AlreadyExists,
            "exists and is not a directory",
        );
        return Err(ExportError::io(target, error));
    }
    let mut entries = fs::read_dir(target).map_err(|e| ExportError::io(target, e))?;
    if entries.next().is_some() && !force {
        return Err(ExportError::OutDirNotEmpty {
            path: target.to_path_buf(),
        });
    }
    Ok(())
}
