//! The access audit trail: rows come back newest first, by actor, since a time, and in
//! pages before a sequence number; they outlive a reopen.

use super::fresh;
use crate::sqlite::SqliteStore;
use crate::{AuditQuery, NewAudit, Store};

fn row(at: i64, actor: &str, action: &str) -> NewAudit {
    NewAudit {
        at,
        actor: actor.into(),
        action: action.into(),
        object: format!("entry {at}"),
        client: Some("192.0.2.7".into()),
        detail: String::new(),
    }
}

fn query(actor: Option<&str>, since: i64, before: i64, limit: usize) -> AuditQuery {
    AuditQuery {
        actor: actor.map(str::to_string),
        since,
        before,
        limit,
    }
}

/// HIPAA §164.312(b): what was recorded can be read back, by who did it and when.
#[tokio::test]
async fn the_audit_trail_reads_back_newest_first_by_actor_since_and_in_pages() {
    let (dir, store) = fresh();
    store
        .add_audit(row(100, "bob@b.example", "fetch"))
        .await
        .unwrap();
    store
        .add_audit(row(110, "operator", "queue-hold"))
        .await
        .unwrap();
    store
        .add_audit(row(120, "BOB@b.example", "pickup"))
        .await
        .unwrap();

    let all = store.audit(query(None, 0, 0, 10)).await.unwrap();
    let actions: Vec<&str> = all.iter().map(|a| a.event.action.as_str()).collect();
    assert_eq!(actions, ["pickup", "queue-hold", "fetch"], "newest first");
    assert_eq!(all[2].event, row(100, "bob@b.example", "fetch"));

    let bob = store
        .audit(query(Some("bob@B.example"), 0, 0, 10))
        .await
        .unwrap();
    assert_eq!(bob.len(), 2, "an address matches in any case");
    let recent = store.audit(query(None, 110, 0, 10)).await.unwrap();
    assert_eq!(recent.len(), 2);
    let first = store.audit(query(None, 0, 0, 1)).await.unwrap();
    let next = store.audit(query(None, 0, first[0].seq, 10)).await.unwrap();
    assert_eq!(next.len(), 2, "the page before the first");

    drop(store);
    let store = SqliteStore::open(&dir.path().join("hisp.db")).unwrap();
    assert_eq!(store.audit(query(None, 0, 0, 10)).await.unwrap().len(), 3);
}

/// `[retention] keep_audit`: the oldest rows go first, a batch at a time, and only those
/// written before the cut-off.
#[tokio::test]
async fn old_audit_rows_are_purged_oldest_first_in_batches() {
    let (_dir, store) = fresh();
    for at in [100, 200, 300] {
        store
            .add_audit(row(at, "operator", "queue-hold"))
            .await
            .unwrap();
    }
    assert_eq!(store.purge_audit(250, 1).await.unwrap(), 1, "one per batch");
    assert_eq!(store.purge_audit(250, 10).await.unwrap(), 1);
    assert_eq!(
        store.purge_audit(250, 10).await.unwrap(),
        0,
        "none left before 250"
    );
    let left = store.audit(query(None, 0, 0, 10)).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event.at, 300);
}
