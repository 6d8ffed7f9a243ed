//! What the operator commands do to the queue: `hisp queue flush` (due now, counted for a
//! running daemon) and `hisp queue delete` (the recipients still waiting fail).

use super::queue::dsn;
use super::{fresh, message, update};
use crate::sqlite::SqliteStore;
use crate::{QueueId, QueueSelection, RcptState, Store};

/// A message to dave@b.example and erin@c.example, both leased to w1 at 100 until 700,
/// then dave's attempt deferred to 230 at 110 (erin still in delivery).
async fn dave_deferred_erin_leased(store: &SqliteStore) -> QueueId {
    let id = store
        .enqueue(message(
            "<m1@a.example>",
            &["dave@b.example", "erin@c.example"],
            100,
        ))
        .await
        .unwrap();
    assert_eq!(store.lease_due(100, "w1", 700, 10).await.unwrap().len(), 2);
    let mut retry = update(&id, "dave@b.example", RcptState::Queued, 110);
    retry.next_attempt = 230;
    store.update_recipients(vec![retry]).await.unwrap();
    id
}

/// `hisp queue flush` (Postfix's `postqueue -f`): a recipient waiting for its next retry is
/// due at once, with a `flushed` event; relayed and final recipients are left alone.
#[tokio::test]
async fn flush_makes_recipients_waiting_for_a_retry_due_now() {
    let (_dir, store) = fresh();
    let id = dave_deferred_erin_leased(&store).await;
    let relayed = update(&id, "erin@c.example", RcptState::Relayed, 110);
    store.update_recipients(vec![relayed]).await.unwrap();
    assert!(store
        .lease_due(150, "w2", 800, 10)
        .await
        .unwrap()
        .is_empty());

    assert_eq!(store.queue_flushes().await.unwrap(), 0);
    assert_eq!(store.flush_queue(150).await.unwrap(), 1);
    // Counted, so a running daemon notices the operator asked for delivery now.
    assert_eq!(store.queue_flushes().await.unwrap(), 1);
    let due = store.lease_due(150, "w2", 800, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].recipients[0].rcpt, "dave@b.example");
    assert_eq!(
        store.flush_queue(150).await.unwrap(),
        0,
        "nothing waits any more"
    );
    assert_eq!(store.queue_flushes().await.unwrap(), 2);
    let flushed: Vec<_> = store
        .events(&id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "flushed")
        .collect();
    assert_eq!(flushed.len(), 1);
    assert_eq!(flushed[0].rcpt.as_deref(), Some("dave@b.example"));
}

/// `hisp queue delete`: only recipients still waiting are failed (with the reason and a
/// `failed` event); one relayed already, or one in delivery now, is left as it is.
#[tokio::test]
async fn cancel_fails_only_the_recipients_still_waiting() {
    let (_dir, store) = fresh();
    let rcpts = ["dave@b.example", "erin@c.example", "fay@d.example"];
    let id = store
        .enqueue(message("<m1@a.example>", &rcpts, 100))
        .await
        .unwrap();
    let leases = store.lease_due(100, "w1", 700, 10).await.unwrap();
    assert_eq!(leases.len(), 3);
    let mut retry = update(&id, "dave@b.example", RcptState::Queued, 110);
    retry.next_attempt = 230;
    let relayed = update(&id, "erin@c.example", RcptState::Relayed, 110);
    store.update_recipients(vec![retry, relayed]).await.unwrap();
    // fay@d.example is still leased to w1 (until 700).

    let gone = store
        .cancel_queued(&id, "deleted by the operator", 150, |g| Some(dsn(g, 150)))
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].rcpt, "dave@b.example");
    assert_eq!(gone[0].state, RcptState::Failed);
    let m = store.outbound(&id).await.unwrap().unwrap();
    let state = |r: &str| m.recipients.iter().find(|x| x.rcpt == r).unwrap().clone();
    assert_eq!(state("dave@b.example").state, RcptState::Failed);
    assert_eq!(
        state("dave@b.example").last_error.as_deref(),
        Some("deleted by the operator")
    );
    assert_eq!(state("erin@c.example").state, RcptState::Relayed);
    assert_eq!(state("fay@d.example").state, RcptState::Queued);
    assert!(store
        .lease_due(250, "w2", 800, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .cancel_queued(&id, "again", 160, |g| Some(dsn(g, 160)))
        .await
        .unwrap()
        .is_empty());
    let unknown = QueueId("o-0000000000000000".into());
    assert!(store
        .cancel_queued(&unknown, "x", 160, |g| Some(dsn(g, 160)))
        .await
        .unwrap()
        .is_empty());
    // One DSN, committed with the cancellation; none when nothing was cancelled.
    let notices = store
        .mailbox("dr.alice@direct.a.example", true)
        .await
        .unwrap();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let body = store
        .mailbox_entry("dr.alice@direct.a.example", notices[0].id)
        .await
        .unwrap()
        .unwrap()
        .body;
    assert_eq!(body, b"failed: dave@b.example\r\n");
}

