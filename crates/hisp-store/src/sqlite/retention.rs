//! Retention: the bodies nobody needs any more are removed, so the store does not grow
//! without bound (at 10 KiB, each exchange leaves about 47 KiB of bodies on the two sides).
//! An outbound message's body and sealed copies are needed until every recipient is final
//! (no retry, no notification awaited); a mailbox entry's body until the edge picked it up,
//! and then for as long as the operator keeps it; a quarantined message's sealed form for
//! as long as the operator may want to release it (a broken or hostile peer could otherwise
//! fill the disk with mail that never opens). Rows, states, reasons and timelines stay, and
//! a `purged` event says when the body of a message went.
//!
//! Body rows are walked in row order (the order they were written, so oldest first) from a
//! cursor, a bounded number per step, and a pass stops at the first row too young to go:
//! a step never scans the bodies of the retention window, and a long run of old bodies
//! still in use (a queue held by a peer's outage) does not stall the pass.

use rusqlite::{params, Connection};

use super::{db, spool, timeline};
use crate::{PurgeStep, Purged, StoreResult};

/// One step (see [`crate::Store::purge_bodies`]).
pub(super) fn purge(conn: &Connection, step: &PurgeStep) -> StoreResult<Purged> {
    let (outbound, outbound_next) = purge_outbound(conn, step)?;
    let (mailbox, mailbox_next) = purge_mailbox(conn, step)?;
    let (quarantined, quarantined_next) = purge_quarantined(conn, step)?;
    Ok(Purged {
        outbound,
        mailbox,
        quarantined,
        outbound_next,
        mailbox_next,
        quarantined_next,
    })
}

/// A body row looked at: its row id, whose it is, when that was made, and whether it may go.
pub(super) struct Seen<K> {
    rowid: i64,
    key: K,
    made: i64,
    may_go: bool,
}

/// The rows `sql` selects as (rowid, key, made, may go).
pub(super) fn seen<K: rusqlite::types::FromSql>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    what: &'static str,
) -> StoreResult<Vec<Seen<K>>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db(what))?;
    let rows = stmt
        .query_map(params, |row| {
            Ok(Seen {
                rowid: row.get(0)?,
                key: row.get(1)?,
                made: row.get(2)?,
                may_go: row.get(3)?,
            })
        })
        .map_err(db(what))?;
    rows.collect::<Result<_, _>>().map_err(db(what))
}

/// Walk `rows` (in row order): the keys that may go, and the cursor for the next step
/// (`None` once a row too young to go, or the end, was reached).
pub(super) fn walk<K>(rows: Vec<Seen<K>>, before: i64, limit: usize) -> (Vec<K>, Option<i64>) {
    let full = rows.len() >= limit;
    let mut last = None;
    let mut go = Vec::new();
    for r in rows {
        if r.made >= before {
            return (go, None);
        }
        last = Some(r.rowid);
        if r.may_go {
            go.push(r.key);
        }
    }
    (go, last.filter(|_| full))
}

fn purge_outbound(conn: &Connection, step: &PurgeStep) -> StoreResult<(u64, Option<i64>)> {
    let what = "removing the bodies of finished messages";
    let rows: Vec<Seen<String>> = seen(
        conn,
        "SELECT b.rowid, b.message, m.created, NOT EXISTS (SELECT 1 FROM recipients r \
         WHERE r.message = b.message AND (r.state IN ('queued', 'held') OR r.deadline IS NOT NULL)) \
         FROM message_bodies b JOIN messages m ON m.id = b.message \
         WHERE b.rowid > ?1 ORDER BY b.rowid LIMIT ?2",
        params![step.outbound_after, step.limit as i64],
        what,
    )?;
    let (ids, next) = walk(rows, step.outbound_before, step.limit);
    for id in &ids {
        drop_message_bodies(conn, id, what)?;
        timeline::insert(
            conn,
            id,
            None,
            "purged",
            "body removed (retention)",
            step.now,
        )?;
    }
    Ok((ids.len() as u64, next))
}

