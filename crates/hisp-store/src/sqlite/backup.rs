//! A consistent copy of a live store: the database as one snapshot (`VACUUM INTO`, which
//! reads inside one transaction while the daemon goes on writing) and the body files its
//! rows name, hard-linked where the backup is on the same file system (a body file is
//! never changed once written, only removed) and copied where it is not.
//!
//! Files are linked before the snapshot and again after it for the ones created in
//! between; those its rows do not name are dropped from the copy. A file that a row of the
//! snapshot names but that was removed before it could be linked (its row was deleted
//! meanwhile, by retention or a queue delete) is counted as missing: run the backup again.

use super::{db, io, schema, spool};
use crate::StoreResult;
use rusqlite::{Connection, OpenFlags};
use std::collections::HashSet;
use std::path::Path;

/// What a backup wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backup {
    /// Bytes of the database copy.
    pub database_bytes: u64,
    /// Body files in the copy.
    pub files: usize,
    /// Their bytes.
    pub file_bytes: u64,
    /// Body files named by the snapshot that were gone before they could be copied.
    pub missing: Vec<String>,
}

/// Back the store at `db_path` up into the directory `out` (created; it must not exist or
/// be empty), as `out/<database file name>` and its body directory beside it.
pub fn backup(db_path: &Path, out: &Path) -> StoreResult<Backup> {
    let what = "preparing the backup directory";
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(io(
            what,
            std::io::Error::other(format!("{} is not empty", out.display())),
        ));
    }
    let name = db_path.file_name().unwrap_or_default();
    let copy = out.join(name);
    let (from, to) = (spool::dir_of(db_path), spool::dir_of(&copy));
    std::fs::create_dir_all(&to).map_err(|e| io(what, e))?;
    let mut linked = HashSet::new();
    link_all(&from, &to, &mut linked)?;

    let source = Connection::open_with_flags(db_path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(db("opening the database to back it up"))?;
    source
        .busy_timeout(schema::BUSY_TIMEOUT)
        .map_err(db("opening the database to back it up"))?;
    let target = copy.to_string_lossy().into_owned();
    source
        .execute("VACUUM INTO ?1", [&target])
        .map_err(db("copying the database (VACUUM INTO)"))?;

    let named = named_files(&copy)?;
    let mut report = Backup::default();
    for file in &named {
        if !linked.contains(file) {
            match link_or_copy(&from.join(file), &to.join(file)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    report.missing.push(file.clone());
                    continue;
                }
                Err(e) => return Err(io("copying a body file", e)),
            }
        }
        report.files += 1;
        report.file_bytes += std::fs::metadata(to.join(file)).map_or(0, |m| m.len());
    }
    for stale in linked.difference(&named) {
        std::fs::remove_file(to.join(stale)).map_err(|e| io("dropping an unnamed file", e))?;
    }
    report.database_bytes = std::fs::metadata(&copy).map_or(0, |m| m.len());
    Ok(report)
}

/// Link (or copy) every file of `from` into `to`, noting each name.
fn link_all(from: &Path, to: &Path, linked: &mut HashSet<String>) -> StoreResult<()> {
    let entries = match std::fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("listing the body files", e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io("listing the body files", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        match link_or_copy(&entry.path(), &to.join(&name)) {
            Ok(()) => {
                linked.insert(name);
            }
            // Removed since the listing: the snapshot will say whether it mattered.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("copying a body file", e)),
        }
    }
    Ok(())
}

/// A hard link, or a copy where links cannot cross file systems.
fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(e),
        Err(_) => std::fs::copy(from, to).map(|_| ()),
    }
}

/// The body files the rows of the database at `copy` name.
fn named_files(copy: &Path) -> StoreResult<HashSet<String>> {
    let conn = Connection::open_with_flags(copy, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(db("opening the backup copy"))?;
    let what = "listing the body files of the backup";
    let mut named = HashSet::new();
    for table in spool::TABLES {
        let mut stmt = conn
            .prepare(&format!("SELECT file FROM {table} WHERE file IS NOT NULL"))
            .map_err(db(what))?;
        let rows = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(db(what))?;
        for r in rows {
            named.insert(r.map_err(db(what))?);
        }
    }
    Ok(named)
}
