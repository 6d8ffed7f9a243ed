//! `hisp queue summary`: the queue by destination domain (Postfix's `qshape`), read in two
//! passes over indexed rows: the recipients waiting or held (`recipients_due`) and those
//! waiting for a notification (`recipients_waiting`).

use std::collections::BTreeMap;

use rusqlite::{params, Connection};

use super::{db, unsigned};
use crate::{DestinationShape, StoreResult, UnixTime};

/// Every destination with mail in hand, the one with most waiting first.
pub(super) fn queue_shape(
    conn: &Connection,
    now: UnixTime,
    bounds: &[u64],
) -> StoreResult<Vec<DestinationShape>> {
    let mut by_domain: BTreeMap<String, (DestinationShape, UnixTime)> = BTreeMap::new();
    let buckets = bounds.len() + 1;
    let what = "reading the queue by destination";
    let mut waiting = conn
        .prepare(
            "SELECT r.domain, m.created, r.attempts, \
             r.lease_owner IS NOT NULL AND r.lease_until >= ?1, r.last_error, r.updated, \
             r.state = 'held' FROM recipients r JOIN messages m ON m.id = r.message \
             WHERE r.state IN ('queued', 'held')",
        )
        .map_err(db(what))?;
    let mut rows = waiting.query(params![now]).map_err(db(what))?;
    while let Some(row) = rows.next().map_err(db(what))? {
        let domain: String = row.get(0).map_err(db(what))?;
        let created: UnixTime = row.get(1).map_err(db(what))?;
        let attempts: i64 = row.get(2).map_err(db(what))?;
        let leased: bool = row.get(3).map_err(db(what))?;
        let error: Option<String> = row.get(4).map_err(db(what))?;
        let updated: UnixTime = row.get(5).map_err(db(what))?;
        let held: bool = row.get(6).map_err(db(what))?;
        let (shape, error_at) = by_domain
            .entry(domain)
            .or_insert_with_key(|d| (DestinationShape::new(d, buckets), UnixTime::MIN));
        if held {
            shape.held += 1;
            continue;
        }
        // A clock set back makes a message look new, never negative.
        shape.add_waiting(u64::try_from(now - created).unwrap_or(0), bounds);
        shape.tried += u64::from(attempts > 0);
        shape.in_delivery += u64::from(leased);
        shape.oldest = Some(shape.oldest.map_or(created, |o| o.min(created)));
        if error.is_some() && updated >= *error_at {
            shape.last_error = error;
            *error_at = updated;
        }
    }
    let mut tracked = conn
        .prepare(
            "SELECT domain, COUNT(*), COALESCE(SUM(deadline < ?1), 0) FROM recipients \
             WHERE deadline IS NOT NULL AND state IN ('relayed', 'processed') GROUP BY domain",
        )
        .map_err(db(what))?;
    let mut rows = tracked.query(params![now]).map_err(db(what))?;
    while let Some(row) = rows.next().map_err(db(what))? {
        let domain: String = row.get(0).map_err(db(what))?;
        let (shape, _) = by_domain
            .entry(domain)
            .or_insert_with_key(|d| (DestinationShape::new(d, buckets), UnixTime::MIN));
        shape.awaiting_notification = unsigned(row.get(1).map_err(db(what))?, "COUNT(*)")?;
        shape.overdue = unsigned(row.get(2).map_err(db(what))?, "SUM(deadline)")?;
    }
    let mut shapes: Vec<DestinationShape> = by_domain.into_values().map(|(s, _)| s).collect();
    shapes.sort_by(|a, b| {
        (b.waiting + b.held + b.awaiting_notification)
            .cmp(&(a.waiting + a.held + a.awaiting_notification))
            .then_with(|| a.domain.cmp(&b.domain))
    });
    Ok(shapes)
}
