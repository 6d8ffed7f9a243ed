//! The inbound spool: spooling, leasing, and `finish_inbound` committing the outcome, the
//! mailbox deliveries and the MDNs together (or none of them); `record_inbound` doing all
//! of it in one step.

use super::{fresh, message};
use crate::{
    EntryKind, InboundDone, InboundState, LeaseTo, NewEvent, NewInbound, NewMailboxEntry, OutKind,
    QueueId, RcptState, Store, StoreError,
};

fn received(now: i64) -> NewInbound {
    NewInbound {
        mail_from: "Dr.Alice@A.example".into(),
        rcpts: vec!["Dr.Bob@B.example".into(), "carol@b.example".into()],
        body: b"Content-Type: application/pkcs7-mime\r\n\r\nsealed".to_vec(),
        peer: "127.0.0.1:40000".into(),
        now,
    }
}

fn delivery(owner: &str, source: &QueueId) -> NewMailboxEntry {
    NewMailboxEntry {
        owner: owner.into(),
        kind: EntryKind::Message,
        message_id: "<m1@a.example>".into(),
        from: "Dr Alice <dr.alice@a.example>".into(),
        subject: "Referral".into(),
        body: b"Subject: Referral\r\n\r\nplain".to_vec(),
        wants_dispatched: true,
        source: Some(source.clone()),
        now: 120,
    }
}

fn delivered(id: &QueueId) -> InboundDone {
    let mut mdn = message("<mdn1@b.example>", &["dr.alice@a.example"], 120);
    mdn.kind = OutKind::Notification;
    mdn.via = "mdn".into();
    InboundDone {
        id: id.clone(),
        state: InboundState::Delivered,
        reason: None,
        deliveries: vec![
            delivery("dr.bob@b.example", id),
            delivery("carol@b.example", id),
        ],
        then: vec![mdn],
        events: vec![NewEvent {
            message: id.clone(),
            rcpt: Some("Dr.Bob@b.example".into()),
            kind: "delivered".into(),
            detail: "mailbox".into(),
            at: 120,
        }],
        notices: vec![],
        lease_then: None,
        now: 120,
    }
}

/// The kinds of `id`'s timeline events, oldest first.
async fn event_kinds(store: &crate::sqlite::SqliteStore, id: &QueueId) -> Vec<String> {
    let events = store.events(id).await.unwrap();
    events.into_iter().map(|e| e.kind).collect()
}

fn quarantine(id: &QueueId, reason: &str, now: i64) -> InboundDone {
    InboundDone {
        id: id.clone(),
        state: InboundState::Quarantined,
        reason: Some(reason.into()),
        deliveries: vec![],
        then: vec![],
        events: vec![],
        notices: vec![],
        lease_then: None,
        now,
    }
}

