//! Tests for the SQLite store, each on a fresh database file in a temporary directory
//! (never in memory: WAL, the writer thread and the read pool are what is under test).
//! Split by concern like the implementation.

mod audit;
mod backup;
mod bodies;
mod directory;
mod inbound;
mod mailbox;
mod operator;
mod plans;
mod queue;
mod records;
mod retention;
mod tracking;
mod writer;

use super::SqliteStore;
use crate::{NewOutbound, OutKind, QueueId, RcptState, RcptUpdate, UnixTime};

/// A store on a fresh file; keep the directory alive as long as the store.
fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("hisp.db")).unwrap();
    (dir, store)
}

/// A message received from `from` for `rcpt`, from a peer on loopback.
fn inbound(from: &str, rcpt: &str, body: Vec<u8>, now: UnixTime) -> crate::NewInbound {
    crate::NewInbound {
        mail_from: from.into(),
        rcpts: vec![rcpt.into()],
        body,
        peer: "127.0.0.1:1".into(),
        now,
    }
}

/// A submitted message.
fn message(message_id: &str, recipients: &[&str], now: UnixTime) -> NewOutbound {
    NewOutbound {
        sender: "Dr.Alice@Direct.A.example".into(),
        message_id: message_id.into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        body: format!("Message-ID: {message_id}\r\n\r\nhello\r\n").into_bytes(),
        wants_dispatched: true,
        kind: OutKind::Message,
        via: "smtp".into(),
        now,
    }
}

/// A delivery outcome for one recipient, as a worker reports it (one attempt, at `now`).
fn update(id: &QueueId, rcpt: &str, state: RcptState, now: i64) -> RcptUpdate {
    RcptUpdate {
        message: id.clone(),
        rcpt: rcpt.into(),
        state,
        attempts: 1,
        next_attempt: now,
        last_error: None,
        deadline: None,
        event: state.as_str().into(),
        detail: String::new(),
        now,
    }
}
