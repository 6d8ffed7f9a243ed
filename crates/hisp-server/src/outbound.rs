//! The outbound pipeline: lease due recipients per (message, domain), seal once per domain
//! for every recipient certificate found, deliver over SMTP (static route, our own relay
//! port for local domains, else MX), and record each recipient's outcome (`outcome.rs`): relayed (then
//! wait for the MDN), retry on the 2 min → doubling → 2 h schedule, or fail with a DSN to
//! the sender at once on a permanent error, a missing certificate, or expiry.

use crate::context::{Context, RecipientCerts};
use crate::notify::Failure;
use crate::outcome::{finish, postpone};
use crate::spill::{TempFile, LARGE};
use crate::suspend::{Gate, Pass};
use hisp_direct::cert::ParsedCert;
use hisp_direct::keys::Credential;
use hisp_direct::seal::{seal, seal_to, SealOptions};
use hisp_smtp::client::{resolve_mx, ClientError, Content};
use hisp_smtp::Envelope;
use hisp_store::{
    Lease, LeaseContent, LeaseTo, NewOutbound, OutRecipient, QueueId, Queued, RcptState, Share,
    Store, StoreResult,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;

/// How long a leased group may take before another worker may retry it.
const LEASE_SECS: i64 = 600;

/// Run the delivery workers until `stop` flips.
pub async fn run<S: Store>(ctx: Arc<Context<S>>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        // Hold a slot before leasing, so nothing leased waits for one.
        let Ok(first) = ctx.delivery_slots.clone().acquire_owned().await else {
            return;
        };
        let mut permits = vec![first];
        while let Ok(p) = ctx.delivery_slots.clone().try_acquire_owned() {
            permits.push(p);
        }
        let now = ctx.now();
        let want = permits.len();
        let share = share(&ctx);
        let held_back = share.full().next().is_some();
        let leases = match ctx
            .store
            .lease_due_shared(now, &ctx.node, now + LEASE_SECS, want, share)
            .await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot lease outbound work");
                Vec::new()
            }
        };
        // A full batch means more may be due, and a domain at its limit may have mail
        // waiting for one of its deliveries to end: finishing deliveries wake the loop.
        ctx.backlog
            .store(leases.len() == want || held_back, Ordering::Relaxed);
        let idle = leases.is_empty();
        // A retry may be due because the operator fixed its cause (or flushed the queue):
        // use the fix. First attempts (nearly all of the work) do not pay for the check.
        if leases.iter().any(|l| {
            l.recipients
                .iter()
                .any(|r| r.attempts > 0 || r.last_error.is_some())
        }) {
            ctx.reload_directory_if_changed().await;
            ctx.notice_flush().await;
        }
        for (lease, permit) in leases.into_iter().zip(permits.drain(..)) {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                deliver_group(&ctx, lease, None).await;
                drop(permit);
                wake_if_backlog(&ctx);
            });
        }
        drop(permits);
        if idle {
            tokio::select! {
                _ = ctx.wake_outbound.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// How this lease shares the delivery slots: no domain gets more than
/// `queue.max_per_destination` at once, so a slow peer leaves the other destinations the
/// rest (a dead one is suspended instead, `suspend.rs`).
fn share<S: Store>(ctx: &Context<S>) -> Share {
    Share {
        in_flight: ctx.destinations.under_way(),
        per_domain: ctx.config.queue.per_destination(),
    }
}

/// A delivery slot for sending what is being queued at once: when the workers run, one is
/// free, and no recipient's domain is at `queue.max_per_destination` (else the queue
/// takes it when there is room).
pub fn slot_for_now<'a, S: Store>(
    ctx: &Context<S>,
    mut rcpts: impl Iterator<Item = &'a String>,
) -> Option<OwnedSemaphorePermit> {
    let limit = ctx.config.queue.per_destination();
    let room = |r: &String| {
        let domain = hisp_direct::mime::domain_of(r).unwrap_or_default();
        ctx.destinations.has_room(&domain, limit)
    };
    if !ctx.immediate || !rcpts.all(room) {
        return None;
    }
    ctx.delivery_slots.clone().try_acquire_owned().ok()
}

/// The lease a message queued for immediate delivery is taken under.
pub fn lease_to<S: Store>(ctx: &Context<S>) -> LeaseTo {
    LeaseTo {
        owner: ctx.node.clone(),
        until: ctx.now() + LEASE_SECS,
    }
}

/// Queue a message and, when the workers run and a delivery slot is free, deliver it at
/// once: it is queued leased to us, so the queue takes it over only if this fails.
pub async fn queue<S: Store>(ctx: &Arc<Context<S>>, msg: NewOutbound) -> StoreResult<QueueId> {
    let Some(permit) = slot_for_now(ctx, msg.recipients.iter()) else {
        let id = ctx.store.enqueue(msg).await?;
        ctx.wake_outbound.notify_one();
        return Ok(id);
    };
    let queued = ctx.store.enqueue_leased(msg, lease_to(ctx)).await?;
    let id = queued.id.clone();
    deliver_now(ctx, vec![queued], permit);
    Ok(id)
}

/// Deliver messages just queued leased to us, with their bodies in hand, in one slot.
pub fn deliver_now<S: Store>(
    ctx: &Arc<Context<S>>,
    queued: Vec<Queued>,
    permit: OwnedSemaphorePermit,
) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        for q in queued {
            let body = Arc::new(q.body);
            for lease in q.leases {
                deliver_group(&ctx, lease, Some(body.clone())).await;
            }
        }
        drop(permit);
        wake_if_backlog(&ctx);
    });
}

