//! Storage for Hisp: one row of state per message and recipient, so that status
//! transitions are data (STYLE §4), and nothing accepted with `250` is lost.
//!
//! [`Store`] is the interface the daemon uses; [`sqlite::SqliteStore`] is the embedded
//! default (WAL, one writer thread with group commit so that durable acceptance does not
//! cost one fsync per message). A PostgreSQL implementation will sit behind the same trait.
//!
//! Layout:
//! - [`model`]: the rows (messages, recipients, mailbox entries).
//! - [`lease_model`]: a delivery worker's lease and the content read with it.
//! - [`directory_model`]: the directory rows (anchors, bundles, routes, static certificates).
//! - [`sqlite`]: the SQLite implementation.
#![warn(missing_docs)]

pub mod audit_model;
pub mod directory_model;
pub mod lease_model;
pub mod model;
pub mod records_model;
pub mod shape_model;
pub mod sqlite;

pub use audit_model::*;
pub use directory_model::*;
pub use lease_model::*;
pub use model::*;
pub use records_model::*;
pub use shape_model::*;

use std::future::Future;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database reported an error (disk full, corruption, locked past the timeout).
    #[error("database error while {what}: {source}")]
    Database {
        /// What the store was doing.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// Reading or writing a body in pieces failed (disk full, I/O error).
    #[error("I/O error while {what}: {source}")]
    Io {
        /// What the store was doing.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened (path, permissions, schema version).
    #[error("cannot open the store at {path}: {reason}")]
    Open {
        /// The database path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The writer thread is gone (the store is shutting down or crashed).
    #[error("the store is shutting down")]
    Closed,
    /// A row that must exist does not.
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of row.
        what: &'static str,
        /// Its key.
        id: String,
    },
    /// The change contradicts what is stored (a trust bundle URL added twice, say).
    #[error("{0}")]
    Conflict(String),
    /// A stored value that cannot be read back (a state name from a newer version, say).
    #[error("corrupt value in column {column}: {value}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// The value found.
        value: String,
    },
}

impl StoreError {
    /// The disk (or the user's quota) holding the store is full: SQLite's `SQLITE_FULL`, or
    /// `ENOSPC`/`EDQUOT` writing a body file. Callers answer with a "storage full" reply
    /// (SMTP `452 4.3.1`) rather than a generic failure, so the operator sees the cause.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Database {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } => e.code == rusqlite::ErrorCode::DiskFull,
            StoreError::Io { source, .. } => io_is_full(source),
            _ => false,
        }
    }
}

/// An I/O error that means no space is left (or the quota is used up).
pub(crate) fn io_is_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// How a lease shares the delivery slots among destinations (see
/// [`Store::lease_due_shared`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// Deliveries under way per domain (domains with none may be left out).
    pub in_flight: Vec<(String, usize)>,
    /// At most this many deliveries to one domain, those under way included.
    pub per_domain: usize,
}

impl Share {
    /// How many more groups of `domain` a lease may take.
    pub fn room(&self, domain: &str) -> usize {
        let busy = self
            .in_flight
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(domain))
            .map_or(0, |(_, n)| *n);
        self.per_domain.saturating_sub(busy)
    }

    /// The domains at their limit, whose groups a lease passes over.
    pub fn full(&self) -> impl Iterator<Item = &str> {
        let busy = self.in_flight.iter().filter(|(_, n)| *n >= self.per_domain);
        busy.map(|(d, _)| d.as_str())
    }
}

impl Default for Share {
    /// No sharing: every due group, in due order.
    fn default() -> Self {
        Share {
            in_flight: Vec::new(),
            per_domain: usize::MAX,
        }
    }
}

