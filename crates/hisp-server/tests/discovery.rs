//! Two daemons that know each other's anchors and routes but not each other's
//! certificates find them through DNS CERT (Applicability Statement §5) on a real BIND:
//! the message goes out, the `processed` MDN comes back, and a recipient whose domain
//! publishes nothing fails at once with a DSN naming the lookups.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hisp_discovery::testservers::{cert_line, Named};
use hisp_server::clock::{SharedClock, SystemClock};
use hisp_server::pair::Peer;
use hisp_store::{Direction, EntryKind, NewAnchor, RcptState, Store};
use std::sync::Arc;

/// `a` trusts `b`'s CA and routes `b`'s domain to it; no certificate of `b` is configured.
async fn anchor_and_route(a: &Peer, b: &Peer) {
    anchor_and_route_for(a, b, None).await
}

/// As [`anchor_and_route`], the anchor trusted for `direction` only (`None`: both).
async fn anchor_and_route_for(a: &Peer, b: &Peer, direction: Option<Direction>) {
    let pem = std::fs::read(b.dir.join("ca.pem")).unwrap();
    let ca = hisp_direct::keys::load_cert(&pem).unwrap();
    let ca = hisp_direct::cert::ParsedCert::from_x509(ca).unwrap();
    let anchor = NewAnchor {
        domain: None,
        direction,
        der: ca.der.clone(),
        sha256: ca.sha256_hex(),
        subject: ca.subject.clone(),
    };
    a.store.add_anchor(anchor, now()).await.unwrap();
    let relay = b.config.smtp.relay_listen.to_string();
    a.store.set_route(&b.domain, &relay, now()).await.unwrap();
}

fn domain_cert_der(p: &Peer) -> Vec<u8> {
    let pem = std::fs::read(p.dir.join("domain.pem")).unwrap();
    hisp_direct::keys::load_cert(&pem)
        .unwrap()
        .to_der()
        .unwrap()
}

/// A new domain certificate and key over `domain.pem`/`domain.key`, from the peer's CA.
fn renew_domain_cert(p: &Peer) {
    let read = |f: &str| std::fs::read(p.dir.join(f)).unwrap();
    let ca = hisp_direct::pki::Issued {
        cert: hisp_direct::keys::load_cert(&read("ca.pem")).unwrap(),
        key: hisp_direct::keys::load_private_key(&read("ca.key"), None).unwrap(),
    };
    let now = hisp_server::clock::Clock::now(&SystemClock);
    let spec = hisp_direct::pki::LeafSpec::domain(&p.domain, now - 60, now + 86_400);
    let leaf = hisp_direct::pki::issue_leaf(&ca, &spec).unwrap();
    std::fs::write(p.dir.join("domain.pem"), leaf.cert_pem().unwrap()).unwrap();
    std::fs::write(p.dir.join("domain.key"), leaf.key_pem().unwrap()).unwrap();
}

/// Publish both domains' certificates in a BIND zone (both live under `example.`, so their
/// domain-bound certificates sit at the domains), turn discovery on against it, and start
/// both daemons. Keep the returned server alive as long as the daemons.
async fn publish_and_start(a: &mut Peer, b: &mut Peer) -> Named {
    let owner = |p: &Peer| p.domain.trim_end_matches(".example").to_string();
    let zone = [
        cert_line(&owner(a), &domain_cert_der(a)),
        cert_line(&owner(b), &domain_cert_der(b)),
    ]
    .join("\n");
    let named = Named::start("example", &zone);
    for p in [&mut *a, &mut *b] {
        p.config.discovery.enabled = true;
        p.config.discovery.dns = Some(named.addr);
    }
    let clock: SharedClock = Arc::new(SystemClock);
    start(a, clock.clone()).await;
    start(b, clock).await;
    named
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_find_each_others_certificates_through_dns_cert_only() {
    let root = tempfile::tempdir().unwrap();
    let mut a = instance(root.path(), ALPHA, "dr.alice", "alice-pw").await;
    let mut b = instance(root.path(), BETA, "dr.bob", "bob-pw").await;
    anchor_and_route(&a, &b).await;
    anchor_and_route(&b, &a).await;
    let _named = publish_and_start(&mut a, &mut b).await;

    let (id, mid) = queue_message(&a, &[&b.user], false).await;
    // processed means beta found alpha's certificate too (to seal the MDN).
    wait_state(&a, &id, RcptState::Processed).await;
    let got = wait_entries(&b, &b.user, EntryKind::Message, 1).await;
    assert_eq!(got[0].message_id, mid);
    // A second message to bob is sealed from the cached result.
    let (id2, _) = queue_message(&a, &[&b.user], false).await;
    wait_state(&a, &id2, RcptState::Processed).await;
    let m = metrics(&a).await;
    assert_eq!(
        metric(&m, "hisp_discovery_lookups_total{cache=\"miss\"}"),
        1.0,
        "{m}"
    );
    assert!(
        metric(&m, "hisp_discovery_lookups_total{cache=\"hit\"}") >= 1.0,
        "{m}"
    );

    // Nothing published for the domain: a permanent failure naming the lookups.
    let carol = "carol@nowhere.example";
    let (id, _) = queue_message(&a, &[carol], false).await;
    let r = wait_state(&a, &id, RcptState::Failed).await;
    let why = r.last_error.unwrap_or_default();
    assert!(why.contains("no usable Direct certificate"), "{why}");
    assert!(why.contains("NXDOMAIN"), "{why}");
    a.stop().await;
    b.stop().await;
}

/// An anchor added for incoming mail only vouches for the signers of mail received, not
/// for recipients' certificates: alpha trusts beta's CA for incoming mail only, so bob's
/// message reaches alice, but alice's message to bob fails with the trust reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_only_anchor_does_not_vouch_for_recipients_certificates() {
    let root = tempfile::tempdir().unwrap();
    let mut a = instance(root.path(), ALPHA, "dr.alice", "alice-pw").await;
    let mut b = instance(root.path(), BETA, "dr.bob", "bob-pw").await;
    anchor_and_route_for(&a, &b, Some(Direction::Incoming)).await;
    anchor_and_route(&b, &a).await;
    let _named = publish_and_start(&mut a, &mut b).await;

    let (_, mid) = queue_message(&b, &[&a.user], false).await;
    let got = wait_entries(&a, &a.user, EntryKind::Message, 1).await;
    assert_eq!(got[0].message_id, mid, "incoming: bob's signer is trusted");

    let (id, _) = queue_message(&a, &[&b.user], false).await;
    let r = wait_state(&a, &id, RcptState::Failed).await;
    let why = r.last_error.unwrap_or_default();
    assert!(
        why.contains("trust:"),
        "outgoing: bob's certificate is not vouched for: {why}"
    );
    a.stop().await;
    b.stop().await;
}

