//! Query plans of the statements whose cost must not grow with the queue: the ones run once
//! per message find their rows by the message's key (SQLite's planner, with no statistics,
//! preferred the due index for them and read the whole backlog each time), and the overdue
//! sweep reads only the overdue recipients.

use super::fresh;

/// The plan SQLite chooses for `sql`, one line per step.
fn plan(conn: &rusqlite::Connection, sql: &str) -> String {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    // Parameters left unbound (NULL): the plan does not depend on their values.
    let mut rows = stmt.raw_query();
    let mut steps = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        steps.push(row.get::<_, String>(3).unwrap());
    }
    steps.join("\n")
}

/// A connection to a store freshly made with the full schema (the directory keeps it).
fn schema_only() -> (tempfile::TempDir, rusqlite::Connection) {
    let (dir, store) = fresh();
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("hisp.db")).unwrap();
    (dir, conn)
}

#[test]
fn per_message_statements_search_recipients_by_message() {
    let (_dir, conn) = schema_only();
    for sql in crate::sqlite::queue::per_message_sql() {
        let plan = plan(&conn, &sql);
        let on_recipients: Vec<&str> = plan.lines().filter(|l| l.contains(" r ")).collect();
        assert!(
            !on_recipients.is_empty()
                && on_recipients
                    .iter()
                    .all(|l| l.contains("sqlite_autoindex_recipients_1 (message=?")),
            "{sql}\n{plan}"
        );
    }
}

/// The overdue sweep (every 30 s) reads the recipients past their deadline from the
/// deadline index, in order, rather than every recipient awaiting a notification.
#[test]
fn overdue_sweep_reads_only_overdue_recipients_in_deadline_order() {
    let (_dir, conn) = schema_only();
    let sql = crate::sqlite::tracking::overdue_sql_for_test();
    let plan = plan(&conn, &sql);
    assert!(
        plan.contains("USING INDEX recipients_deadline (") && !plan.contains("TEMP B-TREE"),
        "{sql}\n{plan}"
    );
}

/// Listing a user's unread mail (the REST poll, `GET /api/v1/messages`) reads only the
/// unread entries from the partial index, however many the user has picked up before, and
/// a page starts at its cursor in the index rather than skipping rows.
#[test]
fn unread_listing_reads_only_unread_entries() {
    let (_dir, conn) = schema_only();
    let sql = crate::sqlite::mailbox::list_sql(false);
    let unread = plan(&conn, &sql);
    assert!(
        unread.contains("USING INDEX mailbox_unpicked (owner=? AND id>?)")
            && !unread.contains("TEMP B-TREE"),
        "{sql}\n{unread}"
    );
    let all = plan(&conn, &crate::sqlite::mailbox::list_sql(true));
    assert!(all.contains("mailbox_owner (owner=? AND id>?)"), "{all}");
}
