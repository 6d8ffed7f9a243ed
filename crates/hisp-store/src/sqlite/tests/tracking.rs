//! Notices carried by inbound outcomes (Direct IG for Delivery Notification §3: the
//! sender's HISP tracks `processed`, `dispatched` and failures per recipient): each counts
//! once, states only move forward, and a repeated notification is not delivered again.

use super::{fresh, message, update, SqliteStore};
use crate::{
    EntryKind, InboundDone, InboundState, NewInbound, NewMailboxEntry, Notice, QueueId, RcptState,
    RcptUpdate, Store,
};

fn notice(msg: &QueueId, kind: &str, state: RcptState) -> Notice {
    Notice {
        original_message_id: "<m1@a.example>".into(),
        message: msg.clone(),
        rcpt: "Bob@B.example".into(),
        kind: kind.into(),
        state,
        deadline: None,
        detail: format!("{kind} MDN from bob@b.example"),
    }
}

/// Receive one notification carrying `notice`, delivered to the sender's mailbox.
async fn receive(store: &SqliteStore, n: Notice, now: i64) -> (usize, usize) {
    let id = QueueId::fresh('i');
    let done = InboundDone {
        id: id.clone(),
        state: InboundState::Delivered,
        reason: None,
        deliveries: vec![NewMailboxEntry {
            owner: "dr.alice@direct.a.example".into(),
            kind: EntryKind::Mdn,
            message_id: format!("<mdn-{now}@b.example>"),
            from: "bob@b.example".into(),
            subject: "Processed".into(),
            body: b"MDN".to_vec(),
            wants_dispatched: false,
            source: Some(id),
            now,
        }],
        then: vec![],
        events: vec![],
        notices: vec![n],
        lease_then: None,
        now,
    };
    let msg = NewInbound {
        mail_from: "bob@b.example".into(),
        rcpts: vec!["dr.alice@direct.a.example".into()],
        body: Vec::new(),
        peer: "127.0.0.1:1".into(),
        now,
    };
    let c = store.record_inbound(msg, done).await.unwrap();
    (c.notices_new, c.notices_repeated)
}

async fn state(store: &SqliteStore, id: &QueueId) -> (RcptState, Option<String>) {
    let r = store.outbound(id).await.unwrap().unwrap().recipients[0].clone();
    (r.state, r.last_error)
}

async fn mailbox_len(store: &SqliteStore) -> usize {
    let owner = "dr.alice@direct.a.example";
    store.mailbox(owner, true).await.unwrap().len()
}

#[tokio::test]
async fn notices_count_once_and_repeats_are_not_delivered_again() {
    let (_dir, store) = fresh();
    let id = store
        .enqueue(message("<m1@a.example>", &["bob@b.example"], 100))
        .await
        .unwrap();
    let processed = notice(&id, "processed", RcptState::Processed);
    assert_eq!(receive(&store, processed.clone(), 110).await, (1, 0));
    assert_eq!(state(&store, &id).await.0, RcptState::Processed);
    assert_eq!(mailbox_len(&store).await, 1);

    assert_eq!(receive(&store, processed, 120).await, (0, 1));
    assert_eq!(mailbox_len(&store).await, 1, "a repeat is not delivered");
    let kinds: Vec<_> = store.events(&id).await.unwrap();
    let kinds: Vec<_> = kinds.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["submitted", "processed"]);
}

/// `dispatched` committed before `processed` (two MDNs racing) stays `dispatched`;
/// a failure after `dispatched` changes nothing; a failure after `processed` wins.
#[tokio::test]
async fn states_only_move_forward_whatever_the_commit_order() {
    let (_dir, store) = fresh();
    let first = store
        .enqueue(message("<m1@a.example>", &["bob@b.example"], 100))
        .await
        .unwrap();
    receive(
        &store,
        notice(&first, "dispatched", RcptState::Dispatched),
        110,
    )
    .await;
    receive(
        &store,
        notice(&first, "processed", RcptState::Processed),
        111,
    )
    .await;
    assert_eq!(state(&store, &first).await.0, RcptState::Dispatched);
    receive(&store, notice(&first, "failed", RcptState::Failed), 112).await;
    assert_eq!(state(&store, &first).await.0, RcptState::Dispatched);

    let (_dir2, store) = fresh();
    let second = store
        .enqueue(message("<m1@a.example>", &["bob@b.example"], 100))
        .await
        .unwrap();
    receive(
        &store,
        notice(&second, "processed", RcptState::Processed),
        110,
    )
    .await;
    receive(&store, notice(&second, "failed", RcptState::Failed), 111).await;
    let (s, why) = state(&store, &second).await;
    assert_eq!(s, RcptState::Failed);
    assert_eq!(why.as_deref(), Some("failed MDN from bob@b.example"));
}

