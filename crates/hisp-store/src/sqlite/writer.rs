//! The single writer thread and its group commit. Every change goes through here: callers
//! send a job and await a oneshot; the thread takes every job already waiting (up to
//! [`MAX_BATCH`]), runs them in one `BEGIN IMMEDIATE … COMMIT` with a `SAVEPOINT` each, and
//! answers them only after the commit, so one fsync makes a whole batch durable (STYLE §4:
//! nothing is acknowledged before it is committed). A batch of nothing but deferrable jobs
//! (bookkeeping nobody is waiting on, such as an attempt's outcome) waits up to [`DEFER`]
//! for an urgent one to share its commit. Reads do not come here (`mod.rs`).

use super::checkpoint::Nudge;
use super::spool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{ffi, Connection};
use tokio::sync::oneshot;

use crate::{StoreError, StoreResult};

/// The most jobs committed together. Bounds the time the first job of a batch waits for
/// the last, and the size of a transaction.
pub(super) const MAX_BATCH: usize = 256;

/// How long a batch of deferrable jobs waits for an urgent job to commit with. Under load
/// one comes within a commit's time, so deferrable work rarely costs a commit of its own
/// (BEGIN and COMMIT, with the WAL writes and fsync, were more than half of the writer's
/// CPU in the exchange benchmark); alone, it is committed after this.
pub(super) const DEFER: Duration = Duration::from_millis(5);

/// One unit of work for the writer thread.
pub(super) trait Job: Send {
    /// Run inside the batch transaction (within the job's savepoint) and keep the result.
    /// Returns false when the job failed (its savepoint is then rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answer the caller: the kept result when the batch committed, else `batch_error`
    /// (unless the job had already failed on its own, which is the more precise answer).
    fn finish(self: Box<Self>, batch_error: Option<&BatchError>);
    /// Whether a caller is held up until this job commits (see [`DEFER`]).
    fn urgent(&self) -> bool;
}

/// Why a whole batch failed.
pub(super) struct BatchError {
    what: &'static str,
    source: rusqlite::Error,
}

impl BatchError {
    fn to_store_error(&self) -> StoreError {
        StoreError::Database {
            what: self.what,
            source: duplicate(&self.source),
        }
    }
}

/// A job built from a closure, answering over a oneshot.
struct ClosureJob<T, F> {
    urgent: bool,
    work: Option<F>,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for ClosureJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> StoreResult<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, batch_error: Option<&BatchError>) {
        let answer = match (self.result, batch_error) {
            (Some(Err(own)), _) => Err(own),
            (_, Some(batch)) => Err(batch.to_store_error()),
            (Some(Ok(value)), None) => Ok(value),
            // Not run although the batch committed: cannot happen; never claim success.
            (None, None) => Err(StoreError::Closed),
        };
        // The caller may have stopped waiting (its SMTP session dropped); the work stands.
        let _ = self.reply.send(answer);
    }

    fn urgent(&self) -> bool {
        self.urgent
    }
}

/// The handle to the writer thread. Dropping it closes the channel; the thread finishes the
/// jobs already sent, commits them, and ends; the drop waits for that.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
    /// [`DEFER`] in microseconds (only tests change it).
    #[cfg_attr(not(test), allow(dead_code))]
    defer_us: Arc<AtomicU64>,
}

impl Writer {
    /// Start the thread, which owns `conn` from now on; after each commit it tells the
    /// checkpointer through `committed`.
    pub(super) fn spawn(conn: Connection, committed: Nudge) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commits);
        let defer_us = Arc::new(AtomicU64::new(DEFER.as_micros() as u64));
        let defer = Arc::clone(&defer_us);
        let thread = std::thread::Builder::new()
            .name("hisp-store-writer".into())
            .spawn(move || run(conn, queue, &counter, &committed, &defer))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
            commits,
            defer_us,
        })
    }

    /// Queue a job; the receiver resolves after its batch committed (or failed). An urgent
    /// job is committed with whatever is already waiting; a deferrable one may wait up to
    /// [`DEFER`] for company.
    pub(super) fn submit<T, F>(
        &self,
        urgent: bool,
        work: F,
    ) -> StoreResult<oneshot::Receiver<StoreResult<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(ClosureJob {
            urgent,
            work: Some(work),
            result: None,
            reply,
        });
        let jobs = self.jobs.as_ref().ok_or(StoreError::Closed)?;
        jobs.send(job).map_err(|_| StoreError::Closed)?;
        Ok(answer)
    }

    /// Write transactions committed so far.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Change how long deferrable jobs wait for company (from the next batch on).
    #[cfg(test)]
    pub(super) fn set_defer(&self, defer: Duration) {
        self.defer_us
            .store(defer.as_micros() as u64, Ordering::Relaxed);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            // A panic on the writer thread has already failed its callers (dropped oneshots).
            let _ = thread.join();
        }
    }
}

