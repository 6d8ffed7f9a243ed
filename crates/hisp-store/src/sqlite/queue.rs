//! The outbound queue (STYLE §4): messages, one row per recipient with its state, schedule
//! and lease, sealed copies per domain, and the tracking queries (MDN matching, overdue
//! notifications, queue depth). Retry policy is the daemon's; this only records decisions.

use std::collections::HashMap;

use rusqlite::{params, Connection, Row};

use super::blobs::{self, Body, Found};
use super::spool;
use super::{
    collect, db, domain_of, fold, new_id, parse_name, sql_len, sql_limit, timeline, unsigned,
};
use crate::{
    Lease, LeaseContent, LeaseTo, NewOutbound, OutKind, OutMessage, OutRecipient, QueueId,
    RcptState, RcptUpdate, SealedCopy, Share, StoreError, StoreResult, UnixTime,
};

/// The columns [`out_recipient`] reads, from `recipients r JOIN messages m`.
pub(super) const RCPT_COLUMNS: &str =
    "r.message, r.rcpt, r.domain, r.state, r.attempts, r.next_attempt, \
     r.last_error, m.wants_dispatched, r.deadline, r.updated, m.sender";

/// The columns [`out_message`] reads, from `messages`.
const MESSAGE_COLUMNS: &str = "id, sender, message_id, kind, created, size";

/// The recipients a lease may take: queued, due, and not leased (or the lease ran out).
/// `?1` is now.
const LEASABLE: &str = "r.state = 'queued' AND r.next_attempt <= ?1 \
     AND (r.lease_owner IS NULL OR r.lease_until < ?1)";

/// [`LEASABLE`] as a filter on the rows of one message: the unary `+` keeps SQLite from
/// walking the due index for it (it did: every due row of the queue read once per message
/// leased, O(backlog²) to drain a backlog; 31 % of the daemon's CPU with 8,000 queued) and
/// makes it find the message's rows by the `(message, rcpt)` key instead.
const LEASABLE_ROW: &str = "+r.state = 'queued' AND +r.next_attempt <= ?1 \
     AND (r.lease_owner IS NULL OR r.lease_until < ?1)";

/// The recipients of message `?2` in domain `?3` that a lease may take. `?1` is now.
fn lease_rcpts_sql() -> String {
    format!(
        "SELECT {RCPT_COLUMNS} FROM recipients r JOIN messages m ON m.id = r.message \
         WHERE r.message = ?2 AND r.domain = ?3 AND {LEASABLE_ROW} ORDER BY r.seq"
    )
}

/// Lease those recipients to `?4` until `?5`.
fn lease_take_sql() -> String {
    // next_attempt moves to the lease's end: a leased row leaves the due range of the index
    // until its lease runs out.
    format!(
        "UPDATE recipients AS r SET lease_owner = ?4, lease_until = ?5, next_attempt = ?5 \
         WHERE r.message = ?2 AND r.domain = ?3 AND {LEASABLE_ROW}"
    )
}

/// The recipients of message `?1` still waiting in the queue (held ones too). `?2` is now.
fn cancellable_sql() -> String {
    not_in_delivery_sql("r.message = ?1 AND +r.state IN ('queued', 'held')")
}

/// The recipients `filter` picks (with `?1`) that are not in delivery now. `?2` is now.
pub(super) fn not_in_delivery_sql(filter: &str) -> String {
    format!(
        "SELECT {RCPT_COLUMNS} FROM recipients r JOIN messages m ON m.id = r.message \
         WHERE {filter} AND (r.lease_owner IS NULL OR r.lease_until < ?2) ORDER BY r.seq"
    )
}

/// The statements run once per message against the recipients table, for the test that
/// checks each finds its rows by the message rather than by walking the queue.
#[cfg(test)]
pub(super) fn per_message_sql() -> Vec<String> {
    vec![lease_rcpts_sql(), lease_take_sql(), cancellable_sql()]
}

