//! The inbound spool (DESIGN §2 "Inbound"): a message received on the relay port is either
//! processed at once and recorded with its outcome (`record`), or kept sealed, with its
//! envelope, before `250`; workers lease it, open it, and finish it in one transaction with
//! its mailbox deliveries and the MDNs it triggers. Opening is not here.

use rusqlite::{params, Connection, Row};

use super::blobs::{self, Body};
use super::spool;
use super::{
    collect, db, fold, mailbox, new_id, parse_name, queue, sql_len, sql_limit, timeline, tracking,
};
use crate::{
    Committed, Inbound, InboundDone, InboundState, NewInbound, QueueId, Queued, StoreError,
    StoreResult, UnixTime,
};

/// The columns [`inbound_row`] reads, from `inbound`.
const INBOUND_COLUMNS: &str = "id, mail_from, state, reason, received";

/// An inbound row without recipients or body.
fn inbound_row(row: &Row<'_>) -> rusqlite::Result<StoreResult<Inbound>> {
    let state = value!(parse_name(
        row.get(2)?,
        "inbound.state",
        InboundState::parse
    ));
    Ok(Ok(Inbound {
        id: QueueId(row.get(0)?),
        mail_from: row.get(1)?,
        rcpts: Vec::new(),
        body: Vec::new(),
        state,
        reason: row.get(3)?,
        received: row.get(4)?,
    }))
}

/// Fill in the envelope recipients of rows read by [`inbound_row`].
fn complete(conn: &Connection, inbound: &mut Inbound) -> StoreResult<()> {
    let what = "reading an inbound message";
    let mut rcpts = conn
        .prepare_cached("SELECT rcpt FROM inbound_rcpts WHERE inbound = ?1 ORDER BY position")
        .map_err(db(what))?;
    inbound.rcpts = collect(&mut rcpts, [&inbound.id.0], what, |row| Ok(Ok(row.get(0)?)))?;
    Ok(())
}

/// Read the sealed body of a message [`lease`] took.
pub(super) fn fill_body(conn: &Connection, inbound: &mut Inbound) -> StoreResult<()> {
    inbound.body = body_of(conn, &inbound.id)?.ok_or_else(|| StoreError::NotFound {
        what: "inbound message body",
        id: inbound.id.0.clone(),
    })?;
    Ok(())
}

/// The sealed body kept for `id` (spooled and quarantined mail), if any.
fn body_of(conn: &Connection, id: &QueueId) -> StoreResult<Option<Vec<u8>>> {
    let select = "SELECT rowid, length(body), file FROM inbound_bodies WHERE inbound = ?1";
    blobs::read(conn, "inbound_bodies", select, [&id.0])
}

/// Spool a received message and note it on its timeline.
pub(super) fn spool(conn: &Connection, msg: &NewInbound) -> StoreResult<QueueId> {
    let id = new_id('i');
    insert(conn, &id, msg, InboundState::Spooled, None)?;
    Ok(id)
}

/// Record a message received and processed at once (before `250`): the inbound row in its
/// final state, with everything `done` says, in one transaction. The sealed body is kept
/// only when `msg.body` is not empty (the daemon keeps it for quarantined mail).
pub(super) fn record(
    conn: &Connection,
    msg: &NewInbound,
    done: InboundDone,
) -> StoreResult<Committed> {
    insert(conn, &done.id, msg, done.state, done.reason.as_deref())?;
    apply(conn, done)
}

fn insert(
    conn: &Connection,
    id: &QueueId,
    msg: &NewInbound,
    state: InboundState,
    reason: Option<&str>,
) -> StoreResult<()> {
    let what = "spooling an inbound message";
    conn.prepare_cached(
        "INSERT INTO inbound (id, mail_from, peer, state, reason, received, updated, size) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
    )
    .map_err(db(what))?
    .execute(params![
        id.0,
        fold(&msg.mail_from),
        msg.peer,
        state.as_str(),
        reason,
        msg.now,
        sql_len(msg.body.len())
    ])
    .map_err(db(what))?;
    if !msg.body.is_empty() {
        conn.prepare_cached("INSERT INTO inbound_bodies (inbound, body) VALUES (?1, ?2)")
            .map_err(db(what))?
            .execute(params![id.0, Body(&msg.body)])
            .map_err(db(what))?;
        blobs::fill(conn, "inbound_bodies", conn.last_insert_rowid(), &msg.body)?;
    }
    let mut rcpt_insert = conn
        .prepare_cached("INSERT INTO inbound_rcpts (inbound, position, rcpt) VALUES (?1, ?2, ?3)")
        .map_err(db(what))?;
    for (position, rcpt) in msg.rcpts.iter().enumerate() {
        rcpt_insert
            .execute(params![id.0, sql_len(position), fold(rcpt)])
            .map_err(db(what))?;
    }
    timeline::insert(
        conn,
        &id.0,
        None,
        "received",
        &format!("from {}", msg.peer),
        msg.now,
    )
}

/// Lease spooled messages whose lease is free or expired, oldest first, without their
/// bodies: this runs on the writer thread, where reading bodies of up to the size limit from
/// their files would hold every other commit back; [`fill_body`] reads them afterwards.
pub(super) fn lease(
    conn: &Connection,
    now: UnixTime,
    owner: &str,
    lease_until: UnixTime,
    limit: usize,
) -> StoreResult<Vec<Inbound>> {
    let what = "leasing inbound messages";
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {INBOUND_COLUMNS} FROM inbound WHERE state = 'spooled' \
             AND (lease_owner IS NULL OR lease_until < ?1) ORDER BY seq LIMIT ?2"
        ))
        .map_err(db(what))?;
    let mut leased = collect(&mut stmt, params![now, sql_limit(limit)], what, inbound_row)?;
    let mut take = conn
        .prepare_cached("UPDATE inbound SET lease_owner = ?2, lease_until = ?3 WHERE id = ?1")
        .map_err(db(what))?;
    for inbound in &mut leased {
        take.execute(params![inbound.id.0, owner, lease_until])
            .map_err(db(what))?;
        complete(conn, inbound)?;
    }
    Ok(leased)
}

