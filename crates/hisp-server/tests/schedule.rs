//! The queue's clock-driven rules with a manual clock and listeners only (the queue moves
//! only when the test ticks it): the retry schedule (2 min doubling to 2 h), relaying once
//! the peer returns, expiry after 5 days with a 5.4.7 DSN, and the Direct IG "timely and
//! reliable" timeouts for the `processed` and `dispatched` MDNs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hisp_direct::dsn::{parse_dsn, Action, Dsn};
use hisp_server::clock::{ManualClock, SharedClock};
use hisp_server::pair::Peer;
use hisp_server::{inbound, outbound, tracker};
use hisp_store::{EntryKind, QueueId, RcptState, Store};
use std::sync::Arc;

const MIN: i64 = 60;

/// A pair on a manual clock reading `t0`; alpha listens (no workers), beta is down.
async fn alpha_up_beta_down(t0: i64) -> (tempfile::TempDir, Peer, Peer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(t0));
    let (root, mut a, b) = pair(t0).await;
    a.start_listeners(clock.clone() as SharedClock)
        .await
        .unwrap();
    (root, a, b, clock)
}

/// Queue a message from alice to `to`; returns its queue id and Message-ID.
async fn queue(a: &Peer, to: &str, dispatched: bool) -> (QueueId, String) {
    queue_message(a, &[to], dispatched).await
}

/// The single DSN in `owner`'s mailbox at `p`, parsed.
async fn only_dsn(p: &Peer, owner: &str) -> Dsn {
    let dsns = entries(p, owner, EntryKind::Dsn).await;
    assert_eq!(dsns.len(), 1, "one DSN expected: {dsns:?}");
    let full = p
        .store
        .mailbox_entry(owner, dsns[0].id)
        .await
        .unwrap()
        .unwrap();
    parse_dsn(&full.body).unwrap_or_else(|e| {
        panic!(
            "unreadable DSN ({e}):\n{}",
            String::from_utf8_lossy(&full.body)
        )
    })
}

/// Check a failure DSN: one recipient, failed with `status`, about `mid`, diagnostic
/// containing `why`.
fn assert_failure_dsn(d: &Dsn, rcpt: &str, status: &str, mid: &str, why: &str) {
    assert_eq!(d.recipients.len(), 1, "{d:?}");
    let r = &d.recipients[0];
    assert_eq!(r.action, Action::Failed);
    assert_eq!(r.status.to_string(), status);
    assert_eq!(r.final_recipient.address, rcpt);
    assert_eq!(
        d.correlation_id(),
        Some(mid),
        "the DSN names the original Message-ID"
    );
    let diag = r.diagnostic_code.clone().unwrap_or_default();
    assert!(diag.contains(why), "diagnostic {diag:?} should say {why:?}");
}

