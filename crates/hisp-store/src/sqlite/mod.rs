//! The embedded SQLite store (DESIGN §2 "hisp-store"; STYLE §4). One file in WAL mode with
//! `synchronous=FULL`, so a commit survives kill -9 and power loss, and large bodies in
//! files beside it, synced before the rows naming them commit (`spool.rs`). All writes go
//! through one writer thread with group commit (`writer.rs`); reads use a small pool of
//! connections on tokio's blocking pool. The SQL for each concern lives in its own module;
//! the [`Store`] trait impl (`api.rs`) only moves arguments onto the right thread, and
//! writes large bodies to their files ahead of their jobs (`SqliteStore::write_with_bodies`).
//!
//! [`Store`]: crate::Store

/// Inside a row mapper for [`collect`]: unwrap a [`StoreResult`], or return its error as
/// the row's value (`Ok(Err(..))`), so corrupt values are told apart from SQL errors.
macro_rules! value {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(err) => return Ok(Err(err)),
        }
    };
}

mod api;
mod audit;
mod backup;
mod blobs;
mod bundles;
mod checkpoint;
mod direct;
mod directory;
mod hold;
mod inbound;
mod mailbox;
mod queue;
mod records;
mod retention;
mod schema;
mod shape;
mod spool;
mod timeline;
mod tracking;
mod writer;

pub use backup::Backup;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::{QueueId, StoreError, StoreResult};

/// Read connections kept open (and the most reads run at once).
const MAX_READERS: usize = 4;

/// The SQLite [`Store`](crate::Store). Cheap to clone (clones share the writer thread and
/// the read pool); the writer thread ends, after committing what it was sent, when the last
/// clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: writer::Writer,
    // Dropped after the writer: the last checkpoint sees its last commit.
    _checkpointer: checkpoint::Checkpointer,
    readers: Readers,
}

/// Idle read connections, opened on first use.
struct Readers {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl SqliteStore {
    /// Open (creating if missing, with its directory) the database at `path`, bring its
    /// schema up to date, and start the writer thread. Refuses a file whose schema is
    /// newer than this code, or that is not a database, with [`StoreError::Open`].
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let conn = schema::open_writer(path)?;
        spool::sweep(&conn, path)?;
        let (checkpointer, committed) =
            checkpoint::Checkpointer::spawn(&conn, path).map_err(|e| {
                schema::open_error(path, format!("cannot start the checkpoint thread: {e}"))
            })?;
        let writer = writer::Writer::spawn(conn, committed).map_err(|e| {
            schema::open_error(path, format!("cannot start the writer thread: {e}"))
        })?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer,
                _checkpointer: checkpointer,
                readers: Readers {
                    idle: Mutex::new(Vec::new()),
                    permits: Arc::new(Semaphore::new(MAX_READERS)),
                },
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A consistent copy of the store (database and body files) in the directory `out`,
    /// taken while the store is in use (see `backup.rs`).
    pub fn backup(&self, out: &Path) -> StoreResult<Backup> {
        backup::backup(&self.inner.path, out)
    }

    /// How many write transactions the writer thread has committed since `open` (each is
    /// one fsync). Fewer commits than writes means group commit batched them.
    pub fn commits(&self) -> u64 {
        self.inner.writer.commits()
    }

    /// Hand `work` to the writer thread; resolves once its batch has committed.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.write_as(true, work).await
    }