/// `[dns] listen`: each daemon answers DNS CERT for its own domain (RFC 4398), and two
/// daemons that ask each other's DNS exchange a message and its MDN with nothing else
/// published. The answers are authoritative: NXDOMAIN under our domain, REFUSED outside it,
/// and a UDP answer too big for a client without EDNS comes back truncated (RFC 7766).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_serve_their_own_cert_records_and_find_each_other_through_them() {
    use hickory_resolver::proto::op::{Message, Query};
    use hickory_resolver::proto::rr::{Name, RecordType};
    use hisp_discovery::dns::{DnsAnswer, DnsCerts, DnsError};
    use hisp_discovery::record::domain_owner;
    let root = tempfile::tempdir().unwrap();
    let mut a = instance(root.path(), ALPHA, "dr.alice", "alice-pw").await;
    let mut b = instance(root.path(), BETA, "dr.bob", "bob-pw").await;
    anchor_and_route(&a, &b).await;
    anchor_and_route(&b, &a).await;
    let port = || {
        let p = hisp_server::pair::free_port().unwrap();
        std::net::SocketAddr::from(([127, 0, 0, 1], p))
    };
    let (a_dns, b_dns) = (port(), port());
    a.config.dns.listen = Some(a_dns);
    b.config.dns.listen = Some(b_dns);
    for (p, other) in [(&mut a, b_dns), (&mut b, a_dns)] {
        p.config.discovery.enabled = true;
        p.config.discovery.dns = Some(other);
    }
    let clock: SharedClock = Arc::new(SystemClock);
    start(&mut a, clock.clone()).await;
    start(&mut b, clock).await;

    let dns = DnsCerts::at(a_dns, std::time::Duration::from_secs(2));
    let answer = dns.lookup(&domain_owner(ALPHA).unwrap()).await.unwrap();
    assert_eq!(answer.records().len(), 1);
    assert_eq!(answer.records()[0].data, domain_cert_der(&a));
    let nx = format!("nobody.{ALPHA}");
    assert_eq!(
        dns.lookup(&domain_owner(&nx).unwrap()).await.unwrap(),
        DnsAnswer::NxDomain
    );
    assert!(matches!(
        dns.lookup(&domain_owner("elsewhere.example").unwrap())
            .await,
        Err(DnsError::ServerFailure { .. })
    ));
    // No EDNS: 512 octets at most over UDP, so the ~1 KB answer is truncated.
    let mut q = Message::new();
    q.set_id(7).set_recursion_desired(false);
    q.add_query(Query::query(
        Name::from_ascii(format!("{ALPHA}.")).unwrap(),
        RecordType::Unknown(37),
    ));
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&q.to_vec().unwrap(), a_dns).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(2), sock.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let r = Message::from_vec(&buf[..n]).unwrap();
    assert!(r.truncated() && r.answers().is_empty() && r.authoritative());

    // A renewed domain certificate is published after a reload (SIGHUP), no restart.
    let before = domain_cert_der(&a);
    renew_domain_cert(&a);
    assert_ne!(domain_cert_der(&a), before);
    let report = a.daemon().unwrap().reload(&a.config).await;
    assert!(report.clean(), "{report:?}");
    let answer = dns.lookup(&domain_owner(ALPHA).unwrap()).await.unwrap();
    assert_eq!(answer.records()[0].data, domain_cert_der(&a));

    let (id, mid) = queue_message(&a, &[&b.user], false).await;
    wait_state(&a, &id, RcptState::Processed).await;
    let got = wait_entries(&b, &b.user, EntryKind::Message, 1).await;
    assert_eq!(got[0].message_id, mid);
    a.stop().await;
    b.stop().await;
}
