//! The rows the store keeps. Plain data: states are enums, times are Unix seconds.

use crate::{Lease, LeaseTo};
use std::sync::atomic::{AtomicU64, Ordering};

/// Give an enum stored by name its two directions: `as_str` (the stored and displayed
/// name) and `parse` (back from it; `None` for any other text).
macro_rules! stored_names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$(Self::$variant),+];

            /// The stored and displayed name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }

            /// Parse a stored name.
            pub fn parse(s: &str) -> Option<$ty> {
                match s {
                    $($name => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

/// Seconds since the Unix epoch.
pub type UnixTime = i64;

/// The store's id for a queued message: `o-…` outbound, `i-…` inbound.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub String);

impl QueueId {
    /// A fresh id: the prefix (`o` outbound, `i` inbound), a dash, 16 hex digits that grow
    /// with time (milliseconds since the epoch, then 20 bits counting up from a random
    /// start). Callers that must name a message before it is stored (its timeline events,
    /// its mailbox entries) make the id themselves.
    ///
    /// Ordered ids matter for the store: each index keyed by them takes new rows at its
    /// right edge, in pages already in memory and shared by a whole group commit, where
    /// random ids would dirty (and first read) a different page per message.
    pub fn fresh(prefix: char) -> QueueId {
        static LAST: AtomicU64 = AtomicU64::new(0);
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let candidate = (millis << 20) | (rand::random::<u64>() & 0xf_ffff);
        let previous = LAST
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(candidate.max(last + 1))
            })
            .unwrap_or(0);
        QueueId(format!("{prefix}-{:016x}", candidate.max(previous + 1)))
    }
}

impl std::fmt::Display for QueueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an outbound message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutKind {
    /// A message a user submitted.
    Message,
    /// An MDN or DSN this HISP sends (never tracked for notifications itself).
    Notification,
}

stored_names!(OutKind {
    Message => "message",
    Notification => "notification",
});

/// A submitted message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutbound {
    /// The sender (envelope and From), lower case.
    pub sender: String,
    /// The RFC 5322 Message-ID, as written (with angle brackets).
    pub message_id: String,
    /// Recipient addresses (each gets a row; duplicates collapse).
    pub recipients: Vec<String>,
    /// The plain RFC 5322 message as submitted.
    pub body: Vec<u8>,
    /// The sender asked for X-DIRECT-FINAL-DESTINATION-DELIVERY (wait for `dispatched`).
    pub wants_dispatched: bool,
    /// Message or notification.
    pub kind: OutKind,
    /// How it arrived (`smtp`, `rest`, `mdn`, …), for the timeline.
    pub via: String,
    /// Submission time; recipients are due at once.
    pub now: UnixTime,
}

/// A recipient's delivery state (the `hisp queue` vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RcptState {
    /// Waiting for (another) delivery attempt.
    Queued,
    /// Accepted by the recipient's HISP; waiting for `processed`.
    Relayed,
    /// `processed` MDN received (waiting for `dispatched` when requested).
    Processed,
    /// `dispatched` MDN received: final.
    Dispatched,
    /// Permanently failed (5xx, no certificate, failure MDN/DSN, notification timeout).
    Failed,
    /// Retried until the expiry time without success.
    Expired,
    /// Held by the operator (`hisp queue hold`): not tried until released.
    Held,
}

stored_names!(RcptState {
    Queued => "queued",
    Relayed => "relayed",
    Processed => "processed",
    Dispatched => "dispatched",
    Failed => "failed",
    Expired => "expired",
    Held => "held",
});

impl RcptState {
    /// True for states nothing more will happen to.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Dispatched | Self::Failed | Self::Expired)
    }
}

/// One outbound recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecipient {
    /// The message.
    pub message: QueueId,
    /// The recipient address (lower case).
    pub rcpt: String,
    /// Its domain.
    pub domain: String,
    /// Current state.
    pub state: RcptState,
    /// Delivery attempts made.
    pub attempts: u32,
    /// When the next attempt is due (state `queued`).
    pub next_attempt: UnixTime,
    /// The last error, as it will be quoted in a DSN.
    pub last_error: Option<String>,
    /// The sender asked for `dispatched`.
    pub wants_dispatched: bool,
    /// When the awaited notification is overdue (states `relayed`, `processed`).
    pub deadline: Option<UnixTime>,
    /// Last change.
    pub updated: UnixTime,
    /// The sender of its message (whose mailbox gets the notifications about it).
    pub sender: String,
}

/// An outbound message with its recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    /// Queue id.
    pub id: QueueId,
    /// Sender.
    pub sender: String,
    /// RFC 5322 Message-ID.
    pub message_id: String,
    /// Message or notification.
    pub kind: OutKind,
    /// Submission time.
    pub created: UnixTime,
    /// Size of the submitted message in bytes.
    pub size: u64,
    /// Recipients, in submission order.
    pub recipients: Vec<OutRecipient>,
}

