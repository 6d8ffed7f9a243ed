//! LDAP discovery (Applicability Statement §5.2; what the ONC discovery test tool checks)
//! against real OpenLDAP `slapd` directories located by SRV records in a real BIND zone:
//! RFC 2782 order, a dead and a silent server skipped, anonymous bind, base DNs from the
//! rootDSE, `(mail=…)` escaped per RFC 4515, DNS winning over LDAP, and the no-fallback rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hisp_direct::pki::SubjectBinding;
use hisp_discovery::select::Source;
use hisp_discovery::testservers::{cert_line, ldif_person, Named, Slapd};
use hisp_discovery::{DiscoveryError, Found};
use std::collections::{BTreeSet, HashMap};
use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SUFFIX: &str = "dc=direct,dc=test";

struct World {
    named: Named,
    _ldap: Slapd,
    _light: Slapd,
    _heavy: Slapd,
    _silent: TcpListener,
    certs: HashMap<&'static str, Vec<Vec<u8>>>,
}

fn dead_port() -> u16 {
    // Bound then released: nothing listens there, so connections are refused.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let p = pki();
        let expired = |b| leaf(&p.ca, b, NOW - 400 * DAY, NOW - DAY);
        let a = |s: &str| SubjectBinding::Address(s.into());
        let mut certs = HashMap::new();
        certs.insert("carol", vec![valid(a("carol@ldap.direct.test"))]);
        certs.insert(
            "dom",
            vec![valid(SubjectBinding::Domain("ldap.direct.test".into()))],
        );
        certs.insert(
            "nofb",
            vec![
                expired(a("nofb@ldap.direct.test")),
                valid(SubjectBinding::Domain("ldap.direct.test".into())),
            ],
        );
        certs.insert("both-ldap", vec![valid(a("both@ldap.direct.test"))]);
        certs.insert("both-dns", vec![valid(a("both@ldap.direct.test"))]);
        let people = [
            ("carol", "carol@ldap.direct.test", "carol"),
            ("dom", "dom@ldap.direct.test", "dom"),
            ("nofb", "nofb@ldap.direct.test", "nofb"),
            ("both", "both@ldap.direct.test", "both-ldap"),
        ];
        let entries: Vec<String> = people
            .iter()
            .map(|(uid, mail, case)| ldif_person(SUFFIX, uid, mail, &certs[case]))
            .collect();
        let ldap = Slapd::start(SUFFIX, &entries.join("\n"));
        // Two more directories for `weighted.direct.test`, same priority, weights 0 and 100.
        let w = |uid: &str| ldif_person(SUFFIX, uid, "w@weighted.direct.test", &certs["carol"]);
        let light = Slapd::start(SUFFIX, &w("light"));
        let heavy = Slapd::start(SUFFIX, &w("heavy"));
        // Accepts connections (the kernel completes the handshake) and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_port = silent.local_addr().unwrap().port();
        let dead = dead_port();
        let zone = [
            "down IN A 127.0.0.1".to_string(),
            "silent IN A 127.0.0.1".to_string(),
            "up IN A 127.0.0.1".to_string(),
            // RFC 2782: priority 0 first (refuses), then 5 (silent), then 10 (answers).
            format!("_ldap._tcp.ldap IN SRV 0 10 {dead} down.direct.test."),
            format!("_ldap._tcp.ldap IN SRV 5 10 {silent_port} silent.direct.test."),
            format!(
                "_ldap._tcp.ldap IN SRV 10 10 {} up.direct.test.",
                ldap.addr.port()
            ),
            format!("_ldap._tcp.dead IN SRV 0 0 {dead} down.direct.test."),
            format!(
                "_ldap._tcp.weighted IN SRV 0 0 {} light.direct.test.",
                light.addr.port()
            ),
            format!(
                "_ldap._tcp.weighted IN SRV 0 100 {} heavy.direct.test.",
                heavy.addr.port()
            ),
            "light IN A 127.0.0.1".to_string(),
            "heavy IN A 127.0.0.1".to_string(),
            "dead IN A 127.0.0.1".to_string(),
            cert_line("both.ldap", &certs["both-dns"][0]),
        ];
        let named = Named::start(ORIGIN, &zone.join("\n"));
        World {
            named,
            _ldap: ldap,
            _light: light,
            _heavy: heavy,
            _silent: silent,
            certs,
        }
    })
}

async fn discover(address: &str) -> Result<Found, DiscoveryError> {
    discover_at(world().named.addr, address, Duration::from_millis(700)).await
}

fn shas(case: &str) -> Vec<String> {
    world().certs[case].iter().map(|d| sha(d)).collect()
}