/// RFC 5321 §4.5.4.1 with the configured schedule (retry_first 2m doubling to retry_max
/// 2h): attempts at +0, +2, +6, +14, +30, +62 and +126 minutes while beta is down, none a
/// second early; beta returns at +130 and the attempt due at +246 relays the message, which
/// beta then opens, delivers and answers with `processed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5321_4_5_4_1_retries_double_from_2m_to_2h_and_relay_once_the_peer_returns() {
    let t0 = now();
    let (_root, a, mut b, clock) = alpha_up_beta_down(t0).await;
    let (id, mid) = queue(&a, &b.user, false).await;
    let actx = ctx(&a);

    let delays = [2, 4, 8, 16, 32, 64, 120];
    let mut at = 0;
    for (k, delay) in delays.iter().enumerate() {
        if k > 0 {
            clock.set(t0 + at * MIN - 1);
            assert_eq!(
                outbound::tick(actx).await,
                0,
                "attempt {} came early",
                k + 1
            );
            assert_eq!(rcpt(&a, &id).await.attempts, k as u32);
        }
        clock.set(t0 + at * MIN);
        assert_eq!(outbound::tick(actx).await, 1, "attempt {} at +{at}m", k + 1);
        let r = rcpt(&a, &id).await;
        assert_eq!(r.state, RcptState::Queued, "{r:?}");
        assert_eq!(r.attempts, k as u32 + 1);
        assert_eq!(
            r.next_attempt - t0,
            (at + delay) * MIN,
            "after attempt {} at +{at}m the next is due {delay}m later",
            k + 1
        );
        assert!(r.last_error.is_some(), "the failure is recorded");
        at += delay;
    }
    assert_eq!(at, 246);

    // Beta comes back at +130 m; the queue waits for the attempt due at +246 m.
    clock.set(t0 + 130 * MIN);
    b.start_listeners(clock.clone() as SharedClock)
        .await
        .unwrap();
    assert_eq!(outbound::tick(actx).await, 0);
    clock.set(t0 + 246 * MIN - 1);
    assert_eq!(outbound::tick(actx).await, 0);
    clock.set(t0 + 246 * MIN);
    assert_eq!(outbound::tick(actx).await, 1);
    let r = rcpt(&a, &id).await;
    assert_eq!((r.state, r.attempts), (RcptState::Relayed, 8), "{r:?}");
    assert_eq!(
        r.deadline,
        Some(t0 + 246 * MIN + 60 * MIN),
        "processed due in 1 h"
    );

    let bctx = ctx(&b);
    assert_eq!(inbound::tick(bctx).await, 1);
    let got = entries(&b, &b.user, EntryKind::Message).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, mid);
    assert_eq!(
        outbound::tick(bctx).await,
        1,
        "beta relays its processed MDN"
    );
    assert_eq!(inbound::tick(actx).await, 1);
    assert_eq!(rcpt(&a, &id).await.state, RcptState::Processed);
    assert_eq!(entries(&a, &a.user, EntryKind::Mdn).await.len(), 1);

    let kinds: Vec<String> = a
        .store
        .events(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| k != "submitted")
        .collect();
    let mut want = vec!["retry"; 7];
    want.extend(["relayed", "processed"]);
    assert_eq!(kinds, want);
    assert_eq!(
        metric(&metrics(&a).await, "hisp_recipients_retried_total"),
        7.0
    );
    assert!(entries(&a, &a.user, EntryKind::Dsn).await.is_empty());

    b.stop().await;
    let mut a = a;
    a.stop().await;
}

/// Postfix's dead-destination throttling ("delivery temporarily suspended"): a host failure
/// (beta down, the connection refused) suspends beta's domain for `queue.retry_first`. Its
/// other mail, and mail queued meanwhile, is put off to the suspension's end without a
/// connection and without counting an attempt. When beta is back, `hisp queue flush` lifts
/// the suspension (as Postfix's flush revives dead destinations) and everything goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_failure_suspends_the_domain_and_its_other_mail_waits_without_an_attempt() {
    let t0 = now();
    let (_root, a, mut b, clock) = alpha_up_beta_down(t0).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(queue(&a, &b.user, false).await.0);
    }
    let actx = ctx(&a);
    assert_eq!(outbound::tick(actx).await, 3);
    let mut rs = Vec::new();
    for id in &ids {
        rs.push(rcpt(&a, id).await);
    }
    assert_eq!(rs.iter().map(|r| r.attempts).sum::<u32>(), 1, "{rs:?}");
    let suspended = |r: &hisp_store::OutRecipient| {
        let why = r.last_error.clone().unwrap_or_default();
        assert!(why.starts_with("not tried: delivery to "), "{why}");
        assert!(why.contains("cannot connect"), "{why}");
        assert_eq!((r.state, r.attempts), (RcptState::Queued, 0));
        assert_eq!(
            r.next_attempt,
            t0 + 2 * MIN,
            "put off to the suspension's end"
        );
    };
    rs.iter().filter(|r| r.attempts == 0).for_each(suspended);
    let m = metrics(&a).await;
    assert_eq!(metric(&m, "hisp_recipients_postponed_total"), 2.0);
    assert_eq!(metric(&m, "hisp_destinations_suspended"), 1.0);

    clock.set(t0 + MIN);
    let (late, _) = queue(&a, &b.user, false).await;
    assert_eq!(outbound::tick(actx).await, 1);
    suspended(&rcpt(&a, &late).await);
    ids.push(late);

    b.start_listeners(clock.clone() as SharedClock)
        .await
        .unwrap();
    assert_eq!(a.store.flush_queue(t0 + MIN).await.unwrap(), 4);
    assert_eq!(outbound::tick(actx).await, 4);
    for id in &ids {
        let r = rcpt(&a, id).await;
        assert_eq!(r.state, RcptState::Relayed, "{r:?}");
    }
    let m = metrics(&a).await;
    assert_eq!(metric(&m, "hisp_destinations_suspended"), 0.0);
    assert_eq!(metric(&m, "hisp_recipients_retried_total"), 1.0);
    b.stop().await;
    let mut a = a;
    a.stop().await;
}