/// A message just queued: its id, and when it was queued leased, its leases (one per
/// recipient domain) and the body handed back, ready for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The message.
    pub id: QueueId,
    /// The leases taken (empty when not leased).
    pub leases: Vec<Lease>,
    /// The submitted body (empty when not leased).
    pub body: Vec<u8>,
}

/// A change to one recipient (its lease is released).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptUpdate {
    /// The message.
    pub message: QueueId,
    /// The recipient.
    pub rcpt: String,
    /// The new state.
    pub state: RcptState,
    /// Attempts made so far.
    pub attempts: u32,
    /// Next attempt (meaningful for `queued`).
    pub next_attempt: UnixTime,
    /// The error to record; `None` clears it.
    pub last_error: Option<String>,
    /// Notification deadline (for `relayed`/`processed`).
    pub deadline: Option<UnixTime>,
    /// Timeline event kind to append (e.g. `relayed`, `retry`, `failed`).
    pub event: String,
    /// Event detail (remote reply, reason).
    pub detail: String,
    /// When.
    pub now: UnixTime,
}

/// A timeline event to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The message (outbound or inbound id).
    pub message: QueueId,
    /// The recipient it is about, if any.
    pub rcpt: Option<String>,
    /// Kind: `submitted`, `relayed`, `processed`, `dispatched`, `retry`, `failed`, …
    pub kind: String,
    /// Detail.
    pub detail: String,
    /// When.
    pub at: UnixTime,
}

/// A stored timeline event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The recipient it is about, if any.
    pub rcpt: Option<String>,
    /// Kind.
    pub kind: String,
    /// Detail.
    pub detail: String,
    /// When.
    pub at: UnixTime,
}

/// A message received on the relay port, to spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInbound {
    /// Envelope sender.
    pub mail_from: String,
    /// Envelope recipients (local).
    pub rcpts: Vec<String>,
    /// The message as received (sealed).
    pub body: Vec<u8>,
    /// The peer's address, for the timeline.
    pub peer: String,
    /// When.
    pub now: UnixTime,
}

/// Inbound processing state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundState {
    /// Waiting to be opened.
    Spooled,
    /// Opened and delivered.
    Delivered,
    /// Refused; kept with the reason.
    Quarantined,
}

stored_names!(InboundState {
    Spooled => "spooled",
    Delivered => "delivered",
    Quarantined => "quarantined",
});

/// A spooled inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Queue id.
    pub id: QueueId,
    /// Envelope sender.
    pub mail_from: String,
    /// Envelope recipients.
    pub rcpts: Vec<String>,
    /// The message as received (empty in listings).
    pub body: Vec<u8>,
    /// State.
    pub state: InboundState,
    /// Why it was quarantined.
    pub reason: Option<String>,
    /// When it arrived.
    pub received: UnixTime,
}

/// The outcome of processing an inbound message, committed atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundDone {
    /// The inbound message.
    pub id: QueueId,
    /// `Delivered` or `Quarantined`.
    pub state: InboundState,
    /// Quarantine reason.
    pub reason: Option<String>,
    /// Mailbox deliveries.
    pub deliveries: Vec<NewMailboxEntry>,
    /// Outbound messages to queue with it (MDNs).
    pub then: Vec<NewOutbound>,
    /// Timeline events (on the inbound id).
    pub events: Vec<NewEvent>,
    /// What received notifications say about our outbound recipients (an MDN or DSN).
    /// When there are notices and every one is a repeat, `deliveries` are skipped: the
    /// sender already has that notification.
    pub notices: Vec<Notice>,
    /// Lease the `then` messages as they are queued (see [`Queued`]).
    pub lease_then: Option<LeaseTo>,
    /// When.
    pub now: UnixTime,
}

impl InboundDone {
    /// An outcome in `state` with nothing to deliver, queue or record yet.
    pub fn new(id: QueueId, state: InboundState, now: UnixTime) -> InboundDone {
        InboundDone {
            id,
            state,
            reason: None,
            deliveries: Vec::new(),
            then: Vec::new(),
            events: Vec::new(),
            notices: Vec::new(),
            lease_then: None,
            now,
        }
    }
}

/// What a received notification says about one outbound recipient. Applied in the
/// transaction of the inbound outcome that carries it, once per (original Message-ID,
/// recipient, kind); the state only moves forward (`failed` from any state not final).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The original Message-ID the notification quotes (the de-duplication key).
    pub original_message_id: String,
    /// Our queue id of that message.
    pub message: QueueId,
    /// The recipient it is about.
    pub rcpt: String,
    /// `processed`, `dispatched`, `failed` or `dsn-failed` (the timeline event too).
    pub kind: String,
    /// The state it moves the recipient to.
    pub state: RcptState,
    /// The new deadline (`dispatched` still awaited), else none.
    pub deadline: Option<UnixTime>,
    /// For the timeline, and the last error when it failed.
    pub detail: String,
}

