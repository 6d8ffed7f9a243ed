//! Local mailboxes: opened messages (and MDNs/DSNs about what a user sent) waiting for the
//! edge to pick them up, plus the de-duplication record for notifications (Delivery
//! Notification IG: MDNs/DSNs about the same message are de-duplicated). Pickup is what
//! triggers `dispatched`, so it must happen once.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::blobs::{self, Body};
use super::{collect, db, fold, parse_name, sql_len, sql_limit, unsigned};
use crate::{EntryKind, MailboxEntry, NewMailboxEntry, QueueId, StoreError, StoreResult, UnixTime};

/// The columns [`entry_row`] reads, from `mailbox`.
const ENTRY_COLUMNS: &str = "id, owner, kind, message_id, from_header, subject, size, \
     wants_dispatched, source, received, picked_up";

/// A mailbox row without its body.
fn entry_row(row: &Row<'_>) -> rusqlite::Result<StoreResult<MailboxEntry>> {
    let kind = value!(parse_name(row.get(2)?, "mailbox.kind", EntryKind::parse));
    let size = value!(unsigned(row.get(6)?, "mailbox.size"));
    Ok(Ok(MailboxEntry {
        id: row.get(0)?,
        owner: row.get(1)?,
        kind,
        message_id: row.get(3)?,
        from: row.get(4)?,
        subject: row.get(5)?,
        body: Vec::new(),
        size,
        wants_dispatched: row.get(7)?,
        source: row.get::<_, Option<String>>(8)?.map(QueueId),
        received: row.get(9)?,
        picked_up: row.get(10)?,
    }))
}

/// Add an entry; returns its id.
pub(super) fn deliver(conn: &Connection, entry: &NewMailboxEntry) -> StoreResult<i64> {
    let what = "delivering to a mailbox";
    // A sending HISP that did not see our 250 (we crashed after committing) sends again:
    // the same message for the same owner is delivered once.
    if entry.kind == EntryKind::Message && !entry.message_id.is_empty() {
        let existing: Option<i64> = conn
            .prepare_cached(
                "SELECT id FROM mailbox WHERE owner = ?1 AND kind = 'message' AND message_id = ?2",
            )
            .map_err(db(what))?
            .query_row(params![fold(&entry.owner), entry.message_id], |r| r.get(0))
            .optional()
            .map_err(db(what))?;
        if let Some(id) = existing {
            return Ok(id);
        }
    }
    conn.prepare_cached(
        "INSERT INTO mailbox (owner, kind, message_id, from_header, subject, size, \
         wants_dispatched, source, received) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .map_err(db(what))?
    .execute(params![
        fold(&entry.owner),
        entry.kind.as_str(),
        entry.message_id,
        entry.from,
        entry.subject,
        sql_len(entry.body.len()),
        entry.wants_dispatched,
        entry.source.as_ref().map(|id| id.0.as_str()),
        entry.now,
    ])
    .map_err(db(what))?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO mailbox_bodies (entry, body) VALUES (?1, ?2)")
        .map_err(db(what))?
        .execute(params![id, Body(&entry.body)])
        .map_err(db(what))?;
    blobs::fill(conn, "mailbox_bodies", id, &entry.body)?;
    Ok(id)
}

/// A user's entries, oldest first, without bodies.
pub(super) fn list(
    conn: &Connection,
    owner: &str,
    include_picked_up: bool,
    after: i64,
    limit: usize,
) -> StoreResult<Vec<MailboxEntry>> {
    let what = "listing a mailbox";
    let mut stmt = conn
        .prepare_cached(&list_sql(include_picked_up))
        .map_err(db(what))?;
    let args = params![fold(owner), after, sql_limit(limit)];
    collect(&mut stmt, args, what, entry_row)
}

/// Two statements, not one with `(?2 OR picked_up IS NULL)`: the planner cannot see through
/// a parameter, so the one form walked every entry the owner ever had (5 ms per REST poll
/// at 6,000 picked-up entries) instead of the `mailbox_unpicked` partial index.
pub(super) fn list_sql(include_picked_up: bool) -> String {
    let unpicked = if include_picked_up {
        ""
    } else {
        " AND picked_up IS NULL"
    };
    format!(
        "SELECT {ENTRY_COLUMNS} FROM mailbox WHERE owner = ?1{unpicked} AND id > ?2 \
         ORDER BY id LIMIT ?3"
    )
}

/// One entry without its body, if `owner` owns it.
fn header(conn: &Connection, owner: &str, id: i64) -> StoreResult<Option<MailboxEntry>> {
    let what = "reading a mailbox entry";
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM mailbox WHERE id = ?1 AND owner = ?2"
        ))
        .map_err(db(what))?;
    Ok(collect(&mut stmt, params![id, fold(owner)], what, entry_row)?.pop())
}

/// One entry with its body, if `owner` owns it.
pub(super) fn entry(conn: &Connection, owner: &str, id: i64) -> StoreResult<Option<MailboxEntry>> {
    let Some(mut entry) = header(conn, owner, id)? else {
        return Ok(None);
    };
    let select = "SELECT rowid, length(body), file FROM mailbox_bodies WHERE entry = ?1";
    entry.body =
        blobs::read(conn, "mailbox_bodies", select, [id])?.ok_or_else(|| StoreError::NotFound {
            what: "mailbox body",
            id: id.to_string(),
        })?;
    Ok(Some(entry))
}

/// Mark picked up, once: the entry, without its body, when this call changed it. (It is a
/// write on the store's one writer thread: reading a body of up to the size limit from its
/// file there held every other commit back, for a body nobody used.)
pub(super) fn mark_picked_up(
    conn: &Connection,
    owner: &str,
    id: i64,
    now: UnixTime,
) -> StoreResult<Option<MailboxEntry>> {
    let what = "marking a mailbox entry picked up";
    let changed = conn
        .prepare_cached(
            "UPDATE mailbox SET picked_up = ?3 \
             WHERE id = ?1 AND owner = ?2 AND picked_up IS NULL",
        )
        .map_err(db(what))?
        .execute(params![id, fold(owner), now])
        .map_err(db(what))?;
    if changed == 0 {
        return Ok(None);
    }
    header(conn, owner, id)
}

/// Record a notification; true when it is the first of its kind for (Message-ID, rcpt).
pub(super) fn note_notification(
    conn: &Connection,
    original_message_id: &str,
    rcpt: &str,
    kind: &str,
    now: UnixTime,
) -> StoreResult<bool> {
    let what = "recording a notification";
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO notifications (original_message_id, rcpt, kind, seen) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(db(what))?
        .execute(params![original_message_id, fold(rcpt), kind, now])
        .map_err(db(what))?;
    Ok(inserted == 1)
}
