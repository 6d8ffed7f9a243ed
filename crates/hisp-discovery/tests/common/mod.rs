//! What the discovery tests share: a test PKI (one trusted root, one rogue root, one key
//! for every leaf) and certificate builders.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use hisp_direct::pki::{issue_leaf_for_key, new_root_ca, Issued, LeafSpec, SubjectBinding};
use openssl::pkey::{PKey, Private};
use std::sync::OnceLock;

pub const NOW: i64 = 1_780_000_000; // 2026-05-28
pub const DAY: i64 = 86_400;
pub const ORIGIN: &str = "direct.test";

pub struct Pki {
    pub ca: Issued,
    pub rogue: Issued,
    pub key: PKey<Private>,
}

pub fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(|| Pki {
        ca: new_root_ca("Direct Test CA", NOW - 400 * DAY, NOW + 4000 * DAY, 2048).unwrap(),
        rogue: new_root_ca("Rogue CA", NOW - 400 * DAY, NOW + 4000 * DAY, 2048).unwrap(),
        key: hisp_direct::pki::generate_rsa(2048).unwrap(),
    })
}

/// A leaf under `issuer` with the shared key (discovery never uses the private key).
pub fn leaf(issuer: &Issued, binding: SubjectBinding, from: i64, to: i64) -> Vec<u8> {
    let mut spec = LeafSpec::address("placeholder@direct.test", from, to);
    spec.common_name = format!("{binding:?}");
    spec.binding = binding;
    let k = pki().key.clone();
    issue_leaf_for_key(issuer, &spec, k)
        .unwrap()
        .cert
        .to_der()
        .unwrap()
}

pub fn addr(a: &str) -> SubjectBinding {
    SubjectBinding::Address(a.into())
}

pub fn valid(b: SubjectBinding) -> Vec<u8> {
    leaf(&pki().ca, b, NOW - 30 * DAY, NOW + 365 * DAY)
}

pub fn sha(der: &[u8]) -> String {
    openssl::sha::sha256(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Discover `address` asking the DNS server at `dns`, trusting the test CA at [`NOW`].
pub async fn discover_at(
    dns: std::net::SocketAddr,
    address: &str,
    ldap_timeout: std::time::Duration,
) -> Result<hisp_discovery::Found, hisp_discovery::DiscoveryError> {
    use hisp_discovery::dns::DnsCerts;
    use hisp_discovery::select::Policy;
    let anchors = hisp_direct::trust::TrustAnchors::new(vec![pki().ca.cert.clone()]);
    let profile = hisp_direct::alg::Profile::strict();
    let policy = Policy {
        anchors: &anchors,
        intermediates: &[],
        crls: &[],
        at: NOW,
        profile: &profile,
    };
    let dns = DnsCerts::at(dns, std::time::Duration::from_secs(2));
    hisp_discovery::Discovery::new(dns, ldap_timeout)
        .discover(address, &policy)
        .await
}

/// (sha256, binding kind) of every usable certificate.
pub fn usable(f: &hisp_discovery::Found) -> std::collections::BTreeSet<(String, &'static str)> {
    f.usable
        .iter()
        .map(|u| (u.cert.sha256_hex(), u.binding.kind()))
        .collect()
}