/// Everything the daemon and the operator commands keep. Every method that changes state is
/// durable when its future resolves `Ok` (committed and synced), which is what lets the SMTP
/// server answer `250`. Times are Unix seconds passed in by the caller (the daemon's clock
/// may be a test clock), never read by the store.
pub trait Store: Send + Sync + 'static {
    // ----- users -------------------------------------------------------------------------
    /// Create a user, or replace its password hash (PHC string, Argon2id).
    fn set_user(
        &self,
        address: &str,
        password_hash: &str,
        now: UnixTime,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The password hash of a user (addresses compare case-insensitively).
    fn user_password_hash(
        &self,
        address: &str,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;
    /// Every user address, sorted.
    fn users(&self) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
    /// Remove a user (its mailbox stays); true when there was one.
    fn remove_user(&self, address: &str) -> impl Future<Output = StoreResult<bool>> + Send;

    // ----- directory: anchors, routes, static certificates ---------------------------------
    /// Add a trust anchor (for one local domain, or all when `domain` is `None`). Returns
    /// false when the same certificate (by SHA-256) was already there for that domain.
    fn add_anchor(
        &self,
        anchor: NewAnchor,
        now: UnixTime,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Remove an anchor by fingerprint; returns how many rows went.
    fn remove_anchor(&self, sha256: &str) -> impl Future<Output = StoreResult<usize>> + Send;
    /// All anchors.
    fn anchors(&self) -> impl Future<Output = StoreResult<Vec<Anchor>>> + Send;
    /// Set the static next hop for a domain (`host:port`), replacing any earlier one.
    fn set_route(
        &self,
        domain: &str,
        target: &str,
        now: UnixTime,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Remove a route; true when one existed.
    fn remove_route(&self, domain: &str) -> impl Future<Output = StoreResult<bool>> + Send;
    /// All routes.
    fn routes(&self) -> impl Future<Output = StoreResult<Vec<Route>>> + Send;
    /// Add a static recipient certificate (consulted before discovery). Returns false when
    /// the same certificate was already there for the same binding.
    fn add_cert(
        &self,
        cert: NewStaticCert,
        now: UnixTime,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// All static certificates.
    fn certs(&self) -> impl Future<Output = StoreResult<Vec<StaticCert>>> + Send;
    /// Remove a static certificate by fingerprint; how many rows (bindings) went.
    fn remove_cert(&self, sha256: &str) -> impl Future<Output = StoreResult<usize>> + Send;
    /// Add a trust bundle, due for fetching now; its id. The URL must be new.
    fn add_bundle(
        &self,
        bundle: NewBundle,
        now: UnixTime,
    ) -> impl Future<Output = StoreResult<i64>> + Send;
    /// Every trust bundle, with the anchors of its loaded version.
    fn bundles(&self) -> impl Future<Output = StoreResult<Vec<Bundle>>> + Send;
    /// A version of bundle `id` verified: its anchors replace the old ones.
    fn bundle_loaded(
        &self,
        id: i64,
        anchors: Vec<NewAnchor>,
        now: UnixTime,
        next_fetch: UnixTime,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// A fetch of bundle `id` failed: record why; its anchors stay.
    fn bundle_failed(
        &self,
        id: i64,
        why: &str,
        next_fetch: UnixTime,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Remove bundle `id` and its anchors; true when it existed.
    fn remove_bundle(&self, id: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    /// A counter bumped by every change to users, anchors, routes and certificates, so a
    /// running daemon notices changes made by the operator commands.
    fn directory_version(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    // ----- outbound queue --------------------------------------------------------------------
    /// Durably queue a submitted message with one `queued` row per recipient, due now.
    fn enqueue(&self, msg: NewOutbound) -> impl Future<Output = StoreResult<QueueId>> + Send;
    /// Queue a message as `enqueue` does, with every recipient leased to `lease.owner` in
    /// the same transaction: the caller delivers it at once with the leases and the body
    /// handed back, and the queue takes over if it does not (the lease runs out, or is
    /// released at restart).
    fn enqueue_leased(
        &self,
        msg: NewOutbound,
        lease: LeaseTo,
    ) -> impl Future<Output = StoreResult<Queued>> + Send;
    /// The submitted (plain) message.
    fn outbound_body(
        &self,
        id: &QueueId,
    ) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send;
    /// Keep the sealed form of a message for one recipient domain, and what names the
    /// certificates it was sealed for (`certs`), for the retries.
    fn store_sealed(
        &self,
        id: &QueueId,
        domain: &str,
        sealed: &[u8],
        certs: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The sealed form for a domain, if kept.
    fn sealed(
        &self,
        id: &QueueId,
        domain: &str,
    ) -> impl Future<Output = StoreResult<Option<SealedCopy>>> + Send;
    /// Lease due work: recipients in state `queued` whose `next_attempt <= now` and whose
    /// lease is free or expired, grouped per (message, domain), at most `limit` groups. The
    /// lease is taken in the same transaction (owner, `lease_until`), so two workers or two
    /// nodes never deliver the same recipient at once.
    fn lease_due(
        &self,
        now: UnixTime,
        owner: &str,
        lease_until: UnixTime,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Lease>>> + Send;
    /// [`Store::lease_due`] sharing the delivery slots among destinations (`share`): no
    /// domain gets more groups than its room (`per_domain` less those under way), so
    /// the groups of a domain at its limit are passed over.
    fn lease_due_shared(
        &self,
        now: UnixTime,
        owner: &str,
        lease_until: UnixTime,
        limit: usize,
        share: Share,
    ) -> impl Future<Output = StoreResult<Vec<Lease>>> + Send;
    /// Release every lease held by `owner` (outbound and inbound): a daemon restarting under
    /// the same name takes back the work its killed predecessor had in hand, at once instead
    /// of when the leases expire. Returns how many were released.
    fn release_leases(&self, owner: &str) -> impl Future<Output = StoreResult<usize>> + Send;
    /// Apply state changes to recipients (releasing their leases) and append the matching
    /// timeline events, all in one transaction.
    fn update_recipients(
        &self,
        updates: Vec<RcptUpdate>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// [`Store::update_recipients`], and in the same transaction the DSNs that tell the
    /// senders about them: a crash cannot keep a failure and lose its notice.
    fn update_recipients_notifying(
        &self,
        updates: Vec<RcptUpdate>,
        dsns: Vec<NewMailboxEntry>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Fail a recipient whose notification is overdue (the tracker's timeout), only if it
    /// still is: in state `expected` and past its deadline at `update.now`; a notification
    /// applied meanwhile wins. `dsn` goes to the sender's mailbox in the same transaction.
    /// True when the recipient was failed.
    fn fail_overdue(
        &self,
        update: RcptUpdate,
        expected: RcptState,
        dsn: NewMailboxEntry,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Find the outbound recipient an MDN/DSN is about: by the original Message-ID (exact,
    /// angle brackets included as stored) and the recipient address (case-insensitive).
    fn find_recipient(
        &self,
        message_id: &str,
        rcpt: &str,
    ) -> impl Future<Output = StoreResult<Option<OutRecipient>>> + Send;
    /// Recipients whose `deadline` has passed in states `relayed` or `processed` (waiting
    /// for a notification), at most `limit`.
    fn overdue(
        &self,
        now: UnixTime,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<OutRecipient>>> + Send;
    /// One outbound message with its recipients.
    fn outbound(
        &self,
        id: &QueueId,
    ) -> impl Future<Output = StoreResult<Option<OutMessage>>> + Send;
    /// Outbound messages, newest first, with their recipients.
    fn list_outbound(
        &self,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<OutMessage>>> + Send;
    /// Fail every recipient of message `id` still waiting in the queue (queued or held,
    /// not in delivery now) with `reason`, as an operator deleting it does, and put the
    /// notice `dsn` makes of them (if any) in the sender's mailbox in the same transaction;
    /// returns those recipients, now `failed`.
    fn cancel_queued<F>(
        &self,
        id: &QueueId,
        reason: &str,
        now: UnixTime,
        dsn: F,
    ) -> impl Future<Output = StoreResult<Vec<OutRecipient>>> + Send
    where
        F: FnOnce(&[OutRecipient]) -> Option<NewMailboxEntry> + Send + 'static;
    /// Hold every recipient `which` names that waits for an attempt (not in delivery
    /// now), as an operator does with Postfix's `postsuper -h`: `held` recipients are not
    /// tried, flushed or expired until released. Returns those recipients, now `held`.
    fn hold_queued(
        &self,
        which: &QueueSelection,
        now: UnixTime,
    ) -> impl Future<Output = StoreResult<Vec<OutRecipient>>> + Send;
    /// Release the held recipients `which` names (`postsuper -H`): `queued`, due now.
    fn release_held(
        &self,
        which: &QueueSelection,
        now: UnixTime,
    ) -> impl Future<Output = StoreResult<Vec<OutRecipient>>> + Send;
    /// One step of a retention pass ([`PurgeStep`]): remove the bodies of outbound
    /// messages created before the cut-off whose every recipient is final (no retry, no
    /// notification awaited), and of mailbox entries picked up before theirs, oldest
    /// first, looking at no more than `limit` rows of each. Rows, states and timelines stay.
    fn purge_bodies(&self, step: PurgeStep) -> impl Future<Output = StoreResult<Purged>> + Send;
    /// One step of a records pass ([`RecordStep`]): remove whole rows made before the
    /// cut-off, oldest first, looking at no more than `limit` of each kind: outbound
    /// messages whose every recipient is final (with their recipients, bodies, sealed
    /// copies and timeline), inbound messages no longer spooled (with their envelope
    /// recipients, sealed form and timeline), mailbox entries picked up (with bodies; one
    /// never picked up stays), and notification de-duplication records.
    fn purge_records(
        &self,
        step: RecordStep,
    ) -> impl Future<Output = StoreResult<PurgedRecords>> + Send;
    /// Make every recipient waiting for a retry due now (as `postqueue -f` does); returns
    /// how many. Each gets a `flushed` event on its timeline.
    fn flush_queue(&self, now: UnixTime) -> impl Future<Output = StoreResult<u64>> + Send;
    /// How many times `flush_queue` ran, so a running daemon notices a flush (and stops
    /// putting off mail for destinations it had found unreachable).
    fn queue_flushes(&self) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Recipients still in hand: `queued` or `held`, or waiting for a notification
    /// (`relayed` or `processed` with a deadline), for the queue-depth metric.
    fn queue_depth(&self) -> impl Future<Output = StoreResult<u64>> + Send;
    /// The queue by destination domain (as Postfix's `qshape`): recipients waiting, by the
    /// age of their message in `age_bounds` (seconds, ascending), and those waiting for the
    /// peer's notification; the busiest destination first.
    fn queue_shape(
        &self,
        now: UnixTime,
        age_bounds: Vec<u64>,
    ) -> impl Future<Output = StoreResult<Vec<DestinationShape>>> + Send;

    // ----- audit trail -------------------------------------------------------------------------
    /// Append a row to the access audit trail (durable when this returns).
    fn add_audit(&self, event: NewAudit) -> impl Future<Output = StoreResult<()>> + Send;
    /// Remove at most `limit` audit rows written before `before`, oldest first; returns how
    /// many went (fewer than `limit`: none such is left).
    fn purge_audit(
        &self,
        before: UnixTime,
        limit: usize,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Read part of the audit trail, newest first.
    fn audit(&self, query: AuditQuery)
        -> impl Future<Output = StoreResult<Vec<AuditEvent>>> + Send;

    // ----- timeline ---------------------------------------------------------------------------
    /// Append an event to a message's timeline.
    fn add_event(&self, event: NewEvent) -> impl Future<Output = StoreResult<()>> + Send;
    /// A message's timeline, oldest first (outbound or inbound id).
    fn events(&self, id: &QueueId) -> impl Future<Output = StoreResult<Vec<Event>>> + Send;

    // ----- inbound spool ----------------------------------------------------------------------
    /// Durably spool a message received on the relay port (still sealed).
    fn spool_inbound(&self, msg: NewInbound) -> impl Future<Output = StoreResult<QueueId>> + Send;
    /// Lease spooled messages for processing (same lease rules as `lease_due`).
    fn lease_inbound(
        &self,
        now: UnixTime,
        owner: &str,
        lease_until: UnixTime,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Inbound>>> + Send;
    /// Finish processing: the message was delivered, or is quarantined with the reason.
    /// Deliveries and the outcome commit together (`deliveries` go to mailboxes, `then`
    /// outbound messages such as MDNs are enqueued in the same transaction).
    fn finish_inbound(
        &self,
        done: InboundDone,
    ) -> impl Future<Output = StoreResult<Committed>> + Send;
    /// Record a message received and processed before `250`, with its outcome, in one
    /// transaction (`done.id` names it): the spool, lease and finish of the slow path in
    /// one commit. `msg.body` (the sealed message) is kept only when not empty.
    fn record_inbound(
        &self,
        msg: NewInbound,
        done: InboundDone,
    ) -> impl Future<Output = StoreResult<Committed>> + Send;
    /// Quarantined inbound messages, newest first.
    fn quarantined(&self, limit: usize) -> impl Future<Output = StoreResult<Vec<Inbound>>> + Send;
    /// One inbound message with its recipients, and its sealed body when it was kept
    /// (spooled and quarantined mail; empty once delivered).
    fn inbound(&self, id: &QueueId) -> impl Future<Output = StoreResult<Option<Inbound>>> + Send;
    /// Put a quarantined message back in the spool to be opened again, once the operator
    /// fixed what it failed on. False when it is not quarantined.
    fn release_quarantined(
        &self,
        id: &QueueId,
        now: UnixTime,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    // ----- mailboxes ---------------------------------------------------------------------------
    /// Put a message (or an MDN/DSN for a sender) in a local user's mailbox. A message whose
    /// Message-ID the owner already has is not delivered again (the existing id is returned):
    /// a sender that never saw our `250` sends again.
    fn deliver(&self, entry: NewMailboxEntry) -> impl Future<Output = StoreResult<i64>> + Send;
    /// A user's mailbox (without bodies), oldest first; picked-up entries only if asked.
    fn mailbox(
        &self,
        owner: &str,
        include_picked_up: bool,
    ) -> impl Future<Output = StoreResult<Vec<MailboxEntry>>> + Send;
    /// As [`Store::mailbox`], one page: at most `limit` entries with ids above `after`.
    fn mailbox_page(
        &self,
        owner: &str,
        include_picked_up: bool,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<MailboxEntry>>> + Send;
    /// One entry with its body (the owner must match).
    fn mailbox_entry(
        &self,
        owner: &str,
        id: i64,
    ) -> impl Future<Output = StoreResult<Option<MailboxEntry>>> + Send;
    /// Mark an entry picked up by the edge. Returns the entry, without its body (as in a
    /// listing), when this call picked it up, `None` when it was already picked up or does
    /// not belong to `owner`.
    fn mark_picked_up(
        &self,
        owner: &str,
        id: i64,
        now: UnixTime,
    ) -> impl Future<Output = StoreResult<Option<MailboxEntry>>> + Send;

    // ----- notification de-duplication ---------------------------------------------------------
    /// Record that a notification (`processed`, `dispatched`, `failed`, `dsn-failed`, …) about
    /// (original Message-ID, recipient) was seen. True the first time, false for repeats.
    fn note_notification(
        &self,
        original_message_id: &str,
        rcpt: &str,
        kind: &str,
        now: UnixTime,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}
