//! DNS CERT discovery (RFC 4398; Applicability Statement §5) against a real BIND serving a
//! test zone: each case asserts exactly which certificates come back usable and why every
//! other one was turned down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hisp_direct::pki::SubjectBinding;
use hisp_discovery::dns::{DnsAnswer, DnsCerts, DnsError};
use hisp_discovery::record::{address_owner, domain_owner};
mod common;

use common::*;
use hisp_discovery::testservers::{cert_line, Named};
use hisp_discovery::{DiscoveryError, Found};
use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

/// The zone and the DER of every certificate in it, by case.
struct Zone {
    named: Named,
    certs: std::collections::HashMap<&'static str, Vec<Vec<u8>>>,
}

fn zone() -> &'static Zone {
    static Z: OnceLock<Zone> = OnceLock::new();
    Z.get_or_init(|| {
        let p = pki();
        let expired = |b| leaf(&p.ca, b, NOW - 400 * DAY, NOW - DAY);
        let mut certs = std::collections::HashMap::new();
        certs.insert("address", vec![valid(addr("bob@direct.test"))]);
        certs.insert(
            "domain",
            vec![valid(SubjectBinding::Domain("dom.direct.test".into()))],
        );
        certs.insert(
            "nofallback-addr",
            vec![expired(addr("old@nofb.direct.test"))],
        );
        certs.insert(
            "nofallback-dom",
            vec![valid(SubjectBinding::Domain("nofb.direct.test".into()))],
        );
        certs.insert(
            "untrusted",
            vec![leaf(
                &p.rogue,
                addr("eve@direct.test"),
                NOW - DAY,
                NOW + 365 * DAY,
            )],
        );
        certs.insert(
            "future",
            vec![leaf(
                &p.ca,
                addr("future@direct.test"),
                NOW + 10 * DAY,
                NOW + 365 * DAY,
            )],
        );
        certs.insert("other", vec![valid(addr("someone.else@direct.test"))]);
        certs.insert(
            "mixed",
            vec![
                expired(addr("mixed@direct.test")),
                valid(addr("mixed@direct.test")),
            ],
        );
        certs.insert(
            "many",
            (0..4).map(|_| valid(addr("many@direct.test"))).collect(),
        );
        certs.insert(
            "legacy",
            vec![valid(SubjectBinding::AddressDnOnly(
                "legacy@direct.test".into(),
            ))],
        );
        certs.insert("dotted", vec![valid(addr("john.doe@direct.test"))]);
        let owners = [
            ("address", "bob"),
            ("domain", "dom"),
            ("nofallback-addr", "old.nofb"),
            ("nofallback-dom", "nofb"),
            ("untrusted", "eve"),
            ("future", "future"),
            ("other", "other"),
            ("mixed", "mixed"),
            ("many", "many"),
            ("legacy", "legacy"),
            ("dotted", "john\\.doe"),
        ];
        let mut lines = vec!["empty IN A 127.0.0.1".to_string()];
        for (case, owner) in owners {
            for der in &certs[case] {
                lines.push(cert_line(owner, der));
            }
        }
        let named = Named::start(ORIGIN, &lines.join("\n"));
        Zone { named, certs }
    })
}

async fn discover(address: &str) -> Result<Found, DiscoveryError> {
    discover_at(zone().named.addr, address, Duration::from_secs(2)).await
}

fn shas(case: &str) -> Vec<String> {
    zone().certs[case].iter().map(|d| sha(d)).collect()
}

#[tokio::test]
async fn address_bound_certificate_in_dns_is_found() {
    let f = discover("Bob@Direct.Test").await.unwrap();
    assert_eq!(
        usable(&f),
        BTreeSet::from([(shas("address")[0].clone(), "address")])
    );
    assert!(f.rejected.is_empty(), "{:?}", f.rejected);
    assert_eq!(f.usable[0].source.as_str(), "dns");
}

#[tokio::test]
async fn domain_bound_certificate_is_used_when_the_address_has_none() {
    let f = discover("anyone@dom.direct.test").await.unwrap();
    assert_eq!(
        usable(&f),
        BTreeSet::from([(shas("domain")[0].clone(), "domain")])
    );
    assert!(f.trail[0].contains("NXDOMAIN"), "{:?}", f.trail);
}

/// Applicability Statement §5 / DCDT: an address with certificates published never falls
/// back to the domain's, even when none of its own is usable.
#[tokio::test]
async fn expired_address_bound_does_not_fall_back_to_a_valid_domain_bound() {
    let f = discover("old@nofb.direct.test").await.unwrap();
    assert!(f.usable.is_empty(), "{:?}", usable(&f));
    assert_eq!(f.rejected.len(), 1);
    assert_eq!(f.rejected[0].sha256, shas("nofallback-addr")[0]);
    assert!(
        f.rejected[0].reason.starts_with("expired"),
        "{}",
        f.rejected[0].reason
    );
    // The domain's certificate is there for everyone else.
    let f = discover("new@nofb.direct.test").await.unwrap();
    assert_eq!(usable(&f).len(), 1);
}

