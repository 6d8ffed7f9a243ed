//! Query plans of the statements that run once per message: each must find its rows by the
//! message's key, so its cost does not grow with the queue (SQLite's planner, with no
//! statistics, preferred the due index for them and read the whole backlog each time).

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

#[test]
fn per_message_statements_search_recipients_by_message() {
    let (dir, store) = fresh();
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("hisp.db")).unwrap();
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
