//! Bodies come back byte for byte from every table that keeps one, inline below the
//! threshold and from files at and above it; files are durable, go when their rows do, and
//! files no row names (a crash before a commit) are swept at open.

use super::{fresh, inbound, message, update};
use crate::sqlite::blobs::IN_FILES;
use crate::sqlite::{queue, spool, SqliteStore};
use crate::{
    EntryKind, InboundDone, InboundState, LeaseContent, LeaseTo, NewMailboxEntry, QueueId,
    RcptState, RcptUpdate, SealedCopy, Store, StoreError,
};

pub(super) fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn bodies_of_every_size_round_trip_through_every_table() {
    let (_dir, store) = fresh();
    for len in [0, 10, IN_FILES - 1, IN_FILES, 3 * IN_FILES + 17] {
        let b = body(len);
        let mut msg = message("<big@a.example>", &["bob@b.example"], 100);
        msg.body = b.clone();
        let id = store.enqueue(msg.clone()).await.unwrap();
        assert_eq!(store.outbound_body(&id).await.unwrap().unwrap(), b, "{len}");
        store
            .store_sealed(&id, "b.example", &b, "k1")
            .await
            .unwrap();
        assert_eq!(
            store.sealed(&id, "b.example").await.unwrap().unwrap().body,
            b
        );

        let lease = LeaseTo {
            owner: "w".into(),
            until: 700,
        };
        let queued = store.enqueue_leased(msg, lease).await.unwrap();
        assert_eq!(queued.body, b);

        let entry = NewMailboxEntry {
            owner: "bob@b.example".into(),
            kind: EntryKind::Message,
            message_id: format!("<m{len}@a.example>"),
            from: "alice@a.example".into(),
            subject: "big".into(),
            body: b.clone(),
            wants_dispatched: false,
            source: None,
            now: 100,
        };
        let entry_id = store.deliver(entry).await.unwrap();
        let got = store
            .mailbox_entry("bob@b.example", entry_id)
            .await
            .unwrap();
        assert_eq!(got.unwrap().body, b);
    }
    // The inbound spool, leased back with its body (non-empty: an empty body is not kept).
    for len in [10, IN_FILES, 2 * IN_FILES + 1] {
        let b = body(len);
        let spooled = store
            .spool_inbound(inbound("alice@a.example", "bob@b.example", b.clone(), 100))
            .await
            .unwrap();
        let leased = store.lease_inbound(100, "w", 400, 10).await.unwrap();
        let mine: Vec<_> = leased.iter().filter(|i| i.id == spooled).collect();
        assert_eq!(mine[0].body, b, "{len}");
    }
    assert!(store
        .outbound_body(&QueueId("o-0000000000000000".into()))
        .await
        .unwrap()
        .is_none());
}

/// The WAL is checkpointed off the writer thread and still made to start over under
/// steady writes of the largest inline bodies with a reader always reading (a passive
/// checkpoint alone never catches up, and the WAL would grow by everything written:
/// 150 MiB here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_stays_bounded_under_steady_large_writes_and_reads() {
    let (dir, store) = fresh();
    let store = std::sync::Arc::new(store);
    let first = message("<first@a.example>", &["bob@b.example"], 100);
    let first = store.enqueue(first).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut reads = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                assert!(store.outbound_body(&first).await.unwrap().is_some());
                reads += 1;
            }
            reads
        })
    };
    let big = body(IN_FILES - 1);
    for i in 0..600 {
        let mut msg = message(&format!("<m{i}@a.example>"), &["bob@b.example"], 100);
        msg.body = big.clone();
        store.enqueue(msg).await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.await.unwrap() > 0);
    let wal = std::fs::metadata(dir.path().join("hisp.db-wal"))
        .unwrap()
        .len();
    assert!(
        wal <= 96 << 20,
        "WAL of {} MiB after 150 MiB written",
        wal >> 20
    );
}

