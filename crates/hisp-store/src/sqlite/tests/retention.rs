//! Retention (`purge_bodies`): only bodies nobody needs go (finished outbound messages past
//! their time, mailbox entries picked up long enough ago), with their files; rows, states
//! and timelines stay; each call is bounded.

use super::bodies::{body, files};
use super::{fresh, message, update};
use crate::sqlite::blobs::IN_FILES;
use crate::{EntryKind, NewMailboxEntry, QueueId, RcptState, Store};

fn entry(owner: &str, n: i64, size: usize) -> NewMailboxEntry {
    NewMailboxEntry {
        owner: owner.into(),
        kind: EntryKind::Message,
        message_id: format!("<m{n}@a.example>"),
        from: "dr.alice@a.example".into(),
        subject: "Referral".into(),
        body: body(size),
        wants_dispatched: false,
        source: Some(QueueId("i-00000000000000aa".into())),
        now: n,
    }
}

#[tokio::test]
async fn only_bodies_nobody_needs_are_purged_and_their_rows_stay() {
    let (dir, store) = fresh();
    // Finished (relayed, no MDN awaited), with a large body and a sealed copy in files.
    let mut big = message("<done@a.example>", &["bob@b.example"], 100);
    big.body = body(IN_FILES);
    let done = store.enqueue(big).await.unwrap();
    store
        .store_sealed(&done, "b.example", &body(IN_FILES))
        .await
        .unwrap();
    store
        .update_recipients(vec![update(
            &done,
            "bob@b.example",
            RcptState::Relayed,
            110,
        )])
        .await
        .unwrap();
    // Still waiting for a retry, and still awaiting its MDN: both keep their bodies.
    let waiting = store
        .enqueue(message("<q@a.example>", &["c@c.example"], 100))
        .await
        .unwrap();
    let tracked = store
        .enqueue(message("<t@a.example>", &["d@d.example"], 100))
        .await
        .unwrap();
    let mut relayed = update(&tracked, "d@d.example", RcptState::Relayed, 110);
    relayed.deadline = Some(4000);
    store.update_recipients(vec![relayed]).await.unwrap();
    // Mailbox: one picked up at 200, one never picked up.
    let picked = store
        .deliver(entry("bob@b.example", 1, IN_FILES))
        .await
        .unwrap();
    let unread = store.deliver(entry("bob@b.example", 2, 100)).await.unwrap();
    store
        .mark_picked_up("bob@b.example", picked, 200)
        .await
        .unwrap();
    assert_eq!(files(dir.path()).len(), 3);

    // Too recent for both cut-offs: nothing goes.
    let none = store.purge_bodies(100, 200, 10, 300).await.unwrap();
    assert_eq!((none.outbound, none.mailbox), (0, 0));

    let gone = store.purge_bodies(101, 201, 10, 300).await.unwrap();
    assert_eq!((gone.outbound, gone.mailbox), (1, 1));
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    assert_eq!(store.outbound_body(&done).await.unwrap(), None);
    assert_eq!(store.sealed(&done, "b.example").await.unwrap(), None);
    let m = store.outbound(&done).await.unwrap().unwrap();
    assert_eq!(m.recipients[0].state, RcptState::Relayed, "the row stays");
    let kinds: Vec<_> = store
        .events(&done)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"purged".to_string()), "{kinds:?}");
    for kept in [&waiting, &tracked] {
        assert!(store.outbound_body(kept).await.unwrap().is_some());
    }
    assert!(store
        .mailbox_entry("bob@b.example", unread)
        .await
        .unwrap()
        .is_some());
    let listed = store.mailbox("bob@b.example", true).await.unwrap();
    assert_eq!(listed.len(), 2, "entries stay listed");
    assert!(store.mailbox_entry("bob@b.example", picked).await.is_err());

    // Nothing left to do; and a call removes at most `limit` of each kind.
    let again = store.purge_bodies(10_000, 10_000, 10, 300).await.unwrap();
    assert_eq!((again.outbound, again.mailbox), (0, 0));
    for n in 10..15 {
        let id = store.deliver(entry("bob@b.example", n, 10)).await.unwrap();
        store
            .mark_picked_up("bob@b.example", id, 300)
            .await
            .unwrap();
    }
    let first = store.purge_bodies(0, 10_000, 3, 400).await.unwrap();
    let second = store.purge_bodies(0, 10_000, 3, 400).await.unwrap();
    assert_eq!((first.mailbox, second.mailbox), (3, 2));
}
