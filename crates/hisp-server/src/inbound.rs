//! The inbound pipeline: lease spooled mail, open it (decrypt, verify, trust, binding) with
//! the recipients' domain credentials and anchors, then either deliver it to the mailboxes
//! and answer with a `processed` MDN, hand a notification to the tracker, or quarantine it
//! with the reason. Everything a message causes commits in one transaction.

use crate::context::{Arrival, Context};
use crate::metrics::Metrics;
use crate::notify::{mdn, Received};
use crate::tracker;
use hisp_direct::mdn::Disposition;
use hisp_direct::mime::{self, Entity};
use hisp_direct::notification::{notification_kind, NotificationRequest};
use hisp_direct::open::{open, OpenOptions};
use hisp_store::{
    Committed, EntryKind, Inbound, InboundDone, InboundState, NewEvent, NewInbound,
    NewMailboxEntry, QueueId, Store, StoreError, StoreResult,
};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;

const LEASE_SECS: i64 = 600;

/// Run the inbound workers until `stop` flips.
pub async fn run<S: Store>(ctx: Arc<Context<S>>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let workers = Arc::new(tokio::sync::Semaphore::new(8));
    loop {
        if *stop.borrow() {
            return;
        }
        let now = ctx.now();
        let free = workers.available_permits().max(1);
        let batch = match ctx
            .store
            .lease_inbound(now, &ctx.node, now + LEASE_SECS, free)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot lease inbound work");
                Vec::new()
            }
        };
        let idle = batch.is_empty();
        if !idle {
            ctx.reload_directory_if_changed().await;
        }
        for msg in batch {
            let Ok(permit) = workers.clone().acquire_owned().await else {
                return;
            };
            let ctx = ctx.clone();
            tokio::spawn(async move {
                process(&ctx, msg).await;
                drop(permit);
                ctx.wake_inbound.notify_one();
            });
        }
        if idle {
            tokio::select! {
                _ = ctx.wake_inbound.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Process whatever is spooled now, one message after another; returns how many.
pub async fn tick<S: Store>(ctx: &Arc<Context<S>>) -> usize {
    let now = ctx.now();
    let batch = ctx
        .store
        .lease_inbound(now, &ctx.node, now + LEASE_SECS, 64)
        .await
        .unwrap_or_default();
    let n = batch.len();
    for msg in batch {
        process(ctx, msg).await;
    }
    n
}

/// Open one spooled message and commit what follows from it.
pub async fn process<S: Store>(ctx: &Arc<Context<S>>, mut msg: Inbound) {
    let Some((done, _)) = outcome(ctx, &mut msg, false).await else {
        return;
    };
    let (done, permit) = lease_notifications(ctx, done);
    let (id, delivered) = (done.id.clone(), delivered(ctx, &done));
    match ctx.store.finish_inbound(done).await {
        Ok(committed) => after_commit(ctx, &id, delivered, committed, permit),
        // The lease expires and another attempt is made: nothing is lost.
        Err(e) => tracing::error!(error = %e, queue_id = %id, "cannot record an inbound outcome"),
    }
}

/// Process a message from the relay port before answering: open it and commit it with
/// its outcome in one transaction (no spool, no second read). The sealed form is kept
/// only if it is quarantined. `Err` means nothing was committed (the peer gets `451`).
pub async fn receive<S: Store>(ctx: &Arc<Context<S>>, new: NewInbound) -> StoreResult<QueueId> {
    let id = QueueId::fresh('i');
    let mut msg = Inbound {
        id: id.clone(),
        mail_from: new.mail_from,
        rcpts: new.rcpts,
        body: new.body,
        state: InboundState::Spooled,
        reason: None,
        received: new.now,
    };
    let Some((done, sealed)) = outcome(ctx, &mut msg, true).await else {
        return Err(StoreError::Closed);
    };
    let record = NewInbound {
        mail_from: msg.mail_from,
        rcpts: msg.rcpts,
        body: sealed.unwrap_or_default(),
        peer: new.peer,
        now: new.now,
    };
    let (done, permit) = lease_notifications(ctx, done);
    let delivered = delivered(ctx, &done);
    let committed = ctx.store.record_inbound(record, done).await?;
    after_commit(ctx, &id, delivered, committed, permit);
    Ok(id)
}

/// What opening `msg` leads to, and, when `keep_sealed` and it is quarantined, the
/// sealed message to keep with it. `None` when opening itself failed (a bug).
async fn outcome<S: Store>(
    ctx: &Context<S>,
    msg: &mut Inbound,
    keep_sealed: bool,
) -> Option<(InboundDone, Option<Vec<u8>>)> {
    let now = ctx.now();
    let dir = ctx.directory();
    let Some(domain) = msg.rcpts.first().and_then(|r| dir.local_domain(r)) else {
        let sealed = keep_sealed.then(|| std::mem::take(&mut msg.body));
        let why = "no recipient in a local domain".to_string();
        return Some((quarantine(ctx, msg, why, now), sealed));
    };
    let creds = dir.credentials();
    let anchors = domain.anchors.clone();
    let profile = ctx.profile.clone();
    let sender = msg.mail_from.clone();
    // The body moves into open, which decrypts it in place: one copy of a large message
    // (two when the sealed form must survive a failure).
    let body = std::mem::take(&mut msg.body);
    let mut sealed = keep_sealed.then(|| body.clone());
    let started = Instant::now();
    let cache = ctx.cert_cache.clone();
    let opened = crate::context::crypto(body.len(), move || {
        let mut opts = OpenOptions::new(&creds, &anchors, now, &profile);
        opts.cert_cache = Some(&cache);
        opts.envelope_sender = (!sender.is_empty()).then_some(sender.as_str());
        open(body, &opts)
    })
    .await;
    let Some(opened) = opened else {
        // A panic in open would be a bug: a spooled message's lease lapses and it is
        // retried; a relayed one gets 451 and its sender retries.
        tracing::error!(queue_id = %msg.id, "open task failed");
        return None;
    };
    ctx.metrics
        .open_seconds
        .observe(started.elapsed().as_secs_f64());
    let (v, inner) = opened.into_trusted_inner();
    let Some(inner) = inner else {
        let reasons: Vec<String> = v
            .errors
            .iter()
            .map(|e| format!("{}: {e}", e.kind()))
            .collect();
        return Some((quarantine(ctx, msg, reasons.join("; "), now), sealed));
    };
    let from = v.from.clone().unwrap_or_else(|| msg.mail_from.clone());
    let done = if notification_kind(&inner).is_some() {
        let done = tracker::handle_notification(ctx, msg, &inner, &from, now).await;
        // A notification that cannot be read is quarantined after all.
        if done.state != InboundState::Quarantined {
            sealed = None;
        }
        done
    } else {
        sealed = None;
        deliver_message(ctx, msg, inner, &from, now)
    };
    Some((done, sealed))
}

/// When the workers run and a delivery slot is free (`outbound::slot_for_now`), have the
/// MDNs this outcome queues leased to us in the same commit, to be sent at once.
fn lease_notifications<S: Store>(
    ctx: &Context<S>,
    mut done: InboundDone,
) -> (InboundDone, Option<OwnedSemaphorePermit>) {
    if done.then.is_empty() {
        return (done, None);
    }
    let rcpts = done.then.iter().flat_map(|m| m.recipients.iter());
    let permit = crate::outbound::slot_for_now(ctx, rcpts);
    if permit.is_some() {
        done.lease_then = Some(crate::outbound::lease_to(ctx));
    }
    (done, permit)
}

/// The messages (not MDNs) `done` delivers: (owner, Message-ID) when someone listens for
/// arrivals, else only their count.
fn delivered<S: Store>(ctx: &Context<S>, done: &InboundDone) -> Delivered {
    let messages = done
        .deliveries
        .iter()
        .filter(|d| d.kind == EntryKind::Message);
    if ctx.arrivals.receiver_count() == 0 {
        return Delivered::Count(messages.count());
    }
    let named = messages.map(|d| (d.owner.clone(), d.message_id.clone()));
    Delivered::Named(named.collect())
}

/// What [`after_commit`] reports of the deliveries it follows.
enum Delivered {
    Count(usize),
    Named(Vec<(String, String)>),
}

impl Delivered {
    /// Tell the listeners, if any (a send with none left is no error), and return how many
    /// messages were delivered.
    fn announce<S: Store>(self, ctx: &Context<S>) -> usize {
        let v = match self {
            Delivered::Count(n) => return n,
            Delivered::Named(v) => v,
        };
        let (n, at) = (v.len(), Instant::now());
        for (owner, message_id) in v {
            let _ = ctx.arrivals.send(Arrival {
                owner,
                message_id,
                at,
            });
        }
        n
    }
}

/// Count what was committed and send the notifications it queued.
fn after_commit<S: Store>(
    ctx: &Arc<Context<S>>,
    id: &QueueId,
    delivered: Delivered,
    committed: Committed,
    permit: Option<OwnedSemaphorePermit>,
) {
    let delivered = delivered.announce(ctx);
    // Queue ids and counts only: addresses may name patients (they are in `hisp queue`).
    if delivered > 0 || committed.notices_new + committed.notices_repeated > 0 {
        tracing::info!(
            queue_id = %id,
            delivered,
            mdn_queued = committed.queued.len(),
            notices = committed.notices_new,
            repeated = committed.notices_repeated,
            "inbound message done"
        );
    }
    let m = &ctx.metrics;
    let counts = [
        (&m.delivered, delivered),
        (&m.mdn_sent, committed.queued.len()),
        (&m.mdn_received, committed.notices_new),
        (&m.notifications_duplicate, committed.notices_repeated),
    ];
    for (counter, n) in counts {
        Metrics::add(counter, n);
    }
    if committed.queued.is_empty() {
        return;
    }
    match permit {
        Some(p) => crate::outbound::deliver_now(ctx, committed.queued, p),
        None => ctx.wake_outbound.notify_one(),
    }
}

/// Mailbox entries for every recipient and a `processed` MDN for each (Direct IG §3.1),
/// unless the message is itself automatic (no MDN for an MDN, RFC 3834).
fn deliver_message<S: Store>(
    ctx: &Context<S>,
    msg: &Inbound,
    inner: Vec<u8>,
    from: &str,
    now: i64,
) -> InboundDone {
    let e = Entity::parse(&inner);
    let message_id = e.headers.get("Message-ID").unwrap_or_default();
    let subject = e.headers.get("Subject").unwrap_or_default();
    let request = NotificationRequest::read(&inner);
    let wants_dispatched = request
        .as_ref()
        .is_some_and(|r| r.final_destination_delivery);
    let host = &ctx.config.server.hostname;
    let mut done = InboundDone::new(msg.id.clone(), InboundState::Delivered, now);
    let mut body = Some(inner);
    for (i, rcpt) in msg.rcpts.iter().enumerate() {
        // The last recipient takes the buffer itself; earlier ones get copies.
        let last = i + 1 == msg.rcpts.len();
        let this = if last {
            body.take().unwrap_or_default()
        } else {
            body.clone().unwrap_or_default()
        };
        done.deliveries.push(NewMailboxEntry {
            owner: rcpt.clone(),
            kind: EntryKind::Message,
            message_id: message_id.clone(),
            from: from.to_string(),
            subject: subject.clone(),
            body: this,
            wants_dispatched,
            source: Some(msg.id.clone()),
            now,
        });
        if request.is_some() && !message_id.is_empty() {
            let r = Received {
                rcpt,
                sender: from,
                message_id: &message_id,
                subject: Some(&subject),
            };
            done.then
                .push(mdn(host, &r, Disposition::processed(), false, now));
        }
        done.events.push(event(
            msg,
            Some(rcpt),
            "delivered",
            &format!("mailbox of {rcpt}"),
            now,
        ));
    }
    done
}

fn event(msg: &Inbound, rcpt: Option<&str>, kind: &str, detail: &str, now: i64) -> NewEvent {
    NewEvent {
        message: msg.id.clone(),
        rcpt: rcpt.map(str::to_string),
        kind: kind.into(),
        detail: detail.into(),
        at: now,
    }
}

fn quarantine<S: Store>(ctx: &Context<S>, msg: &Inbound, reason: String, now: i64) -> InboundDone {
    tracing::info!(queue_id = %msg.id, reason = %reason, "inbound message quarantined");
    Metrics::inc(&ctx.metrics.quarantined);
    let mut done = InboundDone::new(msg.id.clone(), InboundState::Quarantined, now);
    done.events
        .push(event(msg, None, "quarantined", &reason, now));
    done.reason = Some(reason);
    done
}

/// The To and Cc addresses of a message (REST submission's default recipients).
pub fn recipients_of(message: &[u8]) -> Vec<String> {
    let e = Entity::parse(message);
    ["To", "Cc"]
        .iter()
        .flat_map(|h| e.headers.get_all(h))
        .flat_map(|v| mime::parse_address_list(&v))
        .map(|m| m.address)
        .collect()
}
