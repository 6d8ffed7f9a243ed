//! Renewing a domain's Direct certificate with a new key (issue 4: what an operator of
//! Postfix-class software would expect: a renewal loses no mail). Peers keep sealing to the
//! old certificate until they learn the new one (discovery caches, their own retries), so
//! a renewed domain lists its old pair under `[[domain.previous]]` and still opens that
//! mail (RFC 5652 §6.2: the RecipientInfo names the certificate whose key decrypts it).
//! `/metrics` gives when each of them expires.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hisp_direct::pki::{issue_leaf, Issued, LeafSpec};
use hisp_server::clock::SystemClock;
use hisp_server::config::PreviousKey;
use hisp_store::{EntryKind, RcptState, Store};
use std::sync::Arc;

/// Beta renews (a new key from its CA) while alpha still holds its old certificate: mail
/// sealed to the old one is quarantined, naming the certificate it was sealed for; with the
/// old pair under `[[domain.previous]]` and a restart, the released message opens and
/// beta's `processed` MDN, signed with the new certificate, reaches alpha.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_sealed_to_the_certificate_before_a_renewal_opens_with_the_previous_key() {
    let t0 = now();
    let (_root, mut a, mut b) = pair(t0).await;
    let dir = b.dir.clone();
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let ca = Issued {
        cert: hisp_direct::keys::load_cert(&read("ca.pem")).unwrap(),
        key: hisp_direct::keys::load_private_key(&read("ca.key"), None).unwrap(),
    };
    let spec = LeafSpec::domain(&b.domain, t0 - 60, t0 + 365 * 24 * 3600);
    let renewed = issue_leaf(&ca, &spec).unwrap();
    std::fs::write(b.dir.join("renewed.pem"), renewed.cert_pem().unwrap()).unwrap();
    std::fs::write(b.dir.join("renewed.key"), renewed.key_pem().unwrap()).unwrap();
    let domain = &mut b.config.domains[0];
    let old = PreviousKey {
        cert: std::mem::replace(&mut domain.cert, b.dir.join("renewed.pem")),
        key: std::mem::replace(&mut domain.key, b.dir.join("renewed.key")),
        key_password: None,
    };
    start(&mut a, Arc::new(SystemClock)).await;
    start(&mut b, Arc::new(SystemClock)).await;
    let (id, mid) = queue_message(&a, &[&b.user], false).await;

    let held = eventually("the message quarantined at beta", || async {
        let q = b.store.quarantined(10).await.map_err(|e| e.to_string())?;
        q.into_iter()
            .next()
            .ok_or_else(|| "nothing yet".to_string())
    })
    .await;
    let reason = held.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("no RecipientInfo for our certificate"),
        "names why: {reason}"
    );

    b.stop().await;
    b.config.domains[0].previous = vec![old];
    start(&mut b, Arc::new(SystemClock)).await;
    assert!(b.store.release_quarantined(&held.id, now()).await.unwrap());
    let r = wait_state(&a, &id, RcptState::Processed).await;
    assert_eq!(r.state, RcptState::Processed);
    let got = entries(&b, &b.user, EntryKind::Message).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, mid);

    // /metrics gives each certificate's expiry, for an alert weeks ahead.
    let m = metrics(&b).await;
    let expiry = |key: &str| {
        let name = format!(
            "hisp_certificate_expiry_timestamp_seconds{{domain=\"{}\",key=\"{key}\"}}",
            b.domain
        );
        metric(&m, &name) as i64
    };
    assert_eq!(expiry("current"), spec.not_after);
    let old_cert = hisp_direct::keys::load_cert(&read("domain.pem")).unwrap();
    let old_expiry = hisp_direct::time::from_asn1(old_cert.not_after()).unwrap();
    assert_eq!(expiry("previous"), old_expiry);
    let tls = hisp_direct::keys::load_cert(&read("tls.pem")).unwrap();
    let tls_expiry = hisp_direct::time::from_asn1(tls.not_after()).unwrap();
    let name = "hisp_tls_certificate_expiry_timestamp_seconds";
    assert_eq!(metric(&m, name) as i64, tls_expiry);
    a.stop().await;
    b.stop().await;
}
