//! Mailboxes (deliver, list, pick up exactly once) and notification de-duplication.

use super::fresh;
use crate::{EntryKind, NewMailboxEntry, QueueId, Store};

fn entry(owner: &str, subject: &str, now: i64) -> NewMailboxEntry {
    NewMailboxEntry {
        owner: owner.into(),
        kind: EntryKind::Mdn,
        message_id: format!("<{subject}@b.example>"),
        from: "postmaster@b.example".into(),
        subject: subject.into(),
        body: format!("Subject: {subject}\r\n\r\nbody").into_bytes(),
        wants_dispatched: false,
        source: Some(QueueId("i-00000000000000aa".into())),
        now,
    }
}

#[tokio::test]
async fn deliver_list_and_pick_up_once() {
    let (_dir, store) = fresh();
    let first = store
        .deliver(entry("Dr.Bob@B.example", "one", 10))
        .await
        .unwrap();
    let second = store
        .deliver(entry("dr.bob@b.example", "two", 20))
        .await
        .unwrap();
    store
        .deliver(entry("carol@b.example", "three", 30))
        .await
        .unwrap();

    let listed = store.mailbox("DR.BOB@b.example", false).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|e| e.id).collect();
    assert_eq!(ids, [first, second], "oldest first, only the owner's");
    assert!(listed[0].body.is_empty(), "listings carry no body");
    assert_eq!(listed[0].size, "Subject: one\r\n\r\nbody".len() as u64);
    assert_eq!(listed[0].kind, EntryKind::Mdn);
    assert_eq!(listed[0].owner, "dr.bob@b.example");
    assert_eq!(listed[0].source, Some(QueueId("i-00000000000000aa".into())));

    assert_eq!(
        store.mailbox_entry("carol@b.example", first).await.unwrap(),
        None
    );
    let full = store
        .mailbox_entry("dr.bob@b.example", first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(full.body, b"Subject: one\r\n\r\nbody");

    assert_eq!(
        store
            .mark_picked_up("carol@b.example", first, 40)
            .await
            .unwrap(),
        None
    );
    let picked = store
        .mark_picked_up("Dr.Bob@b.example", first, 40)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(picked.picked_up, Some(40));
    // Without the body, as in a listing: the pickup runs on the writer thread and needs
    // only the header fields (for a dispatched MDN).
    assert!(picked.body.is_empty());
    assert_eq!(picked.size, full.size);
    assert_eq!(picked.message_id, full.message_id);
    assert_eq!(
        store
            .mark_picked_up("dr.bob@b.example", first, 50)
            .await
            .unwrap(),
        None,
        "only once"
    );

    let waiting = store.mailbox("dr.bob@b.example", false).await.unwrap();
    assert_eq!(waiting.iter().map(|e| e.id).collect::<Vec<_>>(), [second]);
    assert_eq!(
        store.mailbox("dr.bob@b.example", true).await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn notifications_are_deduplicated_per_message_recipient_and_kind() {
    let (_dir, store) = fresh();
    let mid = "<m1@a.example>";
    assert!(store
        .note_notification(mid, "Bob@B.example", "processed", 1)
        .await
        .unwrap());
    assert!(!store
        .note_notification(mid, "bob@b.example", "processed", 2)
        .await
        .unwrap());
    assert!(store
        .note_notification(mid, "bob@b.example", "dispatched", 3)
        .await
        .unwrap());
    assert!(store
        .note_notification(mid, "carol@b.example", "processed", 4)
        .await
        .unwrap());
    assert!(store
        .note_notification("<m2@a.example>", "bob@b.example", "processed", 5)
        .await
        .unwrap());
}

/// A sender that did not see our 250 sends again; the owner gets the message once.
#[tokio::test]
async fn same_message_for_same_owner_is_delivered_once() {
    let (_dir, store) = fresh();
    let mut m = entry("dr.bob@b.example", "one", 10);
    m.kind = EntryKind::Message;
    let first = store.deliver(m.clone()).await.unwrap();
    let again = store.deliver(m.clone()).await.unwrap();
    assert_eq!(first, again);
    let mut other_owner = m.clone();
    other_owner.owner = "carol@b.example".into();
    assert_ne!(store.deliver(other_owner).await.unwrap(), first);
    assert_eq!(
        store.mailbox("dr.bob@b.example", true).await.unwrap().len(),
        1
    );
    // Notifications are not collapsed: each MDN is its own entry.
    let mdn = entry("dr.bob@b.example", "one", 11);
    let a = store.deliver(mdn.clone()).await.unwrap();
    let b = store.deliver(mdn).await.unwrap();
    assert_ne!(a, b);
}