#[tokio::test]
async fn spool_lease_and_finish_commit_everything_together() {
    let (_dir, store) = fresh();
    let id = store.spool_inbound(received(100)).await.unwrap();
    assert!(id.0.starts_with("i-") && id.0.len() == 18, "{id}");

    let leased = store.lease_inbound(100, "w1", 400, 10).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].id, id);
    assert_eq!(leased[0].body, received(100).body);
    assert_eq!(leased[0].rcpts, ["dr.bob@b.example", "carol@b.example"]);
    assert_eq!(leased[0].mail_from, "dr.alice@a.example");
    assert_eq!(leased[0].state, InboundState::Spooled);
    assert!(
        store
            .lease_inbound(200, "w2", 500, 10)
            .await
            .unwrap()
            .is_empty(),
        "still leased"
    );

    let queued = store.finish_inbound(delivered(&id)).await.unwrap().queued;
    assert_eq!(queued.len(), 1);

    // All of it landed: mailboxes, the MDN with its recipient row, the timeline.
    assert_eq!(
        store
            .mailbox("dr.bob@b.example", false)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.mailbox("carol@b.example", false).await.unwrap().len(),
        1
    );
    assert!(queued[0].leases.is_empty() && queued[0].body.is_empty());
    let mdn = store.outbound(&queued[0].id).await.unwrap().unwrap();
    assert_eq!(mdn.kind, OutKind::Notification);
    assert_eq!(mdn.recipients[0].state, RcptState::Queued);
    assert_eq!(store.lease_due(120, "w1", 700, 10).await.unwrap().len(), 1);
    assert_eq!(event_kinds(&store, &id).await, ["received", "delivered"]);
    assert!(
        store
            .lease_inbound(10_000, "w2", 10_400, 10)
            .await
            .unwrap()
            .is_empty(),
        "finished"
    );

    // A second finish (a worker whose lease ran out) fails, and rolls back its own
    // deliveries and MDNs with it: nothing is delivered twice.
    let err = store.finish_inbound(delivered(&id)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "spooled inbound message",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        store.mailbox("dr.bob@b.example", true).await.unwrap().len(),
        1
    );
    assert_eq!(store.list_outbound(100).await.unwrap().len(), 1);
    assert_eq!(store.events(&id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn record_commits_receipt_and_outcome_at_once_with_leased_mdns() {
    let (_dir, store) = fresh();
    let id = QueueId::fresh('i');
    let mut done = delivered(&id);
    done.lease_then = Some(LeaseTo {
        owner: "w1".into(),
        until: 700,
    });
    let mut msg = received(100);
    msg.body.clear();
    let queued = store.record_inbound(msg, done).await.unwrap().queued;

    // The MDN comes back leased with its body, ready to deliver; the queue does not offer
    // it to anyone else until the lease runs out.
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].leases.len(), 1);
    assert_eq!(queued[0].leases[0].domain, "a.example");
    assert_eq!(queued[0].leases[0].recipients[0].rcpt, "dr.alice@a.example");
    assert_eq!(queued[0].leases[0].kind, OutKind::Notification);
    assert!(!queued[0].body.is_empty());
    assert!(store
        .lease_due(699, "w2", 900, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.lease_due(701, "w2", 900, 10).await.unwrap().len(), 1);

    assert_eq!(
        store.mailbox("carol@b.example", false).await.unwrap().len(),
        1
    );
    assert_eq!(event_kinds(&store, &id).await, ["received", "delivered"]);
    // Nothing is left for the inbound workers.
    assert!(store
        .lease_inbound(100, "w1", 400, 10)
        .await
        .unwrap()
        .is_empty());

    // The same id twice is refused whole (a retransmission gets a new id).
    let mut again = delivered(&id);
    again.lease_then = None;
    assert!(store.record_inbound(received(100), again).await.is_err());
    assert_eq!(
        store.mailbox("dr.bob@b.example", true).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn record_keeps_the_sealed_body_of_quarantined_mail() {
    let (_dir, store) = fresh();
    let id = QueueId::fresh('i');
    let done = quarantine(&id, "untrusted signer", 100);
    assert!(store
        .record_inbound(received(100), done)
        .await
        .unwrap()
        .queued
        .is_empty());
    let listed = store.quarantined(10).await.unwrap();
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].reason.as_deref(), Some("untrusted signer"));
    assert_eq!(listed[0].rcpts, ["dr.bob@b.example", "carol@b.example"]);
}

#[tokio::test]
async fn quarantine_keeps_the_reason_and_lists_without_body() {
    let (_dir, store) = fresh();
    let first = store.spool_inbound(received(100)).await.unwrap();
    let second = store.spool_inbound(received(110)).await.unwrap();
    for (id, reason) in [(&first, "untrusted signer"), (&second, "cannot decrypt")] {
        let done = quarantine(id, reason, 130);
        assert!(store.finish_inbound(done).await.unwrap().queued.is_empty());
    }
    let listed = store.quarantined(10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, second, "newest first");
    assert_eq!(listed[0].reason.as_deref(), Some("cannot decrypt"));
    assert_eq!(listed[0].state, InboundState::Quarantined);
    assert!(listed[0].body.is_empty());
    assert_eq!(listed[0].rcpts.len(), 2);
    assert_eq!(store.quarantined(1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn inbound_lease_expires_and_unknown_finish_fails() {
    let (_dir, store) = fresh();
    let id = store.spool_inbound(received(100)).await.unwrap();
    assert_eq!(
        store.lease_inbound(100, "w1", 160, 10).await.unwrap().len(),
        1
    );
    assert!(store
        .lease_inbound(160, "w2", 220, 10)
        .await
        .unwrap()
        .is_empty());
    let again = store.lease_inbound(161, "w2", 221, 10).await.unwrap();
    assert_eq!(again[0].id, id);

    let err = store
        .finish_inbound(delivered(&QueueId("i-0000000000000000".into())))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert!(store
        .mailbox("dr.bob@b.example", true)
        .await
        .unwrap()
        .is_empty());
    assert!(store.list_outbound(10).await.unwrap().is_empty());
}

/// The operator's way out of quarantine (`hisp quarantine release`): the message goes back
/// to the spool with its sealed body, a worker leases and opens it again, and once
/// delivered it cannot be released a second time.
#[tokio::test]
async fn release_puts_a_quarantined_message_back_in_the_spool() {
    let (_dir, store) = fresh();
    let id = QueueId::fresh('i');
    let done = quarantine(&id, "untrusted signer", 100);
    store.record_inbound(received(100), done).await.unwrap();
    let kept = store.inbound(&id).await.unwrap().unwrap();
    assert_eq!(kept.state, InboundState::Quarantined);
    assert_eq!(kept.body, received(100).body);
    assert_eq!(kept.reason.as_deref(), Some("untrusted signer"));

    assert!(store.release_quarantined(&id, 200).await.unwrap());
    assert!(store.quarantined(10).await.unwrap().is_empty());
    let leased = store.lease_inbound(200, "w1", 800, 10).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!((&leased[0].id, &leased[0].body), (&id, &received(100).body));
    assert_eq!(leased[0].reason, None);
    store.finish_inbound(delivered(&id)).await.unwrap();

    assert!(
        !store.release_quarantined(&id, 300).await.unwrap(),
        "delivered"
    );
    assert!(store.inbound(&id).await.unwrap().unwrap().body.is_empty());
    let unknown = QueueId("i-0000000000000000".into());
    assert!(!store.release_quarantined(&unknown, 300).await.unwrap());
    assert_eq!(store.inbound(&unknown).await.unwrap(), None);
    let kinds = event_kinds(&store, &id).await;
    assert!(kinds.contains(&"released".to_string()), "{kinds:?}");
}

/// Without the sealed message there is nothing to open again: the release says so.
#[tokio::test]
async fn release_refuses_a_quarantined_message_whose_body_was_not_kept() {
    let (_dir, store) = fresh();
    let id = QueueId::fresh('i');
    let mut msg = received(100);
    msg.body.clear();
    store
        .record_inbound(msg, quarantine(&id, "cannot decrypt", 100))
        .await
        .unwrap();
    let err = store.release_quarantined(&id, 200).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert_eq!(
        store.quarantined(10).await.unwrap().len(),
        1,
        "still quarantined"
    );
}
