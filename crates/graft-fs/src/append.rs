//! Append-only line logs (the scalar log, a synthesis run's output) reopened after a crash.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::{Error, Result};

/// Opens `path` for appending lines, creating it (and its parent directories) if missing. A
/// last line without its newline — torn by a crash mid-write — is cut off first, so the next
/// line starts on a line of its own; a file that ends in a newline is left untouched (not even
/// its modification time changes).
pub fn open_append(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::new(dir, e))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(|e| Error::new(path, e))?;
    let end = complete_len(&mut file).map_err(|e| Error::new(path, e))?;
    let len = file.metadata().map_err(|e| Error::new(path, e))?.len();
    if end < len {
        file.set_len(end).map_err(|e| Error::new(path, e))?;
    }
    Ok(file)
}

/// The length of the file's complete lines: up to and including its last newline.
fn complete_len(file: &mut File) -> std::io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = file.seek(SeekFrom::End(0))?;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut first = true;
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if first && buf[n - 1] == b'\n' {
            return file.seek(SeekFrom::End(0));
        }
        first = false;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_torn_last_line_is_cut_and_complete_lines_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/scalars.tsv");
        let mut f = open_append(&path).unwrap(); // creates the parent and the file
        f.write_all(b"1\tloss\t2.5\n2\tloss\t2.").unwrap(); // torn by a "crash"
        drop(f);
        let mut f = open_append(&path).unwrap();
        f.write_all(b"2\tloss\t2.25\n").unwrap();
        drop(f);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "1\tloss\t2.5\n2\tloss\t2.25\n"
        );
        // complete lines are appended to, not cut
        open_append(&path).unwrap().write_all(b"3\n").unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .ends_with("2.25\n3\n"));
        // a file that is one torn line (longer than a read chunk) is emptied
        std::fs::write(&path, vec![b'x'; 200_000]).unwrap();
        drop(open_append(&path).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }
}
