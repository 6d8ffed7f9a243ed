//! Large bodies (streamed in and out in pieces) come back byte for byte from every table
//! that keeps one, as do small ones, and at the threshold itself.

use super::{fresh, message};
use crate::sqlite::blobs::STREAMED;
use crate::{EntryKind, LeaseTo, NewInbound, NewMailboxEntry, QueueId, Store};

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn bodies_of_every_size_round_trip_through_every_table() {
    let (_dir, store) = fresh();
    for len in [0, 10, STREAMED - 1, STREAMED, 3 * STREAMED + 17] {
        let b = body(len);
        let mut msg = message("<big@a.example>", &["bob@b.example"], 100);
        msg.body = b.clone();
        let id = store.enqueue(msg.clone()).await.unwrap();
        assert_eq!(store.outbound_body(&id).await.unwrap().unwrap(), b, "{len}");
        store.store_sealed(&id, "b.example", &b).await.unwrap();
        assert_eq!(store.sealed(&id, "b.example").await.unwrap().unwrap(), b);

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
    for len in [10, STREAMED, 2 * STREAMED + 1] {
        let b = body(len);
        let spooled = store
            .spool_inbound(NewInbound {
                mail_from: "alice@a.example".into(),
                rcpts: vec!["bob@b.example".into()],
                body: b.clone(),
                peer: "127.0.0.1:1".into(),
                now: 100,
            })
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
/// steady large writes with a reader always reading (a passive checkpoint alone never
/// catches up, and the WAL would grow by everything written: 300 MiB here).
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
    let big = body(STREAMED);
    for i in 0..300 {
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
        "WAL of {} MiB after 300 MiB written",
        wal >> 20
    );
}