/// DESIGN §4 / RFC 3464: a peer that never returns: attempts go on every 2 h, and the
/// first one due at or after 5 days marks the recipient `expired` and puts a DSN in
/// alice's mailbox (action failed, status 5.4.7, Final-Recipient bob, original Message-ID).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_after_5_days_marks_expired_and_gives_the_sender_a_5_4_7_dsn() {
    let t0 = now();
    let (_root, mut a, b, clock) = alpha_up_beta_down(t0).await;
    let (id, mid) = queue(&a, &b.user, false).await;
    let actx = ctx(&a);
    let expire = t0 + 5 * 86_400;

    let mut attempts = 0;
    loop {
        let r = rcpt(&a, &id).await;
        if r.state != RcptState::Queued {
            break;
        }
        assert!(
            attempts < 100,
            "still queued after {attempts} attempts: {r:?}"
        );
        assert!(
            r.next_attempt - clock_now(&clock) <= 120 * MIN,
            "retries never wait more than 2 h"
        );
        assert!(
            entries(&a, &a.user, EntryKind::Dsn).await.is_empty(),
            "no DSN before expiry"
        );
        clock.set(r.next_attempt);
        assert_eq!(outbound::tick(actx).await, 1);
        attempts += 1;
    }
    let r = rcpt(&a, &id).await;
    let when = clock_now(&clock);
    assert_eq!(r.state, RcptState::Expired, "{r:?}");
    assert!(
        (expire..expire + 120 * MIN).contains(&when),
        "expired at +{}s, expected the first attempt due at or after +5d",
        when - t0
    );
    let events = a.store.events(&id).await.unwrap();
    let retries: Vec<_> = events.iter().filter(|e| e.kind == "retry").collect();
    assert!(retries.iter().all(|e| e.at < expire));
    assert_eq!(retries.len(), attempts - 1);
    assert_eq!(events.last().unwrap().kind, "expired");

    let d = only_dsn(&a, &a.user).await;
    assert_failure_dsn(
        &d,
        &b.user,
        "5.4.7",
        &mid,
        "no successful delivery within 5days",
    );
    assert_eq!(metric(&metrics(&a).await, "hisp_dsn_sent_total"), 1.0);
    // Nothing more happens to an expired recipient.
    clock.advance(86_400);
    assert_eq!(outbound::tick(actx).await, 0);
    a.stop().await;
}

fn clock_now(c: &ManualClock) -> i64 {
    use hisp_server::clock::Clock;
    c.now()
}

/// Direct IG for Delivery Notification §3.3 ("timely and reliable"): beta accepts the
/// message (relayed) but never processes it; one hour later the tracker fails the
/// recipient and alice gets a DSN naming the missing `processed` MDN. A `processed` MDN
/// arriving after that does not revive it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_processed_mdn_fails_the_recipient_after_1h_with_a_dsn() {
    let t0 = now();
    let (_root, mut a, mut b, clock) = alpha_up_beta_down(t0).await;
    b.start_listeners(clock.clone() as SharedClock)
        .await
        .unwrap();
    let (id, mid) = queue(&a, &b.user, false).await;
    let actx = ctx(&a);
    assert_eq!(outbound::tick(actx).await, 1);
    let r = rcpt(&a, &id).await;
    assert_eq!(r.state, RcptState::Relayed);
    assert_eq!(r.deadline, Some(t0 + 3600));

    clock.set(t0 + 3600 - 1);
    tracker::sweep_overdue(actx).await;
    assert_eq!(
        rcpt(&a, &id).await.state,
        RcptState::Relayed,
        "not yet overdue"
    );
    assert!(entries(&a, &a.user, EntryKind::Dsn).await.is_empty());

    clock.set(t0 + 3600 + 1);
    tracker::sweep_overdue(actx).await;
    let r = rcpt(&a, &id).await;
    assert_eq!(r.state, RcptState::Failed, "{r:?}");
    let why = r.last_error.unwrap_or_default();
    assert!(why.contains("no processed MDN"), "{why}");
    let d = only_dsn(&a, &a.user).await;
    assert_failure_dsn(&d, &b.user, "5.4.7", &mid, "no processed MDN");
    // The sweep does not repeat itself.
    tracker::sweep_overdue(actx).await;
    assert_eq!(entries(&a, &a.user, EntryKind::Dsn).await.len(), 1);

    // Beta finally processes it; its MDN reaches alpha but the failure stands.
    let bctx = ctx(&b);
    assert_eq!(inbound::tick(bctx).await, 1);
    assert_eq!(outbound::tick(bctx).await, 1);
    assert_eq!(inbound::tick(actx).await, 1);
    assert_eq!(rcpt(&a, &id).await.state, RcptState::Failed);

    a.stop().await;
    b.stop().await;
}

