//! The access audit trail (HIPAA Security Rule §164.312(b), audit controls): who read,
//! took, sent or changed what, when, and from where. Rows are only ever appended; they name
//! messages by id and Message-ID, never by content.

use crate::UnixTime;

/// One thing done, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    /// When.
    pub at: UnixTime,
    /// Who: a user's address, or `operator` (a command on the host) with the OS user.
    pub actor: String,
    /// What: `fetch`, `pickup`, `submit`, `login-failed`, `queue-delete`, …
    pub action: String,
    /// What it was done to: a mailbox entry, a queue id, an account.
    pub object: String,
    /// The client's address, when over the network.
    pub client: Option<String>,
    /// More: the Message-ID, a count, the outcome.
    pub detail: String,
}

/// A recorded [`NewAudit`], with its place in the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Its sequence number (the trail's order).
    pub seq: i64,
    /// What was recorded.
    pub event: NewAudit,
}

/// Which part of the trail to read: newest first, at most `limit` rows, before `before`
/// (a sequence number; 0 for the newest), at or after `since`, by one actor if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this actor's (an address, or `operator`).
    pub actor: Option<String>,
    /// Nothing older.
    pub since: UnixTime,
    /// Rows before this sequence number (0: from the newest).
    pub before: i64,
    /// At most this many.
    pub limit: usize,
}
