//! Retention: the bodies nobody needs any more are removed, so the store does not grow
//! without bound (at 10 KiB, each exchange leaves about 60 KiB of bodies on the two sides).
//! An outbound message's body and sealed copies are needed until every recipient is final
//! (no retry, no notification awaited); a mailbox entry's body until the edge picked it up,
//! and then for as long as the operator keeps it. Rows, states and timelines stay, and a
//! `purged` event says when the body of a message went. Each call removes at most `limit`
//! of each kind, oldest first, so the writer is never held long.

use rusqlite::{params, Connection};

use super::{db, spool, timeline};
use crate::{Purged, StoreResult, UnixTime};

/// Remove the bodies of finished outbound messages created before `outbound_before` and of
/// mailbox entries picked up before `picked_up_before`, at most `limit` of each.
pub(super) fn purge(
    conn: &Connection,
    outbound_before: UnixTime,
    picked_up_before: UnixTime,
    limit: usize,
    now: UnixTime,
) -> StoreResult<Purged> {
    Ok(Purged {
        outbound: purge_outbound(conn, outbound_before, limit, now)?,
        mailbox: purge_mailbox(conn, picked_up_before, limit)?,
    })
}

fn purge_outbound(
    conn: &Connection,
    before: UnixTime,
    limit: usize,
    now: UnixTime,
) -> StoreResult<u64> {
    let what = "removing the bodies of finished messages";
    // Oldest bodies first (rowid order): the ones already removed are not scanned again.
    let ids: Vec<String> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT b.message FROM message_bodies b JOIN messages m ON m.id = b.message \
                 WHERE m.created < ?1 AND NOT EXISTS (SELECT 1 FROM recipients r \
                 WHERE r.message = b.message AND (r.state = 'queued' OR r.deadline IS NOT NULL)) \
                 ORDER BY b.rowid LIMIT ?2",
            )
            .map_err(db(what))?;
        let rows = stmt
            .query_map(params![before, limit as i64], |row| row.get(0))
            .map_err(db(what))?;
        rows.collect::<Result<_, _>>().map_err(db(what))?
    };
    for id in &ids {
        for table in ["message_bodies", "sealed"] {
            let select =
                format!("SELECT file FROM {table} WHERE message = ?1 AND file IS NOT NULL");
            doom_files(conn, &select, id)?;
            conn.prepare_cached(&format!("DELETE FROM {table} WHERE message = ?1"))
                .map_err(db(what))?
                .execute([id])
                .map_err(db(what))?;
        }
        timeline::insert(conn, id, None, "purged", "body removed (retention)", now)?;
    }
    Ok(ids.len() as u64)
}

fn purge_mailbox(conn: &Connection, before: UnixTime, limit: usize) -> StoreResult<u64> {
    let what = "removing the bodies of picked-up mail";
    let entries: Vec<i64> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT b.entry FROM mailbox_bodies b JOIN mailbox m ON m.id = b.entry \
                 WHERE m.picked_up IS NOT NULL AND m.picked_up < ?1 ORDER BY b.entry LIMIT ?2",
            )
            .map_err(db(what))?;
        let rows = stmt
            .query_map(params![before, limit as i64], |row| row.get(0))
            .map_err(db(what))?;
        rows.collect::<Result<_, _>>().map_err(db(what))?
    };
    for entry in &entries {
        spool::doom_file_of(
            conn,
            "SELECT file FROM mailbox_bodies WHERE entry = ?1",
            [entry],
        )?;
        conn.prepare_cached("DELETE FROM mailbox_bodies WHERE entry = ?1")
            .map_err(db(what))?
            .execute([entry])
            .map_err(db(what))?;
    }
    Ok(entries.len() as u64)
}

/// Doom (remove after the commit) every body file `select` names for `id`.
fn doom_files(conn: &Connection, select: &str, id: &str) -> StoreResult<()> {
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
