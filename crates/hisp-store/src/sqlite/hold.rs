//! `hisp queue hold` and `hisp queue release`, as Postfix's `postsuper -h` and `-H`: the
//! operator stops a message's waiting recipients from being tried (a message sent to the
//! wrong practice, say, while someone decides) and lets them go again. Held recipients are
//! not leased, not flushed and not expired while held; they still count as in hand, so
//! neither retention pass touches their message.

use rusqlite::{params, Connection};

use super::queue::{not_in_delivery_sql, out_recipient};
use super::{collect, db, timeline};
use crate::{OutRecipient, QueueId, RcptState, StoreResult, UnixTime};

/// Hold the recipients of message `id` waiting for an attempt (not in delivery now).
pub(super) fn hold(
    conn: &Connection,
    id: &QueueId,
    now: UnixTime,
) -> StoreResult<Vec<OutRecipient>> {
    let what = "holding a message";
    let mut stmt = conn
        .prepare_cached(&not_in_delivery_sql("'queued'"))
        .map_err(db(what))?;
    let held = collect(&mut stmt, params![id.0, now], what, out_recipient)?;
    let update = "UPDATE recipients SET state = 'held', updated = ?3, lease_owner = NULL, \
         lease_until = NULL WHERE message = ?1 AND rcpt = ?2";
    mark(conn, id, held, update, RcptState::Held, now, what)
}

/// Release the held recipients of message `id`: due at once. One held past the expiry
/// time expires at that attempt, with the sender's DSN, as any other would.
pub(super) fn release(
    conn: &Connection,
    id: &QueueId,
    now: UnixTime,
) -> StoreResult<Vec<OutRecipient>> {
    let what = "releasing a held message";
    let mut stmt = conn
        .prepare_cached(&not_in_delivery_sql("'held'"))
        .map_err(db(what))?;
    let held = collect(&mut stmt, params![id.0, now], what, out_recipient)?;
    let update = "UPDATE recipients SET state = 'queued', next_attempt = ?3, updated = ?3 \
         WHERE message = ?1 AND rcpt = ?2";
    mark(conn, id, held, update, RcptState::Queued, now, what)
}

/// Apply `update` (`?1` message, `?2` recipient, `?3` now) to each of `rows`, with a
/// timeline event; returns them as they are now.
fn mark(
    conn: &Connection,
    id: &QueueId,
    mut rows: Vec<OutRecipient>,
    update: &str,
    state: RcptState,
    now: UnixTime,
    what: &'static str,
) -> StoreResult<Vec<OutRecipient>> {
    let (event, detail) = match state {
        RcptState::Held => ("held", "held by the HISP's operator"),
        _ => ("released", "released by the HISP's operator"),
    };
    let mut stmt = conn.prepare_cached(update).map_err(db(what))?;
    for r in &mut rows {
        stmt.execute(params![id.0, r.rcpt, now]).map_err(db(what))?;
        timeline::insert(conn, &id.0, Some(&r.rcpt), event, detail, now)?;
        r.state = state;
        r.updated = now;
        if state == RcptState::Queued {
            r.next_attempt = now;
        }
    }
    Ok(rows)
}