/// The thread's loop: block for one job, take whatever else is already waiting, commit.
fn run(
    conn: Connection,
    queue: mpsc::Receiver<Box<dyn Job>>,
    commits: &AtomicU64,
    committed: &Nudge,
    defer_us: &AtomicU64,
) {
    while let Ok(first) = queue.recv() {
        let defer = Duration::from_micros(defer_us.load(Ordering::Relaxed));
        let mut batch = collect(first, &queue, defer);
        match run_batch(&conn, &mut batch) {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
                committed.committed(&conn);
                // Before the answers, so a caller sees the files its commit removed gone.
                spool::committed();
                for job in batch {
                    job.finish(None);
                }
            }
            Err(err) => {
                tracing::warn!(jobs = batch.len(), what = err.what, error = %err.source,
                    "store write batch failed");
                if !conn.is_autocommit() {
                    // Best effort: if even ROLLBACK fails the connection reports it next time.
                    let _ = conn.execute_batch("ROLLBACK");
                }
                spool::aborted();
                for job in batch {
                    job.finish(Some(&err));
                }
            }
        }
    }
}

/// The batch that starts with `first`: every job already waiting and, while none of them
/// is urgent, those that arrive within `defer` until an urgent one does.
fn collect(
    first: Box<dyn Job>,
    queue: &mpsc::Receiver<Box<dyn Job>>,
    defer: Duration,
) -> Vec<Box<dyn Job>> {
    let mut urgent = first.urgent();
    let mut batch = Vec::with_capacity(16);
    batch.push(first);
    let until = Instant::now() + defer;
    while batch.len() < MAX_BATCH {
        let next = if urgent {
            queue.try_recv().ok()
        } else {
            queue
                .recv_timeout(until.saturating_duration_since(Instant::now()))
                .ok()
        };
        let Some(job) = next else { break };
        urgent |= job.urgent();
        batch.push(job);
    }
    batch
}

/// Run a batch in one transaction. A job that fails is rolled back to its savepoint and
/// fails alone; anything that endangers the transaction itself fails the whole batch.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), BatchError> {
    let fail = |what| move |source| BatchError { what, source };
    run_cached(conn, "BEGIN IMMEDIATE").map_err(fail("beginning a write transaction"))?;
    for job in batch.iter_mut() {
        run_cached(conn, "SAVEPOINT job").map_err(fail("opening a savepoint"))?;
        let mark = spool::mark();
        if job.run(conn) {
            run_cached(conn, "RELEASE job").map_err(fail("releasing a savepoint"))?;
        } else if conn.is_autocommit() {
            // Some errors (I/O, disk full, out of memory) make SQLite roll back the whole
            // transaction: the jobs before this one are gone too, so they must not see `Ok`.
            return Err(BatchError {
                what: "writing a batch",
                source: rusqlite::Error::SqliteFailure(
                    ffi::Error::new(ffi::SQLITE_ABORT),
                    Some("the transaction was rolled back by a failure in the same batch".into()),
                ),
            });
        } else {
            spool::forget_since(&mark);
            conn.execute_batch("ROLLBACK TO job; RELEASE job")
                .map_err(fail("rolling back a failed job"))?;
        }
    }
    // Body files first: a committed row must never name a file a crash could lose.
    spool::sync().map_err(|e| BatchError {
        what: "syncing message body files",
        source: rusqlite::Error::SqliteFailure(
            // A full disk can first show at the sync (delayed allocation): say so.
            ffi::Error::new(if crate::io_is_full(&e) {
                ffi::SQLITE_FULL
            } else {
                ffi::SQLITE_IOERR
            }),
            Some(e.to_string()),
        ),
    })?;
    run_cached(conn, "COMMIT").map_err(fail("committing a write batch"))
}

/// Run a transaction-control statement, prepared once: a group commit runs three or more
/// per job, and parsing them each time was ~1 % of the daemon's CPU at 10 KiB.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Copy an error for every job of a failed batch (`rusqlite::Error` is not `Clone`).
fn duplicate(err: &rusqlite::Error) -> rusqlite::Error {
    match err {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}
