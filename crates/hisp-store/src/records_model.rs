//! The types of a records pass (`[retention] keep_records`): whole rows of finished mail,
//! with their timelines, removed once older than the operator keeps records.

use crate::UnixTime;

/// One step of a records pass: finished rows made before `before`, looking at no more than
/// `limit` rows of each kind after the cursors (row ids; 0 to start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordStep {
    /// Rows made before this may go (when finished).
    pub before: UnixTime,
    /// Outbound messages cursor.
    pub messages_after: i64,
    /// Inbound messages cursor.
    pub inbound_after: i64,
    /// Mailbox entries cursor.
    pub mailbox_after: i64,
    /// Notification de-duplication records cursor.
    pub notifications_after: i64,
    /// Rows of each kind looked at, at most.
    pub limit: usize,
}

impl RecordStep {
    /// The first step of a pass removing what was made before `before`.
    pub fn first(before: UnixTime, limit: usize) -> RecordStep {
        RecordStep {
            before,
            messages_after: 0,
            inbound_after: 0,
            mailbox_after: 0,
            notifications_after: 0,
            limit,
        }
    }
}

/// What one records step removed, and the next step (`None` once the pass is done).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgedRecords {
    /// Outbound messages (with recipients, bodies, sealed copies and timeline).
    pub messages: u64,
    /// Inbound messages (with recipients, sealed form and timeline).
    pub inbound: u64,
    /// Picked-up mailbox entries (with bodies).
    pub mailbox: u64,
    /// Notification de-duplication records.
    pub notifications: u64,
    /// Where the pass goes on.
    pub next: Option<RecordStep>,
}
