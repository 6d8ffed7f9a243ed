//! The timely-and-reliable tracker (Direct Implementation Guide for Delivery Notification):
//! received MDNs and DSNs move each outbound recipient to `processed`, `dispatched` or
//! `failed`, repeats are dropped, and the notice is delivered to the sender's mailbox. A
//! recipient still waiting when its deadline passes fails with a DSN to the sender.

use crate::context::Context;
use crate::metrics::Metrics;
use crate::notify::{dsn_for_sender, Failure, Original};
use hisp_direct::dsn::{parse_dsn, Action};
use hisp_direct::mdn::{parse_mdn, DispositionType};
use hisp_direct::notification::{notification_kind, NotificationKind};
use hisp_store::{
    EntryKind, Inbound, InboundDone, InboundState, NewEvent, NewMailboxEntry, Notice, OutRecipient,
    RcptState, RcptUpdate, Store,
};
use std::sync::Arc;

/// What one notification says about one recipient.
struct Report {
    rcpt: String,
    kind: &'static str,
    state: RcptState,
    detail: String,
}

/// Read a received notification (already opened and trusted) and build the inbound
/// outcome: a notice per recipient it reports on, and the notification for the original
/// sender's mailbox. The store applies the notices with the outcome, each once, so a
/// repeat changes nothing and is not delivered again.
pub async fn handle_notification<S: Store>(
    ctx: &Context<S>,
    msg: &Inbound,
    inner: &[u8],
    from: &str,
    now: i64,
) -> InboundDone {
    let mut done = InboundDone::new(msg.id.clone(), InboundState::Delivered, now);
    let (original_id, reports, entry_kind) = match read_reports(inner, from) {
        Ok(x) => x,
        Err(why) => {
            done.state = InboundState::Quarantined;
            done.reason = Some(why);
            return done;
        }
    };
    let mut owner = None;
    let notifier_domain = hisp_direct::mime::domain_of(from);
    for rep in reports {
        // A HISP speaks only for its own domain: the signer is bound to `from`, so a report
        // about a recipient elsewhere is ignored (else one trusted peer could confirm or
        // fail deliveries to any other).
        if hisp_direct::mime::domain_of(&rep.rcpt) != notifier_domain {
            tracing::warn!(notifier = %from, about = %rep.rcpt, "notification about another domain's recipient ignored");
            continue;
        }
        let found = ctx.store.find_recipient(&original_id, &rep.rcpt).await;
        let Ok(Some(r)) = found else { continue };
        tracing::info!(queue_id = %r.message, domain = %r.domain, notification = rep.kind,
            "notification about a recipient (applied once, with the inbound message)");
        done.notices.push(notice(ctx, &original_id, &r, rep, now));
        owner.get_or_insert(r.sender);
    }
    if let Some(owner) = owner {
        let e = hisp_direct::mime::Entity::parse(inner);
        done.deliveries.push(NewMailboxEntry {
            owner,
            kind: entry_kind,
            message_id: e.headers.get("Message-ID").unwrap_or_default(),
            from: from.to_string(),
            subject: e.headers.get("Subject").unwrap_or_default(),
            body: inner.to_vec(),
            wants_dispatched: false,
            source: Some(msg.id.clone()),
            now,
        });
    }
    done.events.push(NewEvent {
        message: msg.id.clone(),
        rcpt: None,
        kind: "notification".into(),
        detail: format!("about {original_id}"),
        at: now,
    });
    done
}

