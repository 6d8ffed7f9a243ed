//! Retention (`purge_bodies`): only bodies nobody needs go (finished outbound messages past
//! their time, mailbox entries picked up long enough ago), with their files; rows, states
//! and timelines stay; each call is bounded.

use super::bodies::{body, files};
use super::{fresh, message, update};
use crate::sqlite::blobs::IN_FILES;
use crate::sqlite::SqliteStore;
use crate::{EntryKind, NewMailboxEntry, PurgeStep, QueueId, RcptState, Store};

/// A whole pass in steps of `limit` rows, with the quarantine cut-off at the outbound one:
/// (outbound, mailbox) bodies removed, and steps.
pub(super) async fn pass(
    store: &SqliteStore,
    outbound_before: i64,
    picked_up_before: i64,
    limit: usize,
    now: i64,
) -> (u64, u64, usize) {
    let (out, mb, _, steps) = pass_all(store, outbound_before, picked_up_before, limit, now).await;
    (out, mb, steps)
}

/// As [`pass`], also counting the quarantined messages whose sealed form went.
async fn pass_all(
    store: &SqliteStore,
    outbound_before: i64,
    picked_up_before: i64,
    limit: usize,
    now: i64,
) -> (u64, u64, u64, usize) {
    let mut step = PurgeStep {
        outbound_before,
        picked_up_before,
        quarantined_before: outbound_before,
        outbound_after: 0,
        mailbox_after: 0,
        quarantined_after: 0,
        limit,
        now,
    };
    let (mut out, mut mb, mut q, mut steps) = (0, 0, 0, 0);
    loop {
        let p = store.purge_bodies(step).await.unwrap();
        (out, mb, q, steps) = (
            out + p.outbound,
            mb + p.mailbox,
            q + p.quarantined,
            steps + 1,
        );
        if p.done() {
            return (out, mb, q, steps);
        }
        step.outbound_after = p.outbound_next.unwrap_or(i64::MAX);
        step.mailbox_after = p.mailbox_next.unwrap_or(i64::MAX);
        step.quarantined_after = p.quarantined_next.unwrap_or(i64::MAX);
    }
}

pub(super) fn entry(owner: &str, n: i64, size: usize) -> NewMailboxEntry {
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

/// A message to bob@b.example submitted at 100 and relayed at 110 with no MDN awaited
/// (finished), with a body and a sealed copy large enough to live in files.
pub(super) async fn finished_with_files(store: &SqliteStore) -> QueueId {
    let mut big = message("<done@a.example>", &["bob@b.example"], 100);
    big.body = body(IN_FILES);
    let done = store.enqueue(big).await.unwrap();
    store
        .store_sealed(&done, "b.example", &body(IN_FILES), "k1")
        .await
        .unwrap();
    let relayed = update(&done, "bob@b.example", RcptState::Relayed, 110);
    store.update_recipients(vec![relayed]).await.unwrap();
    done
}

/// Two messages submitted at 100 and not finished: one waiting for a retry, one relayed at
/// 110 and awaiting its MDN until `deadline`.
pub(super) async fn unfinished(store: &SqliteStore, deadline: i64) -> (QueueId, QueueId) {
    let waiting = store
        .enqueue(message("<q@a.example>", &["c@c.example"], 100))
        .await
        .unwrap();
    let tracked = store
        .enqueue(message("<t@a.example>", &["d@d.example"], 100))
        .await
        .unwrap();
    let mut relayed = update(&tracked, "d@d.example", RcptState::Relayed, 110);
    relayed.deadline = Some(deadline);
    store.update_recipients(vec![relayed]).await.unwrap();
    (waiting, tracked)
}

#[tokio::test]
async fn only_bodies_nobody_needs_are_purged_and_their_rows_stay() {
    let (dir, store) = fresh();
    let done = finished_with_files(&store).await;
    // Still waiting for a retry, and still awaiting its MDN: both keep their bodies.
    let (waiting, tracked) = unfinished(&store, 4000).await;
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
    assert_eq!(pass(&store, 100, 200, 10, 300).await, (0, 0, 1));

    assert_eq!(pass(&store, 101, 201, 10, 300).await, (1, 1, 1));
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

    // Nothing left to do. Steps look at `limit` rows each and walk past bodies still in
    // use (the unread entry), and stop at the first one too young to go.
    assert_eq!(pass(&store, 10_000, 10_000, 10, 300).await.0, 0);
    for n in 10..15 {
        let id = store.deliver(entry("bob@b.example", n, 10)).await.unwrap();
        store
            .mark_picked_up("bob@b.example", id, 300)
            .await
            .unwrap();
    }
    let young = store
        .deliver(entry("bob@b.example", 5_000, 10))
        .await
        .unwrap();
    store
        .mark_picked_up("bob@b.example", young, 5_001)
        .await
        .unwrap();
    let (_, mailbox, steps) = pass(&store, 0, 5_000, 2, 400).await;
    assert_eq!(
        (mailbox, steps),
        (5, 4),
        "unread + 5 picked up, 2 rows a step"
    );
    assert!(store.mailbox_entry("bob@b.example", young).await.is_ok());
    assert!(store.mailbox_entry("bob@b.example", unread).await.is_ok());
}

/// A quarantined message's sealed form goes once it has been quarantined long enough (its
/// row and reason stay, and a release is then refused by name); spooled mail not yet
/// opened keeps its body whatever its age.
#[tokio::test]
async fn quarantined_sealed_forms_go_after_their_time_and_spooled_mail_stays() {
    let (_dir, store) = fresh();
    let received = |now| crate::NewInbound {
        mail_from: "mallory@m.example".into(),
        rcpts: vec!["bob@b.example".into()],
        body: b"Content-Type: application/pkcs7-mime\r\n\r\nbroken".to_vec(),
        peer: "127.0.0.1:1".into(),
        now,
    };
    let q = QueueId::fresh('i');
    let done = crate::InboundDone::new(q.clone(), crate::InboundState::Quarantined, 100);
    store.record_inbound(received(100), done).await.unwrap();
    let spooled = store.spool_inbound(received(50)).await.unwrap();

    assert_eq!(
        pass_all(&store, 100, 0, 10, 300).await.2,
        0,
        "not old enough"
    );
    assert_eq!(pass_all(&store, 101, 0, 10, 300).await.2, 1);
    let kept = store.inbound(&q).await.unwrap().unwrap();
    assert!(kept.body.is_empty());
    assert_eq!(kept.state, crate::InboundState::Quarantined);
    assert!(store.release_quarantined(&q, 400).await.is_err());
    assert!(!store
        .inbound(&spooled)
        .await
        .unwrap()
        .unwrap()
        .body
        .is_empty());
}
