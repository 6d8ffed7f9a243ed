//! Large message bodies in files beside the database (`<db>-bodies/`), the way a mail queue
//! keeps queue files: a body from [`IN_FILES`](super::blobs::IN_FILES) up is written once
//! and fsync'd, instead of going into the WAL and then being copied again by the checkpoint
//! (at 1 MiB a message, those two copies were half of the daemon's CPU). The row names the
//! file; the file is durable before the row commits, and a file whose row is gone is removed
//! only after the commit that removed the row.
//!
//! Only the writer thread creates and removes files, inside its batch transaction, so what a
//! batch wrote and doomed is kept per thread here: the writer marks each job, forgets a
//! failed job's files, syncs the batch's files and the directory before `COMMIT`, and
//! removes the doomed files after it. Files left by a crash before a `COMMIT` are swept when
//! the store opens, under the write lock.

use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::{db, io};
use crate::{StoreError, StoreResult};

/// The tables whose bodies may live in files.
pub(super) const TABLES: [&str; 4] = [
    "message_bodies",
    "sealed",
    "inbound_bodies",
    "mailbox_bodies",
];

thread_local! {
    static BATCH: RefCell<Batch> = RefCell::new(Batch::default());
}

/// What the current batch on this (the writer) thread has written and doomed.
#[derive(Default)]
struct Batch {
    /// Each with its file when it still needs a sync (staged ones are synced already).
    written: Vec<(PathBuf, Option<File>)>,
    doomed: Vec<PathBuf>,
}

/// Where a job's files start in the batch lists.
pub(super) struct Mark {
    written: usize,
    doomed: usize,
}

/// The body directory of the database at `db`.
pub(super) fn dir_of(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push("-bodies");
    db.with_file_name(name)
}

fn dir(conn: &Connection) -> StoreResult<PathBuf> {
    match conn.path() {
        Some(p) if !p.is_empty() => Ok(dir_of(Path::new(p))),
        _ => Err(io(
            "finding the body directory",
            std::io::Error::other("a database without a file cannot keep bodies in files"),
        )),
    }
}

/// Write `body` as the file of row `rowid` of `table` and return its name. A body staged
/// ahead of the job ([`stage`]) is only renamed; any other is written here and synced with
/// the rest of the batch, before the batch commits.
pub(super) fn write(
    conn: &Connection,
    table: &str,
    rowid: i64,
    body: &[u8],
) -> StoreResult<String> {
    let what = "writing a message body file";
    let dir = dir(conn)?;
    let name = format!("{table}-{rowid}-{:016x}", rand::random::<u64>());
    let path = dir.join(&name);
    if let Some(staged) = claim(body) {
        // A sweep by another process may have removed a staged file (it only does so past
        // STAGE_GRACE): then the rename fails and so does this job, before anyone was told
        // the body is safe.
        std::fs::rename(&staged, &path).map_err(|e| io(what, e))?;
        BATCH.with(|b| b.borrow_mut().written.push((path, None)));
        return Ok(name);
    }
    std::fs::create_dir_all(&dir).map_err(|e| io(what, e))?;
    let file = match super::direct::create(&path, body) {
        Ok(file) => file,
        Err(e) => {
            // Best effort: a file never referenced is swept at the next open anyway.
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                let _ = std::fs::remove_file(&path);
            }
            return Err(io(what, e));
        }
    };
    BATCH.with(|b| b.borrow_mut().written.push((path, Some(file))));
    Ok(name)
}

/// Bodies written and synced ahead of their job, off the writer thread, so that at a
/// megabyte a message the one writer thread is not the bottleneck writing them one after
/// another (it only renames them). Each is known by where its bytes live: the job that
/// stores it borrows the very same buffer. Files not claimed by the job are removed.
#[derive(Default)]
pub(super) struct Staged(Vec<StagedFile>);

struct StagedFile {
    at: usize,
    len: usize,
    path: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        for f in self.0.drain(..) {
            let _ = std::fs::remove_file(&f.path);
        }
    }
}