/// The original Message-ID and per-recipient reports of an MDN or DSN.
fn read_reports(inner: &[u8], from: &str) -> Result<(String, Vec<Report>, EntryKind), String> {
    match notification_kind(inner) {
        Some(NotificationKind::Mdn) => {
            let m = parse_mdn(inner).map_err(|e| format!("unreadable MDN: {e}"))?;
            let id = m
                .correlation_id()
                .ok_or("MDN without Original-Message-ID or In-Reply-To")?
                .to_string();
            let rcpt = if m.final_recipient.address.is_empty() {
                from.to_string()
            } else {
                m.final_recipient.address.clone()
            };
            let (kind, state) = match m.disposition.disposition_type {
                DispositionType::Processed => ("processed", RcptState::Processed),
                DispositionType::Dispatched | DispositionType::Displayed => {
                    ("dispatched", RcptState::Dispatched)
                }
                _ => ("failed", RcptState::Failed),
            };
            let detail = format!("{} MDN from {from}", m.disposition);
            Ok((
                id,
                vec![Report {
                    rcpt,
                    kind,
                    state,
                    detail,
                }],
                EntryKind::Mdn,
            ))
        }
        Some(NotificationKind::Dsn) => {
            let d = parse_dsn(inner).map_err(|e| format!("unreadable DSN: {e}"))?;
            let id = d
                .correlation_id()
                .ok_or("DSN without the original Message-ID")?
                .to_string();
            let reports = d
                .recipients
                .iter()
                .filter(|r| r.action == Action::Failed)
                .map(|r| Report {
                    rcpt: r.final_recipient.address.clone(),
                    kind: "dsn-failed",
                    state: RcptState::Failed,
                    detail: format!("DSN {} from {from}", r.status),
                })
                .collect();
            Ok((id, reports, EntryKind::Dsn))
        }
        None => Err("not a notification".into()),
    }
}

/// The notice a report makes: the state it moves to, and a new deadline when
/// `processed` arrives and `dispatched` is still awaited (the store moves states only
/// forward).
fn notice<S: Store>(
    ctx: &Context<S>,
    original_id: &str,
    r: &OutRecipient,
    rep: Report,
    now: i64,
) -> Notice {
    let deadline = match rep.state {
        RcptState::Processed if r.wants_dispatched => {
            Some(now + ctx.config.queue.mdn_timeout.as_secs() as i64)
        }
        _ => None,
    };
    Notice {
        original_message_id: original_id.to_string(),
        message: r.message.clone(),
        rcpt: r.rcpt.clone(),
        kind: rep.kind.to_string(),
        state: rep.state,
        deadline,
        detail: rep.detail,
    }
}

/// Fail recipients whose notification is overdue, with a DSN to each sender.
pub async fn sweep_overdue<S: Store>(ctx: &Context<S>) {
    let now = ctx.now();
    let Ok(due) = ctx.store.overdue(now, 500).await else {
        return;
    };
    for r in due {
        let awaited = if r.state == RcptState::Processed {
            "dispatched"
        } else {
            "processed"
        };
        let why = format!(
            "no {awaited} MDN from {} within {}",
            r.rcpt,
            humantime::format_duration(ctx.config.queue.mdn_timeout)
        );
        let update = RcptUpdate {
            message: r.message.clone(),
            rcpt: r.rcpt.clone(),
            state: RcptState::Failed,
            attempts: r.attempts,
            next_attempt: r.next_attempt,
            last_error: Some(why.clone()),
            deadline: None,
            event: "timeout".into(),
            detail: why.clone(),
            now,
        };
        let Ok(Some(m)) = ctx.store.outbound(&r.message).await else {
            continue;
        };
        let original = Original {
            queue_id: &m.id,
            message_id: &m.message_id,
            sender: &m.sender,
        };
        let failure = Failure {
            rcpt: r.rcpt.clone(),
            status: (5, 4, 7),
            reason: why,
            remote: None,
        };
        let dsn = dsn_for_sender(&ctx.config.server.hostname, &original, &[failure], now);
        // Only if still overdue (an MDN applied since wins), with its DSN in one commit.
        if let Ok(true) = ctx.store.fail_overdue(update, r.state, dsn).await {
            Metrics::inc(&ctx.metrics.failed);
            Metrics::inc(&ctx.metrics.dsn_sent);
        }
    }
}

/// Sweep for overdue notifications every 30 s (of the daemon's clock) until `stop` flips.
pub async fn run<S: Store>(ctx: Arc<Context<S>>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        sweep_overdue(&ctx).await;
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
            _ = stop.changed() => return,
        }
    }
}
