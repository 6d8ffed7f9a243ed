//! The SQLite schema and its versioning (`PRAGMA user_version`), plus the connection
//! settings that make a commit durable (WAL, `synchronous=FULL`). Opening a file written by
//! a newer Hisp is refused rather than guessed at; older files are migrated step by step.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::{StoreError, StoreResult};

/// The schema version this code writes. Bump it, and add a step to [`migrate_step`], for
/// every change to the tables below.
pub(super) const SCHEMA_VERSION: i64 = 8;

/// How long a connection waits for a lock held by another connection or process (an
/// operator command writing while the daemon runs) before failing with `SQLITE_BUSY`.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Version 1. Addresses and domains are stored lower case (folded in Rust) and compared
/// with `COLLATE NOCASE` as a second guard. Bodies live in their own tables so that
/// updating a row's state never rewrites a multi-MiB blob, and listings never read one.
const SCHEMA_V1: &str = "
CREATE TABLE directory_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO directory_version (id, version) VALUES (1, 0);

CREATE TABLE users (
    address       TEXT PRIMARY KEY COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    created       INTEGER NOT NULL,
    updated       INTEGER NOT NULL
);

CREATE TABLE anchors (
    id      INTEGER PRIMARY KEY,
    domain  TEXT COLLATE NOCASE,
    der     BLOB NOT NULL,
    sha256  TEXT NOT NULL COLLATE NOCASE,
    subject TEXT NOT NULL,
    added   INTEGER NOT NULL
);
-- NULL (every domain) must count as one value for the uniqueness check.
CREATE UNIQUE INDEX anchors_domain_sha256 ON anchors (ifnull(domain, ''), sha256);
CREATE INDEX anchors_sha256 ON anchors (sha256);

CREATE TABLE routes (
    domain  TEXT PRIMARY KEY COLLATE NOCASE,
    target  TEXT NOT NULL,
    updated INTEGER NOT NULL
);

CREATE TABLE static_certs (
    id       INTEGER PRIMARY KEY,
    bound_to TEXT NOT NULL COLLATE NOCASE,
    der      BLOB NOT NULL,
    sha256   TEXT NOT NULL COLLATE NOCASE,
    added    INTEGER NOT NULL,
    UNIQUE (bound_to, sha256)
);

CREATE TABLE messages (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    sender           TEXT NOT NULL COLLATE NOCASE,
    message_id       TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('message', 'notification')),
    via              TEXT NOT NULL,
    wants_dispatched INTEGER NOT NULL,
    created          INTEGER NOT NULL,
    size             INTEGER NOT NULL
);
CREATE INDEX messages_message_id ON messages (message_id);
CREATE INDEX messages_created ON messages (created, seq);

CREATE TABLE message_bodies (
    message TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    body    BLOB NOT NULL
);

CREATE TABLE sealed (
    message TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    domain  TEXT NOT NULL COLLATE NOCASE,
    body    BLOB NOT NULL,
    PRIMARY KEY (message, domain)
);

CREATE TABLE recipients (
    seq          INTEGER PRIMARY KEY,
    message      TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    rcpt         TEXT NOT NULL COLLATE NOCASE,
    domain       TEXT NOT NULL COLLATE NOCASE,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    last_error   TEXT,
    deadline     INTEGER,
    lease_owner  TEXT,
    lease_until  INTEGER,
    updated      INTEGER NOT NULL,
    UNIQUE (message, rcpt)
);
CREATE INDEX recipients_due ON recipients (state, next_attempt);
CREATE INDEX recipients_deadline ON recipients (deadline) WHERE deadline IS NOT NULL;
CREATE INDEX recipients_rcpt ON recipients (rcpt);