/// Recipients waiting for a later attempt, not in delivery now. `?1` is now.
const WAITING: &str = "state = 'queued' AND next_attempt > ?1 \
     AND (lease_owner IS NULL OR lease_until < ?1)";

pub(super) fn out_recipient(row: &Row<'_>) -> rusqlite::Result<StoreResult<OutRecipient>> {
    let state = value!(parse_name(
        row.get(3)?,
        "recipients.state",
        RcptState::parse
    ));
    let attempts = value!(unsigned(row.get(4)?, "recipients.attempts"));
    Ok(Ok(OutRecipient {
        message: QueueId(row.get(0)?),
        rcpt: row.get(1)?,
        domain: row.get(2)?,
        state,
        attempts,
        next_attempt: row.get(5)?,
        last_error: row.get(6)?,
        wants_dispatched: row.get(7)?,
        deadline: row.get(8)?,
        updated: row.get(9)?,
        sender: row.get(10)?,
    }))
}

/// A message row without its recipients.
fn out_message(row: &Row<'_>) -> rusqlite::Result<StoreResult<OutMessage>> {
    let kind = value!(parse_name(row.get(3)?, "messages.kind", OutKind::parse));
    let size = value!(unsigned(row.get(5)?, "messages.size"));
    Ok(Ok(OutMessage {
        id: QueueId(row.get(0)?),
        sender: row.get(1)?,
        message_id: row.get(2)?,
        kind,
        created: row.get(4)?,
        size,
        recipients: Vec::new(),
    }))
}

/// Queue a message: the message, its body, one `queued` row per distinct recipient (due
/// at once), and a `submitted` event. Shared by `enqueue` and `finish_inbound`.
pub(super) fn enqueue(conn: &Connection, msg: &NewOutbound) -> StoreResult<QueueId> {
    insert(conn, msg, None)
}

/// Queue a message with its recipients already leased to `lease.owner`, and return the
/// leases, one per domain, as `lease_due` would have made them.
pub(super) fn enqueue_leased(
    conn: &Connection,
    msg: &NewOutbound,
    lease: &LeaseTo,
) -> StoreResult<(QueueId, Vec<Lease>)> {
    let what = "enqueueing a leased message";
    let id = insert(conn, msg, Some(lease))?;
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {RCPT_COLUMNS} FROM recipients r JOIN messages m ON m.id = r.message \
             WHERE r.message = ?1 ORDER BY r.seq"
        ))
        .map_err(db(what))?;
    let mut leases: Vec<Lease> = Vec::new();
    for r in collect(&mut stmt, [&id.0], what, out_recipient)? {
        match leases.iter_mut().find(|l| l.domain == r.domain) {
            Some(l) => l.recipients.push(r),
            None => leases.push(Lease {
                message: id.clone(),
                message_id: msg.message_id.clone(),
                sender: fold(&msg.sender),
                kind: msg.kind,
                created: msg.now,
                domain: r.domain.clone(),
                recipients: vec![r],
                content: None,
            }),
        }
    }
    Ok((id, leases))
}

