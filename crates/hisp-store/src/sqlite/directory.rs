//! The directory: users (submission credentials), trust anchors, static routes and static
//! recipient certificates, and the version counter every change to them bumps in the same
//! transaction, so a running daemon sees what `hisp user`/`hisp anchor` wrote.

use rusqlite::{params, Connection, OptionalExtension};

use super::{collect, db, fold, unsigned};
use crate::{
    Anchor, Direction, NewAnchor, NewStaticCert, Route, StaticCert, StoreResult, UnixTime,
};

/// Bump the directory version (inside the caller's transaction).
pub(super) fn bump(conn: &Connection) -> StoreResult<()> {
    let what = "bumping the directory version";
    conn.prepare_cached("UPDATE directory_version SET version = version + 1 WHERE id = 1")
        .map_err(db(what))?
        .execute([])
        .map_err(db(what))?;
    Ok(())
}

/// The directory version.
pub(super) fn version(conn: &Connection) -> StoreResult<u64> {
    counter(
        conn,
        "directory_version.version",
        "reading the directory version",
    )
}

/// How many times the queue was flushed (`queue::flush` counts in the same row).
pub(super) fn flushes(conn: &Connection) -> StoreResult<u64> {
    counter(conn, "directory_version.flushes", "reading the flush count")
}

/// One of the counters in the `directory_version` row (`table.column`), which running
/// daemons poll.
fn counter(conn: &Connection, column: &'static str, what: &'static str) -> StoreResult<u64> {
    let (table, name) = column
        .split_once('.')
        .unwrap_or(("directory_version", column));
    let n: i64 = conn
        .prepare_cached(&format!("SELECT {name} FROM {table} WHERE id = 1"))
        .map_err(db(what))?
        .query_row([], |row| row.get(0))
        .map_err(db(what))?;
    unsigned(n, column)
}

/// Create a user or replace its password hash.
pub(super) fn set_user(
    conn: &Connection,
    address: &str,
    password_hash: &str,
    now: UnixTime,
) -> StoreResult<()> {
    let what = "setting a user";
    conn.prepare_cached(
        "INSERT INTO users (address, password_hash, created, updated) VALUES (?1, ?2, ?3, ?3) \
         ON CONFLICT (address) DO UPDATE SET password_hash = excluded.password_hash, \
         updated = excluded.updated",
    )
    .map_err(db(what))?
    .execute(params![fold(address), password_hash, now])
    .map_err(db(what))?;
    bump(conn)
}

/// A user's password hash.
pub(super) fn password_hash(conn: &Connection, address: &str) -> StoreResult<Option<String>> {
    let what = "reading a user";
    conn.prepare_cached("SELECT password_hash FROM users WHERE address = ?1")
        .map_err(db(what))?
        .query_row([fold(address)], |row| row.get(0))
        .optional()
        .map_err(db(what))
}

/// Remove a user (its mailbox stays); true when there was one.
pub(super) fn remove_user(conn: &Connection, address: &str) -> StoreResult<bool> {
    let sql = "DELETE FROM users WHERE address = ?1";
    Ok(remove_where(conn, "removing a user", sql, address)? > 0)
}

/// Every user address, sorted.
pub(super) fn users(conn: &Connection) -> StoreResult<Vec<String>> {
    let what = "listing users";
    let mut stmt = conn
        .prepare_cached("SELECT address FROM users ORDER BY address")
        .map_err(db(what))?;
    collect(&mut stmt, [], what, |row| Ok(Ok(row.get(0)?)))
}

/// Add an anchor unless the same certificate is already there for the same domain.
pub(super) fn add_anchor(
    conn: &Connection,
    anchor: &NewAnchor,
    now: UnixTime,
) -> StoreResult<bool> {
    let what = "adding an anchor";
    let added = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO anchors (domain, der, sha256, subject, added, direction) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(db(what))?
        .execute(params![
            anchor.domain.as_deref().map(fold),
            anchor.der.as_slice(),
            fold(&anchor.sha256),
            anchor.subject,
            now,
            anchor.direction.map(|d| d.as_str()),
        ])
        .map_err(db(what))?
        == 1;
    if added {
        bump(conn)?;
    }
    Ok(added)
}

