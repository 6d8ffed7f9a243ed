//! The access audit trail (HIPAA Security Rule §164.312(b), audit controls) at two running
//! daemons: a REST submission at alpha, and at beta the edge's read and pickup of the
//! message and a wrong password, each recorded with who, what, when and from where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hisp_store::{AuditQuery, EntryKind, Store};

async fn trail(p: &hisp_server::pair::Peer) -> Vec<(String, String, String)> {
    let q = AuditQuery {
        actor: None,
        since: 0,
        before: 0,
        limit: 100,
    };
    let rows = p.store.audit(q).await.unwrap();
    rows.into_iter()
        .map(|r| {
            let e = r.event;
            assert_eq!(e.client.as_deref(), Some("127.0.0.1"), "from where");
            (e.actor, e.action, e.detail)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_pickups_submissions_and_failed_logins_are_recorded() {
    let (_root, mut a, mut b) = running_pair().await;
    let mid = message_id(&a.domain);
    let msg = message(&a.user, &b.user, "Referral", &mid, false);
    let r = rest(&a, "POST", "/api/v1/messages", &msg).await;
    assert_eq!(r.status, 202, "{}", text(&r.body));
    let at_alpha = trail(&a).await;
    assert_eq!(at_alpha.len(), 1, "{at_alpha:?}");
    assert_eq!(
        (at_alpha[0].0.as_str(), at_alpha[0].1.as_str()),
        (a.user.as_str(), "submit")
    );
    assert!(at_alpha[0].2.contains(&mid), "{at_alpha:?}");

    let got = wait_entries(&b, &b.user, EntryKind::Message, 1).await;
    let path = format!("/api/v1/messages/{}", got[0].id);
    assert_eq!(rest(&b, "GET", &path, b"").await.status, 200);
    let pickup = format!("{path}/pickup");
    assert_eq!(rest(&b, "POST", &pickup, b"").await.status, 200);
    let listen = b.config.http.listen.to_string();
    let wrong = (b.user.as_str(), "not-the-password");
    let r = hisp_server::edge::request(&listen, "GET", "/api/v1/messages", wrong, b"")
        .await
        .unwrap();
    assert_eq!(r.status, 401);

    let at_beta = trail(&b).await;
    let actions: Vec<&str> = at_beta.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(actions, ["login-failed", "pickup", "fetch"], "newest first");
    assert!(at_beta.iter().all(|t| t.0 == b.user), "{at_beta:?}");
    assert_eq!(at_beta[2].2, mid, "the read names the Message-ID");
    a.stop().await;
    b.stop().await;
}