fn insert(conn: &Connection, msg: &NewOutbound, lease: Option<&LeaseTo>) -> StoreResult<QueueId> {
    let what = "enqueueing a message";
    let id = new_id('o');
    conn.prepare_cached(
        "INSERT INTO messages (id, sender, message_id, kind, via, wants_dispatched, created, size) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .map_err(db(what))?
    .execute(params![
        id.0,
        fold(&msg.sender),
        msg.message_id,
        msg.kind.as_str(),
        msg.via,
        msg.wants_dispatched,
        msg.now,
        sql_len(msg.body.len()),
    ])
    .map_err(db(what))?;
    conn.prepare_cached("INSERT INTO message_bodies (message, body) VALUES (?1, ?2)")
        .map_err(db(what))?
        .execute(params![id.0, Body(&msg.body)])
        .map_err(db(what))?;
    blobs::fill(conn, "message_bodies", conn.last_insert_rowid(), &msg.body)?;
    // Duplicates (in any case) collapse on UNIQUE (message, rcpt); seq keeps the order.
    // A leased row is due when its lease runs out, as `lease_due` leaves it.
    let (owner, due) = match lease {
        Some(l) => (Some(l.owner.as_str()), l.until),
        None => (None, msg.now),
    };
    let mut rcpt_insert = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO recipients \
             (message, rcpt, domain, state, attempts, next_attempt, updated, lease_owner, \
              lease_until) \
             VALUES (?1, ?2, ?3, 'queued', 0, ?4, ?5, ?6, ?7)",
        )
        .map_err(db(what))?;
    for rcpt in &msg.recipients {
        let rcpt = fold(rcpt);
        rcpt_insert
            .execute(params![
                id.0,
                rcpt,
                domain_of(&rcpt),
                due,
                msg.now,
                owner,
                lease.map(|l| l.until)
            ])
            .map_err(db(what))?;
    }
    timeline::insert(conn, &id.0, None, "submitted", &msg.via, msg.now)?;
    Ok(id)
}

/// The stored body of an outbound message, as [`blobs::read`] wants it.
const BODY_SELECT: &str = "SELECT rowid, length(body), file FROM message_bodies WHERE message = ?1";

/// The submitted body.
pub(super) fn outbound_body(conn: &Connection, id: &QueueId) -> StoreResult<Option<Vec<u8>>> {
    blobs::read(conn, "message_bodies", BODY_SELECT, [&id.0])
}

/// Keep (or replace) the sealed form for one domain.
pub(super) fn store_sealed(
    conn: &Connection,
    id: &QueueId,
    domain: &str,
    sealed: &[u8],
    certs: &str,
) -> StoreResult<()> {
    let what = "storing a sealed message";
    let exists = conn
        .prepare_cached("SELECT 1 FROM messages WHERE id = ?1")
        .map_err(db(what))?
        .exists([&id.0])
        .map_err(db(what))?;
    if !exists {
        return Err(StoreError::NotFound {
            what: "outbound message",
            id: id.0.clone(),
        });
    }
    spool::doom_file_of(
        conn,
        "SELECT file FROM sealed WHERE message = ?1 AND domain = ?2",
        params![id.0, fold(domain)],
    )?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO sealed (message, domain, body, certs) VALUES (?1, ?2, ?3, ?4)",
    )
    .map_err(db(what))?
    .execute(params![id.0, fold(domain), Body(sealed), certs])
    .map_err(db(what))?;
    blobs::fill(conn, "sealed", conn.last_insert_rowid(), sealed)
}

/// The stored sealed form of a message for a domain, as [`blobs::read`] wants it.
const SEALED_SELECT: &str =
    "SELECT rowid, length(body), file FROM sealed WHERE message = ?1 AND domain = ?2";

/// The sealed form for one domain.
pub(super) fn sealed(
    conn: &Connection,
    id: &QueueId,
    domain: &str,
) -> StoreResult<Option<SealedCopy>> {
    let domain = fold(domain);
    let Some(body) = blobs::read(conn, "sealed", SEALED_SELECT, params![id.0, domain])? else {
        return Ok(None);
    };
    let certs = sealed_certs(conn, &id.0, &domain)?;
    Ok(Some(SealedCopy { body, certs }))
}

/// What names the certificates a kept sealed form was made for.
fn sealed_certs(conn: &Connection, message: &str, domain: &str) -> StoreResult<String> {
    let what = "reading a sealed message";
    conn.prepare_cached("SELECT certs FROM sealed WHERE message = ?1 AND domain = ?2")
        .map_err(db(what))?
        .query_row(params![message, domain], |row| row.get(0))
        .map_err(db(what))
}

