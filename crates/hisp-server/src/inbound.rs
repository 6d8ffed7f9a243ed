//! The inbound pipeline: lease spooled mail, open it (decrypt, verify, trust, binding) with
//! the recipients' domain credentials and anchors, then either deliver it to the mailboxes
//! and answer with a `processed` MDN, hand a notification to the tracker, or quarantine it
//! with the reason. Everything a message causes commits in one transaction.

use crate::context::Context;
use crate::metrics::Metrics;
use crate::notify::{mdn, Received};
use crate::tracker;
use hisp_direct::mdn::Disposition;
use hisp_direct::mime::{self, Entity};
use hisp_direct::notification::{notification_kind, NotificationRequest};
use hisp_direct::open::{open, OpenOptions};
use hisp_store::{EntryKind, Inbound, InboundDone, InboundState, NewEvent, NewMailboxEntry, Store};
use std::sync::Arc;
use std::time::Instant;

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
pub async fn tick<S: Store>(ctx: &Context<S>) -> usize {
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
pub async fn process<S: Store>(ctx: &Context<S>, mut msg: Inbound) {
    let now = ctx.now();
    let dir = ctx.directory();
    let Some(domain) = msg.rcpts.first().and_then(|r| dir.local_domain(r)) else {
        return quarantine(ctx, &msg, "no recipient in a local domain".into(), now).await;
    };
    let creds = dir.credentials();
    let anchors = domain.anchors.clone();
    let profile = ctx.profile.clone();
    let sender = msg.mail_from.clone();
    // The body moves into open, which decrypts it in place: one copy of a large message.
    let body = std::mem::take(&mut msg.body);
    let started = Instant::now();
    let cache = ctx.cert_cache.clone();
    // Opening is CPU work (RSA, AES, SHA): keep it off the reactor threads.
    let opened = tokio::task::spawn_blocking(move || {
        let mut opts = OpenOptions::new(&creds, &anchors, now, &profile);
        opts.cert_cache = Some(&cache);
        opts.envelope_sender = (!sender.is_empty()).then_some(sender.as_str());
        open(body, &opts)
    })
    .await;
    let Ok(opened) = opened else {
        // A panic in open would be a bug; the lease lapses and the message is retried.
        return tracing::error!(queue_id = %msg.id, "open task failed");
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
        return quarantine(ctx, &msg, reasons.join("; "), now).await;
    };
    let from = v.from.clone().unwrap_or_else(|| msg.mail_from.clone());
    if notification_kind(&inner).is_some() {
        let done = tracker::handle_notification(ctx, &msg, &inner, &from, now).await;
        return commit(ctx, done).await;
    }
    let done = deliver_message(ctx, &msg, inner, &from, now);
    commit(ctx, done).await;
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
    let mut done = InboundDone {
        id: msg.id.clone(),
        state: InboundState::Delivered,
        reason: None,
        deliveries: Vec::new(),
        then: Vec::new(),
        events: Vec::new(),
        now,
    };
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

async fn quarantine<S: Store>(ctx: &Context<S>, msg: &Inbound, reason: String, now: i64) {
    tracing::info!(queue_id = %msg.id, reason = %reason, "inbound message quarantined");
    Metrics::inc(&ctx.metrics.quarantined);
    let done = InboundDone {
        id: msg.id.clone(),
        state: InboundState::Quarantined,
        reason: Some(reason.clone()),
        deliveries: Vec::new(),
        then: Vec::new(),
        events: vec![event(msg, None, "quarantined", &reason, now)],
        now,
    };
    commit(ctx, done).await;
}

async fn commit<S: Store>(ctx: &Context<S>, done: InboundDone) {
    let delivered = done
        .deliveries
        .iter()
        .filter(|d| d.kind == EntryKind::Message)
        .count();
    let mdns = done.then.len();
    let id = done.id.clone();
    match ctx.store.finish_inbound(done).await {
        Ok(queued) => {
            for _ in 0..delivered {
                Metrics::inc(&ctx.metrics.delivered);
            }
            for _ in 0..mdns {
                Metrics::inc(&ctx.metrics.mdn_sent);
            }
            if !queued.is_empty() {
                ctx.wake_outbound.notify_one();
            }
        }
        // The lease expires and another attempt is made: nothing is lost.
        Err(e) => tracing::error!(error = %e, queue_id = %id, "cannot record an inbound outcome"),
    }
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