fn purge_mailbox(conn: &Connection, step: &PurgeStep) -> StoreResult<(u64, Option<i64>)> {
    let what = "removing the bodies of picked-up mail";
    // An entry received after the cut-off cannot have been picked up before it, so the
    // walk stops at the first one received after it.
    let rows: Vec<Seen<i64>> = seen(
        conn,
        "SELECT b.rowid, b.entry, m.received, m.picked_up IS NOT NULL AND m.picked_up < ?3 \
         FROM mailbox_bodies b JOIN mailbox m ON m.id = b.entry \
         WHERE b.rowid > ?1 ORDER BY b.rowid LIMIT ?2",
        params![step.mailbox_after, step.limit as i64, step.picked_up_before],
        what,
    )?;
    let (entries, next) = walk(rows, step.picked_up_before, step.limit);
    for entry in &entries {
        drop_body(conn, "mailbox_bodies", "entry", entry, what)?;
    }
    Ok((entries.len() as u64, next))
}

fn purge_quarantined(conn: &Connection, step: &PurgeStep) -> StoreResult<(u64, Option<i64>)> {
    let what = "removing the sealed form of quarantined mail";
    // Quarantined when opened, which is never before it was received; spooled mail (not
    // opened yet) keeps its body.
    let rows: Vec<Seen<String>> = seen(
        conn,
        "SELECT b.rowid, b.inbound, i.received, i.state = 'quarantined' AND i.updated < ?3 \
         FROM inbound_bodies b JOIN inbound i ON i.id = b.inbound \
         WHERE b.rowid > ?1 ORDER BY b.rowid LIMIT ?2",
        params![
            step.quarantined_after,
            step.limit as i64,
            step.quarantined_before
        ],
        what,
    )?;
    let (ids, next) = walk(rows, step.quarantined_before, step.limit);
    for id in &ids {
        drop_body(conn, "inbound_bodies", "inbound", id, what)?;
        timeline::insert(
            conn,
            id,
            None,
            "purged",
            "sealed form removed (retention)",
            step.now,
        )?;
    }
    Ok((ids.len() as u64, next))
}

/// Delete the body and sealed copies of outbound message `id`, and their files after the
/// commit.
pub(super) fn drop_message_bodies(
    conn: &Connection,
    id: &str,
    what: &'static str,
) -> StoreResult<()> {
    for table in ["message_bodies", "sealed"] {
        let select = format!("SELECT file FROM {table} WHERE message = ?1 AND file IS NOT NULL");
        doom_files(conn, &select, id)?;
        run(
            conn,
            &format!("DELETE FROM {table} WHERE message = ?1"),
            &id,
            what,
        )?;
    }
    Ok(())
}

/// Delete the body row of `table` whose `key` is `value`, and its file after the commit.
fn drop_body(
    conn: &Connection,
    table: &str,
    key: &str,
    value: &dyn rusqlite::ToSql,
    what: &'static str,
) -> StoreResult<()> {
    let select = format!("SELECT file FROM {table} WHERE {key} = ?1");
    spool::doom_file_of(conn, &select, [value])?;
    run(
        conn,
        &format!("DELETE FROM {table} WHERE {key} = ?1"),
        value,
        what,
    )
}

/// Run `sql` with `id` as `?1`.
pub(super) fn run(
    conn: &Connection,
    sql: &str,
    id: &dyn rusqlite::ToSql,
    what: &'static str,
) -> StoreResult<()> {
    conn.prepare_cached(sql)
        .map_err(db(what))?
        .execute([id])
        .map_err(db(what))?;
    Ok(())
}

/// Doom (remove after the commit) every body file `select` names for `id`.
pub(super) fn doom_files(conn: &Connection, select: &str, id: &str) -> StoreResult<()> {
    let what = "finding message body files";
    let names: Vec<String> = {
        let mut stmt = conn.prepare_cached(select).map_err(db(what))?;
        let rows = stmt.query_map([id], |row| row.get(0)).map_err(db(what))?;
        rows.collect::<Result<_, _>>().map_err(db(what))?
    };
    for name in names {
        spool::doom(conn, &name)?;
    }
    Ok(())
}