pub(super) fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("hisp.db-bodies"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn large_bodies_live_in_files_that_go_with_their_rows_and_outlive_a_reopen() {
    let (dir, store) = fresh();
    let big = body(IN_FILES);
    let mut msg = message("<f@a.example>", &["bob@b.example"], 100);
    msg.body = big.clone();
    let id = store.enqueue(msg).await.unwrap();
    assert_eq!(files(dir.path()).len(), 1);
    assert!(files(dir.path())[0].starts_with("message_bodies-"));

    // Re-sealing replaces the row; the old file goes after the commit.
    store
        .store_sealed(&id, "b.example", &big, "k1")
        .await
        .unwrap();
    let resealed = body(IN_FILES + 1);
    store
        .store_sealed(&id, "b.example", &resealed, "k1")
        .await
        .unwrap();
    assert_eq!(files(dir.path()).len(), 2, "{:?}", files(dir.path()));
    assert_eq!(
        store.sealed(&id, "b.example").await.unwrap().unwrap().body,
        resealed
    );

    // A delivered inbound message's body is dropped, and with it its file.
    let spooled = store
        .spool_inbound(inbound(
            "alice@a.example",
            "bob@b.example",
            big.clone(),
            100,
        ))
        .await
        .unwrap();
    assert_eq!(files(dir.path()).len(), 3);
    store.lease_inbound(100, "w", 400, 10).await.unwrap();
    let done = InboundDone::new(spooled, InboundState::Delivered, 110);
    store.finish_inbound(done).await.unwrap();
    assert_eq!(files(dir.path()).len(), 2);

    // Durable: a new process reads the same bodies; a stray file is swept, others kept.
    drop(store);
    let bodies = dir.path().join("hisp.db-bodies");
    std::fs::write(bodies.join("sealed-999999-0123456789abcdef"), b"orphan").unwrap();
    std::fs::write(bodies.join("README"), b"not ours").unwrap();
    let store = SqliteStore::open(&dir.path().join("hisp.db")).unwrap();
    assert_eq!(store.outbound_body(&id).await.unwrap().unwrap(), big);
    assert_eq!(
        store.sealed(&id, "b.example").await.unwrap().unwrap().body,
        resealed
    );
    let left = files(dir.path());
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.contains(&"README".to_string()));
    assert!(!left.iter().any(|f| f.starts_with("sealed-999999-")));
}

/// A job that wrote a body file and then failed is rolled back to its savepoint, and its
/// file with it; the batch's other jobs keep theirs.
#[tokio::test]
async fn a_failed_job_leaves_no_body_file() {
    let (dir, store) = fresh();
    let big = body(IN_FILES);
    let id = store
        .enqueue(message("<g@a.example>", &["bob@b.example"], 100))
        .await
        .unwrap();
    let (sealed_id, sealed_body) = (id.clone(), big.clone());
    let failed = store
        .write(move |c| {
            queue::store_sealed(c, &sealed_id, "b.example", &sealed_body, "k1")?;
            Err::<(), _>(StoreError::Closed)
        })
        .await;
    assert!(matches!(failed, Err(StoreError::Closed)));
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    assert!(store.sealed(&id, "b.example").await.unwrap().is_none());
}

/// A body file that vanished is reported as such, not as an empty body.
#[tokio::test]
async fn a_missing_body_file_is_an_error_naming_it() {
    let (dir, store) = fresh();
    let mut msg = message("<h@a.example>", &["bob@b.example"], 100);
    msg.body = body(IN_FILES);
    let id = store.enqueue(msg).await.unwrap();
    let name = files(dir.path()).remove(0);
    std::fs::remove_file(dir.path().join("hisp.db-bodies").join(&name)).unwrap();
    let err = store.outbound_body(&id).await.unwrap_err();
    assert!(err.to_string().contains("message body file"), "{err}");
}

