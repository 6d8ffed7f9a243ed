//! Timeline events: the per-message history an operator reads (`hisp queue show`), kept as
//! rows because logs are not the record (STYLE §8). Events are keyed by queue id, outbound
//! or inbound, and are only ever appended.

use rusqlite::{params, Connection};

use super::{collect, db, fold};
use crate::{Event, NewEvent, QueueId, RcptUpdate, StoreResult};

/// Append one event.
pub(super) fn insert(
    conn: &Connection,
    message: &str,
    rcpt: Option<&str>,
    kind: &str,
    detail: &str,
    at: i64,
) -> StoreResult<()> {
    let what = "appending an event";
    conn.prepare_cached(
        "INSERT INTO events (message, rcpt, kind, detail, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .map_err(db(what))?
    .execute(params![message, rcpt.map(fold), kind, detail, at])
    .map_err(db(what))?;
    Ok(())
}

/// Append a caller's event.
pub(super) fn add_event(conn: &Connection, event: &NewEvent) -> StoreResult<()> {
    insert(
        conn,
        &event.message.0,
        event.rcpt.as_deref(),
        &event.kind,
        &event.detail,
        event.at,
    )
}

/// The event a recipient update carries, for `rcpt` (folded).
pub(super) fn add_update(conn: &Connection, update: &RcptUpdate, rcpt: &str) -> StoreResult<()> {
    insert(
        conn,
        &update.message.0,
        Some(rcpt),
        &update.event,
        &update.detail,
        update.now,
    )
}

/// A message's events, oldest first (ties in insertion order).
pub(super) fn events(conn: &Connection, id: &QueueId) -> StoreResult<Vec<Event>> {
    let what = "reading events";
    let mut stmt = conn
        .prepare_cached(
            "SELECT rcpt, kind, detail, at FROM events WHERE message = ?1 ORDER BY at, seq",
        )
        .map_err(db(what))?;
    collect(&mut stmt, [&id.0], what, |row| {
        Ok(Ok(Event {
            rcpt: row.get(0)?,
            kind: row.get(1)?,
            detail: row.get(2)?,
            at: row.get(3)?,
        }))
    })
}