/// All the LDAP cases in one run: each lookup walks the dead and the silent server first.
#[tokio::test]
async fn ldap_discovery_through_srv_with_a_dead_and_a_silent_server() {
    // Address-bound in LDAP; the trail shows the RFC 2782 order and the skips.
    let started = Instant::now();
    let f = discover("carol@ldap.direct.test").await.unwrap();
    assert_eq!(
        usable(&f),
        BTreeSet::from([(shas("carol")[0].clone(), "address")]),
        "{:?}",
        f.trail
    );
    assert_eq!(f.usable[0].source, Source::Ldap);
    let ldap: Vec<&String> = f.trail.iter().filter(|t| t.starts_with("ldap")).collect();
    assert_eq!(ldap.len(), 3, "{:?}", f.trail);
    assert!(ldap[0].contains("down.direct.test"), "{ldap:?}");
    assert!(ldap[1].contains("silent.direct.test"), "{ldap:?}");
    assert!(
        ldap[2].contains("up.direct.test") && ldap[2].contains(SUFFIX),
        "{ldap:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Domain-bound in LDAP (the entry for the address holds the domain's certificate).
    let f = discover("dom@ldap.direct.test").await.unwrap();
    assert_eq!(
        usable(&f),
        BTreeSet::from([(shas("dom")[0].clone(), "domain")])
    );

    // Expired address-bound beside a valid domain-bound: no fallback, both reported.
    let f = discover("nofb@ldap.direct.test").await.unwrap();
    assert!(f.usable.is_empty(), "{:?}", usable(&f));
    let s = shas("nofb");
    let why: HashMap<&str, &str> = f
        .rejected
        .iter()
        .map(|r| (r.sha256.as_str(), r.reason.as_str()))
        .collect();
    assert!(why[s[0].as_str()].starts_with("expired"), "{why:?}");
    assert!(why[s[1].as_str()].contains("no fallback"), "{why:?}");

    // In DNS and in LDAP: DNS wins, LDAP is not asked.
    let f = discover("both@ldap.direct.test").await.unwrap();
    assert_eq!(
        usable(&f),
        BTreeSet::from([(shas("both-dns")[0].clone(), "address")])
    );
    assert_eq!(f.usable[0].source, Source::Dns);
    assert!(
        f.trail.iter().all(|t| !t.starts_with("ldap")),
        "{:?}",
        f.trail
    );

    // RFC 4515: `*` in the address is a literal, not a wildcard matching everyone.
    let f = discover("*@ldap.direct.test").await.unwrap();
    assert!(
        f.usable.is_empty() && f.rejected.is_empty(),
        "{:?}",
        usable(&f)
    );

    // Not in the directory.
    let f = discover("nobody@ldap.direct.test").await.unwrap();
    assert!(f.usable.is_empty() && f.rejected.is_empty());

    // Every server of the domain down: an error (try later), not "none".
    match discover("x@dead.direct.test").await {
        Err(DiscoveryError::Ldap(why)) => assert!(why.contains("no LDAP server"), "{why}"),
        other => panic!("expected an LDAP failure, got {other:?}"),
    }
}

/// RFC 2782 weights: of two servers at one priority with weights 0 and 100, the heavy one is
/// asked first about 100 times in 101; over 30 lookups at least 25 go to it (the chance of
/// fewer is below one in a billion).
#[tokio::test]
async fn srv_weight_sends_most_lookups_to_the_heavier_server() {
    let mut heavy = 0;
    for _ in 0..30 {
        let f = discover("w@weighted.direct.test").await.unwrap();
        let answered = f
            .trail
            .iter()
            .find(|t| t.contains("certificate(s) under"))
            .unwrap();
        if answered.contains("heavy.direct.test") {
            heavy += 1;
        }
    }
    assert!(
        heavy >= 25,
        "{heavy} of 30 lookups went to the weight-100 server"
    );
}

/// A server that did not answer is asked last for a minute: the second lookup through the
/// same discovery goes to the live directory first and does not wait on the silent one.
#[tokio::test]
async fn servers_that_did_not_answer_are_asked_last_for_a_while() {
    use hisp_discovery::dns::DnsCerts;
    use hisp_discovery::select::Policy;
    let w = world();
    let anchors = hisp_direct::trust::TrustAnchors::new(vec![pki().ca.cert.clone()]);
    let profile = hisp_direct::alg::Profile::strict();
    let policy = Policy {
        anchors: &anchors,
        intermediates: &[],
        crls: &[],
        at: NOW,
        profile: &profile,
    };
    let timeout = Duration::from_millis(700);
    let d = hisp_discovery::Discovery::new(DnsCerts::at(w.named.addr, timeout), timeout);
    let first = d.discover("carol@ldap.direct.test", &policy).await.unwrap();
    assert_eq!(
        first.trail.iter().filter(|t| t.starts_with("ldap")).count(),
        3
    );
    let started = Instant::now();
    let second = d.discover("dom@ldap.direct.test", &policy).await.unwrap();
    let ldap: Vec<&String> = second
        .trail
        .iter()
        .filter(|t| t.starts_with("ldap"))
        .collect();
    assert_eq!(ldap.len(), 1, "{ldap:?}");
    assert!(ldap[0].contains("up.direct.test"), "{ldap:?}");
    assert!(
        started.elapsed() < timeout,
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(second.usable.len(), 1);
}