/// Direct IG for Delivery Notification §3.3: when alice asked for final-destination
/// delivery, `processed` starts a second hour for `dispatched`; bob's edge never picks the
/// message up, so the recipient fails with a DSN naming the missing `dispatched` MDN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_dispatched_mdn_fails_the_recipient_1h_after_processed() {
    let t0 = now();
    let (_root, mut a, mut b, clock) = alpha_up_beta_down(t0).await;
    b.start_listeners(clock.clone() as SharedClock)
        .await
        .unwrap();
    let (id, mid) = queue(&a, &b.user, true).await;
    let (actx, bctx) = (ctx(&a), ctx(&b));
    assert_eq!(outbound::tick(actx).await, 1);
    clock.set(t0 + 10 * MIN);
    assert_eq!(inbound::tick(bctx).await, 1);
    assert_eq!(outbound::tick(bctx).await, 1);
    assert_eq!(inbound::tick(actx).await, 1);
    let r = rcpt(&a, &id).await;
    assert_eq!(r.state, RcptState::Processed);
    assert_eq!(
        r.deadline,
        Some(t0 + 10 * MIN + 3600),
        "dispatched due 1 h after processed"
    );

    clock.set(t0 + 3600 + 1);
    tracker::sweep_overdue(actx).await;
    assert_eq!(
        rcpt(&a, &id).await.state,
        RcptState::Processed,
        "not yet overdue"
    );

    clock.set(t0 + 10 * MIN + 3600 + 1);
    tracker::sweep_overdue(actx).await;
    let r = rcpt(&a, &id).await;
    assert_eq!(r.state, RcptState::Failed, "{r:?}");
    let d = only_dsn(&a, &a.user).await;
    assert_failure_dsn(&d, &b.user, "5.4.7", &mid, "no dispatched MDN");

    a.stop().await;
    b.stop().await;
}

/// Applicability Statement §5 (no usable certificate) and DESIGN §2: a recipient whose
/// certificate is not found fails on the first attempt, without retries, with a 5.7.0 DSN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipient_without_a_certificate_fails_at_once_with_a_5_7_0_dsn() {
    let t0 = now();
    let (_root, mut a, _b, clock) = alpha_up_beta_down(t0).await;
    let carol = format!("dr.carol@{GAMMA}");
    let (id, mid) = queue(&a, &carol, false).await;
    let actx = ctx(&a);
    assert_eq!(outbound::tick(actx).await, 1);
    let r = rcpt(&a, &id).await;
    assert_eq!((r.state, r.attempts), (RcptState::Failed, 1), "{r:?}");
    let d = only_dsn(&a, &a.user).await;
    assert_failure_dsn(&d, &carol, "5.7.0", &mid, "no usable Direct certificate");
    clock.advance(3 * 60 * MIN);
    assert_eq!(
        outbound::tick(actx).await,
        0,
        "a permanent failure is not retried"
    );
    a.stop().await;
}

/// RFC 5321 §4.2.2 / RFC 3464 §2.3.4: recipients are judged one by one: beta refuses an
/// unknown user with 550 5.1.1 and accepts bob in the same transaction; the unknown one
/// fails at once with a DSN quoting 5.1.1 and the remote server, bob is relayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_5_1_1_fails_that_recipient_at_once_and_the_other_is_relayed() {
    let t0 = now();
    let (_root, mut a, mut b, clock) = alpha_up_beta_down(t0).await;
    b.start_listeners(clock.clone() as SharedClock)
        .await
        .unwrap();
    let nobody = format!("dr.nobody@{BETA}");
    let (id, mid) = queue_message(&a, &[&b.user, &nobody], false).await;
    let actx = ctx(&a);
    assert_eq!(outbound::tick(actx).await, 1, "one group for one domain");
    let good = rcpt_of(&a, &id, &b.user).await;
    let bad = rcpt_of(&a, &id, &nobody).await;
    assert_eq!(good.state, RcptState::Relayed, "{good:?}");
    assert_eq!(bad.state, RcptState::Failed, "{bad:?}");
    let d = only_dsn(&a, &a.user).await;
    assert_failure_dsn(&d, &nobody, "5.1.1", &mid, "no such user");
    assert!(d.recipients[0].remote_mta.is_some(), "{d:?}");
    // Beta got the message for bob alone.
    assert_eq!(inbound::tick(ctx(&b)).await, 1);
    assert_eq!(entries(&b, &b.user, EntryKind::Message).await.len(), 1);
    a.stop().await;
    b.stop().await;
}

