//! WAL checkpoints off the writer thread. SQLite's automatic checkpoint runs inside the
//! committing connection, so the writer thread (and every caller waiting on its group
//! commit) would stop to copy the WAL into the database and fsync it, every 4 MiB: with
//! 1 MiB messages, every other exchange. Here the writer never checkpoints on its own; it
//! nudges this thread after each commit, which copies passively (never blocking the
//! writer or readers), at most every [`SPACING`]. A passive checkpoint never quite
//! catches a busy writer, and the WAL starts over only once it has; so past
//! [`RESTART_PAGES`] this thread asks the writer to run one restarting checkpoint between
//! two batches (it has only the last few frames to copy, and nobody contends for the
//! write lock it already holds; asked from here, it would starve behind the writer). The
//! WAL file then keeps its size: rewriting allocated blocks costs far less than growing.

use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The least time between two checkpoints (each costs two fsyncs).
const SPACING: Duration = Duration::from_millis(50);

/// WAL pages (4 KiB each) past which the log is made to start over.
const RESTART_PAGES: i64 = 8192;

/// A WAL this many pages long that a checkpoint could not fully copy is worth a warning
/// (long-lived readers keep it from being reset).
const WARN_PAGES: i64 = 1 << 18;

/// The checkpoint thread; it ends (after a last checkpoint) once the writer's nudge
/// sender is gone, and dropping this waits for that.
pub(super) struct Checkpointer {
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Turn off automatic checkpoints on `writer` and start the thread on a connection of
    /// its own to `path`; returns it and what the writer calls after each commit.
    pub(super) fn spawn(
        writer: &Connection,
        path: &Path,
    ) -> rusqlite::Result<(Checkpointer, Nudge)> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(1))?;
        // A checkpoint syncs the WAL before copying and the database after.
        conn.execute_batch("PRAGMA synchronous=FULL;")?;
        writer.execute_batch("PRAGMA wal_autocheckpoint=0;")?;
        let (sender, nudged) = mpsc::sync_channel(1);
        let restart = Arc::new(AtomicBool::new(false));
        let wanted = restart.clone();
        let thread = std::thread::Builder::new()
            .name("hisp-store-checkpoint".into())
            .spawn(move || run(&conn, &nudged, &wanted))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok((
            Checkpointer {
                thread: Some(thread),
            },
            Nudge { sender, restart },
        ))
    }
}

/// The writer's end: called after each commit.
pub(super) struct Nudge {
    sender: mpsc::SyncSender<()>,
    restart: Arc<AtomicBool>,
}

impl Nudge {
    /// A batch was committed on `conn`: wake the checkpoint thread (nudges coalesce) and,
    /// when it asked for one, run the restarting checkpoint here.
    pub(super) fn committed(&self, conn: &Connection) {
        let _ = self.sender.try_send(());
        if self.restart.swap(false, Ordering::Relaxed) {
            if let Err(e) = checkpoint(conn, "RESTART") {
                tracing::warn!(error = %e, "restarting WAL checkpoint failed; it is retried");
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: &Connection, nudged: &mpsc::Receiver<()>, restart: &AtomicBool) {
    let mut warned = false;
    loop {
        let last = nudged.recv().is_err();
        let started = Instant::now();
        let result = checkpoint(conn, "PASSIVE");
        if let Ok(p) = &result {
            restart.store(p.log > RESTART_PAGES, Ordering::Relaxed);
        }
        match result {
            Ok(Pages { log, done, .. }) if log - done > WARN_PAGES && !warned => {
                warned = true;
                tracing::warn!(
                    wal_pages = log,
                    copied = done,
                    "the WAL keeps growing: a long-lived reader holds it"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; it is retried"),
        }
        if last {
            return;
        }
        std::thread::sleep(SPACING.saturating_sub(started.elapsed()));
    }
}

/// What a checkpoint reports.
struct Pages {
    /// Pages in the WAL.
    log: i64,
    /// Pages copied into the database.
    done: i64,
}

/// One checkpoint in `mode`.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<Pages> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok(Pages {
            log: r.get(1)?,
            done: r.get(2)?,
        })
    })
}