    /// As [`write`](Self::write), for bookkeeping no one is waiting on: it may wait a few
    /// milliseconds to share an urgent job's commit (`writer::DEFER`).
    async fn write_deferred<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.write_as(false, work).await
    }

    /// [`write`](Self::write) when `urgent`, else [`write_deferred`](Self::write_deferred).
    async fn write_as<T, F>(&self, urgent: bool, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let answer = self.inner.writer.submit(urgent, work)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// As [`write`](Self::write), for `item` carrying message bodies (`bodies` lists them):
    /// those to be kept in files are written and synced on the blocking pool first, in
    /// parallel with other work, and the job only renames them into place.
    async fn write_with_bodies<M, T, F>(
        &self,
        item: M,
        bodies: for<'a> fn(&'a M) -> Vec<&'a [u8]>,
        work: F,
    ) -> StoreResult<T>
    where
        M: Send + 'static,
        T: Send + 'static,
        F: FnOnce(&Connection, M) -> StoreResult<T> + Send + 'static,
    {
        self.write_with_bodies_as(true, item, bodies, work).await
    }

    /// [`write_with_bodies`](Self::write_with_bodies), urgent or deferrable
    /// ([`write_deferred`](Self::write_deferred)).
    async fn write_with_bodies_as<M, T, F>(
        &self,
        urgent: bool,
        item: M,
        bodies: for<'a> fn(&'a M) -> Vec<&'a [u8]>,
        work: F,
    ) -> StoreResult<T>
    where
        M: Send + 'static,
        T: Send + 'static,
        F: FnOnce(&Connection, M) -> StoreResult<T> + Send + 'static,
    {
        let large = bodies(&item).iter().any(|b| b.len() >= blobs::IN_FILES);
        let named = self.inner.path.file_name().is_some();
        let (item, staged) = if large && named {
            let dir = spool::dir_of(&self.inner.path);
            let task = tokio::task::spawn_blocking(move || {
                let staged = spool::stage(&dir, &bodies(&item));
                (item, staged)
            });
            let (item, staged) = match task.await {
                Ok(done) => done,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => return Err(StoreError::Closed),
            };
            (
                item,
                staged.map_err(|e| io("writing a message body file", e))?,
            )
        } else {
            (item, spool::Staged::default())
        };
        self.write_as(urgent, move |c| {
            spool::with_staged(staged, || work(c, item))
        })
        .await
    }

    /// Run `work` in a read transaction on a pooled connection, on the blocking pool.
    async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.inner.readers.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let inner = Arc::clone(&self.inner);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            inner.read_blocking(work)
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Closed),
        }
    }
}

impl Inner {
    fn read_blocking<T>(&self, work: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = lock(&self.readers.idle).pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => schema::open_reader(&self.path).map_err(db("opening a read connection"))?,
        };
        // One snapshot for the whole read, so a listing and its recipients agree.
        let result = {
            let tx = conn.transaction().map_err(db("beginning a read"))?;
            let result = work(&tx);
            drop(tx);
            result
        };
        // A connection that just failed may be broken (file gone, I/O error): drop it.
        if result.is_ok() {
            let mut idle = lock(&self.readers.idle);
            if idle.len() < MAX_READERS {
                idle.push(conn);
            }
        }
        result
    }
}

/// Lock a mutex, taking the data even if a panicking thread poisoned it (a pool of
/// connections stays valid whatever happened to the holder).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Map a rusqlite error to [`StoreError::Database`] saying what we were doing.
pub(super) fn db(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Database { what, source }
}

/// Wrap an I/O error (a body file, an incremental blob) as [`StoreError::Io`] saying what
/// we were doing.
pub(super) fn io(what: &'static str, source: std::io::Error) -> StoreError {
    StoreError::Io { what, source }
}

/// Addresses and domains are kept lower case.
pub(super) fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// The domain of an address: after the last `@`, lower case (empty without an `@`).
pub(super) fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, domain)| fold(domain))
        .unwrap_or_default()
}

/// A fresh queue id: the prefix (`o` or `i`), a dash, 16 random hex digits.
pub(super) fn new_id(prefix: char) -> QueueId {
    QueueId::fresh(prefix)
}

/// Convert a caller's `limit` for SQL (`LIMIT` takes an i64).
pub(super) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Convert a length for storage.
pub(super) fn sql_len(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// Read back a non-negative integer column, or report it corrupt.
pub(super) fn unsigned<T: TryFrom<i64>>(value: i64, column: &'static str) -> StoreResult<T> {
    T::try_from(value).map_err(|_| StoreError::Corrupt {
        column,
        value: value.to_string(),
    })
}

/// Read back an enum stored by name, or report it corrupt.
pub(super) fn parse_name<T>(
    value: String,
    column: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> StoreResult<T> {
    parse(&value).ok_or(StoreError::Corrupt { column, value })
}

/// Run a query and map every row. `map` reads the columns (rusqlite errors) and then builds
/// the value (store errors, e.g. a corrupt state name).
pub(super) fn collect<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    what: &'static str,
    mut map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<T>>,
) -> StoreResult<Vec<T>> {
    let mut rows = stmt.query(params).map_err(db(what))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db(what))? {
        out.push(map(row).map_err(db(what))??);
    }
    Ok(out)
}
