//! Atomic file writes, the one helper every graft crate above this one uses: write a temporary
//! sibling, fsync it, rename it over the target, fsync the directory (so the rename itself
//! survives a crash).
//!
//! Temporary names are `.<name>.<host>-<pid>-<n>.tmp`: host name, process id and a per-process
//! counter, so two processes (on one host or on several hosts sharing a file system) never
//! write the same temporary file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{DataError, Result};

/// A temporary sibling of `path`, unique across processes and hosts: `.<name>.<host>-<pid>-<n>.tmp`.
pub fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(
        ".{name}.{}-{}-{n}.tmp",
        host_name(),
        std::process::id()
    ))
}

/// This machine's host name (Linux's `/proc/sys/kernel/hostname`, else `$HOSTNAME`, else
/// `host`), restricted to characters safe in a file name.
pub fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_".contains(*c))
        .collect();
    if clean.is_empty() {
        "host".into()
    } else {
        clean
    }
}

/// Writes `bytes` to `path` atomically: a unique temporary sibling ([`temp_path`]), fsync,
/// rename, fsync of the directory. On error the temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::io(&tmp, e));
    }
    commit(&tmp, path)
}

/// Renames the finished, fsynced temporary file `tmp` over `path` and fsyncs the directory
/// (for writers that stream into a [`temp_path`] themselves).
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    if let Err(e) = std::fs::rename(tmp, path) {
        let _ = std::fs::remove_file(tmp);
        return Err(DataError::io(path, e));
    }
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Fsyncs a directory so that entries created or renamed in it are durable (a no-op off Unix).
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| DataError::io(dir, e))?;
    }
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_unique_and_hidden_beside_the_target() {
        let a = temp_path(Path::new("/x/manifest.json"));
        let b = temp_path(Path::new("/x/manifest.json"));
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(Path::new("/x")));
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        let host = host_name();
        let prefix = format!(".manifest.json.{host}-{}-", std::process::id());
        assert!(
            name.starts_with(&prefix) && name.ends_with(".tmp"),
            "{name}"
        );
    }

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the target is left");
        // a directory that does not exist: an error naming the temporary path, nothing written
        let err = write_atomic(&dir.path().join("no/such/b.json"), b"x").unwrap_err();
        assert!(err.to_string().contains("b.json"), "{err}");
    }
}