/// After a delivery: wake the workers when their last lease left work behind (a full
/// batch, or a domain at `queue.max_per_destination` that now has room).
fn wake_if_backlog<S: Store>(ctx: &Context<S>) {
    if ctx.backlog.load(Ordering::Relaxed) {
        ctx.wake_outbound.notify_one();
    }
}

/// Lease whatever is due now and deliver it, one group after another; returns how many
/// groups were attempted. The workers do the same concurrently; tests with a manual clock
/// call this to step the queue deterministically.
pub async fn tick<S: Store>(ctx: &Context<S>) -> usize {
    ctx.notice_flush().await;
    let now = ctx.now();
    let leases = ctx
        .store
        .lease_due_shared(now, &ctx.node, now + LEASE_SECS, 64, share(ctx))
        .await
        .unwrap_or_default();
    let n = leases.len();
    for lease in leases {
        deliver_group(ctx, lease, None).await;
    }
    n
}

/// One delivery attempt for the leased recipients of one message in one domain; `body` is
/// the submitted message when the caller has it (else it is read from the store).
pub async fn deliver_group<S: Store>(
    ctx: &Context<S>,
    mut lease: Lease,
    body: Option<Arc<Vec<u8>>>,
) {
    let content = lease.content.take();
    let now = ctx.now();
    let expire = lease.created + ctx.config.queue.expire_after.as_secs() as i64;
    if now >= expire {
        let why = format!(
            "no successful delivery within {}",
            humantime::format_duration(ctx.config.queue.expire_after)
        );
        let fails = lease
            .recipients
            .iter()
            .map(|r| fail(r, (5, 4, 7), &why, None))
            .collect();
        return finish(
            ctx,
            &lease,
            Vec::new(),
            fails,
            Vec::new(),
            RcptState::Expired,
        )
        .await;
    }
    // Checked before sealing: mail for a suspended domain costs no crypto either.
    let pass = match ctx
        .destinations
        .gate(&lease.domain, now, suspension_secs(ctx))
    {
        Gate::Go(pass) => pass,
        Gate::Wait { until, reason } => return postpone(ctx, &lease, until, &reason).await,
    };
    let Prepared {
        sealed,
        sealed_for: certs,
        reachable: rcpts,
        no_cert,
        unknown,
        fresh,
    } = match sealed_for(ctx, &lease, body, content).await {
        Ok(x) => x,
        Err(why) => {
            // Our own failure (store, key): try again later rather than fail the message.
            let retry = lease
                .recipients
                .iter()
                .map(|r| (r.clone(), why.clone()))
                .collect();
            return finish(
                ctx,
                &lease,
                Vec::new(),
                Vec::new(),
                retry,
                RcptState::Failed,
            )
            .await;
        }
    };
    if rcpts.is_empty() {
        return finish(ctx, &lease, Vec::new(), no_cert, unknown, RcptState::Failed).await;
    }
    let (relayed, failed, mut retry) = attempt(ctx, &lease, &rcpts, sealed.content(), pass).await;
    if let (Sealed::Memory(bytes), true) = (&sealed, fresh && !retry.is_empty()) {
        // Kept for the retries only: a message delivered at once is never stored sealed
        // (nor is a large one: sealing again costs less than keeping it).
        if let Err(e) = ctx
            .store
            .store_sealed(&lease.message, &lease.domain, bytes, &certs)
            .await
        {
            tracing::warn!(error = %e, "cannot keep the sealed form; it will be sealed again");
        }
    }
    drop(sealed);
    retry.extend(unknown);
    let mut failed = failed;
    failed.extend(no_cert);
    finish(ctx, &lease, relayed, failed, retry, RcptState::Failed).await;
}

