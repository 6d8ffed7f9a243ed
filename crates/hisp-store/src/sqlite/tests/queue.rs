//! The outbound queue: enqueue, leases, recipient updates, tracking (overdue, MDN
//! matching), listings and the queue-depth metric.

use super::{fresh, message, update};
use crate::{
    EntryKind, LeaseTo, NewEvent, NewMailboxEntry, OutKind, OutRecipient, QueueId, RcptState,
    Share, Store, StoreError,
};

/// A DSN for the sender of the messages made by `message`, naming `rcpts`.
pub(super) fn dsn(rcpts: &[OutRecipient], now: i64) -> NewMailboxEntry {
    let names: Vec<&str> = rcpts.iter().map(|r| r.rcpt.as_str()).collect();
    NewMailboxEntry {
        owner: "dr.alice@direct.a.example".into(),
        kind: EntryKind::Dsn,
        message_id: format!("<dsn-{now}@a.example>"),
        from: "mailer-daemon@direct.a.example".into(),
        subject: "Delivery Status Notification (Failure)".into(),
        body: format!("failed: {}\r\n", names.join(", ")).into_bytes(),
        wants_dispatched: false,
        source: None,
        now,
    }
}

#[tokio::test]
async fn enqueue_lease_relay_overdue_find_recipient() {
    let (_dir, store) = fresh();
    let rcpts = [
        "Dr.Bob@B.example",
        "dr.bob@b.example",
        "carol@c.example",
        "dave@B.EXAMPLE",
    ];
    let id = store
        .enqueue(message("<m1@a.example>", &rcpts, 100))
        .await
        .unwrap();
    assert!(id.0.starts_with("o-") && id.0.len() == 18, "{id}");

    let stored = store.outbound(&id).await.unwrap().unwrap();
    assert_eq!(stored.sender, "dr.alice@direct.a.example");
    assert_eq!(stored.kind, OutKind::Message);
    assert_eq!(stored.created, 100);
    let body = store.outbound_body(&id).await.unwrap().unwrap();
    assert_eq!(stored.size, body.len() as u64);
    let names: Vec<_> = stored.recipients.iter().map(|r| r.rcpt.as_str()).collect();
    assert_eq!(
        names,
        ["dr.bob@b.example", "carol@c.example", "dave@b.example"]
    );
    assert!(stored
        .recipients
        .iter()
        .all(|r| r.state == RcptState::Queued
            && r.attempts == 0
            && r.next_attempt == 100
            && r.wants_dispatched));
    assert_eq!(store.queue_depth().await.unwrap(), 3);
    assert_eq!(store.events(&id).await.unwrap()[0].kind, "submitted");

    // Not due before `now`; then one lease per (message, domain), in submission order.
    assert!(store.lease_due(99, "w1", 700, 10).await.unwrap().is_empty());
    let leases = store.lease_due(100, "w1", 700, 10).await.unwrap();
    assert_eq!(leases.len(), 2);
    assert_eq!(leases[0].domain, "b.example");
    assert_eq!(leases[0].message_id, "<m1@a.example>");
    let leased: Vec<_> = leases[0]
        .recipients
        .iter()
        .map(|r| r.rcpt.as_str())
        .collect();
    assert_eq!(leased, ["dr.bob@b.example", "dave@b.example"]);
    assert_eq!(leases[1].domain, "c.example");

    // Sealed once per domain.
    store
        .store_sealed(&id, "B.example", b"sealed for b", "certs of b")
        .await
        .unwrap();
    let copy = store.sealed(&id, "b.example").await.unwrap().unwrap();
    assert_eq!(
        (copy.body.as_slice(), copy.certs.as_str()),
        (&b"sealed for b"[..], "certs of b")
    );
    assert_eq!(store.sealed(&id, "c.example").await.unwrap(), None);

    let mut relayed = update(&id, "DR.BOB@b.example", RcptState::Relayed, 110);
    relayed.deadline = Some(3710);
    relayed.detail = "250 2.0.0 ok".into();
    let mut retry = update(&id, "dave@b.example", RcptState::Queued, 110);
    retry.next_attempt = 230;
    retry.last_error = Some("451 4.3.0 try later".into());
    let failed = update(&id, "carol@c.example", RcptState::Failed, 110);
    store
        .update_recipients(vec![relayed, retry, failed])
        .await
        .unwrap();

    // Leases were released, but dave is not due again until 230.
    assert!(store
        .lease_due(200, "w2", 800, 10)
        .await
        .unwrap()
        .is_empty());
    let again = store.lease_due(230, "w2", 800, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].recipients[0].rcpt, "dave@b.example");
    assert_eq!(again[0].recipients[0].attempts, 1);
    assert_eq!(
        again[0].recipients[0].last_error.as_deref(),
        Some("451 4.3.0 try later")
    );

    assert!(
        store.overdue(3710, 10).await.unwrap().is_empty(),
        "deadline not yet passed"
    );
    let overdue = store.overdue(3711, 10).await.unwrap();
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0].rcpt, "dr.bob@b.example");

    let found = store
        .find_recipient("<m1@a.example>", "Dr.Bob@B.Example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.message.clone(), found.state, found.deadline),
        (id.clone(), RcptState::Relayed, Some(3710))
    );
    assert_eq!(
        store
            .find_recipient("<other@a.example>", "dr.bob@b.example")
            .await
            .unwrap(),
        None
    );

    // relayed + queued count; processed counts while dispatched is awaited (the daemon gives
    // it a deadline then).
    assert_eq!(store.queue_depth().await.unwrap(), 2);
    let mut processed = update(&id, "dr.bob@b.example", RcptState::Processed, 120);
    processed.deadline = Some(3720);
    store.update_recipients(vec![processed]).await.unwrap();
    assert_eq!(store.queue_depth().await.unwrap(), 2);
    store
        .update_recipients(vec![update(
            &id,
            "dr.bob@b.example",
            RcptState::Dispatched,
            130,
        )])
        .await
        .unwrap();
    assert_eq!(store.queue_depth().await.unwrap(), 1);

    let events = store.events(&id).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "submitted",
            "relayed",
            "queued",
            "failed",
            "processed",
            "dispatched"
        ]
    );
    assert_eq!(events[1].rcpt.as_deref(), Some("dr.bob@b.example"));
    assert_eq!(events[1].detail, "250 2.0.0 ok");
}

