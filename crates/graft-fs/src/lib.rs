//! Files written safely, the one implementation every graft crate uses:
//! - [`write_atomic`] (and [`temp_path`] + [`commit`] for writers that stream): write a temporary
//!   sibling, fsync it, rename it over the target, fsync the directory, so a crash leaves either
//!   the old file or the new one;
//! - [`unique_sibling`]: names of temporaries (files or staging directories) that are unique
//!   across processes *and hosts*, `.<name>.<host>-<pid>-<n>.<ext>`, so ranks on several hosts
//!   sharing a file system never collide;
//! - [`open_append`]: an append-only log reopened after a crash, its torn last line cut off.
//!
//! It sits below graft-llama and graft-data (which do not depend on each other) and depends on
//! nothing of theirs.

mod append;

pub use append::open_append;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file operation that failed, with the path it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct Error {
    /// The file or directory.
    pub path: PathBuf,
    /// What the OS said.
    #[source]
    pub source: std::io::Error,
}

impl Error {
    fn new(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self {
            path: path.into(),
            source,
        }
    }
}

/// Result of this crate's operations.
pub type Result<T> = std::result::Result<T, Error>;

/// A hidden sibling of `path` unique across processes and hosts:
/// `.<name>.<host>-<pid>-<n>.<ext>` (host name, process id, a per-process counter).
pub fn unique_sibling(path: &Path, ext: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(
        ".{name}.{}-{}-{n}.{ext}",
        host_name(),
        std::process::id()
    ))
}

/// A temporary sibling of `path`: [`unique_sibling`] with extension `tmp`.
pub fn temp_path(path: &Path) -> PathBuf {
    unique_sibling(path, "tmp")
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
        return Err(Error::new(&tmp, e));
    }
    commit(&tmp, path)
}

/// Renames the finished, fsynced temporary file `tmp` over `path` and fsyncs the directory
/// (for writers that stream into a [`temp_path`] themselves).
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    if let Err(e) = std::fs::rename(tmp, path) {
        let _ = std::fs::remove_file(tmp);
        return Err(Error::new(path, e));
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
            .map_err(|e| Error::new(dir, e))?;
    }
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to a new file `path` and fsyncs it (a file inside a staging directory that is
/// renamed into place as a whole, so the file itself needs no temporary name).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    File::create(path)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .map_err(|e| Error::new(path, e))
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
        let old = unique_sibling(Path::new("out/model"), "old");
        let name = old.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!(".model.{host}-")) && name.ends_with(".old"));
        assert_eq!(old.parent(), Some(Path::new("out")));
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