/// Name prefix of staged files; a sweep removes those older than [`STAGE_GRACE`].
const STAGE_PREFIX: &str = "stage-";

/// A staged file this old belongs to no job any more (its process died before the job
/// ran); younger ones may be another process's work in flight.
const STAGE_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

/// Write each body to be kept in a file ([`IN_FILES`](super::blobs::IN_FILES) and up) to a
/// fresh file in `dir` and sync it. Runs on the blocking pool, before the job that stores
/// the bodies is sent to the writer.
pub(super) fn stage(dir: &Path, bodies: &[&[u8]]) -> std::io::Result<Staged> {
    let mut staged = Staged::default();
    std::fs::create_dir_all(dir)?;
    for body in bodies.iter().filter(|b| b.len() >= super::blobs::IN_FILES) {
        let path = dir.join(format!("{STAGE_PREFIX}{:016x}", rand::random::<u64>()));
        let file = super::direct::create(&path, body)?;
        staged.0.push(StagedFile {
            at: body.as_ptr() as usize,
            len: body.len(),
            path,
        });
        file.sync_data()?;
    }
    Ok(staged)
}

thread_local! {
    static STAGED: RefCell<Staged> = RefCell::new(Staged::default());
}

/// Run a job with its staged bodies at hand for [`write`]; what it leaves unclaimed is
/// removed.
pub(super) fn with_staged<T>(staged: Staged, job: impl FnOnce() -> T) -> T {
    STAGED.with(|s| *s.borrow_mut() = staged);
    let out = job();
    drop(STAGED.with(|s| std::mem::take(&mut *s.borrow_mut())));
    out
}

/// The staged file holding exactly `body`'s buffer, taken out of the job's set.
fn claim(body: &[u8]) -> Option<PathBuf> {
    let (at, len) = (body.as_ptr() as usize, body.len());
    STAGED.with(|s| {
        let mut s = s.borrow_mut();
        let i = s.0.iter().position(|f| f.at == at && f.len == len)?;
        Some(s.0.swap_remove(i).path)
    })
}

/// Read the body file `name`.
pub(super) fn read(conn: &Connection, name: &str) -> StoreResult<Vec<u8>> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(StoreError::Corrupt {
            column: "file",
            value: name.to_string(),
        });
    }
    std::fs::read(dir(conn)?.join(name)).map_err(|e| io("reading a message body file", e))
}

/// The row `select` finds (`select` returns its `file`) is about to be deleted or replaced:
/// remove its body file, when it has one, once the current batch has committed.
pub(super) fn doom_file_of<P: rusqlite::Params>(
    conn: &Connection,
    select: &str,
    params: P,
) -> StoreResult<()> {
    if let Some(name) = file_of(conn, select, params)? {
        doom(conn, &name)?;
    }
    Ok(())
}

/// Remove the body file `name` once the current batch has committed (its row is being
/// deleted or replaced in this batch).
pub(super) fn doom(conn: &Connection, name: &str) -> StoreResult<()> {
    let path = dir(conn)?.join(name);
    BATCH.with(|b| b.borrow_mut().doomed.push(path));
    Ok(())
}

/// The file of the row `select` finds, when its body is in one (`select` returns `file`).
pub(super) fn file_of<P: rusqlite::Params>(
    conn: &Connection,
    select: &str,
    params: P,
) -> StoreResult<Option<String>> {
    let what = "finding a message body file";
    let found: Option<Option<String>> = conn
        .prepare_cached(select)
        .map_err(db(what))?
        .query_row(params, |row| row.get(0))
        .optional()
        .map_err(db(what))?;
    Ok(found.flatten())
}

/// Before a job runs.
pub(super) fn mark() -> Mark {
    BATCH.with(|b| {
        let b = b.borrow();
        Mark {
            written: b.written.len(),
            doomed: b.doomed.len(),
        }
    })
}

/// A job failed and was rolled back to its savepoint: its files go, its dooms are void.
pub(super) fn forget_since(mark: &Mark) {
    BATCH.with(|b| {
        let mut b = b.borrow_mut();
        for (path, _) in b.written.drain(mark.written..) {
            let _ = std::fs::remove_file(path);
        }
        b.doomed.truncate(mark.doomed);
    });
}

