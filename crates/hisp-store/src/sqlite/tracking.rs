//! Received notifications applied to outbound recipients (the tracker's decisions, made
//! atomic): each (original Message-ID, recipient, kind) counts once, and a recipient's
//! state only moves forward, whatever order notifications arrive or commit in. Also the
//! tracker's reads: the recipient a notification is about, and those past their deadline.

use rusqlite::{params, Connection};

use super::queue::{out_recipient, RCPT_COLUMNS};
use super::{collect, db, fold, mailbox, sql_limit, timeline};
use crate::{NewMailboxEntry, Notice, OutRecipient, RcptState, RcptUpdate, StoreResult, UnixTime};

/// How far along a state is; `failed` may still replace any state that is not final.
fn rank(state: RcptState) -> i64 {
    match state {
        RcptState::Queued | RcptState::Held => 0,
        RcptState::Relayed => 1,
        RcptState::Processed => 2,
        RcptState::Dispatched | RcptState::Failed | RcptState::Expired => 3,
    }
}

/// Apply one notice; false when it was a repeat (nothing changes).
pub(super) fn apply(conn: &Connection, notice: &Notice, now: UnixTime) -> StoreResult<bool> {
    let what = "applying a notification";
    let rcpt = fold(&notice.rcpt);
    if !mailbox::note_notification(conn, &notice.original_message_id, &rcpt, &notice.kind, now)? {
        return Ok(false);
    }
    let failed = notice.state == RcptState::Failed;
    let changed = conn
        .prepare_cached(
            "UPDATE recipients SET state = ?3, deadline = ?4, updated = ?5, \
             last_error = CASE WHEN ?6 THEN ?7 ELSE last_error END, \
             lease_owner = NULL, lease_until = NULL \
             WHERE message = ?1 AND rcpt = ?2 \
             AND state NOT IN ('dispatched', 'failed', 'expired') \
             AND (?6 OR CASE state WHEN 'queued' THEN 0 WHEN 'held' THEN 0 \
                  WHEN 'relayed' THEN 1 WHEN 'processed' THEN 2 ELSE 3 END < ?8)",
        )
        .map_err(db(what))?
        .execute(params![
            notice.message.0,
            rcpt,
            notice.state.as_str(),
            notice.deadline,
            now,
            failed,
            notice.detail,
            rank(notice.state),
        ])
        .map_err(db(what))?;
    if changed > 0 {
        timeline::insert(
            conn,
            &notice.message.0,
            Some(&rcpt),
            &notice.kind,
            &notice.detail,
            now,
        )?;
    }
    Ok(true)
}

/// Fail a recipient whose notification is overdue, only if it still is: still in the state
/// the tracker read (`expected`) and past its deadline at `update.now`. A notification
/// applied since wins, and then no DSN goes either. With the failure, `dsn` is put in the
/// sender's mailbox. True when the recipient was failed.
pub(super) fn fail_overdue(
    conn: &Connection,
    update: &RcptUpdate,
    expected: RcptState,
    dsn: &NewMailboxEntry,
) -> StoreResult<bool> {
    let what = "failing an overdue recipient";
    let rcpt = fold(&update.rcpt);
    let changed = conn
        .prepare_cached(
            "UPDATE recipients SET state = ?3, last_error = ?4, deadline = NULL, updated = ?5, \
             lease_owner = NULL, lease_until = NULL \
             WHERE message = ?1 AND rcpt = ?2 AND state = ?6 \
             AND deadline IS NOT NULL AND deadline < ?5",
        )
        .map_err(db(what))?
        .execute(params![
            update.message.0,
            rcpt,
            update.state.as_str(),
            update.last_error,
            update.now,
            expected.as_str(),
        ])
        .map_err(db(what))?;
    if changed == 0 {
        return Ok(false);
    }
    timeline::add_update(conn, update, &rcpt)?;
    mailbox::deliver(conn, dsn)?;
    Ok(true)
}

/// The recipient a notification is about: outbound messages (never notifications) with
/// that Message-ID and recipient; the newest when several match.
pub(super) fn find_recipient(
    conn: &Connection,
    message_id: &str,
    rcpt: &str,
) -> StoreResult<Option<OutRecipient>> {
    let what = "finding a recipient";
    let mut stmt = conn
        .prepare_cached(&format!(
            // CROSS JOIN fixes the order: messages by Message-ID first (a handful of rows),
            // then the recipient by its unique key. The other order walks every message
            // the recipient ever had.
            "SELECT {RCPT_COLUMNS} FROM messages m CROSS JOIN recipients r ON m.id = r.message \
             WHERE m.message_id = ?1 AND m.kind = 'message' AND r.rcpt = ?2 \
             ORDER BY m.created DESC, m.seq DESC LIMIT 1"
        ))
        .map_err(db(what))?;
    Ok(collect(
        &mut stmt,
        params![message_id, fold(rcpt)],
        what,
        out_recipient,
    )?
    .pop())
}

/// Recipients waiting for a notification past their deadline, earliest deadline first.
pub(super) fn overdue(
    conn: &Connection,
    now: UnixTime,
    limit: usize,
) -> StoreResult<Vec<OutRecipient>> {
    let what = "listing overdue recipients";
    let mut stmt = conn.prepare_cached(&overdue_sql()).map_err(db(what))?;
    collect(
        &mut stmt,
        params![now, sql_limit(limit)],
        what,
        out_recipient,
    )
}

/// Recipients past their deadline `?1`, earliest first, at most `?2`. The unary `+` keeps
/// SQLite from choosing the state index, which lists every recipient awaiting an MDN
/// (all of the last hour's mail when peers are slow) and sorts them at each sweep; the
/// deadline index reads only the overdue ones, already in order.
fn overdue_sql() -> String {
    format!(
        "SELECT {RCPT_COLUMNS} FROM recipients r JOIN messages m ON m.id = r.message \
         WHERE +r.state IN ('relayed', 'processed') AND r.deadline IS NOT NULL \
         AND r.deadline < ?1 ORDER BY r.deadline, r.seq LIMIT ?2"
    )
}

/// The overdue sweep's statement, for the test that checks it reads the deadline index.
#[cfg(test)]
pub(super) fn overdue_sql_for_test() -> String {
    overdue_sql()
}