/// Remove every anchor with this fingerprint (whatever its domain).
pub(super) fn remove_anchor(conn: &Connection, sha256: &str) -> StoreResult<usize> {
    remove_where(
        conn,
        "removing an anchor",
        "DELETE FROM anchors WHERE sha256 = ?1",
        sha256,
    )
}

/// Run a `DELETE` of the rows whose key is `key` (case-folded); bump the version when any
/// went. How many did.
fn remove_where(conn: &Connection, what: &'static str, sql: &str, key: &str) -> StoreResult<usize> {
    let removed = conn
        .prepare_cached(sql)
        .map_err(db(what))?
        .execute([fold(key)])
        .map_err(db(what))?;
    if removed > 0 {
        bump(conn)?;
    }
    Ok(removed)
}

/// All anchors, in the order added.
pub(super) fn anchors(conn: &Connection) -> StoreResult<Vec<Anchor>> {
    let what = "listing anchors";
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, domain, der, sha256, subject, added, direction FROM anchors ORDER BY id",
        )
        .map_err(db(what))?;
    collect(&mut stmt, [], what, |row| {
        Ok(Ok(Anchor {
            id: row.get(0)?,
            domain: row.get(1)?,
            der: row.get(2)?,
            sha256: row.get(3)?,
            subject: row.get(4)?,
            added: row.get(5)?,
            direction: row
                .get::<_, Option<String>>(6)?
                .as_deref()
                .and_then(Direction::parse),
        }))
    })
}

/// Set (or replace) a domain's next hop.
pub(super) fn set_route(
    conn: &Connection,
    domain: &str,
    target: &str,
    now: UnixTime,
) -> StoreResult<()> {
    let what = "setting a route";
    conn.prepare_cached(
        "INSERT INTO routes (domain, target, updated) VALUES (?1, ?2, ?3) \
         ON CONFLICT (domain) DO UPDATE SET target = excluded.target, updated = excluded.updated",
    )
    .map_err(db(what))?
    .execute(params![fold(domain), target, now])
    .map_err(db(what))?;
    bump(conn)
}

/// Remove a route; true when there was one.
pub(super) fn remove_route(conn: &Connection, domain: &str) -> StoreResult<bool> {
    let sql = "DELETE FROM routes WHERE domain = ?1";
    Ok(remove_where(conn, "removing a route", sql, domain)? > 0)
}

/// All routes, by domain.
pub(super) fn routes(conn: &Connection) -> StoreResult<Vec<Route>> {
    let what = "listing routes";
    let mut stmt = conn
        .prepare_cached("SELECT domain, target FROM routes ORDER BY domain")
        .map_err(db(what))?;
    collect(&mut stmt, [], what, |row| {
        Ok(Ok(Route {
            domain: row.get(0)?,
            target: row.get(1)?,
        }))
    })
}

/// Add a static certificate unless the same one is already there for the same binding.
pub(super) fn add_cert(
    conn: &Connection,
    cert: &NewStaticCert,
    now: UnixTime,
) -> StoreResult<bool> {
    let what = "adding a certificate";
    let added = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO static_certs (bound_to, der, sha256, added) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(db(what))?
        .execute(params![
            fold(&cert.bound_to),
            cert.der.as_slice(),
            fold(&cert.sha256),
            now
        ])
        .map_err(db(what))?
        == 1;
    if added {
        bump(conn)?;
    }
    Ok(added)
}

/// Remove a static certificate by fingerprint (for every binding); how many rows went.
pub(super) fn remove_cert(conn: &Connection, sha256: &str) -> StoreResult<usize> {
    let sql = "DELETE FROM static_certs WHERE sha256 = ?1";
    remove_where(conn, "removing a certificate", sql, sha256)
}

/// All static certificates, in the order added.
pub(super) fn certs(conn: &Connection) -> StoreResult<Vec<StaticCert>> {
    let what = "listing certificates";
    let mut stmt = conn
        .prepare_cached("SELECT id, bound_to, der, sha256 FROM static_certs ORDER BY id")
        .map_err(db(what))?;
    collect(&mut stmt, [], what, |row| {
        Ok(Ok(StaticCert {
            id: row.get(0)?,
            bound_to: row.get(1)?,
            der: row.get(2)?,
            sha256: row.get(3)?,
        }))
    })
}
