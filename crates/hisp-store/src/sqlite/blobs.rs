//! Message bodies in and out of the store without extra whole copies. Bodies from
//! [`IN_FILES`] up are kept in files (`spool.rs`): the row holds an empty blob and the
//! file's name. Smaller ones are inline, and read in pieces into a buffer of their exact
//! size (incremental blob I/O; SQLite would otherwise materialise a copy), which also
//! serves large bodies stored inline before schema version 5.

use std::io::Read;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, DatabaseName, OptionalExtension, ToSql};

use super::{db, io, spool};
use crate::StoreResult;

/// Bodies at least this large are kept in files. Below it, the WAL's group commit is
/// cheaper than a file and its fsync; above it, writing the body twice (WAL, checkpoint) in
/// page-sized pieces costs more.
pub(super) const IN_FILES: usize = 256 * 1024;

/// How much is copied at a time.
const PIECE: usize = 1 << 20;

/// A body as an SQL parameter: the bytes when small, an empty blob when large (then
/// [`fill`] writes its file once the row exists).
pub(super) struct Body<'a>(pub &'a [u8]);

impl ToSql for Body<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let inline = if self.0.len() < IN_FILES { self.0 } else { &[] };
        Ok(ToSqlOutput::Borrowed(ValueRef::Blob(inline)))
    }
}

/// Write a large body to the file of row `rowid` of `table`, just inserted with [`Body`].
pub(super) fn fill(conn: &Connection, table: &str, rowid: i64, body: &[u8]) -> StoreResult<()> {
    if body.len() < IN_FILES {
        return Ok(());
    }
    let name = spool::write(conn, table, rowid, body)?;
    conn.prepare_cached(&format!("UPDATE {table} SET file = ?1 WHERE rowid = ?2"))
        .map_err(db("naming a message body file"))?
        .execute(rusqlite::params![name, rowid])
        .map_err(db("naming a message body file"))?;
    Ok(())
}

/// A body looked up in the database.
pub(super) enum Found {
    /// No such row.
    Missing,
    /// Kept in the row: here it is.
    Inline(Vec<u8>),
    /// Kept in this file (not read).
    InFile(String),
}

/// The body of the row `select` finds; `select` returns `rowid, length(body), file` of
/// `table`.
pub(super) fn read<P: rusqlite::Params>(
    conn: &Connection,
    table: &str,
    select: &str,
    params: P,
) -> StoreResult<Option<Vec<u8>>> {
    match find(conn, table, select, params)? {
        Found::Missing => Ok(None),
        Found::Inline(body) => Ok(Some(body)),
        Found::InFile(name) => spool::read(conn, &name).map(Some),
    }
}

/// As [`read`], but a body in a file is only named.
pub(super) fn find<P: rusqlite::Params>(
    conn: &Connection,
    table: &str,
    select: &str,
    params: P,
) -> StoreResult<Found> {
    let what = "reading a message body";
    let found: Option<(i64, i64, Option<String>)> = conn
        .prepare_cached(select)
        .map_err(db(what))?
        .query_row(params, |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()
        .map_err(db(what))?;
    let Some((rowid, len, file)) = found else {
        return Ok(Found::Missing);
    };
    if let Some(name) = file {
        return Ok(Found::InFile(name));
    }
    let mut body = vec![0u8; usize::try_from(len).unwrap_or(0)];
    let mut blob = conn
        .blob_open(DatabaseName::Main, table, "body", rowid, true)
        .map_err(db(what))?;
    for piece in body.chunks_mut(PIECE) {
        blob.read_exact(piece).map_err(|e| io(what, e))?;
    }
    Ok(Found::Inline(body))
}