/// Make the batch's files (and their directory entries) durable; called before `COMMIT`.
pub(super) fn sync() -> std::io::Result<()> {
    BATCH.with(|b| {
        let b = b.borrow();
        let mut dirs: Vec<&Path> = Vec::new();
        for (path, file) in &b.written {
            if let Some(file) = file {
                file.sync_data()?;
            }
            if let Some(parent) = path.parent().filter(|p| !dirs.contains(p)) {
                dirs.push(parent);
            }
        }
        for d in dirs {
            File::open(d)?.sync_all()?;
        }
        Ok(())
    })
}

/// The batch committed: remove the files its rows no longer name.
pub(super) fn committed() {
    BATCH.with(|b| {
        let mut b = b.borrow_mut();
        b.written.clear();
        for path in b.doomed.drain(..) {
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(file = %path.display(), error = %e,
                        "cannot remove a message body file no longer used; it is removed at the next start");
                }
            }
        }
    });
}

/// The batch was rolled back: the files it wrote are named by no row.
pub(super) fn aborted() {
    BATCH.with(|b| {
        let mut b = b.borrow_mut();
        b.doomed.clear();
        for (path, _) in b.written.drain(..) {
            let _ = std::fs::remove_file(path);
        }
    });
}

/// Remove body files no committed row names (a crash between writing a file and committing
/// its row, or a removal that did not happen). Runs under the write lock, so no batch of
/// another process is between writing its files and committing; files staged for a job
/// not yet run are left alone until they are older than [`STAGE_GRACE`].
pub(super) fn sweep(conn: &Connection, db_path: &Path) -> StoreResult<usize> {
    let what = "sweeping message body files";
    let dir = dir_of(db_path);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(what, e)),
    };
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(db(what))?;
    let mut removed = 0;
    for entry in entries {
        let name = entry.map_err(|e| io(what, e))?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(STAGE_PREFIX) {
            if stale(&dir.join(name)) {
                std::fs::remove_file(dir.join(name)).map_err(|e| io(what, e))?;
                removed += 1;
            }
            continue;
        }
        let Some((table, rowid)) = parse_name(name) else {
            continue;
        };
        let select = format!("SELECT file FROM {table} WHERE rowid = ?1");
        if file_of(&tx, &select, [rowid])?.as_deref() != Some(name) {
            std::fs::remove_file(dir.join(name)).map_err(|e| io(what, e))?;
            removed += 1;
        }
    }
    tx.commit().map_err(db(what))?;
    if removed > 0 {
        tracing::info!(removed, dir = %dir.display(), "removed message body files no row names");
    }
    Ok(removed)
}

/// A staged file no job can still claim: older than [`STAGE_GRACE`] (or gone).
fn stale(path: &Path) -> bool {
    let modified = std::fs::metadata(path).and_then(|m| m.modified());
    modified.is_ok_and(|m| m.elapsed().unwrap_or_default() > STAGE_GRACE)
}

/// `table-rowid-random` → (table, rowid), for the tables that keep bodies.
fn parse_name(name: &str) -> Option<(&'static str, i64)> {
    let (rest, _random) = name.rsplit_once('-')?;
    let (table, rowid) = rest.rsplit_once('-')?;
    let table = TABLES.into_iter().find(|t| *t == table)?;
    Some((table, rowid.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_to_their_table_and_row() {
        assert_eq!(
            parse_name("sealed-42-00ff00ff00ff00ff"),
            Some(("sealed", 42))
        );
        assert_eq!(
            parse_name("inbound_bodies-7-0123456789abcdef"),
            Some(("inbound_bodies", 7))
        );
        assert_eq!(parse_name("users-1-00"), None);
        assert_eq!(parse_name("sealed-x-00"), None);
        assert_eq!(parse_name("notes.txt"), None);
        assert_eq!(
            dir_of(Path::new("/d/hisp.db")),
            PathBuf::from("/d/hisp.db-bodies")
        );
    }
}
