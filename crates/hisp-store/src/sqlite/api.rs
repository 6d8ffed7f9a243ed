//! [`Store`] for [`SqliteStore`]: each method turns its borrowed arguments into owned ones
//! and hands a closure to the writer thread (changes, and leases, which change rows) or to
//! a pooled read connection. The SQL lives in the concern modules.

use super::{
    audit, bundles, directory, hold, inbound, mailbox, queue, records, retention, shape, timeline,
    tracking, SqliteStore,
};
use crate::{
    Anchor, AuditEvent, AuditQuery, Bundle, Committed, DestinationShape, Event, Inbound,
    InboundDone, Lease, LeaseTo, MailboxEntry, NewAnchor, NewAudit, NewBundle, NewEvent,
    NewInbound, NewMailboxEntry, NewOutbound, NewStaticCert, OutMessage, OutRecipient, PurgeStep,
    Purged, PurgedRecords, QueueId, QueueSelection, Queued, RcptState, RcptUpdate, RecordStep,
    Route, SealedCopy, Share, StaticCert, Store, StoreResult, UnixTime,
};

impl Store for SqliteStore {
    async fn set_user(&self, address: &str, password_hash: &str, now: UnixTime) -> StoreResult<()> {
        let (address, hash) = (address.to_owned(), password_hash.to_owned());
        self.write(move |c| directory::set_user(c, &address, &hash, now))
            .await
    }

    async fn user_password_hash(&self, address: &str) -> StoreResult<Option<String>> {
        let address = address.to_owned();
        self.read(move |c| directory::password_hash(c, &address))
            .await
    }

    async fn users(&self) -> StoreResult<Vec<String>> {
        self.read(directory::users).await
    }

    async fn remove_user(&self, address: &str) -> StoreResult<bool> {
        let address = address.to_owned();
        self.write(move |c| directory::remove_user(c, &address))
            .await
    }

    async fn add_anchor(&self, anchor: NewAnchor, now: UnixTime) -> StoreResult<bool> {
        self.write(move |c| directory::add_anchor(c, &anchor, now))
            .await
    }

    async fn remove_anchor(&self, sha256: &str) -> StoreResult<usize> {
        let sha256 = sha256.to_owned();
        self.write(move |c| directory::remove_anchor(c, &sha256))
            .await
    }

    async fn anchors(&self) -> StoreResult<Vec<Anchor>> {
        self.read(directory::anchors).await
    }

    async fn add_bundle(&self, bundle: NewBundle, now: UnixTime) -> StoreResult<i64> {
        self.write(move |c| bundles::add(c, &bundle, now)).await
    }

    async fn bundles(&self) -> StoreResult<Vec<Bundle>> {
        self.read(bundles::list).await
    }

    async fn bundle_loaded(
        &self,
        id: i64,
        anchors: Vec<NewAnchor>,
        now: UnixTime,
        next_fetch: UnixTime,
    ) -> StoreResult<()> {
        self.write(move |c| bundles::loaded(c, id, &anchors, now, next_fetch))
            .await
    }

    async fn bundle_failed(&self, id: i64, why: &str, next_fetch: UnixTime) -> StoreResult<()> {
        let why = why.to_owned();
        self.write(move |c| bundles::failed(c, id, &why, next_fetch))
            .await
    }

    async fn remove_bundle(&self, id: i64) -> StoreResult<bool> {
        self.write(move |c| bundles::remove(c, id)).await
    }

    async fn set_route(&self, domain: &str, target: &str, now: UnixTime) -> StoreResult<()> {
        let (domain, target) = (domain.to_owned(), target.to_owned());
        self.write(move |c| directory::set_route(c, &domain, &target, now))
            .await
    }

    async fn remove_route(&self, domain: &str) -> StoreResult<bool> {
        let domain = domain.to_owned();
        self.write(move |c| directory::remove_route(c, &domain))
            .await
    }

    async fn routes(&self) -> StoreResult<Vec<Route>> {
        self.read(directory::routes).await
    }

    async fn add_cert(&self, cert: NewStaticCert, now: UnixTime) -> StoreResult<bool> {
        self.write(move |c| directory::add_cert(c, &cert, now))
            .await
    }

