//! Retention in the daemon (`[retention]`): a minute after start and then every hour, the
//! bodies nobody needs any more are removed ([`Store::purge_bodies`]), looking at [`BATCH`]
//! rows of each kind per transaction, so the writer is never held long. `hisp purge` runs the same pass
//! at once.

use crate::config::RetentionConfig;
use crate::context::Context;
use hisp_store::{PurgeStep, Purged, Store, StoreResult};
use std::sync::Arc;
use std::time::Duration;

/// Body rows of each kind looked at per transaction.
pub const BATCH: usize = 500;

/// Remove every body `cfg` no longer keeps at `now`, a step at a time; returns how many
/// went (the cursors of the result are spent).
pub async fn purge_all<S: Store>(
    store: &S,
    cfg: &RetentionConfig,
    now: i64,
) -> StoreResult<Purged> {
    let age = |d: Duration| now.saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut step = PurgeStep {
        outbound_before: age(cfg.keep_outbound_bodies),
        picked_up_before: age(cfg.keep_picked_up_bodies),
        quarantined_before: age(cfg.keep_quarantined),
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
    }
}
