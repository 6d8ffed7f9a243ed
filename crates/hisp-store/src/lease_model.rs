//! The rows of a delivery lease: the recipients a worker takes on, and the content read
//! with them (a form sealed by an earlier attempt, or the submitted message).

use crate::{OutKind, OutRecipient, QueueId, UnixTime};

/// Work leased to a delivery worker: the due recipients of one message in one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The message.
    pub message: QueueId,
    /// Its Message-ID.
    pub message_id: String,
    /// Its sender.
    pub sender: String,
    /// Message or notification.
    pub kind: OutKind,
    /// When it was submitted (expiry counts from here).
    pub created: UnixTime,
    /// The destination domain.
    pub domain: String,
    /// The leased recipients with their attempt counts.
    pub recipients: Vec<OutRecipient>,
    /// What to send, when leasing read it in passing (a body kept in the database); `None`
    /// when the worker reads it itself (a body in a file), or already has it (a lease taken
    /// as the message was queued).
    pub content: Option<LeaseContent>,
}

/// A leased message's content, read with its lease.
#[derive(Clone, PartialEq, Eq)]
pub enum LeaseContent {
    /// Sealed for this domain by an earlier attempt: sent as it is while the recipients'
    /// certificates are still the ones it was sealed for.
    Sealed(SealedCopy),
    /// Never sealed for this domain: the submitted message.
    Body(Vec<u8>),
}

impl std::fmt::Debug for LeaseContent {
    // Sizes only: message content never goes to a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseContent::Sealed(s) => write!(f, "Sealed({} bytes)", s.body.len()),
            LeaseContent::Body(b) => write!(f, "Body({} bytes)", b.len()),
        }
    }
}

/// A message sealed for one domain, kept for its retries.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedCopy {
    /// The sealed message.
    pub body: Vec<u8>,
    /// What names the certificates it was sealed for (the daemon's choice of key; empty
    /// for a copy kept before schema 7, which matches nothing and is sealed again).
    pub certs: String,
}

impl std::fmt::Debug for SealedCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SealedCopy({} bytes for {:?})",
            self.body.len(),
            self.certs
        )
    }
}

/// A lease to take on work as it is queued, so the worker that queues it can deliver it
/// at once without reading it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTo {
    /// The lease owner (the node).
    pub owner: String,
    /// Until when.
    pub until: UnixTime,
}
