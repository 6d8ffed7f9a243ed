//! The writer thread and the file: group commit, savepoint isolation inside a batch,
//! durability across reopen, and refusing files we must not touch.

use std::collections::HashSet;
use std::sync::mpsc;

use super::{fresh, inbound, message};
use crate::sqlite::{directory, SqliteStore};
use crate::{EntryKind, NewMailboxEntry, Store, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_batches_concurrent_enqueues() {
    let (_dir, store) = fresh();
    let before = store.commits();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..50 {
        let store = store.clone();
        tasks.spawn(async move {
            for n in 0..4 {
                let mid = format!("<{task}-{n}@a.example>");
                store
                    .enqueue(message(&mid, &["bob@b.example"], 100))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    let listed = store.list_outbound(1000).await.unwrap();
    assert_eq!(listed.len(), 200);
    let distinct: HashSet<_> = listed.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(distinct.len(), 200);
    assert_eq!(store.queue_depth().await.unwrap(), 200);
    let commits = store.commits() - before;
    assert!(
        commits < 200,
        "200 enqueues took {commits} commits: no batching"
    );
}

/// A deferrable job (an attempt's outcome) waits for an urgent one and shares its commit:
/// with the window stretched to a minute, it is still unanswered 50 ms on, and the urgent
/// job that follows commits both at once.
#[tokio::test]
async fn deferrable_job_shares_the_next_urgent_commit() {
    let (_dir, store) = fresh();
    let writer = &store.inner.writer;
    writer.set_defer(std::time::Duration::from_secs(60));
    let before = store.commits();
    let mut deferred = writer
        .submit(false, |c| directory::set_user(c, "later@a.example", "h", 1))
        .unwrap();
    let early = tokio::time::timeout(std::time::Duration::from_millis(50), &mut deferred).await;
    assert!(early.is_err(), "the deferrable job committed on its own");
    let urgent = writer
        .submit(true, |c| directory::set_user(c, "now@a.example", "h", 1))
        .unwrap();
    urgent.await.unwrap().unwrap();
    deferred.await.unwrap().unwrap();
    assert_eq!(store.commits(), before + 1, "one commit for both");
    assert_eq!(
        store.users().await.unwrap(),
        ["later@a.example", "now@a.example"]
    );
}

/// Alone, a deferrable job is committed once the window ends (it is never stranded).
#[tokio::test]
async fn deferrable_job_alone_commits_after_the_window() {
    let (_dir, store) = fresh();
    let before = store.commits();
    store
        .inner
        .writer
        .submit(false, |c| directory::set_user(c, "alone@a.example", "h", 1))
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.commits(), before + 1);
    assert_eq!(store.users().await.unwrap(), ["alone@a.example"]);
}

#[tokio::test]
async fn failing_job_rolls_back_alone_in_its_batch() {
    let (_dir, store) = fresh();
    let writer = &store.inner.writer;

    // Hold the writer inside a job so the next three queue up and form one batch.
    let (started_tx, started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let blocker = writer
        .submit(true, move |_| {
            started_tx.send(()).unwrap();
            released.recv().unwrap();
            Ok(())
        })
        .unwrap();
    started.recv().unwrap();
    let before = store.commits();

    let good = writer
        .submit(true, |c| directory::set_user(c, "good@a.example", "h", 1))
        .unwrap();
    let bad = writer
        .submit(true, |c| {
            directory::set_user(c, "bad@a.example", "h", 1)?;
            Err::<(), _>(StoreError::NotFound {
                what: "test row",
                id: "x".into(),
            })
        })
        .unwrap();
    let also_good = writer
        .submit(true, |c| directory::set_user(c, "also@a.example", "h", 1))
        .unwrap();
    release.send(()).unwrap();

    blocker.await.unwrap().unwrap();
    good.await.unwrap().unwrap();
    assert!(matches!(
        bad.await.unwrap(),
        Err(StoreError::NotFound {
            what: "test row",
            ..
        })
    ));
    also_good.await.unwrap().unwrap();
    // `before` was read while the blocker's batch was open: its commit, then the three
    // together in one more.
    assert_eq!(store.commits(), before + 2);
    assert_eq!(
        store.users().await.unwrap(),
        ["also@a.example", "good@a.example"]
    );
    assert_eq!(
        store.directory_version().await.unwrap(),
        2,
        "the bad job's bump rolled back"
    );
}

#[tokio::test]
async fn committed_data_survives_drop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hisp.db");
    let big = vec![0x5a_u8; 20 << 20];
    let (out, inb, entry) = {
        let store = SqliteStore::open(&path).unwrap();
        let mut msg = message("<durable@a.example>", &["bob@b.example"], 100);
        msg.body = big.clone();
        let out = store.enqueue(msg).await.unwrap();
        let inb = store
            .spool_inbound(inbound(
                "x@b.example",
                "alice@a.example",
                b"sealed".to_vec(),
                100,
            ))
            .await
            .unwrap();
        let entry = store
            .deliver(NewMailboxEntry {
                owner: "alice@a.example".into(),
                kind: EntryKind::Message,
                message_id: "<in@b.example>".into(),
                from: "x@b.example".into(),
                subject: "s".into(),
                body: b"plain".to_vec(),
                wants_dispatched: false,
                source: Some(inb.clone()),
                now: 100,
            })
            .await
            .unwrap();
        store.set_user("alice@a.example", "h", 100).await.unwrap();
        (out, inb, entry)
    };

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.outbound_body(&out).await.unwrap().unwrap(), big);
    assert_eq!(
        store.outbound(&out).await.unwrap().unwrap().size,
        big.len() as u64
    );
    assert_eq!(
        store.lease_inbound(100, "w", 200, 10).await.unwrap()[0].id,
        inb
    );
    assert!(store
        .mailbox_entry("alice@a.example", entry)
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.users().await.unwrap(), ["alice@a.example"]);
    assert_eq!(store.directory_version().await.unwrap(), 1);
}

#[tokio::test]
async fn open_creates_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("var").join("lib").join("hisp.db");
    let store = SqliteStore::open(&path).unwrap();
    assert!(path.exists());
    assert_eq!(store.path(), path);
    assert_eq!(store.queue_depth().await.unwrap(), 0);
}

/// A store written by an earlier version (schema 5: no flush count, sealed forms that do
/// not name their certificates, no audit trail) is migrated when opened: what it held
/// stays, flushes are counted from zero, a kept sealed form names no certificates (so it
/// is sealed again), and the audit trail starts empty.
#[tokio::test]
async fn open_migrates_a_schema_5_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hisp.db");
    let store = SqliteStore::open(&path).unwrap();
    store.set_user("a@x.example", "hash", 1).await.unwrap();
    let version = store.directory_version().await.unwrap();
    let id = store
        .enqueue(super::message("<m@x.example>", &["b@y.example"], 1))
        .await
        .unwrap();
    store
        .store_sealed(&id, "y.example", b"sealed", "k1")
        .await
        .unwrap();
    drop(store);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "ALTER TABLE directory_version DROP COLUMN flushes; \
             ALTER TABLE sealed DROP COLUMN certs; DROP TABLE audit; \
             PRAGMA user_version = 5;",
        )
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.directory_version().await.unwrap(), version);
    assert!(store
        .user_password_hash("a@x.example")
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.queue_flushes().await.unwrap(), 0);
    store.flush_queue(2).await.unwrap();
    assert_eq!(store.queue_flushes().await.unwrap(), 1);
    let copy = store.sealed(&id, "y.example").await.unwrap().unwrap();
    assert_eq!(
        (copy.body.as_slice(), copy.certs.as_str()),
        (&b"sealed"[..], "")
    );
}

