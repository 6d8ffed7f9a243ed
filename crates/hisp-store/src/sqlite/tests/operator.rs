//! What the operator commands do to the queue: `hisp queue flush` (due now, counted for a
//! running daemon) and `hisp queue delete` (the recipients still waiting fail).

use super::queue::dsn;
use super::{fresh, message, update};
use crate::{QueueId, RcptState, Store};

/// `hisp queue flush` (Postfix's `postqueue -f`): a recipient waiting for its next retry is
/// due at once, with a `flushed` event; relayed and final recipients are left alone.
#[tokio::test]
async fn flush_makes_recipients_waiting_for_a_retry_due_now() {
    let (_dir, store) = fresh();
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
    let relayed = update(&id, "erin@c.example", RcptState::Relayed, 110);
    store.update_recipients(vec![retry, relayed]).await.unwrap();
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
