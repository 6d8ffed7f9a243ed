//! Which received notifications the tracker believes (Direct IG for Delivery Notification,
//! RFC 8098 §3.2.3 Final-Recipient, RFC 3464 §2.3.2): a HISP trusted for its own domain
//! speaks for its own recipients only; an MDN or DSN it signs about a recipient in another
//! domain must not move that recipient's state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hisp_direct::dsn::{build_dsn, Action, DsnSpec, EnhancedStatus, RecipientStatus};
use hisp_direct::mdn::{build_mdn, Disposition, MdnSpec};
use hisp_direct::notification::TypedAddress;
use hisp_direct::time::format_rfc5322;
use hisp_server::clock::{ManualClock, SharedClock};
use hisp_server::pair::{introduce, Peer};
use hisp_server::{inbound, outbound};
use hisp_store::{QueueId, RcptState, Store};
use std::sync::Arc;

/// Alpha and beta listening on a manual clock, gamma introduced to alpha but down; alice's
/// message to bob and carol is relayed to beta (and opened there, with beta's genuine
/// `processed` MDN back at alpha) while carol's copy waits in alpha's queue.
struct Scene {
    _root: tempfile::TempDir,
    a: Peer,
    b: Peer,
    id: QueueId,
    mid: String,
    carol: String,
}

async fn scene() -> Scene {
    let t0 = now();
    let clock = Arc::new(ManualClock::new(t0));
    let (root, mut a, mut b) = pair(t0).await;
    let g = instance(root.path(), GAMMA, "dr.carol", "carol-pw").await;
    introduce(&a, &g, t0).await.unwrap();
    a.start_listeners(clock.clone() as SharedClock)
        .await
        .unwrap();
    b.start_listeners(clock as SharedClock).await.unwrap();
    let (actx, bctx) = (ctx(&a), ctx(&b));
    actx.refresh_directory().await.unwrap();
    let carol = g.user.clone();
    let (id, mid) = queue_message(&a, &[&b.user, &carol], false).await;
    assert_eq!(outbound::tick(actx).await, 2, "one group per domain");
    assert_eq!(rcpt_of(&a, &id, &b.user).await.state, RcptState::Relayed);
    let c = rcpt_of(&a, &id, &carol).await;
    assert_eq!(c.state, RcptState::Queued, "gamma is down: {c:?}");
    assert_eq!(inbound::tick(bctx).await, 1);
    assert_eq!(outbound::tick(bctx).await, 1);
    assert_eq!(inbound::tick(actx).await, 1);
    assert_eq!(rcpt_of(&a, &id, &b.user).await.state, RcptState::Processed);
    Scene {
        _root: root,
        a,
        b,
        id,
        mid,
        carol,
    }
}

/// `report`, signed by beta's domain credential and encrypted for alpha, delivered to
/// alpha's relay port from bob to alice, then opened by alpha.
async fn from_beta(s: &Scene, report: &[u8]) {
    relay_to(&s.a, &s.b.user, &s.a.user, &seal_for(&s.b, &s.a, report)).await;
    assert_eq!(inbound::tick(ctx(&s.a)).await, 1);
    let q = s.a.store.quarantined(5).await.unwrap();
    assert!(q.is_empty(), "the report was opened and trusted: {q:?}");
}

/// Beta, trusted for `direct.beta-hospital.example`, signs a `processed` MDN whose
/// Final-Recipient is carol at gamma: carol's copy never left alpha, so it must stay queued
/// (and must not stop being retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdn_signed_by_beta_cannot_confirm_a_recipient_at_gamma() {
    let mut s = scene().await;
    let spec = MdnSpec {
        reporting_ua_name: "hisp.direct.beta-hospital.example".into(),
        reporting_ua_product: None,
        from: s.b.user.clone(),
        to: s.a.user.clone(),
        message_id: message_id(&s.b.domain),
        date: format_rfc5322(now()),
        original_message_id: s.mid.clone(),
        original_subject: None,
        original_recipient: None,
        final_recipient: s.carol.clone(),
        disposition: Disposition::processed(),
        error: None,
        failure: None,
        final_destination_delivery: false,
        text: None,
    };
    from_beta(&s, &build_mdn(&spec)).await;
    let c = rcpt_of(&s.a, &s.id, &s.carol).await;
    assert_eq!(
        c.state,
        RcptState::Queued,
        "beta's MDN about {} moved it: {c:?}",
        s.carol
    );
    s.a.stop().await;
    s.b.stop().await;
}

/// The same for a DSN: beta cannot declare carol's delivery failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dsn_signed_by_beta_cannot_fail_a_recipient_at_gamma() {
    let mut s = scene().await;
    let spec = DsnSpec {
        reporting_mta: "hisp.direct.beta-hospital.example".into(),
        original_envelope_id: None,
        arrival_date: None,
        original_message_id: s.mid.clone(),
        original_subject: None,
        from: format!("mailer-daemon@{}", s.b.domain),
        to: s.a.user.clone(),
        message_id: message_id(&s.b.domain),
        date: format_rfc5322(now()),
        recipients: vec![RecipientStatus {
            final_recipient: TypedAddress::rfc822(&s.carol),
            original_recipient: None,
            action: Action::Failed,
            status: EnhancedStatus::new(5, 1, 1).unwrap(),
            diagnostic_code: Some("smtp; 550 5.1.1 no such user".into()),
            remote_mta: None,
            last_attempt_date: None,
        }],
        original_headers: None,
        text: None,
    };
    from_beta(&s, &build_dsn(&spec)).await;
    let c = rcpt_of(&s.a, &s.id, &s.carol).await;
    assert_eq!(
        c.state,
        RcptState::Queued,
        "beta's DSN about {} moved it: {c:?}",
        s.carol
    );
    s.a.stop().await;
    s.b.stop().await;
}
