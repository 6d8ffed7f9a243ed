//! Records retention (`purge_records`): whole rows of finished mail older than the cut-off
//! go with their timelines and files; anything unfinished (a recipient queued or awaiting
//! its MDN, inbound mail not yet opened, a mailbox entry never picked up) stays whatever
//! its age; each step is bounded and the pass ends.

use super::bodies::{body, files};
use super::retention::{entry, finished_with_files, unfinished};
use super::{fresh, message, update};
use crate::sqlite::blobs::IN_FILES;
use crate::sqlite::SqliteStore;
use crate::{InboundDone, InboundState, NewInbound, RcptState, RecordStep, Store};

/// A whole pass in steps of `limit` rows: (messages, inbound, mailbox, notifications)
/// removed, and steps.
async fn pass(store: &SqliteStore, before: i64, limit: usize) -> ([u64; 4], usize) {
    let mut step = Some(RecordStep::first(before, limit));
    let (mut gone, mut steps) = ([0u64; 4], 0);
    while let Some(s) = step {
        let p = store.purge_records(s).await.unwrap();
        gone[0] += p.messages;
        gone[1] += p.inbound;
        gone[2] += p.mailbox;
        gone[3] += p.notifications;
        steps += 1;
        assert!(steps < 100, "the pass does not end");
        step = p.next;
    }
    (gone, steps)
}

fn received(now: i64) -> NewInbound {
    NewInbound {
        mail_from: "dr.alice@a.example".into(),
        rcpts: vec!["bob@b.example".into()],
        body: body(IN_FILES),
        peer: "127.0.0.1:40000".into(),
        now,
    }
}

#[tokio::test]
async fn finished_rows_past_the_cut_off_go_whole_and_unfinished_ones_stay() {
    let (dir, store) = fresh();
    // Outbound: finished (relayed, no MDN awaited) with a body and a sealed copy in files;
    // one still queued; one awaiting its MDN; one finished but young.
    let done = finished_with_files(&store).await;
    let (queued, tracked) = unfinished(&store, 9_000).await;
    let young = store
        .enqueue(message("<y@a.example>", &["e@e.example"], 5_000))
        .await
        .unwrap();
    let failed = update(&young, "e@e.example", RcptState::Failed, 5_010);
    store.update_recipients(vec![failed]).await.unwrap();
    // Inbound: one opened and delivered (sealed form in a file), one still spooled.
    let opened = store.spool_inbound(received(100)).await.unwrap();
    store
        .finish_inbound(InboundDone::new(
            opened.clone(),
            InboundState::Delivered,
            120,
        ))
        .await
        .unwrap();
    let spooled = store.spool_inbound(received(100)).await.unwrap();
    // Mailbox: one picked up (body in a file), one never picked up.
    let picked = store
        .deliver(entry("bob@b.example", 100, IN_FILES))
        .await
        .unwrap();
    store
        .mark_picked_up("bob@b.example", picked, 200)
        .await
        .unwrap();
    let unread = store
        .deliver(entry("bob@b.example", 101, 10))
        .await
        .unwrap();
    assert!(store
        .note_notification("<done@a.example>", "bob@b.example", "processed", 150)
        .await
        .unwrap());
    let files_before = files(dir.path()).len();
    // The body and sealed copy, the spooled inbound message and the mailbox entry (a
    // delivered inbound message's sealed form went at delivery).
    assert_eq!(files_before, 4);

    // Everything is younger than a cut-off at 100: nothing goes.
    assert_eq!(pass(&store, 100, 10).await.0, [0; 4]);
    // A cut-off at 1,000 in steps of one row: the finished old rows go, one of each kind.
    let (gone, steps) = pass(&store, 1_000, 1).await;
    assert_eq!(gone, [1, 1, 1, 1]);
    assert!(steps > 3, "{steps}");

    assert!(store.outbound(&done).await.unwrap().is_none());
    assert!(store.events(&done).await.unwrap().is_empty());
    for kept in [&queued, &tracked, &young] {
        assert!(store.outbound(kept).await.unwrap().is_some(), "{kept:?}");
    }
    assert!(store.inbound(&opened).await.unwrap().is_none());
    assert!(store.events(&opened).await.unwrap().is_empty());
    let still = store.inbound(&spooled).await.unwrap().unwrap();
    assert_eq!(
        still.body,
        body(IN_FILES),
        "spooled mail keeps its sealed form"
    );
    assert!(store
        .mailbox_entry("bob@b.example", picked)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .mailbox_entry("bob@b.example", unread)
        .await
        .unwrap()
        .is_some());
    // The de-duplication record went: the same notification counts as new again.
    assert!(store
        .note_notification("<done@a.example>", "bob@b.example", "processed", 2_000)
        .await
        .unwrap());
    // The files of the rows that went are removed with them; the spooled one stays.
    assert_eq!(files(dir.path()).len(), 1, "{:?}", files(dir.path()));

    // A second pass finds nothing more.
    assert_eq!(pass(&store, 1_000, 10).await.0, [0; 4]);
}