/// Lease due recipients, grouped per (message, domain), oldest due first. Runs on the
/// writer, so the select and the update are one transaction.
pub(super) fn lease_due(
    conn: &Connection,
    now: UnixTime,
    owner: &str,
    lease_until: UnixTime,
    limit: usize,
    share: &Share,
) -> StoreResult<Vec<Lease>> {
    let what = "leasing due recipients";
    let full: Vec<String> = share.full().map(fold).collect();
    let rows = due_groups(conn, now, limit, &full)?;
    let mut groups: Vec<(String, String)> = Vec::with_capacity(limit);
    for g in rows {
        if groups.len() == limit {
            break;
        }
        let taken = groups.iter().filter(|(_, d)| *d == g.1).count();
        if !groups.contains(&g) && taken < share.room(&g.1) {
            groups.push(g);
        }
    }
    let mut header_stmt = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"
        ))
        .map_err(db(what))?;
    let mut rcpts_stmt = conn.prepare_cached(&lease_rcpts_sql()).map_err(db(what))?;
    let mut take_stmt = conn.prepare_cached(&lease_take_sql()).map_err(db(what))?;
    let mut leases = Vec::with_capacity(groups.len());
    for (message, domain) in groups {
        let header = collect(&mut header_stmt, [&message], what, out_message)?
            .pop()
            .ok_or_else(|| StoreError::NotFound {
                what: "outbound message",
                id: message.clone(),
            })?;
        let recipients = collect(
            &mut rcpts_stmt,
            params![now, message, domain],
            what,
            out_recipient,
        )?;
        take_stmt
            .execute(params![now, message, domain, owner, lease_until])
            .map_err(db(what))?;
        let content = lease_content(conn, &message, &domain)?;
        leases.push(Lease {
            message: header.id,
            message_id: header.message_id,
            sender: header.sender,
            kind: header.kind,
            created: header.created,
            domain,
            recipients,
            content,
        });
    }
    Ok(leases)
}

/// The (message, domain) of due rows in due order, passing over the domains in `skip`.
/// The due index is walked in order and the walk stops early: a GROUP BY over every due
/// row would cost O(queue) per lease, O(queue²) to drain a backlog.
fn due_groups(
    conn: &Connection,
    now: UnixTime,
    limit: usize,
    skip: &[String],
) -> StoreResult<Vec<(String, String)>> {
    let what = "leasing due recipients";
    // Rows past the first `limit` groups' own: a message's recipients in one domain share
    // a group, so a few more rows than groups are read.
    let rows = sql_limit(limit.saturating_mul(8).max(limit));
    let select = |skipping: &str| {
        format!(
            "SELECT r.message, r.domain FROM recipients r WHERE {LEASABLE}{skipping} \
             ORDER BY r.next_attempt, r.seq LIMIT ?2"
        )
    };
    let pair = |row: &rusqlite::Row<'_>| Ok(Ok((row.get(0)?, row.get(1)?)));
    if skip.is_empty() {
        let mut stmt = conn.prepare_cached(&select("")).map_err(db(what))?;
        return collect(&mut stmt, params![now, rows], what, pair);
    }
    // Rare (a destination at its concurrency limit) and of varying length: not cached.
    let marks: Vec<String> = (3..3 + skip.len()).map(|i| format!("?{i}")).collect();
    let sql = select(&format!(" AND r.domain NOT IN ({})", marks.join(", ")));
    let mut stmt = conn.prepare(&sql).map_err(db(what))?;
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&now, &rows];
    values.extend(skip.iter().map(|d| d as &dyn rusqlite::ToSql));
    collect(&mut stmt, values.as_slice(), what, pair)
}