    async fn certs(&self) -> StoreResult<Vec<StaticCert>> {
        self.read(directory::certs).await
    }

    async fn remove_cert(&self, sha256: &str) -> StoreResult<usize> {
        let sha256 = sha256.to_owned();
        self.write(move |c| directory::remove_cert(c, &sha256))
            .await
    }

    async fn directory_version(&self) -> StoreResult<u64> {
        self.read(directory::version).await
    }

    async fn enqueue(&self, msg: NewOutbound) -> StoreResult<QueueId> {
        self.write_with_bodies(msg, outbound_body, |c, msg| queue::enqueue(c, &msg))
            .await
    }

    async fn enqueue_leased(&self, msg: NewOutbound, lease: LeaseTo) -> StoreResult<Queued> {
        self.write_with_bodies(msg, outbound_body, move |c, msg| {
            let (id, leases) = queue::enqueue_leased(c, &msg, &lease)?;
            Ok(Queued {
                id,
                leases,
                body: msg.body,
            })
        })
        .await
    }

    async fn outbound_body(&self, id: &QueueId) -> StoreResult<Option<Vec<u8>>> {
        let id = id.clone();
        self.read(move |c| queue::outbound_body(c, &id)).await
    }

    async fn store_sealed(
        &self,
        id: &QueueId,
        domain: &str,
        sealed: &[u8],
        certs: &str,
    ) -> StoreResult<()> {
        // The one copy the borrowed signature forces: the bytes must outlive the call.
        let (id, domain, sealed) = (id.clone(), domain.to_owned(), sealed.to_vec());
        let certs = certs.to_owned();
        self.write_with_bodies(
            sealed,
            |s| vec![s.as_slice()],
            move |c, sealed| queue::store_sealed(c, &id, &domain, &sealed, &certs),
        )
        .await
    }