/// `hisp queue summary` (Postfix's `qshape`): per destination, the recipients waiting by
/// the age of their message, how many were tried or are in delivery now, the last error,
/// and those relayed and waiting for the peer's MDN (and past their deadline).
#[tokio::test]
async fn the_queue_shape_counts_each_destination_by_age_and_by_what_it_waits_for() {
    let (_dir, store) = fresh();
    let old = store
        .enqueue(message(
            "<old@a.example>",
            &["dave@b.example", "erin@c.example"],
            100,
        ))
        .await
        .unwrap();
    let new = store
        .enqueue(message(
            "<new@a.example>",
            &["fay@b.example", "gus@b.example"],
            1000,
        ))
        .await
        .unwrap();
    // A lease per message and domain.
    assert_eq!(
        store.lease_due(1000, "w1", 2000, 10).await.unwrap().len(),
        3
    );
    let mut busy = update(&old, "dave@b.example", RcptState::Queued, 1100);
    busy.next_attempt = 5000;
    busy.last_error = Some("421 4.3.2 busy".into());
    let mut relayed = update(&old, "erin@c.example", RcptState::Relayed, 1100);
    relayed.deadline = Some(4600);
    let mut refused = update(&new, "fay@b.example", RcptState::Queued, 1200);
    refused.next_attempt = 5000;
    refused.last_error = Some("connection refused".into());
    // gus@b.example stays leased to w1: in delivery now.
    store
        .update_recipients(vec![busy, relayed, refused])
        .await
        .unwrap();

    let shape = store.queue_shape(1300, vec![300, 600, 1200]).await.unwrap();
    let domains: Vec<&str> = shape.iter().map(|s| s.domain.as_str()).collect();
    assert_eq!(domains, ["b.example", "c.example"], "busiest first");
    let b = &shape[0];
    assert_eq!(b.waiting, 3);
    assert_eq!(b.by_age, [0, 2, 0, 1], "ages 300, 300 and 1200 s");
    assert_eq!((b.tried, b.in_delivery), (2, 1));
    assert_eq!(b.oldest, Some(100));
    assert_eq!(b.last_error.as_deref(), Some("connection refused"));
    assert_eq!((b.awaiting_notification, b.overdue), (0, 0));
    let c = &shape[1];
    assert_eq!((c.waiting, c.by_age.as_slice()), (0, &[0, 0, 0, 0][..]));
    assert_eq!((c.awaiting_notification, c.overdue), (1, 0));

    let later = store.queue_shape(5000, vec![300]).await.unwrap();
    let c = later.iter().find(|s| s.domain == "c.example").unwrap();
    assert_eq!(c.overdue, 1, "past its deadline of 4600");
    let b = later.iter().find(|s| s.domain == "b.example").unwrap();
    assert_eq!((b.by_age.as_slice(), b.in_delivery), (&[0, 3][..], 0));
}