/// The content of a leased group when the database holds it: read here, on the writer's
/// connection whose cache is warm, it saves the worker two reads on a pooled connection
/// (which starts cold after every commit). Bodies in files are left to the worker, off
/// this thread.
fn lease_content(
    conn: &Connection,
    message: &str,
    domain: &str,
) -> StoreResult<Option<LeaseContent>> {
    let sealed = blobs::find(conn, "sealed", SEALED_SELECT, params![message, domain])?;
    Ok(match sealed {
        Found::Inline(body) => {
            let certs = sealed_certs(conn, message, domain)?;
            Some(LeaseContent::Sealed(SealedCopy { body, certs }))
        }
        Found::InFile(_) => None,
        Found::Missing => match blobs::find(conn, "message_bodies", BODY_SELECT, [message])? {
            Found::Inline(b) => Some(LeaseContent::Body(b)),
            Found::InFile(_) | Found::Missing => None,
        },
    })
}

/// Apply recipient updates (releasing leases) and append their events. An unknown
/// recipient fails the whole call, so nothing is half-applied. A delivery outcome
/// (`queued` for a retry, or `relayed`) for a recipient a notification has already moved
/// past `relayed` leaves the state alone (its event is still recorded): the peer's
/// `processed` MDN can overtake our own record of its `250`, and must not be undone by it.
pub(super) fn update_recipients(conn: &Connection, updates: &[RcptUpdate]) -> StoreResult<()> {
    let what = "updating recipients";
    let mut stmt = conn
        .prepare_cached(
            "UPDATE recipients SET state = ?3, attempts = ?4, next_attempt = ?5, last_error = ?6, \
             deadline = ?7, updated = ?8, lease_owner = NULL, lease_until = NULL \
             WHERE message = ?1 AND rcpt = ?2 AND NOT (?3 IN ('queued', 'relayed') \
             AND state IN ('processed', 'dispatched'))",
        )
        .map_err(db(what))?;
    let mut exists = conn
        .prepare_cached("SELECT 1 FROM recipients WHERE message = ?1 AND rcpt = ?2")
        .map_err(db(what))?;
    for update in updates {
        let rcpt = fold(&update.rcpt);
        let changed = stmt
            .execute(params![
                update.message.0,
                rcpt,
                update.state.as_str(),
                update.attempts,
                update.next_attempt,
                update.last_error,
                update.deadline,
                update.now,
            ])
            .map_err(db(what))?;
        // Dropped as overtaken, the attempt still happened: its event stays on the timeline.
        if changed == 0
            && !exists
                .exists(params![update.message.0, rcpt])
                .map_err(db(what))?
        {
            return Err(StoreError::NotFound {
                what: "recipient",
                id: format!("{} {rcpt}", update.message),
            });
        }
        if !update.event.is_empty() {
            timeline::add_update(conn, update, &rcpt)?;
        }
    }
    Ok(())
}

/// One message with its recipients in submission order.
pub(super) fn outbound(conn: &Connection, id: &QueueId) -> StoreResult<Option<OutMessage>> {
    let what = "reading an outbound message";
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"
        ))
        .map_err(db(what))?;
    let Some(mut message) = collect(&mut stmt, [&id.0], what, out_message)?.pop() else {
        return Ok(None);
    };
    let mut rcpts = conn
        .prepare_cached(&format!(
            "SELECT {RCPT_COLUMNS} FROM recipients r JOIN messages m ON m.id = r.message \
             WHERE r.message = ?1 ORDER BY r.seq"
        ))
        .map_err(db(what))?;
    message.recipients = collect(&mut rcpts, [&id.0], what, out_recipient)?;
    Ok(Some(message))
}