#[tokio::test]
async fn certificate_from_an_untrusted_ca_is_rejected() {
    let f = discover("eve@direct.test").await.unwrap();
    assert!(f.usable.is_empty());
    assert_eq!(f.rejected[0].sha256, shas("untrusted")[0]);
    assert!(
        f.rejected[0].reason.starts_with("trust:"),
        "{}",
        f.rejected[0].reason
    );
}

#[tokio::test]
async fn not_yet_valid_certificate_is_rejected() {
    let f = discover("future@direct.test").await.unwrap();
    assert!(f.usable.is_empty());
    assert!(
        f.rejected[0].reason.starts_with("not yet valid"),
        "{}",
        f.rejected[0].reason
    );
}

#[tokio::test]
async fn certificate_naming_another_address_is_rejected() {
    let f = discover("other@direct.test").await.unwrap();
    assert!(f.usable.is_empty());
    let why = &f.rejected[0].reason;
    assert!(
        why.contains("someone.else@direct.test") && why.contains("other@direct.test"),
        "{why}"
    );
}

#[tokio::test]
async fn of_an_expired_and_a_valid_certificate_the_valid_one_wins() {
    let f = discover("mixed@direct.test").await.unwrap();
    let s = shas("mixed");
    assert_eq!(usable(&f), BTreeSet::from([(s[1].clone(), "address")]));
    assert_eq!(f.rejected.len(), 1);
    assert_eq!(f.rejected[0].sha256, s[0]);
}

/// RFC 7766 / RFC 4398 §4: four certificates do not fit in a 1,232-octet UDP answer; the
/// truncated answer is asked again over TCP and all four come back.
#[tokio::test]
async fn answer_larger_than_1232_octets_is_retried_over_tcp() {
    let total: usize = zone().certs["many"].iter().map(Vec::len).sum();
    assert!(total > 1232, "the case must not fit in UDP: {total}");
    let f = discover("many@direct.test").await.unwrap();
    let want: BTreeSet<_> = shas("many").into_iter().map(|s| (s, "address")).collect();
    assert_eq!(usable(&f), want);
}

#[tokio::test]
async fn address_only_in_the_subject_dn_email_address_is_bound() {
    let f = discover("legacy@direct.test").await.unwrap();
    assert_eq!(
        usable(&f),
        BTreeSet::from([(shas("legacy")[0].clone(), "address")])
    );
}

/// RFC 4398 §3.3: `john.doe@` is looked up as the single label `john\.doe`.
#[tokio::test]
async fn local_part_with_dots_is_one_label() {
    let f = discover("john.doe@direct.test").await.unwrap();
    assert_eq!(
        usable(&f),
        BTreeSet::from([(shas("dotted")[0].clone(), "address")])
    );
}

#[tokio::test]
async fn nothing_published_gives_none_with_no_rejections() {
    let f = discover("nobody@empty.direct.test").await.unwrap();
    assert!(f.usable.is_empty() && f.rejected.is_empty());
    assert_eq!(f.trail.len(), 3, "{:?}", f.trail);
    assert!(f.trail[1].contains("no CERT records"), "{:?}", f.trail);
    assert!(
        f.trail[2].contains("_ldap._tcp.empty.direct.test.: no SRV"),
        "{:?}",
        f.trail
    );
}

/// NXDOMAIN, no data and a server that will not answer are three different outcomes.
#[tokio::test]
async fn nxdomain_no_data_and_server_refusal_are_told_apart() {
    let dns = DnsCerts::at(zone().named.addr, Duration::from_secs(2));
    let nx = dns
        .lookup(&address_owner("x@nx.direct.test").unwrap())
        .await
        .unwrap();
    assert_eq!(nx, DnsAnswer::NxDomain);
    let nodata = dns
        .lookup(&domain_owner("empty.direct.test").unwrap())
        .await
        .unwrap();
    assert_eq!(nodata, DnsAnswer::NoData);
    // Not our zone, and recursion is off: REFUSED.
    match dns
        .lookup(&domain_owner("elsewhere.example").unwrap())
        .await
    {
        Err(DnsError::ServerFailure { code, .. }) => assert!(code.contains("Refused"), "{code}"),
        other => panic!("expected a server failure, got {other:?}"),
    }
    assert!(matches!(
        discover("x@elsewhere.example").await,
        Err(DiscoveryError::Dns(DnsError::ServerFailure { .. }))
    ));
}