#[tokio::test]
async fn update_recipients_is_all_or_nothing() {
    let (_dir, store) = fresh();
    let id = store
        .enqueue(message("<m@a.example>", &["bob@b.example"], 100))
        .await
        .unwrap();
    let good = update(&id, "bob@b.example", RcptState::Relayed, 110);
    let unknown = update(&id, "nobody@b.example", RcptState::Relayed, 110);
    let err = store
        .update_recipients(vec![good, unknown])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "recipient",
                ..
            }
        ),
        "{err}"
    );
    let stored = store.outbound(&id).await.unwrap().unwrap();
    assert_eq!(
        stored.recipients[0].state,
        RcptState::Queued,
        "the good update rolled back too"
    );
    assert_eq!(store.events(&id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn lease_is_not_handed_out_twice_until_it_expires() {
    let (_dir, store) = fresh();
    store
        .enqueue(message("<m@a.example>", &["bob@b.example"], 100))
        .await
        .unwrap();
    let first = store.lease_due(100, "node-1", 160, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(store
        .lease_due(120, "node-2", 180, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(
        store
            .lease_due(150, "node-1", 210, 10)
            .await
            .unwrap()
            .is_empty(),
        "not even to its owner"
    );
    assert!(
        store
            .lease_due(160, "node-2", 220, 10)
            .await
            .unwrap()
            .is_empty(),
        "expires after lease_until"
    );
    let second = store.lease_due(161, "node-2", 221, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    let key = |l: &crate::Lease| {
        l.recipients
            .iter()
            .map(|r| (r.rcpt.clone(), r.attempts))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&second[0]), key(&first[0]));
    // While leased, a recipient is due only when its lease runs out.
    assert_eq!(second[0].recipients[0].next_attempt, 160);
}

/// A daemon restarted under the same name takes its leases back at once; another node's
/// leases stay.
#[tokio::test]
async fn release_leases_frees_only_the_owners_leases() {
    let (_dir, store) = fresh();
    store
        .enqueue(message("<m1@a.example>", &["bob@b.example"], 100))
        .await
        .unwrap();
    store
        .enqueue(message("<m2@a.example>", &["bob@c.example"], 100))
        .await
        .unwrap();
    assert_eq!(
        store.lease_due(100, "node-1", 700, 1).await.unwrap().len(),
        1
    );
    assert_eq!(
        store.lease_due(100, "node-2", 700, 1).await.unwrap().len(),
        1
    );
    assert_eq!(store.release_leases("node-1").await.unwrap(), 1);
    let again = store.lease_due(101, "node-1", 701, 10).await.unwrap();
    assert_eq!(
        again.len(),
        1,
        "node-1's work is free again; node-2's is not"
    );
}

/// A message queued leased comes back as `lease_due` would have leased it (one lease per
/// domain), stays out of everyone's reach while leased, and is due again when the lease
/// runs out or its owner restarts.
#[tokio::test]
async fn enqueue_leased_hands_back_leases_and_body() {
    let (_dir, store) = fresh();
    let msg = message(
        "<m1@a.example>",
        &["bob@b.example", "carol@c.example", "Dave@B.example"],
        100,
    );
    let body = msg.body.clone();
    let lease = LeaseTo {
        owner: "node-1".into(),
        until: 700,
    };
    let queued = store.enqueue_leased(msg, lease).await.unwrap();
    assert_eq!(queued.body, body);
    let groups: Vec<(String, Vec<String>)> = queued
        .leases
        .iter()
        .map(|l| {
            let names = l.recipients.iter().map(|r| r.rcpt.clone()).collect();
            (l.domain.clone(), names)
        })
        .collect();
    assert_eq!(
        groups,
        [
            (
                "b.example".to_string(),
                vec!["bob@b.example".to_string(), "dave@b.example".to_string()]
            ),
            ("c.example".to_string(), vec!["carol@c.example".to_string()])
        ]
    );
    let l = &queued.leases[0];
    assert_eq!(l.message, queued.id);
    assert_eq!(l.sender, "dr.alice@direct.a.example");
    assert_eq!((l.created, l.kind), (100, OutKind::Message));
    assert_eq!(store.queue_depth().await.unwrap(), 3);
    assert!(store
        .lease_due(699, "node-2", 900, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.release_leases("node-1").await.unwrap(), 3);
    assert_eq!(
        store.lease_due(101, "node-2", 900, 10).await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn lease_due_takes_at_most_limit_groups_oldest_first() {
    let (_dir, store) = fresh();
    let late = store
        .enqueue(message("<late@a.example>", &["x@b.example"], 50))
        .await
        .unwrap();
    let early = store
        .enqueue(message("<early@a.example>", &["y@b.example"], 10))
        .await
        .unwrap();
    store
        .enqueue(message("<mid@a.example>", &["z@b.example"], 30))
        .await
        .unwrap();
    let leases = store.lease_due(100, "w", 200, 2).await.unwrap();
    let ids: Vec<_> = leases.iter().map(|l| l.message.clone()).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], early);
    assert!(!ids.contains(&late));
    assert_eq!(store.lease_due(100, "w", 200, 2).await.unwrap().len(), 1);
    assert!(store.lease_due(100, "w", 200, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn find_recipient_skips_notifications_and_prefers_the_newest() {
    let (_dir, store) = fresh();
    let old = store
        .enqueue(message("<same@a.example>", &["bob@b.example"], 100))
        .await
        .unwrap();
    let new = store
        .enqueue(message("<same@a.example>", &["bob@b.example"], 200))
        .await
        .unwrap();
    let mut mdn = message("<same@a.example>", &["bob@b.example"], 300);
    mdn.kind = OutKind::Notification;
    store.enqueue(mdn).await.unwrap();
    let found = store
        .find_recipient("<same@a.example>", "bob@b.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.message, new);
    assert_ne!(found.message, old);

    let mut only_mdn = message("<mdn-only@a.example>", &["bob@b.example"], 300);
    only_mdn.kind = OutKind::Notification;
    store.enqueue(only_mdn).await.unwrap();
    assert_eq!(
        store
            .find_recipient("<mdn-only@a.example>", "bob@b.example")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn list_outbound_newest_first_with_recipients_in_order() {
    let (_dir, store) = fresh();
    let a = store
        .enqueue(message(
            "<a@a.example>",
            &["x@b.example", "w@c.example"],
            10,
        ))
        .await
        .unwrap();
    let b = store
        .enqueue(message("<b@a.example>", &["y@b.example"], 20))
        .await
        .unwrap();
    let c = store
        .enqueue(message("<c@a.example>", &[], 20))
        .await
        .unwrap();
    let all = store.list_outbound(10).await.unwrap();
    let ids: Vec<_> = all.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, [c, b, a.clone()]);
    assert!(all[0].recipients.is_empty());
    let rcpts: Vec<_> = all[2].recipients.iter().map(|r| r.rcpt.as_str()).collect();
    assert_eq!(rcpts, ["x@b.example", "w@c.example"]);
    assert_eq!(store.list_outbound(2).await.unwrap().len(), 2);
    assert_eq!(
        store
            .outbound(&QueueId("o-0000000000000000".into()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .outbound_body(&QueueId("o-0000000000000000".into()))
            .await
            .unwrap(),
        None
    );

    store
        .add_event(NewEvent {
            message: a.clone(),
            rcpt: None,
            kind: "note".into(),
            detail: "operator".into(),
            at: 5,
        })
        .await
        .unwrap();
    assert_eq!(
        store.events(&a).await.unwrap()[0].kind,
        "note",
        "oldest first by time"
    );
}

#[tokio::test]
async fn store_sealed_for_unknown_message_is_not_found() {
    let (_dir, store) = fresh();
    let err = store
        .store_sealed(&QueueId("o-0000000000000000".into()), "b.example", b"x", "")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

/// Sharing the delivery slots among destinations: a domain at its concurrency limit is
/// passed over (the next domain's mail is leased though older mail of the full one waits),
/// and a lease takes no more of a domain's groups than its room.
#[tokio::test]
async fn a_shared_lease_passes_over_full_domains_and_caps_each_domain() {
    let (_dir, store) = fresh();
    for (i, to) in [
        "a@b.example",
        "b@b.example",
        "c@b.example",
        "d@c.example",
        "e@c.example",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("<m{i}@a.example>");
        store
            .enqueue(message(&id, &[to], 100 + i as i64))
            .await
            .unwrap();
    }
    let domains = |leases: &[crate::Lease]| -> Vec<String> {
        leases.iter().map(|l| l.domain.clone()).collect()
    };
    // Two deliveries to b under way, two allowed: b's mail waits, c's goes.
    let b_full = Share {
        in_flight: vec![("B.example".into(), 2)],
        per_domain: 2,
    };
    let got = store
        .lease_due_shared(200, "w1", 800, 10, b_full)
        .await
        .unwrap();
    assert_eq!(domains(&got), ["c.example", "c.example"]);
    // One under way, two allowed: one more of b's.
    let b_room = Share {
        in_flight: vec![("b.example".into(), 1)],
        per_domain: 2,
    };
    let got = store
        .lease_due_shared(200, "w2", 800, 10, b_room)
        .await
        .unwrap();
    assert_eq!(domains(&got), ["b.example"], "c's were leased above");
    let got = store.lease_due(200, "w3", 800, 10).await.unwrap();
    assert_eq!(domains(&got), ["b.example", "b.example"]);
}

/// A failure and the DSN that tells the sender commit together, or neither does (an
/// update for a recipient the message does not have fails the whole call).
#[tokio::test]
async fn failures_and_their_dsns_commit_together() {
    let (_dir, store) = fresh();
    let id = store
        .enqueue(message("<m1@a.example>", &["dave@b.example"], 100))
        .await
        .unwrap();
    let failed = update(&id, "dave@b.example", RcptState::Failed, 110);
    let stranger = update(&id, "nobody@b.example", RcptState::Failed, 110);
    let r = store.outbound(&id).await.unwrap().unwrap().recipients;
    let err = store
        .update_recipients_notifying(vec![failed.clone(), stranger], vec![dsn(&r, 110)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let alice = "dr.alice@direct.a.example";
    assert!(store.mailbox(alice, true).await.unwrap().is_empty());
    let state = store.outbound(&id).await.unwrap().unwrap().recipients[0].state;
    assert_eq!(state, RcptState::Queued, "rolled back with the DSN");

    store
        .update_recipients_notifying(vec![failed], vec![dsn(&r, 120)])
        .await
        .unwrap();
    assert_eq!(store.mailbox(alice, true).await.unwrap().len(), 1);
    let state = store.outbound(&id).await.unwrap().unwrap().recipients[0].state;
    assert_eq!(state, RcptState::Failed);
}
