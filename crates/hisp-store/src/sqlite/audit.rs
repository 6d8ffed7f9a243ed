//! The access audit trail's rows (see [`crate::audit_model`]).

use rusqlite::{params, Connection};

use super::{collect, db, sql_limit};
use crate::{AuditEvent, AuditQuery, NewAudit, StoreResult};

/// Append one row.
pub(super) fn add(conn: &Connection, a: &NewAudit) -> StoreResult<()> {
    let what = "recording an audit event";
    conn.prepare_cached(
        "INSERT INTO audit (at, actor, action, object, client, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .map_err(db(what))?
    .execute(params![
        a.at, a.actor, a.action, a.object, a.client, a.detail
    ])
    .map_err(db(what))?;
    Ok(())
}

/// Remove at most `limit` rows written before `before`, oldest first (by the key: rows
/// are written in time order, so the walk stops at the first young ones).
pub(super) fn purge(conn: &Connection, before: i64, limit: usize) -> StoreResult<u64> {
    let what = "removing old audit rows";
    let n = conn
        .prepare_cached(
            "DELETE FROM audit WHERE seq IN \
             (SELECT seq FROM audit WHERE at < ?1 ORDER BY seq LIMIT ?2)",
        )
        .map_err(db(what))?
        .execute(params![before, sql_limit(limit)])
        .map_err(db(what))?;
    Ok(n as u64)
}

/// Read part of the trail, newest first.
pub(super) fn read(conn: &Connection, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
    let what = "reading the audit trail";
    let before = if q.before > 0 { q.before } else { i64::MAX };
    // Two statements so each finds its rows by an index (a parameter hides the choice).
    let sql = match q.actor {
        Some(_) => {
            "SELECT seq, at, actor, action, object, client, detail FROM audit \
             WHERE actor = ?1 AND seq < ?2 AND at >= ?3 ORDER BY seq DESC LIMIT ?4"
        }
        None => {
            "SELECT seq, at, actor, action, object, client, detail FROM audit \
             WHERE ?1 IS NULL AND seq < ?2 AND at >= ?3 ORDER BY seq DESC LIMIT ?4"
        }
    };
    let mut stmt = conn.prepare_cached(sql).map_err(db(what))?;
    let args = params![q.actor, before, q.since, sql_limit(q.limit)];
    collect(&mut stmt, args, what, |row| {
        Ok(Ok(AuditEvent {
            seq: row.get(0)?,
            event: NewAudit {
                at: row.get(1)?,
                actor: row.get(2)?,
                action: row.get(3)?,
                object: row.get(4)?,
                client: row.get(5)?,
                detail: row.get(6)?,
            },
        }))
    })
}
