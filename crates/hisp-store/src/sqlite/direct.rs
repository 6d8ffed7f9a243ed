//! Writing a body file around the page cache (`O_DIRECT`), where the file system allows it.
//!
//! A body file is written once, synced, and read back at most once or twice (a retry, a
//! pickup). Through the page cache, each megabyte is first copied into freshly allocated
//! cache pages; on a virtual machine whose host reclaims freed guest memory, touching those
//! pages again costs a fault per page on the host, and the copy ran at ~0.7 GB/s: 18 % of the
//! daemon's CPU at 1 MiB a message (`hisp bench exchange`). A direct write hands the disk
//! the bytes from one reused, aligned staging buffer instead. File systems that refuse
//! direct I/O (tmpfs, some network file systems) get the plain buffered write.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Alignment of the buffer, the file offset and the length of every direct write: the
/// largest logical block size in use (4 KiB sectors), which also satisfies 512-byte disks.
const ALIGN: usize = 4096;

/// The staging buffer: bodies go to the disk in pieces of this size.
const STAGE: usize = 1 << 20;

thread_local! {
    /// Kept for the life of the (writer) thread, so its pages stay warm.
    static STAGING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Create `path` (it must not exist) holding `body`; the caller syncs it.
pub(super) fn create(path: &Path, body: &[u8]) -> std::io::Result<File> {
    if let Some(mut file) = open_direct(path)? {
        match write_direct(&mut file, body) {
            Ok(()) => return Ok(file),
            // Some file systems accept the flag at open and refuse the I/O: start over
            // without it.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                drop(file);
                std::fs::remove_file(path)?;
            }
            Err(e) => return Err(e),
        }
    }
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(body)?;
    Ok(file)
}

/// The file opened for direct writes, or `None` where the file system refuses them.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> std::io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(path);
    match opened {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // Some file systems create the file before refusing the flag.
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(None),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_: &Path) -> std::io::Result<Option<File>> {
    Ok(None)
}

/// Write `body` in aligned pieces (the last zero-padded), then cut the padding off.
fn write_direct(file: &mut File, body: &[u8]) -> std::io::Result<()> {
    STAGING.with(|staging| {
        let mut staging = staging.borrow_mut();
        if staging.len() < STAGE + ALIGN {
            *staging = vec![0u8; STAGE + ALIGN];
        }
        // The allocator does not promise 4 KiB alignment: start at the first aligned byte.
        let skew = staging.as_ptr() as usize % ALIGN;
        let start = (ALIGN - skew) % ALIGN;
        let stage = staging
            .get_mut(start..start + STAGE)
            .ok_or_else(|| std::io::Error::other("staging buffer too small"))?;
        for piece in body.chunks(STAGE) {
            let padded = piece.len().next_multiple_of(ALIGN);
            let (data, pad) = stage.split_at_mut(piece.len());
            data.copy_from_slice(piece);
            pad.get_mut(..padded - piece.len())
                .unwrap_or_default()
                .fill(0);
            file.write_all(stage.get(..padded).unwrap_or_default())?;
        }
        Ok::<(), std::io::Error>(())
    })?;
    if !body.len().is_multiple_of(ALIGN) {
        file.set_len(body.len() as u64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_of_any_length_reads_back_exactly() {
        let dir = tempfile::tempdir().expect("temp dir");
        for len in [
            0,
            1,
            4095,
            4096,
            4097,
            STAGE - 1,
            STAGE,
            STAGE + 1,
            3 * STAGE + 17,
        ] {
            let body: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let path = dir.path().join(format!("b{len}"));
            let file = create(&path, &body).expect("create");
            file.sync_data().expect("sync");
            assert_eq!(std::fs::read(&path).expect("read"), body, "length {len}");
        }
    }

    #[test]
    fn an_existing_file_is_not_overwritten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("taken");
        std::fs::write(&path, b"keep").expect("write");
        assert!(create(&path, b"other").is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"keep");
    }
}
