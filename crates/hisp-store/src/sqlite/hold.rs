//! `hisp queue hold` and `hisp queue release`, as Postfix's `postsuper -h` and `-H`: the
//! operator stops a message's waiting recipients from being tried (a message sent to the
//! wrong practice, say, while someone decides), or all the mail waiting for one destination
//! (a peer whose certificate is in doubt), and lets them go again. Held recipients are
//! not leased, not flushed and not expired while held; they still count as in hand, so
//! neither retention pass touches their message.

use rusqlite::{params, Connection};

use super::queue::{not_in_delivery_sql, out_recipient};
use super::{collect, db, fold, timeline};
use crate::{OutRecipient, QueueSelection, RcptState, StoreResult, UnixTime};

/// Hold the recipients `which` names that wait for an attempt (not in delivery now).
pub(super) fn hold(
    conn: &Connection,
    which: &QueueSelection,
    now: UnixTime,
) -> StoreResult<Vec<OutRecipient>> {
    let what = "holding queued mail";
    let held = select(conn, which, "'queued'", now, what)?;
    let update = "UPDATE recipients SET state = 'held', updated = ?3, lease_owner = NULL, \
         lease_until = NULL WHERE message = ?1 AND rcpt = ?2";
    mark(conn, held, update, RcptState::Held, now, what)
}

/// Release the held recipients `which` names: due at once. One held past the expiry time
/// expires at that attempt, with the sender's DSN, as any other would.
pub(super) fn release(
    conn: &Connection,
    which: &QueueSelection,
    now: UnixTime,
) -> StoreResult<Vec<OutRecipient>> {
    let what = "releasing held mail";
    let held = select(conn, which, "'held'", now, what)?;
    let update = "UPDATE recipients SET state = 'queued', next_attempt = ?3, updated = ?3 \
         WHERE message = ?1 AND rcpt = ?2";
    mark(conn, held, update, RcptState::Queued, now, what)
}

/// The recipients `which` names in `states` and not in delivery now.
fn select(
    conn: &Connection,
    which: &QueueSelection,
    states: &str,
    now: UnixTime,
    what: &'static str,
) -> StoreResult<Vec<OutRecipient>> {
    let (filter, key) = match which {
        // By the message's rows (the unary `+` keeps SQLite off the state index).
        QueueSelection::Message(id) => (
            format!("r.message = ?1 AND +r.state IN ({states})"),
            id.0.clone(),
        ),
        // By the state index: the recipients table keeps finished rows too.
        QueueSelection::Domain(domain) => (
            format!("r.state IN ({states}) AND r.domain = ?1"),
            fold(domain),
        ),
    };
    let mut stmt = conn
        .prepare_cached(&not_in_delivery_sql(&filter))
        .map_err(db(what))?;
    collect(&mut stmt, params![key, now], what, out_recipient)
}

/// Apply `update` (`?1` message, `?2` recipient, `?3` now) to each of `rows`, with a
/// timeline event; returns them as they are now.
fn mark(
    conn: &Connection,
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
        stmt.execute(params![r.message.0, r.rcpt, now])
            .map_err(db(what))?;
        timeline::insert(conn, &r.message.0, Some(&r.rcpt), event, detail, now)?;
        r.state = state;
        r.updated = now;
        if state == RcptState::Queued {
            r.next_attempt = now;
        }
    }
    Ok(rows)
}
