//! Records retention: whole rows of finished mail older than the operator keeps records
//! (`[retention] keep_records`), so the store stops growing by a row set per message
//! forever. Bodies go earlier (`retention.rs`); this takes what stays after them: the
//! message, its recipients and states, its timeline. Nothing unfinished goes: an outbound
//! message with a recipient queued or awaiting a notification, an inbound message not yet
//! opened, a mailbox entry the edge never picked up.
//!
//! Each kind is walked in row order from a cursor, a bounded number of rows per step, and
//! a pass stops at the first row too young to go (as the body pass does).

use rusqlite::{params, Connection};

use super::retention::{doom_files, drop_message_bodies, run, seen, walk, Seen};
use super::spool;
use crate::{PurgedRecords, RecordStep, StoreResult};

/// One step (see [`crate::Store::purge_records`]).
pub(super) fn purge(conn: &Connection, step: &RecordStep) -> StoreResult<PurgedRecords> {
    let (messages, messages_next) = purge_messages(conn, step)?;
    let (inbound, inbound_next) = purge_inbound(conn, step)?;
    let (mailbox, mailbox_next) = purge_mailbox(conn, step)?;
    let (notifications, notifications_next) = purge_notifications(conn, step)?;
    let more = messages_next.is_some()
        || inbound_next.is_some()
        || mailbox_next.is_some()
        || notifications_next.is_some();
    // A kind that is done is skipped from then on (no row lies past i64::MAX).
    let next = more.then(|| RecordStep {
        messages_after: messages_next.unwrap_or(i64::MAX),
        inbound_after: inbound_next.unwrap_or(i64::MAX),
        mailbox_after: mailbox_next.unwrap_or(i64::MAX),
        notifications_after: notifications_next.unwrap_or(i64::MAX),
        ..*step
    });
    Ok(PurgedRecords {
        messages,
        inbound,
        mailbox,
        notifications,
        next,
    })
}

/// Walk the rows `select` lists after `after` (as (rowid, key, made, may go), `?1` the
/// cursor and `?2` the limit) and `remove` each that may go; (how many, next cursor).
fn remove_walked<K: rusqlite::types::FromSql>(
    conn: &Connection,
    step: &RecordStep,
    after: i64,
    select: &str,
    what: &'static str,
    remove: impl Fn(&K) -> StoreResult<()>,
) -> StoreResult<(u64, Option<i64>)> {
    let rows: Vec<Seen<K>> = seen(conn, select, params![after, step.limit as i64], what)?;
    let (keys, next) = walk(rows, step.before, step.limit);
    for key in &keys {
        remove(key)?;
    }
    Ok((keys.len() as u64, next))
}

fn purge_messages(conn: &Connection, step: &RecordStep) -> StoreResult<(u64, Option<i64>)> {
    let what = "removing the records of finished messages";
    let select = "SELECT m.seq, m.id, m.created, NOT EXISTS (SELECT 1 FROM recipients r \
         WHERE r.message = m.id AND (r.state IN ('queued', 'held') OR r.deadline IS NOT NULL)) \
         FROM messages m WHERE m.seq > ?1 ORDER BY m.seq LIMIT ?2";
    remove_walked(
        conn,
        step,
        step.messages_after,
        select,
        what,
        |id: &String| {
            drop_message_bodies(conn, id, what)?;
            run(conn, "DELETE FROM events WHERE message = ?1", id, what)?;
            // Recipients go with it (ON DELETE CASCADE).
            run(conn, "DELETE FROM messages WHERE id = ?1", id, what)
        },
    )
}

fn purge_inbound(conn: &Connection, step: &RecordStep) -> StoreResult<(u64, Option<i64>)> {
    let what = "removing the records of processed inbound mail";
    let select = "SELECT seq, id, received, state != 'spooled' FROM inbound \
         WHERE seq > ?1 ORDER BY seq LIMIT ?2";
    remove_walked(
        conn,
        step,
        step.inbound_after,
        select,
        what,
        |id: &String| {
            let files = "SELECT file FROM inbound_bodies WHERE inbound = ?1 AND file IS NOT NULL";
            doom_files(conn, files, id)?;
            run(conn, "DELETE FROM events WHERE message = ?1", id, what)?;
            run(conn, "DELETE FROM inbound WHERE id = ?1", id, what)
        },
    )
}

fn purge_mailbox(conn: &Connection, step: &RecordStep) -> StoreResult<(u64, Option<i64>)> {
    let what = "removing picked-up mailbox entries";
    let select = "SELECT id, id, received, picked_up IS NOT NULL FROM mailbox \
         WHERE id > ?1 ORDER BY id LIMIT ?2";
    remove_walked(
        conn,
        step,
        step.mailbox_after,
        select,
        what,
        |entry: &i64| {
            let files = "SELECT file FROM mailbox_bodies WHERE entry = ?1";
            spool::doom_file_of(conn, files, [entry])?;
            run(conn, "DELETE FROM mailbox WHERE id = ?1", entry, what)
        },
    )
}

fn purge_notifications(conn: &Connection, step: &RecordStep) -> StoreResult<(u64, Option<i64>)> {
    let what = "removing old notification records";
    let select = "SELECT rowid, rowid, seen, 1 FROM notifications \
         WHERE rowid > ?1 ORDER BY rowid LIMIT ?2";
    remove_walked(
        conn,
        step,
        step.notifications_after,
        select,
        what,
        |rowid: &i64| {
            run(
                conn,
                "DELETE FROM notifications WHERE rowid = ?1",
                rowid,
                what,
            )
        },
    )
}
