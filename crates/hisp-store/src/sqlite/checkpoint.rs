//! WAL checkpoints on their own thread. SQLite's automatic checkpoint runs inside the
//! committing connection, so the writer thread (and every caller waiting on its group
//! commit) would stop to copy the WAL into the database and fsync it, every 4 MiB: with
//! 1 MiB messages, every other exchange. Here the writer never checkpoints; this thread
//! does, passively (never blocking the writer or readers), a few times a second. Under
//! steady writes a passive checkpoint never catches the writer, and the WAL can only start
//! over once it has; so past [`RESTART_PAGES`] one restarting checkpoint (which holds off
//! writers while it copies the few frames the passive ones left) lets it wrap, and its
//! file stays the same size: rewriting allocated blocks costs far less than growing.

use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the WAL is copied back into the database.
const EVERY: Duration = Duration::from_millis(250);

/// WAL pages (4 KiB each) past which the log is made to start over.
const RESTART_PAGES: i64 = 8192;

/// A WAL this many pages long that a checkpoint could not fully copy is worth a warning
/// (long-lived readers keep it from being reset).
const WARN_PAGES: i64 = 1 << 18;

/// The checkpoint thread; stops (after a last checkpoint) when dropped.
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Turn off automatic checkpoints on `writer` and start the thread on a connection of
    /// its own to `path`.
    pub(super) fn spawn(writer: &Connection, path: &Path) -> rusqlite::Result<Checkpointer> {
        let conn = Connection::open(path)?;
        // Short: a restarting checkpoint holds off the writer while it waits for readers.
        conn.busy_timeout(Duration::from_millis(100))?;
        // A checkpoint syncs the WAL before copying and the database after.
        conn.execute_batch("PRAGMA synchronous=FULL;")?;
        writer.execute_batch("PRAGMA wal_autocheckpoint=0;")?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("hisp-store-checkpoint".into())
            .spawn(move || run(&conn, &stopped))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    let mut warned = false;
    loop {
        let last = matches!(
            stopped.recv_timeout(EVERY),
            Err(mpsc::RecvTimeoutError::Disconnected) | Ok(())
        );
        let result = checkpoint(conn, "PASSIVE").and_then(|(log, done)| {
            if log > RESTART_PAGES {
                checkpoint(conn, "RESTART")
            } else {
                Ok((log, done))
            }
        });
        match result {
            Ok((log, done)) if log - done > WARN_PAGES && !warned => {
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
    }
}

/// One checkpoint in `mode`: (pages in the WAL, pages copied to the database).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}