fn fail(r: &OutRecipient, status: (u8, u16, u16), why: &str, remote: Option<String>) -> Failure {
    Failure {
        rcpt: r.rcpt.clone(),
        status,
        reason: why.to_string(),
        remote,
    }
}

/// A sealed message: in memory, or in a temporary file when it is large.
enum Sealed {
    Memory(Vec<u8>),
    File { file: TempFile, len: u64 },
}

impl Sealed {
    fn content(&self) -> Content<'_> {
        match self {
            Sealed::Memory(b) => Content::Bytes(b),
            Sealed::File { file, len } => Content::File {
                path: file.path(),
                len: *len,
                // Sealed output is base64 under ASCII headers.
                eight_bit: false,
            },
        }
    }
}

/// What one attempt starts from.
struct Prepared {
    /// The message sealed for the reachable recipients' certificates (kept from an earlier
    /// attempt, or made now: `fresh`).
    sealed: Sealed,
    /// What names the certificates it is sealed for ([`cert_set_key`]).
    sealed_for: String,
    reachable: Vec<OutRecipient>,
    /// No usable certificate: fail now.
    no_cert: Vec<Failure>,
    /// Discovery got no answer: try again later.
    unknown: Vec<(OutRecipient, String)>,
    fresh: bool,
}

/// Find every recipient's certificates and seal for those that have one.
async fn sealed_for<S: Store>(
    ctx: &Context<S>,
    lease: &Lease,
    body: Option<Arc<Vec<u8>>>,
    content: Option<LeaseContent>,
) -> Result<Prepared, String> {
    let mut p = Prepared {
        sealed: Sealed::Memory(Vec::new()),
        sealed_for: String::new(),
        reachable: Vec::new(),
        no_cert: Vec::new(),
        unknown: Vec::new(),
        fresh: false,
    };
    let mut certs = Vec::new();
    for r in &lease.recipients {
        match ctx.recipient_certs(&lease.sender, &r.rcpt).await {
            RecipientCerts::Found(found) => {
                certs.extend(found);
                p.reachable.push(r.clone());
            }
            RecipientCerts::None(rejected) => {
                let detail = if rejected.is_empty() {
                    String::new()
                } else {
                    format!(" (rejected: {})", rejected.join("; "))
                };
                let why = format!("no usable Direct certificate found for {}{detail}", r.rcpt);
                p.no_cert.push(fail(r, (5, 7, 0), &why, None));
            }
            RecipientCerts::Unknown(why) => {
                let why = format!("certificate discovery for {}: {why}", r.rcpt);
                p.unknown.push((r.clone(), why));
            }
        }
    }
    if p.reachable.is_empty() {
        return Ok(p);
    }
    let store = &ctx.store;
    p.sealed_for = cert_set_key(&certs);
    let (kept, content_body) = match content {
        Some(LeaseContent::Sealed(s)) => (Some(s), None),
        Some(LeaseContent::Body(b)) => (None, Some(b)),
        None if body.is_none() => {
            let kept = store.sealed(&lease.message, &lease.domain).await;
            (kept.ok().flatten(), None)
        }
        None => (None, None),
    };
    // A form sealed by an earlier attempt goes only to the certificates it was sealed for:
    // not to a certificate since renewed or revoked, nor to a recipient whose discovery
    // failed then and has found one now.
    match kept {
        Some(s) if s.certs == p.sealed_for => {
            p.sealed = Sealed::Memory(s.body);
            return Ok(p);
        }
        Some(_) => tracing::info!(
            queue_id = %lease.message,
            domain = %lease.domain,
            "the recipients' certificates changed since the message was sealed: sealing it again"
        ),
        None => {}
    }
    let body = match (body, content_body) {
        // Just queued: never sealed before.
        (Some(b), _) => b,
        // Read with the lease.
        (None, Some(b)) => Arc::new(b),
        (None, None) => {
            let body = store.outbound_body(&lease.message).await;
            Arc::new(
                body.map_err(|e| e.to_string())?
                    .ok_or("message body missing")?,
            )
        }
    };
    let cred = sender_credential(ctx, &lease.sender)
        .ok_or_else(|| format!("no credential for the sender {}", lease.sender))?;
    let c = &ctx.config.crypto;
    let mut opts = SealOptions::new(ctx.now());
    opts.cipher = c.cipher.cipher();
    opts.key_transport = c.key_transport();
    opts.digest = c.digest();
    let started = Instant::now();
    let spill = (body.len() > LARGE).then(|| crate::spill::dir(&ctx.config.server.data_dir));
    let sealed = crate::context::crypto(body.len(), move || {
        let refs: Vec<&openssl::x509::X509Ref> = certs.iter().map(|c| c.x509.as_ref()).collect();
        let Some(dir) = spill else {
            return seal(&body, &cred, &refs, &opts)
                .map(Sealed::Memory)
                .map_err(|e| format!("cannot seal: {e}"));
        };
        let (file, mut f) = TempFile::create(&dir)
            .map_err(|e| format!("cannot create a file in {}: {e}", dir.display()))?;
        let len = seal_to(&body, &cred, &refs, &opts, &mut f)
            .map_err(|e| format!("cannot seal to {}: {e}", file.path().display()))?;
        Ok(Sealed::File { file, len })
    })
    .await
    .ok_or("sealing failed unexpectedly")??;
    ctx.metrics
        .seal_seconds
        .observe(started.elapsed().as_secs_f64());
    p.sealed = sealed;
    p.fresh = true;
    Ok(p)
}

