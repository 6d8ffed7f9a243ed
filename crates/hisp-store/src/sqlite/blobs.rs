//! Message bodies in and out of the database without extra whole copies. SQLite copies a
//! bound blob before writing it and materialises a whole blob to return it; for a body of
//! 100 MiB that is another 100 MiB resident at the worst moment. Bodies from
//! [`STREAMED`] up are written as a zero blob filled in pieces, and read in pieces into a
//! buffer of their exact size (incremental blob I/O); smaller ones take the plain path.

use std::io::{Read, Write};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, DatabaseName, OptionalExtension, ToSql};

use super::db;
use crate::StoreResult;

/// Bodies at least this large are streamed.
pub(super) const STREAMED: usize = 1 << 20;

/// How much is copied at a time.
const PIECE: usize = 1 << 20;

/// A body as an SQL parameter: the bytes when small, a zero blob of its length when large
/// (then [`fill`] writes it once the row exists).
pub(super) struct Body<'a>(pub &'a [u8]);

impl ToSql for Body<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        if self.0.len() < STREAMED {
            return Ok(ToSqlOutput::Borrowed(ValueRef::Blob(self.0)));
        }
        let len = i32::try_from(self.0.len())
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(ToSqlOutput::ZeroBlob(len))
    }
}

/// Write a large body into the zero blob just inserted as row `rowid` of `table`.
pub(super) fn fill(conn: &Connection, table: &str, rowid: i64, body: &[u8]) -> StoreResult<()> {
    if body.len() < STREAMED {
        return Ok(());
    }
    let what = "writing a message body";
    let mut blob = conn
        .blob_open(DatabaseName::Main, table, "body", rowid, false)
        .map_err(db(what))?;
    for piece in body.chunks(PIECE) {
        blob.write_all(piece).map_err(|e| io(what, e))?;
    }
    Ok(())
}

/// The body of the row `select` finds; `select` returns `rowid, length(body)` of `table`.
pub(super) fn read<P: rusqlite::Params>(
    conn: &Connection,
    table: &str,
    select: &str,
    params: P,
) -> StoreResult<Option<Vec<u8>>> {
    let what = "reading a message body";
    let found: Option<(i64, i64)> = conn
        .prepare_cached(select)
        .map_err(db(what))?
        .query_row(params, |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .map_err(db(what))?;
    let Some((rowid, len)) = found else {
        return Ok(None);
    };
    let mut body = vec![0u8; usize::try_from(len).unwrap_or(0)];
    let mut blob = conn
        .blob_open(DatabaseName::Main, table, "body", rowid, true)
        .map_err(db(what))?;
    for piece in body.chunks_mut(PIECE) {
        blob.read_exact(piece).map_err(|e| io(what, e))?;
    }
    Ok(Some(body))
}

fn io(what: &'static str, source: std::io::Error) -> crate::StoreError {
    crate::StoreError::Io { what, source }
}