/// A body staged ahead of its job (written off the writer thread) is removed when the job
/// fails or does not store it; a staged file gone before its job runs (another process
/// swept it) fails the job instead of committing a row that names nothing.
#[tokio::test]
async fn staged_bodies_go_with_failed_jobs_and_a_missing_one_fails_its_job() {
    let (dir, store) = fresh();
    let id = store
        .enqueue(message("<s@a.example>", &["bob@b.example"], 100))
        .await
        .unwrap();
    for fail in [true, false] {
        let sealed_id = id.clone();
        let stored = store
            .write_with_bodies(
                body(IN_FILES),
                |b| vec![b.as_slice()],
                move |c, b| {
                    if fail {
                        queue::store_sealed(c, &sealed_id, "b.example", &b, "k1")?;
                        return Err(StoreError::Closed);
                    }
                    Ok(())
                },
            )
            .await;
        assert_eq!(stored.is_err(), fail);
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    let sealed = body(IN_FILES + 5);
    let bodies = dir.path().join("hisp.db-bodies");
    let staged = spool::stage(&bodies, &[sealed.as_slice()]).unwrap();
    assert_eq!(files(dir.path()).len(), 1);
    for f in files(dir.path()) {
        std::fs::remove_file(bodies.join(f)).unwrap();
    }
    let sealed_id = id.clone();
    let failed = store
        .write(move |c| {
            spool::with_staged(staged, || {
                queue::store_sealed(c, &sealed_id, "b.example", &sealed, "k1")
            })
        })
        .await;
    assert!(failed
        .unwrap_err()
        .to_string()
        .contains("message body file"));
    assert!(store.sealed(&id, "b.example").await.unwrap().is_none());

    // Through the API the staged file is renamed into place.
    store
        .store_sealed(&id, "b.example", &body(IN_FILES + 5), "k1")
        .await
        .unwrap();
    let names = files(dir.path());
    assert!(
        names.len() == 1 && names[0].starts_with("sealed-"),
        "{names:?}"
    );
}

/// At open, a staged file older than the grace period (its process died before the job
/// ran) is swept; a fresh one may be another process's work in flight and stays.
#[tokio::test]
async fn the_sweep_removes_stale_staged_files_and_keeps_fresh_ones() {
    let (dir, store) = fresh();
    drop(store);
    let bodies = dir.path().join("hisp.db-bodies");
    std::fs::create_dir_all(&bodies).unwrap();
    std::fs::write(bodies.join("stage-00000000000000aa"), b"fresh").unwrap();
    let stale = bodies.join("stage-00000000000000bb");
    std::fs::write(&stale, b"stale").unwrap();
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    let _store = SqliteStore::open(&dir.path().join("hisp.db")).unwrap();
    assert_eq!(
        files(dir.path()),
        vec!["stage-00000000000000aa".to_string()]
    );
}

/// A lease brings its content along when the database holds it: the sealed form of an
/// earlier attempt before the submitted body; a body in a file is left to the worker.
#[tokio::test]
async fn leases_carry_inline_content_sealed_first_and_not_files() {
    let (_dir, store) = fresh();
    let small = body(100);
    let mut msg = message("<c1@a.example>", &["bob@b.example"], 100);
    msg.body = small.clone();
    let id = store.enqueue(msg).await.unwrap();
    let lease = store.lease_due(100, "w", 200, 10).await.unwrap().remove(0);
    assert_eq!(lease.content, Some(LeaseContent::Body(small)));

    // A retry after an attempt that kept the sealed form sends that.
    let sealed = body(150);
    store
        .store_sealed(&id, "b.example", &sealed, "k1")
        .await
        .unwrap();
    let retry = RcptUpdate {
        next_attempt: 150,
        last_error: Some("451 try later".into()),
        ..update(&id, "bob@b.example", RcptState::Queued, 120)
    };
    store.update_recipients(vec![retry]).await.unwrap();
    let lease = store.lease_due(150, "w", 300, 10).await.unwrap().remove(0);
    // With what names the certificates it was sealed for (schema 7).
    let copy = SealedCopy {
        body: sealed,
        certs: "k1".into(),
    };
    assert_eq!(lease.content, Some(LeaseContent::Sealed(copy)));
    assert_eq!(
        format!("{:?}", lease.content),
        "Some(Sealed(150 bytes))",
        "content never goes to a log"
    );

    let mut msg = message("<c2@a.example>", &["bob@b.example"], 400);
    msg.body = body(IN_FILES);
    let in_file = store.enqueue(msg).await.unwrap();
    let leases = store.lease_due(400, "w", 900, 10).await.unwrap();
    let lease = leases.iter().find(|l| l.message == in_file).unwrap();
    assert_eq!(lease.content, None);
}