/// One step of a retention pass: the bodies older than the cut-offs, scanning at most
/// `limit` rows of each kind after the cursors (row ids; 0 to start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeStep {
    /// Outbound messages created before this (and all of whose recipients are final).
    pub outbound_before: UnixTime,
    /// Mailbox entries picked up before this.
    pub picked_up_before: UnixTime,
    /// Inbound messages quarantined before this (their sealed form).
    pub quarantined_before: UnixTime,
    /// Outbound cursor.
    pub outbound_after: i64,
    /// Mailbox cursor.
    pub mailbox_after: i64,
    /// Quarantine cursor.
    pub quarantined_after: i64,
    /// Rows of each kind looked at, at most.
    pub limit: usize,
    /// For the timeline.
    pub now: UnixTime,
}

/// What one retention step removed, and where the next starts (`None`: that kind is done
/// for this pass).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Outbound messages whose body and sealed copies went.
    pub outbound: u64,
    /// Mailbox entries whose body went.
    pub mailbox: u64,
    /// Quarantined messages whose sealed form went.
    pub quarantined: u64,
    /// The outbound cursor for the next step.
    pub outbound_next: Option<i64>,
    /// The mailbox cursor for the next step.
    pub mailbox_next: Option<i64>,
    /// The quarantine cursor for the next step.
    pub quarantined_next: Option<i64>,
}

impl Purged {
    /// Every kind is done for this pass.
    pub fn done(&self) -> bool {
        self.outbound_next.is_none()
            && self.mailbox_next.is_none()
            && self.quarantined_next.is_none()
    }
}

/// What committing an inbound outcome did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The notifications it queued (leased, with bodies, when asked).
    pub queued: Vec<Queued>,
    /// Notices applied for the first time.
    pub notices_new: usize,
    /// Notices already seen before (dropped).
    pub notices_repeated: usize,
}

/// What a mailbox entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A message from another HISP.
    Message,
    /// An MDN about a message the owner sent.
    Mdn,
    /// A DSN (or failure notice) about a message the owner sent.
    Dsn,
}

stored_names!(EntryKind {
    Message => "message",
    Mdn => "mdn",
    Dsn => "dsn",
});

/// A mailbox delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMailboxEntry {
    /// The local user.
    pub owner: String,
    /// Message, MDN or DSN.
    pub kind: EntryKind,
    /// Its Message-ID.
    pub message_id: String,
    /// Its From.
    pub from: String,
    /// Its Subject.
    pub subject: String,
    /// The plain message.
    pub body: Vec<u8>,
    /// The original sender asked for `dispatched` (so pickup must send it).
    pub wants_dispatched: bool,
    /// Where it came from (inbound id), for the timeline.
    pub source: Option<QueueId>,
    /// When.
    pub now: UnixTime,
}

/// A mailbox entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxEntry {
    /// Entry id (unique in the store).
    pub id: i64,
    /// The local user.
    pub owner: String,
    /// Message, MDN or DSN.
    pub kind: EntryKind,
    /// Its Message-ID.
    pub message_id: String,
    /// Its From.
    pub from: String,
    /// Its Subject.
    pub subject: String,
    /// Body (empty in listings).
    pub body: Vec<u8>,
    /// Size of the body.
    pub size: u64,
    /// The original sender asked for `dispatched`.
    pub wants_dispatched: bool,
    /// Where it came from.
    pub source: Option<QueueId>,
    /// When it arrived.
    pub received: UnixTime,
    /// When the edge picked it up.
    pub picked_up: Option<UnixTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_keep_their_form_and_only_grow() {
        let ids: Vec<QueueId> = (0..10_000).map(|_| QueueId::fresh('o')).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        let id = &ids[0].0;
        assert!(id.starts_with("o-") && id.len() == 18, "{id}");
        assert!(id[2..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    /// What the store writes for a state or kind, it reads back as the same value; any
    /// other text (a typo, another case) is no value at all.
    #[test]
    fn stored_names_round_trip() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(
            all: &[T],
            name: fn(T) -> &'static str,
            parse: fn(&str) -> Option<T>,
        ) {
            for &x in all {
                assert_eq!(parse(name(x)), Some(x));
                assert_eq!(parse(&name(x).to_ascii_uppercase()), None);
            }
            assert_eq!(parse("nonesuch"), None);
        }
        check(OutKind::ALL, OutKind::as_str, OutKind::parse);
        check(RcptState::ALL, RcptState::as_str, RcptState::parse);
        check(InboundState::ALL, InboundState::as_str, InboundState::parse);
        check(EntryKind::ALL, EntryKind::as_str, EntryKind::parse);
        assert_eq!(RcptState::ALL.len(), 7);
    }
}