/// The newest messages with their recipients (two queries, not one per message).
pub(super) fn list_outbound(conn: &Connection, limit: usize) -> StoreResult<Vec<OutMessage>> {
    let what = "listing outbound messages";
    let newest = "SELECT seq FROM messages ORDER BY created DESC, seq DESC LIMIT ?1";
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE seq IN ({newest}) \
             ORDER BY created DESC, seq DESC"
        ))
        .map_err(db(what))?;
    let mut messages = collect(&mut stmt, [sql_limit(limit)], what, out_message)?;
    let mut rcpts_stmt = conn
        .prepare_cached(&format!(
            "SELECT {RCPT_COLUMNS} FROM recipients r JOIN messages m ON m.id = r.message \
             WHERE m.seq IN ({newest}) ORDER BY r.seq"
        ))
        .map_err(db(what))?;
    let mut by_message: HashMap<QueueId, Vec<OutRecipient>> = HashMap::new();
    for rcpt in collect(&mut rcpts_stmt, [sql_limit(limit)], what, out_recipient)? {
        by_message
            .entry(rcpt.message.clone())
            .or_default()
            .push(rcpt);
    }
    for message in &mut messages {
        message.recipients = by_message.remove(&message.id).unwrap_or_default();
    }
    Ok(messages)
}

/// Make every recipient waiting for a retry due now, noting it on their timelines;
/// returns how many. One in delivery (leased: its `next_attempt` is the lease's end) is
/// left alone.
pub(super) fn flush(conn: &Connection, now: UnixTime) -> StoreResult<u64> {
    let what = "flushing the queue";
    conn.prepare_cached(&format!(
        "INSERT INTO events (message, rcpt, kind, detail, at) \
         SELECT message, rcpt, 'flushed', 'due now (hisp queue flush)', ?1 \
         FROM recipients WHERE {WAITING}"
    ))
    .map_err(db(what))?
    .execute([now])
    .map_err(db(what))?;
    let changed = conn
        .prepare_cached(&format!(
            "UPDATE recipients SET next_attempt = ?1 WHERE {WAITING}"
        ))
        .map_err(db(what))?
        .execute([now])
        .map_err(db(what))?;
    conn.prepare_cached("UPDATE directory_version SET flushes = flushes + 1 WHERE id = 1")
        .map_err(db(what))?
        .execute([])
        .map_err(db(what))?;
    Ok(changed as u64)
}

/// Fail the recipients of message `id` still waiting in the queue (not relayed, not in
/// delivery now) with `reason`, each with a `failed` event; returns them as they are now.
pub(super) fn cancel(
    conn: &Connection,
    id: &QueueId,
    reason: &str,
    now: UnixTime,
) -> StoreResult<Vec<OutRecipient>> {
    let what = "deleting a message from the queue";
    let mut stmt = conn.prepare_cached(&cancellable_sql()).map_err(db(what))?;
    let mut cancelled = collect(&mut stmt, params![id.0, now], what, out_recipient)?;
    let mut fail = conn
        .prepare_cached(
            "UPDATE recipients SET state = 'failed', last_error = ?3, next_attempt = ?4, \
             updated = ?4, deadline = NULL, lease_owner = NULL, lease_until = NULL \
             WHERE message = ?1 AND rcpt = ?2",
        )
        .map_err(db(what))?;
    for r in &mut cancelled {
        fail.execute(params![id.0, r.rcpt, reason, now])
            .map_err(db(what))?;
        timeline::insert(conn, &id.0, Some(&r.rcpt), "failed", reason, now)?;
        r.state = RcptState::Failed;
        r.last_error = Some(reason.to_string());
        r.updated = now;
    }
    Ok(cancelled)
}

/// Recipients not in a final state: queued, held, relayed, and processed when
/// `dispatched` is still awaited.
pub(super) fn queue_depth(conn: &Connection) -> StoreResult<u64> {
    let what = "counting the queue";
    let count: i64 = conn
        .prepare_cached(
            // Waiting for a notification is exactly "has a deadline" (notifications we send
            // are relayed without one); two indexed counts instead of a join over history.
            "SELECT (SELECT COUNT(*) FROM recipients WHERE state IN ('queued', 'held')) + \
             (SELECT COUNT(*) FROM recipients WHERE deadline IS NOT NULL \
              AND state IN ('relayed', 'processed'))",
        )
        .map_err(db(what))?
        .query_row([], |row| row.get(0))
        .map_err(db(what))?;
    unsigned(count, "COUNT(*)")
}