/// The peer's `processed` MDN is committed before our own record of its `250`: the late
/// `relayed` update must not move the recipient back (it would then wait for an MDN that
/// already came, and fail at the timeout).
#[tokio::test]
async fn an_mdn_overtaking_the_relayed_record_is_not_undone() {
    let (_dir, store) = fresh();
    let id = store
        .enqueue(message("<m1@a.example>", &["bob@b.example"], 100))
        .await
        .unwrap();
    receive(&store, notice(&id, "processed", RcptState::Processed), 110).await;
    let relayed = RcptUpdate {
        deadline: Some(3710),
        detail: "250 OK".into(),
        ..update(&id, "bob@b.example", RcptState::Relayed, 110)
    };
    store.update_recipients(vec![relayed]).await.unwrap();
    let r = store.outbound(&id).await.unwrap().unwrap().recipients[0].clone();
    assert_eq!((r.state, r.deadline), (RcptState::Processed, None));
    let events = store.events(&id).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["submitted", "processed", "relayed"]);
}

/// Direct IG "timely and reliable": the timeout fails a recipient only while it is still
/// overdue. A `processed` MDN applied between the tracker's read and its write wins, and
/// no failure DSN goes; a recipient still waiting past its deadline fails, with its DSN.
#[tokio::test]
async fn a_timeout_does_not_overwrite_an_mdn_applied_meanwhile() {
    let (_dir, store) = fresh();
    let id = store
        .enqueue(message("<m1@a.example>", &["bob@b.example"], 100))
        .await
        .unwrap();
    let relayed = RcptUpdate {
        deadline: Some(200),
        ..update(&id, "bob@b.example", RcptState::Relayed, 110)
    };
    store.update_recipients(vec![relayed]).await.unwrap();
    let overdue = store.overdue(300, 10).await.unwrap();
    assert_eq!(overdue.len(), 1, "read by the tracker at 300");
    let timeout = RcptUpdate {
        last_error: Some("no processed MDN".into()),
        event: "timeout".into(),
        ..update(&id, "bob@b.example", RcptState::Failed, 300)
    };
    let dsn = NewMailboxEntry {
        owner: "dr.alice@direct.a.example".into(),
        kind: EntryKind::Dsn,
        message_id: "<dsn@a.example>".into(),
        from: "mailer-daemon@direct.a.example".into(),
        subject: "Delivery Status Notification (Failure)".into(),
        body: b"DSN".to_vec(),
        wants_dispatched: false,
        source: Some(id.clone()),
        now: 300,
    };

    // The MDN lands first: the timeout changes nothing and sends nothing.
    receive(&store, notice(&id, "processed", RcptState::Processed), 299).await;
    let failed = store
        .fail_overdue(timeout.clone(), RcptState::Relayed, dsn.clone())
        .await
        .unwrap();
    assert!(!failed);
    assert_eq!(state(&store, &id).await.0, RcptState::Processed);
    assert_eq!(mailbox_len(&store).await, 1, "the MDN only, no DSN");

    // Still waiting past the deadline: failed, with the DSN in the same commit.
    let other = store
        .enqueue(message("<m2@a.example>", &["bob@b.example"], 100))
        .await
        .unwrap();
    let relayed = RcptUpdate {
        deadline: Some(200),
        ..update(&other, "bob@b.example", RcptState::Relayed, 110)
    };
    store.update_recipients(vec![relayed]).await.unwrap();
    let timeout = RcptUpdate {
        message: other.clone(),
        ..timeout
    };
    assert!(store
        .fail_overdue(timeout, RcptState::Relayed, dsn)
        .await
        .unwrap());
    let (s, why) = state(&store, &other).await;
    assert_eq!(
        (s, why.as_deref()),
        (RcptState::Failed, Some("no processed MDN"))
    );
    assert_eq!(mailbox_len(&store).await, 2);
}