#[tokio::test]
async fn open_refuses_a_newer_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hisp.db");
    drop(SqliteStore::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(
        matches!(&err, StoreError::Open { reason, .. } if reason.contains("99")),
        "{err}"
    );
}

#[tokio::test]
async fn open_refuses_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hisp.db");
    std::fs::write(&path, "this is not an SQLite database\n".repeat(200)).unwrap();
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
}

#[tokio::test]
async fn deleted_database_file_gives_errors_not_panics() {
    let (dir, store) = fresh();
    for name in ["hisp.db", "hisp.db-wal", "hisp.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    // No read connection was open yet: opening one must fail cleanly.
    let err = store.users().await.unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err}");
    // The writer still holds the unlinked file; whatever it answers, it answers.
    let _ = store
        .enqueue(message("<gone@a.example>", &["b@b.example"], 1))
        .await;
}

/// A full disk is reported as such (`SQLITE_FULL`: the SMTP side answers `452 4.3.1`), the
/// failed write leaves nothing behind, and the store works again once there is room.
/// SQLite's `max_page_count` makes the database full exactly as a full disk does.
#[tokio::test]
async fn a_full_disk_is_storage_full_and_the_store_recovers() {
    let (_dir, store) = fresh();
    let pages: i64 = store
        .write(|conn| {
            let n: i64 = conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(crate::sqlite::db("counting pages"))?;
            conn.query_row(&format!("PRAGMA max_page_count = {n}"), [], |r| r.get(0))
                .map_err(crate::sqlite::db("capping pages"))
        })
        .await
        .unwrap();
    let mut big = message("<full@a.example>", &["bob@b.example"], 100);
    big.body = vec![b'x'; 64 * 1024];
    let err = store.enqueue(big.clone()).await.unwrap_err();
    assert!(err.is_storage_full(), "{err}");
    assert!(store.list_outbound(10).await.unwrap().is_empty());

    let _: i64 = store
        .write(move |conn| {
            conn.query_row(
                &format!("PRAGMA max_page_count = {}", pages * 100),
                [],
                |r| r.get(0),
            )
            .map_err(crate::sqlite::db("raising the cap"))
        })
        .await
        .unwrap();
    store.enqueue(big).await.unwrap();
    assert_eq!(store.list_outbound(10).await.unwrap().len(), 1);
    // Other failures are not "full".
    assert!(!StoreError::Closed.is_storage_full());
}