/// RFC 5321 §4.1.4 session reuse must not cost a delivery attempt: alpha keeps its session
/// to beta after the first message; beta restarts (its idle sessions are told 421 and
/// closed); the next message is relayed on its first attempt over a new session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_the_peer_between_messages_costs_no_retry() {
    let t0 = now();
    let (_root, mut a, mut b, clock) = alpha_up_beta_down(t0).await;
    b.start_listeners(clock.clone() as SharedClock)
        .await
        .unwrap();
    let actx = ctx(&a);
    let (first, _) = queue(&a, &b.user, false).await;
    assert_eq!(outbound::tick(actx).await, 1);
    assert_eq!(rcpt(&a, &first).await.state, RcptState::Relayed);

    b.stop().await;
    b.start_listeners(clock.clone() as SharedClock)
        .await
        .unwrap();
    clock.advance(MIN);
    let (second, _) = queue(&a, &b.user, false).await;
    assert_eq!(outbound::tick(actx).await, 1);
    let r = rcpt(&a, &second).await;
    assert_eq!((r.state, r.attempts), (RcptState::Relayed, 1), "{r:?}");
    assert_eq!(inbound::tick(ctx(&b)).await, 2);
    assert_eq!(entries(&b, &b.user, EntryKind::Message).await.len(), 2);
    a.stop().await;
    b.stop().await;
}

/// A form sealed by a failed attempt is kept for the retries, but goes only to the
/// certificates it was sealed for (the Direct Applicability Statement has a message
/// encrypted to the recipient's certificates as discovered; one since renewed or revoked
/// must not be used through an old copy).
/// While they stay the same a retry sends the kept form without sealing again; once alpha
/// finds another certificate for beta's domain (a renewal published beside the old one),
/// the next retry seals again for the certificates found now, and beta opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_seals_again_once_the_recipients_certificates_changed() {
    use hisp_direct::pki::{issue_leaf, Issued, LeafSpec};
    let t0 = now();
    let (_root, a, mut b, clock) = alpha_up_beta_down(t0).await;
    let (id, mid) = queue(&a, &b.user, false).await;
    let actx = ctx(&a);
    let seals = || async { metric(&metrics(&a).await, "hisp_seal_seconds_count") };
    assert_eq!(outbound::tick(actx).await, 1);
    assert_eq!(seals().await, 1.0, "the first attempt seals");
    clock.set(t0 + 2 * MIN);
    assert_eq!(outbound::tick(actx).await, 1);
    assert_eq!(rcpt(&a, &id).await.attempts, 2);
    assert_eq!(seals().await, 1.0, "the second sends the kept form");

    let read = |f: &str| std::fs::read(b.dir.join(f)).unwrap();
    let ca = Issued {
        cert: hisp_direct::keys::load_cert(&read("ca.pem")).unwrap(),
        key: hisp_direct::keys::load_private_key(&read("ca.key"), None).unwrap(),
    };
    let spec = LeafSpec::domain(&b.domain, t0 - 60, t0 + 365 * 24 * 3600);
    let renewed = issue_leaf(&ca, &spec).unwrap();
    let der = renewed.cert_der().unwrap();
    let cert = hisp_store::NewStaticCert {
        bound_to: b.domain.clone(),
        sha256: hisp_direct::cert::sha256_hex(&renewed.cert),
        der,
    };
    assert!(a.store.add_cert(cert, t0).await.unwrap());
    assert!(actx.refresh_directory().await.unwrap());

    clock.set(t0 + 6 * MIN);
    b.start_listeners(clock.clone() as SharedClock)
        .await
        .unwrap();
    assert_eq!(outbound::tick(actx).await, 1);
    assert_eq!(
        seals().await,
        2.0,
        "sealed again for the certificates found now"
    );
    assert_eq!(rcpt(&a, &id).await.state, RcptState::Relayed);
    assert_eq!(inbound::tick(ctx(&b)).await, 1);
    let got = entries(&b, &b.user, EntryKind::Message).await;
    assert_eq!(got.len(), 1, "beta opens it with its own key");
    assert_eq!(got[0].message_id, mid);
}
