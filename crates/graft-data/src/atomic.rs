//! Atomic file writes: [`graft_fs`]'s (temporary sibling unique across hosts, fsync, rename,
//! fsync of the directory), with graft-data's error type.

use std::path::Path;

use crate::error::Result;

pub use graft_fs::{host_name, temp_path};

/// [`graft_fs::write_atomic`]: `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(graft_fs::write_atomic(path, bytes)?)
}

/// [`graft_fs::commit`]: rename the finished temporary `tmp` over `path`, fsync the directory.
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    Ok(graft_fs::commit(tmp, path)?)
}

/// [`graft_fs::sync_dir`]: make the entries of `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    Ok(graft_fs::sync_dir(dir)?)
}
