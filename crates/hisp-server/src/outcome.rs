//! Recording what one delivery attempt came to (`outbound.rs` makes the attempt): each
//! recipient relayed (then waiting for its MDN until `queue.mdn_timeout`), retried on the
//! 2 min → doubling → 2 h schedule, or failed (or expired) with a DSN to the sender; and
//! the attempt's line in the log.

use crate::context::Context;
use crate::metrics::Metrics;
use crate::notify::{dsn_for_sender, Failure, Original};
use hisp_store::{Lease, OutKind, OutRecipient, RcptState, RcptUpdate, Store};

/// Record the outcome of one attempt: state changes, timeline and, for the failures of a
/// message (never of a notification), the DSN to its sender, in one transaction.
pub(crate) async fn finish<S: Store>(
    ctx: &Context<S>,
    lease: &Lease,
    relayed: Vec<(OutRecipient, String)>,
    failed: Vec<Failure>,
    retry: Vec<(OutRecipient, String)>,
    fail_state: RcptState,
) {
    let now = ctx.now();
    let q = &ctx.config.queue;
    let tracked = lease.kind == OutKind::Message;
    let mut updates = Vec::new();
    for (r, text) in &relayed {
        Metrics::inc(&ctx.metrics.relayed);
        ctx.metrics
            .hop_latency
            .observe((now - lease.created).max(0) as f64);
        let deadline = tracked.then(|| now + q.mdn_timeout.as_secs() as i64);
        updates.push(update(
            lease,
            r,
            RcptState::Relayed,
            r.attempts + 1,
            now,
            None,
            deadline,
            "relayed",
            text,
            now,
        ));
    }
    for (r, text) in &retry {
        Metrics::inc(&ctx.metrics.retried);
        let attempts = r.attempts + 1;
        let next = now + q.retry_delay(attempts).as_secs() as i64;
        updates.push(update(
            lease,
            r,
            RcptState::Queued,
            attempts,
            next,
            Some(text.clone()),
            None,
            "retry",
            text,
            now,
        ));
    }
    for f in &failed {
        Metrics::inc(&ctx.metrics.failed);
        if let Some(r) = lease.recipients.iter().find(|r| r.rcpt == f.rcpt) {
            let kind = fail_state.as_str();
            updates.push(update(
                lease,
                r,
                fail_state,
                r.attempts + 1,
                now,
                Some(f.reason.clone()),
                None,
                kind,
                &f.reason,
                now,
            ));
        }
    }
    // The DSN commits with the failures it reports: a crash cannot keep one without the other.
    let dsn = (tracked && !failed.is_empty()).then(|| {
        let original = Original {
            queue_id: &lease.message,
            message_id: &lease.message_id,
            sender: &lease.sender,
        };
        dsn_for_sender(&ctx.config.server.hostname, &original, &failed, now)
    });
    let sent = dsn.is_some();
    let recorded = ctx
        .store
        .update_recipients_notifying(updates, dsn.into_iter().collect())
        .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, queue_id = %lease.message, "cannot record a delivery outcome");
        return;
    }
    if sent {
        Metrics::inc(&ctx.metrics.dsn_sent);
    }
    log_outcome(
        lease,
        now,
        relayed.len(),
        retry.len(),
        failed.len(),
        fail_state,
    );
}

/// Put the lease's recipients off until `until` without an attempt (their domain is
/// suspended, `suspend.rs`): attempts unchanged, so the backoff schedule is not advanced.
pub(crate) async fn postpone<S: Store>(ctx: &Context<S>, lease: &Lease, until: i64, reason: &str) {
    let now = ctx.now();
    let text = format!(
        "not tried: delivery to {} is suspended for {} s more after: {reason}",
        lease.domain,
        (until - now).max(0)
    );
    let updates = lease
        .recipients
        .iter()
        .map(|r| {
            let last = Some(text.clone());
            let (state, n) = (RcptState::Queued, r.attempts);
            update(
                lease,
                r,
                state,
                n,
                until,
                last,
                None,
                "suspended",
                &text,
                now,
            )
        })
        .collect();
    if let Err(e) = ctx
        .store
        .update_recipients_notifying(updates, Vec::new())
        .await
    {
        tracing::error!(error = %e, queue_id = %lease.message, "cannot put off a delivery");
        return;
    }
    Metrics::add(&ctx.metrics.postponed, lease.recipients.len());
    tracing::debug!(queue_id = %lease.message, domain = %lease.domain, until, "delivery put off");
}

/// One line per attempt, as an MTA's log has: queue id, domain, how many recipients went
/// which way, and the delay. Addresses and the peer's reply text (which often repeats
/// them) are in `hisp queue`; an address may name a patient, so it is not logged here.
fn log_outcome(
    lease: &Lease,
    now: i64,
    relayed: usize,
    deferred: usize,
    failed: usize,
    fail_state: RcptState,
) {
    let (failed, expired) = match fail_state {
        RcptState::Expired => (0, failed),
        _ => (failed, 0),
    };
    tracing::info!(
        queue_id = %lease.message,
        domain = %lease.domain,
        kind = lease.kind.as_str(),
        relayed,
        deferred,
        failed,
        expired,
        delay_s = (now - lease.created).max(0),
        "delivery attempt"
    );
}

#[allow(clippy::too_many_arguments)]
fn update(
    lease: &Lease,
    r: &OutRecipient,
    state: RcptState,
    attempts: u32,
    next_attempt: i64,
    last_error: Option<String>,
    deadline: Option<i64>,
    event: &str,
    detail: &str,
    now: i64,
) -> RcptUpdate {
    RcptUpdate {
        message: lease.message.clone(),
        rcpt: r.rcpt.clone(),
        state,
        attempts,
        next_attempt,
        last_error,
        deadline,
        event: event.to_string(),
        detail: detail.to_string(),
        now,
    }
}