CREATE TABLE events (
    seq     INTEGER PRIMARY KEY,
    message TEXT NOT NULL,
    rcpt    TEXT COLLATE NOCASE,
    kind    TEXT NOT NULL,
    detail  TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX events_message ON events (message, at, seq);

CREATE TABLE inbound (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    mail_from   TEXT NOT NULL COLLATE NOCASE,
    peer        TEXT NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT,
    received    INTEGER NOT NULL,
    updated     INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER
);
CREATE INDEX inbound_state ON inbound (state, seq);

CREATE TABLE inbound_rcpts (
    inbound  TEXT NOT NULL REFERENCES inbound (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    rcpt     TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (inbound, position)
);

CREATE TABLE inbound_bodies (
    inbound TEXT PRIMARY KEY REFERENCES inbound (id) ON DELETE CASCADE,
    body    BLOB NOT NULL
);

CREATE TABLE mailbox (
    id               INTEGER PRIMARY KEY,
    owner            TEXT NOT NULL COLLATE NOCASE,
    kind             TEXT NOT NULL,
    message_id       TEXT NOT NULL,
    from_header      TEXT NOT NULL,
    subject          TEXT NOT NULL,
    size             INTEGER NOT NULL,
    wants_dispatched INTEGER NOT NULL,
    source           TEXT,
    received         INTEGER NOT NULL,
    picked_up        INTEGER
);
CREATE INDEX mailbox_owner ON mailbox (owner, id);

CREATE TABLE mailbox_bodies (
    entry INTEGER PRIMARY KEY REFERENCES mailbox (id) ON DELETE CASCADE,
    body  BLOB NOT NULL
);

CREATE TABLE notifications (
    original_message_id TEXT NOT NULL,
    rcpt                TEXT NOT NULL COLLATE NOCASE,
    kind                TEXT NOT NULL,
    seen                INTEGER NOT NULL,
    PRIMARY KEY (original_message_id, rcpt, kind)
);
";

/// Version 6: `hisp queue flush` counts itself, so a running daemon notices the operator
/// asked for delivery now and lifts its destination suspensions.
const SCHEMA_V6: &str = "
ALTER TABLE directory_version ADD COLUMN flushes INTEGER NOT NULL DEFAULT 0;
";

/// Version 7: a sealed form kept for retries names the certificates it was sealed for, so
/// a retry after the recipients' certificates changed (renewed, revoked, or found for a
/// recipient whose discovery failed before) seals again instead of sending the old form.
/// Forms kept before name none ('') and are sealed again.
const SCHEMA_V7: &str = "
ALTER TABLE sealed ADD COLUMN certs TEXT NOT NULL DEFAULT '';
";

/// Version 8: the access audit trail (`hisp audit`): who read, took, sent or changed what,
/// when and from where; only ever appended.
const SCHEMA_V8: &str = "
CREATE TABLE audit (
    seq    INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL COLLATE NOCASE,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    client TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_actor ON audit (actor, seq);
";

/// Version 5: bodies from `blobs::IN_FILES` up live in files beside the database (one write
/// and fsync instead of the WAL and then the checkpoint); `file` names the file, and `body`
/// is then empty. Rows written before keep their bodies inline.
const SCHEMA_V5: &str = "
ALTER TABLE message_bodies ADD COLUMN file TEXT;
ALTER TABLE sealed ADD COLUMN file TEXT;
ALTER TABLE inbound_bodies ADD COLUMN file TEXT;
ALTER TABLE mailbox_bodies ADD COLUMN file TEXT;
";

/// Version 4: an anchor (or a bundle's anchors) may be trusted for one direction only:
/// `incoming` (signers of mail received) or `outgoing` (recipients' certificates); NULL is
/// both.
const SCHEMA_V4: &str = "
ALTER TABLE anchors ADD COLUMN direction TEXT;
ALTER TABLE bundles ADD COLUMN direction TEXT;
";

/// Version 3: trust bundles (DirectTrust form) fetched from a URL, and the anchors of the
/// last version of each that verified (kept when a later fetch fails).
const SCHEMA_V3: &str = "
CREATE TABLE bundles (
    id           INTEGER PRIMARY KEY,
    url          TEXT NOT NULL UNIQUE,
    domain       TEXT COLLATE NOCASE,
    signer_der   BLOB,
    refresh_secs INTEGER NOT NULL,
    added        INTEGER NOT NULL,
    loaded       INTEGER,
    next_fetch   INTEGER NOT NULL,
    last_error   TEXT
);
CREATE TABLE bundle_anchors (
    bundle_id INTEGER NOT NULL REFERENCES bundles (id) ON DELETE CASCADE,
    der       BLOB NOT NULL,
    sha256    TEXT NOT NULL COLLATE NOCASE,
    subject   TEXT NOT NULL,
    PRIMARY KEY (bundle_id, sha256)
);
";

/// Version 2: indexes for the lookups that happen once per message, so their cost stays flat
/// as mailboxes and queues grow (delivery de-duplication, unread listings).
const SCHEMA_V2: &str = "
CREATE INDEX mailbox_message ON mailbox (owner, message_id);
CREATE INDEX mailbox_unpicked ON mailbox (owner, id) WHERE picked_up IS NULL;
CREATE INDEX recipients_waiting ON recipients (state) WHERE deadline IS NOT NULL;
";

/// Build a [`StoreError::Open`] for `path`.
pub(super) fn open_error(path: &Path, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Prepared statements kept per connection. The writer runs about a hundred distinct
/// statements; with rusqlite's default of 16 they evicted one another and were parsed
/// again on nearly every use (3 % of the daemon's CPU in the exchange benchmark).
const STATEMENT_CACHE: usize = 256;

/// Open the writer connection: create the file (and its directory), switch to WAL with
/// full sync, and bring the schema to [`SCHEMA_VERSION`].
pub(super) fn open_writer(path: &Path) -> StoreResult<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| open_error(path, format!("cannot create {}: {e}", dir.display())))?;
    }
    let conn = Connection::open(path).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_error(path, e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // The first statement that reads the file: a non-database file fails here.
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .map_err(|e| open_error(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(open_error(
            path,
            format!("the file system does not support WAL (journal_mode is {mode})"),
        ));
    }
    // In WAL mode FULL syncs the WAL at every commit: a committed message survives power loss.
    // After a checkpoint, shrink the WAL back to 64 MiB: tens-of-MiB bodies would otherwise
    // leave it at its high-water mark for good.
    // The savepoint of each job in a group commit keeps a sub-journal of the pages it
    // changes; past 64 KiB SQLite spills it to a temporary file, a write per page (a third
    // of the bytes the store wrote at 10 KiB). In memory it is bounded by a batch's pages,
    // as bodies large enough to matter live in files (`spool.rs`).
    conn.execute_batch(
        "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA journal_size_limit=67108864;
         PRAGMA temp_store=MEMORY;",
    )
    .map_err(|e| open_error(path, e))?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Open a connection for reads: the file must already exist (the writer made it).
pub(super) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Readers never write; this turns a slip into an error instead of an unsynced write.
    conn.execute_batch("PRAGMA foreign_keys=ON; PRAGMA query_only=ON;")?;
    Ok(conn)
}

/// Bring the schema up to [`SCHEMA_VERSION`] in one immediate transaction (so two
/// processes opening a fresh file do not both create it). Refuses newer versions.
fn migrate(conn: &Connection, path: &Path) -> StoreResult<()> {
    let version = user_version(conn).map_err(|e| open_error(path, e))?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    check_not_newer(version, path)?;
    // Rolled back on drop if any step fails.
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(|e| open_error(path, e))?;
    // Read again under the write lock: another process may have migrated meanwhile.
    let mut version = user_version(&tx).map_err(|e| open_error(path, e))?;
    check_not_newer(version, path)?;
    while version < SCHEMA_VERSION {
        migrate_step(&tx, version, path)?;
        version += 1;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(|e| open_error(path, e))?;
    tx.commit().map_err(|e| open_error(path, e))
}

/// One migration step: from `version` to `version + 1`. Later versions add their arms.
fn migrate_step(conn: &Connection, version: i64, path: &Path) -> StoreResult<()> {
    let step = match version {
        0 => SCHEMA_V1,
        1 => SCHEMA_V2,
        2 => SCHEMA_V3,
        3 => SCHEMA_V4,
        4 => SCHEMA_V5,
        5 => SCHEMA_V6,
        6 => SCHEMA_V7,
        7 => SCHEMA_V8,
        _ => {
            return Err(open_error(
                path,
                format!("no migration from schema version {version}"),
            ))
        }
    };
    conn.execute_batch(step).map_err(|e| {
        open_error(
            path,
            format!("migrating from schema version {version}: {e}"),
        )
    })
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

fn check_not_newer(version: i64, path: &Path) -> StoreResult<()> {
    if version < 0 {
        return Err(open_error(
            path,
            format!("invalid schema version {version}"),
        ));
    }
    if version > SCHEMA_VERSION {
        return Err(open_error(
            path,
            format!(
                "schema version {version} was written by a newer Hisp \
                 (this one knows versions up to {SCHEMA_VERSION})"
            ),
        ));
    }
    Ok(())
}