    async fn sealed(&self, id: &QueueId, domain: &str) -> StoreResult<Option<SealedCopy>> {
        let (id, domain) = (id.clone(), domain.to_owned());
        self.read(move |c| queue::sealed(c, &id, &domain)).await
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<usize> {
        let owner = owner.to_owned();
        self.write(move |c| {
            let what = "releasing leases";
            let a = c
                .execute(
                    "UPDATE recipients SET lease_owner = NULL, lease_until = NULL, next_attempt = 0 \
                     WHERE lease_owner = ?1",
                    [&owner],
                )
                .map_err(super::db(what))?;
            let b = c
                .execute(
                    "UPDATE inbound SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?1",
                    [&owner],
                )
                .map_err(super::db(what))?;
            Ok(a + b)
        })
        .await
    }

    async fn lease_due(
        &self,
        now: UnixTime,
        owner: &str,
        lease_until: UnixTime,
        limit: usize,
    ) -> StoreResult<Vec<Lease>> {
        self.lease_due_shared(now, owner, lease_until, limit, Share::default())
            .await
    }

    async fn lease_due_shared(
        &self,
        now: UnixTime,
        owner: &str,
        lease_until: UnixTime,
        limit: usize,
        share: Share,
    ) -> StoreResult<Vec<Lease>> {
        let owner = owner.to_owned();
        // Leasing is bookkeeping too: under load it rides on a submission's commit instead
        // of paying for its own (a sixth of the commits at saturation).
        self.write_deferred(move |c| queue::lease_due(c, now, &owner, lease_until, limit, &share))
            .await
    }

    async fn update_recipients(&self, updates: Vec<RcptUpdate>) -> StoreResult<()> {
        self.write(move |c| queue::update_recipients(c, &updates))
            .await
    }

    async fn update_recipients_notifying(
        &self,
        updates: Vec<RcptUpdate>,
        dsns: Vec<NewMailboxEntry>,
    ) -> StoreResult<()> {
        // An attempt's outcome: the delivery slot waits on it, no peer or user does.
        self.write_with_bodies_as(
            false,
            (updates, dsns),
            |(_, dsns)| dsns.iter().map(|d| d.body.as_slice()).collect(),
            |c, (updates, dsns)| {
                queue::update_recipients(c, &updates)?;
                for dsn in &dsns {
                    mailbox::deliver(c, dsn)?;
                }
                Ok(())
            },
        )
        .await
    }

    async fn fail_overdue(
        &self,
        update: RcptUpdate,
        expected: RcptState,
        dsn: NewMailboxEntry,
    ) -> StoreResult<bool> {
        self.write(move |c| tracking::fail_overdue(c, &update, expected, &dsn))
            .await
    }

    async fn find_recipient(
        &self,
        message_id: &str,
        rcpt: &str,
    ) -> StoreResult<Option<OutRecipient>> {
        let (message_id, rcpt) = (message_id.to_owned(), rcpt.to_owned());
        self.read(move |c| tracking::find_recipient(c, &message_id, &rcpt))
            .await
    }

    async fn overdue(&self, now: UnixTime, limit: usize) -> StoreResult<Vec<OutRecipient>> {
        self.read(move |c| tracking::overdue(c, now, limit)).await
    }

    async fn outbound(&self, id: &QueueId) -> StoreResult<Option<OutMessage>> {
        let id = id.clone();
        self.read(move |c| queue::outbound(c, &id)).await
    }

    async fn list_outbound(&self, limit: usize) -> StoreResult<Vec<OutMessage>> {
        self.read(move |c| queue::list_outbound(c, limit)).await
    }

    async fn cancel_queued<F>(
        &self,
        id: &QueueId,
        reason: &str,
        now: UnixTime,
        dsn: F,
    ) -> StoreResult<Vec<OutRecipient>>
    where
        F: FnOnce(&[OutRecipient]) -> Option<NewMailboxEntry> + Send + 'static,
    {
        let (id, reason) = (id.clone(), reason.to_owned());
        self.write(move |c| {
            let gone = queue::cancel(c, &id, &reason, now)?;
            if gone.is_empty() {
                return Ok(gone);
            }
            if let Some(notice) = dsn(&gone) {
                mailbox::deliver(c, &notice)?;
            }
            Ok(gone)
        })
        .await
    }

    async fn hold_queued(
        &self,
        which: &QueueSelection,
        now: UnixTime,
    ) -> StoreResult<Vec<OutRecipient>> {
        let which = which.clone();
        self.write(move |c| hold::hold(c, &which, now)).await
    }

    async fn release_held(
        &self,
        which: &QueueSelection,
        now: UnixTime,
    ) -> StoreResult<Vec<OutRecipient>> {
        let which = which.clone();
        self.write(move |c| hold::release(c, &which, now)).await
    }

    async fn purge_bodies(&self, step: PurgeStep) -> StoreResult<Purged> {
        self.write(move |c| retention::purge(c, &step)).await
    }

    async fn purge_records(&self, step: RecordStep) -> StoreResult<PurgedRecords> {
        self.write(move |c| records::purge(c, &step)).await
    }

    async fn flush_queue(&self, now: UnixTime) -> StoreResult<u64> {
        self.write(move |c| queue::flush(c, now)).await
    }

    async fn queue_flushes(&self) -> StoreResult<u64> {
        self.read(directory::flushes).await
    }

    async fn queue_depth(&self) -> StoreResult<u64> {
        self.read(queue::queue_depth).await
    }

    async fn queue_shape(
        &self,
        now: UnixTime,
        age_bounds: Vec<u64>,
    ) -> StoreResult<Vec<DestinationShape>> {
        self.read(move |c| shape::queue_shape(c, now, &age_bounds))
            .await
    }

    async fn add_audit(&self, event: NewAudit) -> StoreResult<()> {
        self.write(move |c| audit::add(c, &event)).await
    }

    async fn purge_audit(&self, before: UnixTime, limit: usize) -> StoreResult<u64> {
        self.write(move |c| audit::purge(c, before, limit)).await
    }

    async fn audit(&self, query: AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        self.read(move |c| audit::read(c, &query)).await
    }

    async fn add_event(&self, event: NewEvent) -> StoreResult<()> {
        self.write(move |c| timeline::add_event(c, &event)).await
    }

    async fn events(&self, id: &QueueId) -> StoreResult<Vec<Event>> {
        let id = id.clone();
        self.read(move |c| timeline::events(c, &id)).await
    }

    async fn spool_inbound(&self, msg: NewInbound) -> StoreResult<QueueId> {
        self.write_with_bodies(
            msg,
            |m| vec![m.body.as_slice()],
            |c, msg| inbound::spool(c, &msg),
        )
        .await
    }

    async fn lease_inbound(
        &self,
        now: UnixTime,
        owner: &str,
        lease_until: UnixTime,
        limit: usize,
    ) -> StoreResult<Vec<Inbound>> {
        let owner = owner.to_owned();
        let leased = self
            .write(move |c| inbound::lease(c, now, &owner, lease_until, limit))
            .await?;
        // The bodies from a read connection, off the writer thread. A failure leaves the
        // leases to run out, and the messages to be taken again then.
        self.read(move |c| {
            let mut leased = leased;
            for inbound in &mut leased {
                inbound::fill_body(c, inbound)?;
            }
            Ok(leased)
        })
        .await
    }

    async fn finish_inbound(&self, done: InboundDone) -> StoreResult<Committed> {
        self.write_with_bodies(done, done_bodies, inbound::finish)
            .await
    }

    async fn record_inbound(&self, msg: NewInbound, done: InboundDone) -> StoreResult<Committed> {
        self.write_with_bodies((msg, done), record_bodies, |c, (msg, done)| {
            inbound::record(c, &msg, done)
        })
        .await
    }

    async fn quarantined(&self, limit: usize) -> StoreResult<Vec<Inbound>> {
        self.read(move |c| inbound::quarantined(c, limit)).await
    }

    async fn inbound(&self, id: &QueueId) -> StoreResult<Option<Inbound>> {
        let id = id.clone();
        self.read(move |c| inbound::get(c, &id)).await
    }

    async fn release_quarantined(&self, id: &QueueId, now: UnixTime) -> StoreResult<bool> {
        let id = id.clone();
        self.write(move |c| inbound::release(c, &id, now)).await
    }

    async fn deliver(&self, entry: NewMailboxEntry) -> StoreResult<i64> {
        self.write_with_bodies(
            entry,
            |e| vec![e.body.as_slice()],
            |c, entry| mailbox::deliver(c, &entry),
        )
        .await
    }

    async fn mailbox(
        &self,
        owner: &str,
        include_picked_up: bool,
    ) -> StoreResult<Vec<MailboxEntry>> {
        self.mailbox_page(owner, include_picked_up, 0, usize::MAX)
            .await
    }

    async fn mailbox_page(
        &self,
        owner: &str,
        include_picked_up: bool,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<MailboxEntry>> {
        let owner = owner.to_owned();
        self.read(move |c| mailbox::list(c, &owner, include_picked_up, after, limit))
            .await
    }

    async fn mailbox_entry(&self, owner: &str, id: i64) -> StoreResult<Option<MailboxEntry>> {
        let owner = owner.to_owned();
        self.read(move |c| mailbox::entry(c, &owner, id)).await
    }

    async fn mark_picked_up(
        &self,
        owner: &str,
        id: i64,
        now: UnixTime,
    ) -> StoreResult<Option<MailboxEntry>> {
        let owner = owner.to_owned();
        self.write(move |c| mailbox::mark_picked_up(c, &owner, id, now))
            .await
    }

    async fn note_notification(
        &self,
        original_message_id: &str,
        rcpt: &str,
        kind: &str,
        now: UnixTime,
    ) -> StoreResult<bool> {
        let (mid, rcpt, kind) = (
            original_message_id.to_owned(),
            rcpt.to_owned(),
            kind.to_owned(),
        );
        self.write(move |c| mailbox::note_notification(c, &mid, &rcpt, &kind, now))
            .await
    }
}

/// The body of an outbound message.
fn outbound_body(msg: &NewOutbound) -> Vec<&[u8]> {
    vec![msg.body.as_slice()]
}

/// The bodies an inbound message's outcome stores: mailbox entries and queued replies.
fn done_bodies(done: &InboundDone) -> Vec<&[u8]> {
    let delivered = done.deliveries.iter().map(|d| d.body.as_slice());
    delivered
        .chain(done.then.iter().map(|m| m.body.as_slice()))
        .collect()
}

/// The inbound message's own body (kept when not empty) and its outcome's bodies.
fn record_bodies((msg, done): &(NewInbound, InboundDone)) -> Vec<&[u8]> {
    let mut bodies = done_bodies(done);
    bodies.push(msg.body.as_slice());
    bodies
}
