//! Retention in the daemon (`[retention]`): a minute after start and then every hour, the
//! bodies nobody needs any more are removed ([`Store::purge_bodies`]), and then, when
//! `keep_records` is set, whole records of finished mail past it ([`Store::purge_records`]),
//! looking at [`BATCH`] rows of each kind per transaction, so the writer is never held long;
//! and, when `keep_audit` is set, the audit rows past it ([`Store::purge_audit`]).
//! `hisp purge` runs the same passes at once.

use crate::config::RetentionConfig;
use crate::context::Context;
use hisp_store::{PurgeStep, Purged, PurgedRecords, RecordStep, Store, StoreResult};
use std::sync::Arc;
use std::time::Duration;

/// Body rows of each kind looked at per transaction.
pub const BATCH: usize = 500;

/// What was made before this, at `now`, is past a retention of `keep`.
fn cutoff(now: i64, keep: Duration) -> i64 {
    now.saturating_sub(i64::try_from(keep.as_secs()).unwrap_or(i64::MAX))
}

/// Remove every body `cfg` no longer keeps at `now`, a step at a time; returns how many
/// went (the cursors of the result are spent).
pub async fn purge_all<S: Store>(
    store: &S,
    cfg: &RetentionConfig,
    now: i64,
) -> StoreResult<Purged> {
    let mut step = PurgeStep {
        outbound_before: cutoff(now, cfg.keep_outbound_bodies),
        picked_up_before: cutoff(now, cfg.keep_picked_up_bodies),
        quarantined_before: cutoff(now, cfg.keep_quarantined),
        outbound_after: 0,
        mailbox_after: 0,
        quarantined_after: 0,
        limit: BATCH,
        now,
    };
    let mut total = Purged::default();
    loop {
        let p = store.purge_bodies(step).await?;
        total.outbound += p.outbound;
        total.mailbox += p.mailbox;
        total.quarantined += p.quarantined;
        if p.done() {
            return Ok(total);
        }
        // A kind that is done is skipped from then on (no row lies past i64::MAX).
        step.outbound_after = p.outbound_next.unwrap_or(i64::MAX);
        step.mailbox_after = p.mailbox_next.unwrap_or(i64::MAX);
        step.quarantined_after = p.quarantined_next.unwrap_or(i64::MAX);
        tokio::task::yield_now().await;
    }
}

/// Remove the records of finished mail older than `keep_records` at `now`, a step at a
/// time; returns how many went (`None` when records are kept forever).
pub async fn purge_records_all<S: Store>(
    store: &S,
    cfg: &RetentionConfig,
    now: i64,
) -> StoreResult<Option<PurgedRecords>> {
    let Some(keep) = cfg.keep_records else {
        return Ok(None);
    };
    let mut step = Some(RecordStep::first(cutoff(now, keep), BATCH));
    let mut total = PurgedRecords::default();
    while let Some(s) = step {
        let p = store.purge_records(s).await?;
        total.messages += p.messages;
        total.inbound += p.inbound;
        total.mailbox += p.mailbox;
        total.notifications += p.notifications;
        step = p.next;
        tokio::task::yield_now().await;
    }
    Ok(Some(total))
}

/// Remove the audit rows older than `keep_audit` at `now`, a batch at a time; returns how
/// many went (`None` when they are kept forever).
pub async fn purge_audit_all<S: Store>(
    store: &S,
    cfg: &RetentionConfig,
    now: i64,
) -> StoreResult<Option<u64>> {
    let Some(keep) = cfg.keep_audit else {
        return Ok(None);
    };
    let before = cutoff(now, keep);
    let mut total = 0;
    loop {
        let n = store.purge_audit(before, BATCH).await?;
        total += n;
        if n < BATCH as u64 {
            return Ok(Some(total));
        }
        tokio::task::yield_now().await;
    }
}

/// Run the hourly pass until `stop` flips.
pub async fn run<S: Store>(ctx: Arc<Context<S>>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        wait = Duration::from_secs(3600);
        match purge_all(ctx.store.as_ref(), &ctx.config.retention, ctx.now()).await {
            Ok(p) if p.outbound + p.mailbox + p.quarantined > 0 => tracing::info!(
                outbound = p.outbound,
                mailbox = p.mailbox,
                quarantined = p.quarantined,
                "retention: bodies no longer needed removed"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention pass failed; it runs again in an hour"),
        }
        match purge_records_all(ctx.store.as_ref(), &ctx.config.retention, ctx.now()).await {
            Ok(Some(p)) if p.messages + p.inbound + p.mailbox + p.notifications > 0 => {
                tracing::info!(
                    messages = p.messages,
                    inbound = p.inbound,
                    mailbox = p.mailbox,
                    notifications = p.notifications,
                    "retention: records of finished mail past keep_records removed"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "records pass failed; it runs again in an hour"),
        }
        match purge_audit_all(ctx.store.as_ref(), &ctx.config.retention, ctx.now()).await {
            Ok(Some(n)) if n > 0 => {
                tracing::info!(rows = n, "retention: audit rows past keep_audit removed")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "audit pass failed; it runs again in an hour"),
        }
    }
}