/// Record the outcome with everything it causes. The state changes first, and only from
/// `spooled`: a second finish (a worker whose lease ran out) fails with `NotFound` before
/// anything else is written, so nothing is delivered twice. A delivered message's sealed
/// body is no longer needed.
pub(super) fn finish(conn: &Connection, done: InboundDone) -> StoreResult<Committed> {
    let what = "finishing an inbound message";
    let changed = conn
        .prepare_cached(
            "UPDATE inbound SET state = ?2, reason = ?3, updated = ?4, \
             lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND state = 'spooled'",
        )
        .map_err(db(what))?
        .execute(params![
            done.id.0,
            done.state.as_str(),
            done.reason,
            done.now
        ])
        .map_err(db(what))?;
    if changed == 0 {
        return Err(StoreError::NotFound {
            what: "spooled inbound message",
            id: done.id.0.clone(),
        });
    }
    if done.state == InboundState::Delivered {
        spool::doom_file_of(
            conn,
            "SELECT file FROM inbound_bodies WHERE inbound = ?1",
            [&done.id.0],
        )?;
        conn.prepare_cached("DELETE FROM inbound_bodies WHERE inbound = ?1")
            .map_err(db(what))?
            .execute([&done.id.0])
            .map_err(db(what))?;
    }
    apply(conn, done)
}

/// Notices, deliveries, queued notifications (leased when asked) and events of an
/// outcome. A notification seen before is not delivered to the sender again.
fn apply(conn: &Connection, done: InboundDone) -> StoreResult<Committed> {
    let mut committed = Committed::default();
    for notice in &done.notices {
        if tracking::apply(conn, notice, done.now)? {
            committed.notices_new += 1;
        } else {
            committed.notices_repeated += 1;
        }
    }
    let repeat = !done.notices.is_empty() && committed.notices_new == 0;
    for entry in done.deliveries.iter().filter(|_| !repeat) {
        mailbox::deliver(conn, entry)?;
    }
    for msg in done.then {
        committed.queued.push(match &done.lease_then {
            Some(lease) => {
                let (id, leases) = queue::enqueue_leased(conn, &msg, lease)?;
                Queued {
                    id,
                    leases,
                    body: msg.body,
                }
            }
            None => Queued {
                id: queue::enqueue(conn, &msg)?,
                leases: Vec::new(),
                body: Vec::new(),
            },
        });
    }
    for event in &done.events {
        timeline::add_event(conn, event)?;
    }
    Ok(committed)
}

/// Quarantined messages, newest first, without bodies.
pub(super) fn quarantined(conn: &Connection, limit: usize) -> StoreResult<Vec<Inbound>> {
    let what = "listing quarantined messages";
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {INBOUND_COLUMNS} FROM inbound WHERE state = 'quarantined' \
             ORDER BY received DESC, seq DESC LIMIT ?1"
        ))
        .map_err(db(what))?;
    let mut listed = collect(&mut stmt, [sql_limit(limit)], what, inbound_row)?;
    for inbound in &mut listed {
        complete(conn, inbound)?;
    }
    Ok(listed)
}

/// One inbound message with its recipients and the sealed body when it was kept.
pub(super) fn get(conn: &Connection, id: &QueueId) -> StoreResult<Option<Inbound>> {
    let what = "reading an inbound message";
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {INBOUND_COLUMNS} FROM inbound WHERE id = ?1"
        ))
        .map_err(db(what))?;
    let Some(mut inbound) = collect(&mut stmt, [&id.0], what, inbound_row)?.pop() else {
        return Ok(None);
    };
    complete(conn, &mut inbound)?;
    inbound.body = body_of(conn, id)?.unwrap_or_default();
    Ok(Some(inbound))
}

/// Put a quarantined message back in the spool, so the next worker opens it again (after
/// the operator fixed what it failed on: an anchor, a user). False when `id` is not
/// quarantined; an error when its sealed body was not kept.
pub(super) fn release(conn: &Connection, id: &QueueId, now: UnixTime) -> StoreResult<bool> {
    let what = "releasing a quarantined message";
    let changed = conn
        .prepare_cached(
            "UPDATE inbound SET state = 'spooled', reason = NULL, updated = ?2, \
             lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND state = 'quarantined' \
             AND EXISTS (SELECT 1 FROM inbound_bodies WHERE inbound = ?1)",
        )
        .map_err(db(what))?
        .execute(params![id.0, now])
        .map_err(db(what))?;
    if changed == 0 {
        // Still quarantined, then its sealed body is what is missing.
        let quarantined = conn
            .prepare_cached("SELECT 1 FROM inbound WHERE id = ?1 AND state = 'quarantined'")
            .map_err(db(what))?
            .exists([&id.0])
            .map_err(db(what))?;
        if !quarantined {
            return Ok(false);
        }
        return Err(StoreError::NotFound {
            what: "sealed body of the quarantined message",
            id: id.0.clone(),
        });
    }
    timeline::insert(
        conn,
        &id.0,
        None,
        "released",
        "from quarantine by the operator, to be opened again",
        now,
    )?;
    Ok(true)
}