/// `hisp queue hold` and `release` (Postfix's `postsuper -h` and `-H`): a recipient waiting
/// for its retry is held (one in delivery is left alone); held, it is not leased, flushed
/// or purged, still counts as in hand, and shows in the shape; released, it is due at once.
#[tokio::test]
async fn a_held_recipient_waits_until_released_and_then_goes_at_once() {
    let (_dir, store) = fresh();
    let id = dave_deferred_erin_leased(&store).await;

    let held = store
        .hold_queued(&QueueSelection::Message(id.clone()), 150)
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].rcpt.as_str(), held[0].state),
        ("dave@b.example", RcptState::Held)
    );
    assert!(
        store
            .hold_queued(&QueueSelection::Message(id.clone()), 150)
            .await
            .unwrap()
            .is_empty(),
        "held once"
    );
    assert_eq!(
        store.flush_queue(300).await.unwrap(),
        0,
        "a flush leaves it held"
    );
    assert!(store
        .lease_due(300, "w2", 900, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.queue_depth().await.unwrap(),
        2,
        "held is still in hand"
    );
    let shape = store.queue_shape(300, vec![300]).await.unwrap();
    let b = shape.iter().find(|s| s.domain == "b.example").unwrap();
    assert_eq!((b.held, b.waiting), (1, 0));
    // erin is relayed and her MDN arrives: only the held recipient keeps the body.
    let done = update(&id, "erin@c.example", RcptState::Dispatched, 400);
    store.update_recipients(vec![done]).await.unwrap();
    let (outbound, _, _) = super::retention::pass(&store, 10_000, 0, 10, 10_000).await;
    assert_eq!(outbound, 0, "a held message's body stays");

    let released = store
        .release_held(&QueueSelection::Message(id.clone()), 500)
        .await
        .unwrap();
    assert_eq!(released.len(), 1);
    assert_eq!(
        (released[0].state, released[0].next_attempt),
        (RcptState::Queued, 500)
    );
    assert!(store
        .release_held(&QueueSelection::Message(id.clone()), 500)
        .await
        .unwrap()
        .is_empty());
    let due = store.lease_due(500, "w2", 900, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].recipients[0].rcpt, "dave@b.example");
    let events: Vec<String> = store
        .events(&id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.rcpt.as_deref() == Some("dave@b.example"))
        .map(|e| e.kind)
        .collect();
    let at = |k: &str| events.iter().position(|e| e == k);
    assert!(
        at("held") < at("released") && at("held").is_some(),
        "{events:?}"
    );
}

/// `hisp queue delete` of a held message fails its held recipients too.
#[tokio::test]
async fn deleting_a_held_message_fails_its_held_recipients() {
    let (_dir, store) = fresh();
    let id = store
        .enqueue(message("<m1@a.example>", &["dave@b.example"], 100))
        .await
        .unwrap();
    assert_eq!(
        store
            .hold_queued(&QueueSelection::Message(id.clone()), 110)
            .await
            .unwrap()
            .len(),
        1
    );
    let gone = store
        .cancel_queued(&id, "deleted by the operator", 150, |g| Some(dsn(g, 150)))
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].state, RcptState::Failed);
    assert_eq!(store.queue_depth().await.unwrap(), 0);
}

/// `hisp queue hold --domain D`: every recipient waiting for D, across messages, and none
/// for another domain; `release --domain D` lets them all go.
#[tokio::test]
async fn a_whole_destination_is_held_and_released() {
    let (_dir, store) = fresh();
    let one = store
        .enqueue(message(
            "<m1@a.example>",
            &["dave@b.example", "erin@c.example"],
            100,
        ))
        .await
        .unwrap();
    let two = store
        .enqueue(message("<m2@a.example>", &["fay@B.example"], 100))
        .await
        .unwrap();
    let b = QueueSelection::Domain("B.Example".into());
    let held = store.hold_queued(&b, 110).await.unwrap();
    let mut got: Vec<(QueueId, String)> = held.into_iter().map(|r| (r.message, r.rcpt)).collect();
    got.sort();
    let mut want = vec![
        (one.clone(), "dave@b.example".to_string()),
        (two.clone(), "fay@b.example".to_string()),
    ];
    want.sort();
    assert_eq!(got, want);
    let due = store.lease_due(120, "w1", 700, 10).await.unwrap();
    assert_eq!(due.len(), 1, "only c.example's recipient goes");
    assert_eq!(due[0].recipients[0].rcpt, "erin@c.example");
    assert_eq!(store.release_held(&b, 130).await.unwrap().len(), 2);
    assert_eq!(store.lease_due(130, "w1", 700, 10).await.unwrap().len(), 2);
}
