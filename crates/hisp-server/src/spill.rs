//! Large sealed messages go to a file under `data_dir/tmp` rather than memory: a 100 MiB
//! message sealed in memory would need its 137 MiB sealed form beside it. The files live
//! only for one delivery attempt (a retry seals again) and are removed on drop, and any
//! left by a killed daemon at the next start.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Messages larger than this are sealed to a file (and, on the relay port, spooled before
/// they are opened).
pub const LARGE: usize = 4 << 20;

/// A file removed when dropped.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// Create a new, empty file in `dir` (created if missing).
    pub fn create(dir: &Path) -> std::io::Result<(TempFile, std::fs::File)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(dir)?;
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("sealed-{}-{n}", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => return Ok((TempFile { path }, f)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a temporary file");
        }
    }
}

/// The directory for temporary files of a daemon with this data directory.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tmp")
}

/// Remove what a previous run left behind; returns how many files.
pub fn clean(dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_on_drop_and_leftovers_cleaned() {
        let base = std::env::temp_dir().join(format!("hisp-spill-{}", std::process::id()));
        let d = dir(&base);
        let (a, _) = TempFile::create(&d).unwrap();
        let (b, _) = TempFile::create(&d).unwrap();
        assert_ne!(a.path(), b.path());
        let kept = b.path().to_path_buf();
        drop(a);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::mem::forget(b);
        assert!(kept.exists());
        assert_eq!(clean(&d).unwrap(), 1);
        assert!(!kept.exists());
        assert_eq!(clean(&base.join("missing")).unwrap(), 0);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