/// What names a set of certificates: their SHA-256s, sorted, so the same set found in
/// another order matches.
fn cert_set_key(certs: &[Arc<ParsedCert>]) -> String {
    let mut prints: Vec<String> = certs.iter().map(|c| c.sha256_hex()).collect();
    prints.sort_unstable();
    prints.dedup();
    prints.join(",")
}

fn sender_credential<S: Store>(ctx: &Context<S>, sender: &str) -> Option<Credential> {
    ctx.directory().local_domain(sender).map(|d| d.cred.clone())
}

type Outcome = (
    Vec<(OutRecipient, String)>,
    Vec<Failure>,
    Vec<(OutRecipient, String)>,
);

/// Deliver to the first target that answers; sort recipients by the replies. `pass` learns
/// whether the domain's hosts could be reached at all.
async fn attempt<S: Store>(
    ctx: &Context<S>,
    lease: &Lease,
    rcpts: &[OutRecipient],
    sealed: Content<'_>,
    pass: Pass<'_>,
) -> Outcome {
    let targets = match ctx.route_for(&lease.domain) {
        Some(t) => vec![t],
        None => match resolve_mx(&lease.domain).await {
            Ok(t) => t,
            Err(e) => return host_error(ctx, pass, rcpts, &e),
        },
    };
    let env = Envelope {
        mail_from: lease.sender.clone(),
        rcpt_to: rcpts.iter().map(|r| r.rcpt.clone()).collect(),
        body_8bit: false,
        declared_size: Some(sealed.len()),
    };
    let (mut last_err, mut answered) = (None, false);
    for t in &targets {
        match ctx.pool.deliver(t, &ctx.client, &env, sealed).await {
            Ok(d) => {
                pass.reached();
                let mut out: Outcome = (Vec::new(), Vec::new(), Vec::new());
                for r in rcpts {
                    let reply = d
                        .per_rcpt
                        .iter()
                        .find(|(a, _)| a.eq_ignore_ascii_case(&r.rcpt))
                        .map(|(_, rep)| rep);
                    let reply = match (reply, &d.data_reply) {
                        (Some(rr), _) if !rr.is_positive() => rr.clone(),
                        (_, Some(dr)) => dr.clone(),
                        (Some(rr), None) => rr.clone(),
                        (None, None) => hisp_smtp::Reply::new(451, Some((4, 4, 0)), "no reply"),
                    };
                    let text = format!("{t}: {reply}");
                    if reply.is_positive() {
                        out.0.push((r.clone(), text));
                    } else if reply.is_permanent() {
                        let st = reply.status.unwrap_or((5, 0, 0));
                        out.1.push(fail(r, st, &text, Some(d.remote.clone())));
                    } else {
                        out.2.push((r.clone(), text));
                    }
                }
                return out;
            }
            Err(e) if e.is_permanent() => {
                pass.reached();
                return classify_error(rcpts, &e);
            }
            Err(e) => {
                // A host that answered and failed the transaction shows the domain is
                // reachable, though the next one is tried as before.
                answered |= !e.is_host_failure();
                last_err = Some(e);
            }
        }
    }
    match last_err {
        Some(e) if answered => {
            pass.reached();
            classify_error(rcpts, &e)
        }
        Some(e) => host_error(ctx, pass, rcpts, &e),
        None => (
            Vec::new(),
            Vec::new(),
            rcpts
                .iter()
                .map(|r| (r.clone(), "no delivery target".into()))
                .collect(),
        ),
    }
}

/// How long a destination stays suspended after a host failure: `queue.retry_first`.
fn suspension_secs<S: Store>(ctx: &Context<S>) -> i64 {
    ctx.config.queue.retry_first.as_secs() as i64
}

/// The domain's hosts could not be reached (when `e` says so, it is suspended); the
/// recipients are sorted by `e` as any failure.
fn host_error<S: Store>(
    ctx: &Context<S>,
    pass: Pass<'_>,
    rcpts: &[OutRecipient],
    e: &ClientError,
) -> Outcome {
    if e.is_host_failure() {
        let now = ctx.now();
        pass.unreachable(now, now + suspension_secs(ctx), &e.to_string());
    } else {
        pass.reached();
    }
    classify_error(rcpts, e)
}

fn classify_error(rcpts: &[OutRecipient], e: &ClientError) -> Outcome {
    let text = e.to_string();
    if e.is_permanent() {
        (
            Vec::new(),
            rcpts
                .iter()
                .map(|r| fail(r, (5, 4, 0), &text, None))
                .collect(),
            Vec::new(),
        )
    } else {
        (
            Vec::new(),
            Vec::new(),
            rcpts.iter().map(|r| (r.clone(), text.clone())).collect(),
        )
    }
}
