//! Trust bundles: what to fetch, and the anchors of the last version that verified. A new
//! version replaces the old anchors in one transaction; a failed fetch only records why,
//! so the anchors in force stay until a good version arrives. Loads and removals bump the
//! directory version, so a running daemon picks the anchors up.

use rusqlite::{params, Connection};

use super::directory::bump;
use super::{collect, db, fold};
use crate::{Bundle, Direction, NewAnchor, NewBundle, StoreError, StoreResult, UnixTime};

/// Add a bundle, due for fetching now; its id. A URL already there is refused.
pub(super) fn add(conn: &Connection, b: &NewBundle, now: UnixTime) -> StoreResult<i64> {
    let what = "adding a trust bundle";
    let exists: bool = conn
        .prepare_cached("SELECT count(*) FROM bundles WHERE url = ?1")
        .map_err(db(what))?
        .query_row([&b.url], |r| r.get::<_, i64>(0))
        .map_err(db(what))?
        > 0;
    if exists {
        return Err(StoreError::Conflict(format!(
            "a trust bundle from {} is already configured",
            b.url
        )));
    }
    conn.prepare_cached(
        "INSERT INTO bundles (url, domain, signer_der, refresh_secs, added, next_fetch, \
         direction) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
    )
    .map_err(db(what))?
    .execute(params![
        b.url,
        b.domain.as_deref().map(fold),
        b.signer_der.as_deref(),
        b.refresh_secs,
        now,
        b.direction.map(|d| d.as_str())
    ])
    .map_err(db(what))?;
    Ok(conn.last_insert_rowid())
}

/// Every bundle with its loaded anchors.
pub(super) fn list(conn: &Connection) -> StoreResult<Vec<Bundle>> {
    let what = "listing trust bundles";
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, url, domain, signer_der, refresh_secs, added, loaded, next_fetch, \
             last_error, direction FROM bundles ORDER BY id",
        )
        .map_err(db(what))?;
    let mut bundles = collect(&mut stmt, [], what, |row| {
        Ok(Ok(Bundle {
            id: row.get(0)?,
            spec: NewBundle {
                url: row.get(1)?,
                domain: row.get(2)?,
                direction: row
                    .get::<_, Option<String>>(9)?
                    .as_deref()
                    .and_then(Direction::parse),
                signer_der: row.get(3)?,
                refresh_secs: row.get(4)?,
            },
            added: row.get(5)?,
            loaded: row.get(6)?,
            next_fetch: row.get(7)?,
            last_error: row.get(8)?,
            anchors: Vec::new(),
        }))
    })?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT bundle_id, der, sha256, subject FROM bundle_anchors ORDER BY bundle_id, sha256",
        )
        .map_err(db(what))?;
    let anchors = collect(&mut stmt, [], what, |row| {
        Ok(Ok((
            row.get::<_, i64>(0)?,
            NewAnchor {
                domain: None,
                direction: None,
                der: row.get(1)?,
                sha256: row.get(2)?,
                subject: row.get(3)?,
            },
        )))
    })?;
    for (id, mut a) in anchors {
        if let Some(b) = bundles.iter_mut().find(|b| b.id == id) {
            a.domain = b.spec.domain.clone();
            a.direction = b.spec.direction;
            b.anchors.push(a);
        }
    }
    Ok(bundles)
}

/// A version verified: its anchors replace the bundle's, due again at `next_fetch`.
pub(super) fn loaded(
    conn: &Connection,
    id: i64,
    anchors: &[NewAnchor],
    now: UnixTime,
    next_fetch: UnixTime,
) -> StoreResult<()> {
    let what = "loading a trust bundle";
    conn.prepare_cached("DELETE FROM bundle_anchors WHERE bundle_id = ?1")
        .map_err(db(what))?
        .execute([id])
        .map_err(db(what))?;
    let mut insert = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO bundle_anchors (bundle_id, der, sha256, subject) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(db(what))?;
    for a in anchors {
        insert
            .execute(params![id, a.der.as_slice(), fold(&a.sha256), a.subject])
            .map_err(db(what))?;
    }
    let n = conn
        .prepare_cached(
            "UPDATE bundles SET loaded = ?2, next_fetch = ?3, last_error = NULL WHERE id = ?1",
        )
        .map_err(db(what))?
        .execute(params![id, now, next_fetch])
        .map_err(db(what))?;
    if n == 0 {
        return Err(StoreError::Conflict(format!("no trust bundle {id}")));
    }
    bump(conn)
}

/// A fetch failed: note why and when to try again; the anchors stay as they are.
pub(super) fn failed(
    conn: &Connection,
    id: i64,
    why: &str,
    next_fetch: UnixTime,
) -> StoreResult<()> {
    let what = "recording a trust bundle failure";
    conn.prepare_cached("UPDATE bundles SET last_error = ?2, next_fetch = ?3 WHERE id = ?1")
        .map_err(db(what))?
        .execute(params![id, why, next_fetch])
        .map_err(db(what))?;
    Ok(())
}

/// Remove a bundle and its anchors; true when it existed.
pub(super) fn remove(conn: &Connection, id: i64) -> StoreResult<bool> {
    let what = "removing a trust bundle";
    conn.prepare_cached("DELETE FROM bundle_anchors WHERE bundle_id = ?1")
        .map_err(db(what))?
        .execute([id])
        .map_err(db(what))?;
    let gone = conn
        .prepare_cached("DELETE FROM bundles WHERE id = ?1")
        .map_err(db(what))?
        .execute([id])
        .map_err(db(what))?
        == 1;
    if gone {
        bump(conn)?;
    }
    Ok(gone)
}
