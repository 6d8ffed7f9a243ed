//! LDAP discovery (Applicability Statement §5.2 as the ONC discovery test tool checks it):
//! the directory is found through `_ldap._tcp.<domain>` SRV records tried in RFC 2782
//! order (priority, then weight), servers that do not answer within the timeout are
//! skipped, the bind is anonymous, and every base DN the rootDSE lists in `namingContexts`
//! is searched for `(mail=<address>)` (RFC 4515 escaping), reading `userCertificate` and
//! `userCertificate;binary`. The first server that answers is believed.

use crate::dns::{DnsCerts, SrvTarget};
use crate::DiscoveryError;
use hickory_resolver::proto::rr::Name;
use ldap3::{ldap_escape, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use std::net::SocketAddr;
use std::time::Duration;

/// Order SRV targets as RFC 2782 says: ascending priority; among equal priorities, pick
/// one at a time at random with probability proportional to weight (zero-weight targets
/// get a small chance, and come first only by luck). `rand(n)` returns a value in `0..n`.
pub fn rfc2782_order(targets: Vec<SrvTarget>, rand: &mut dyn FnMut(u32) -> u32) -> Vec<SrvTarget> {
    let mut by_priority = targets;
    by_priority.sort_by_key(|t| t.priority);
    let mut out = Vec::with_capacity(by_priority.len());
    let mut rest = by_priority.as_slice();
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|t| t.priority == first.priority)
            .count();
        let (group, tail) = rest.split_at(same);
        // Zero weights first in the running sum, as RFC 2782 prescribes.
        let mut group: Vec<SrvTarget> = group.to_vec();
        group.sort_by_key(|t| t.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|t| u32::from(t.weight)).sum();
            let pick = rand(total + 1);
            let mut sum = 0u32;
            let i = group
                .iter()
                .position(|t| {
                    sum += u32::from(t.weight);
                    sum >= pick
                })
                .unwrap_or(0);
            out.push(group.remove(i));
        }
        rest = tail;
    }
    out
}

fn random_below(n: u32) -> u32 {
    let mut b = [0u8; 4];
    if openssl::rand::rand_bytes(&mut b).is_err() {
        return 0;
    }
    u32::from_le_bytes(b) % n.max(1)
}

/// How long a server that did not answer is passed over (tried last).
const DOWN_FOR: Duration = Duration::from_secs(60);

/// The LDAP side of discovery.
pub struct LdapDirectory {
    /// Each connection, bind and search must answer within this.
    pub timeout: Duration,
    /// Servers that lately did not answer, and until when they are tried last.
    down: std::sync::Mutex<std::collections::HashMap<SocketAddr, std::time::Instant>>,
}

impl LdapDirectory {
    /// A directory client allowing `timeout` per step.
    pub fn new(timeout: Duration) -> LdapDirectory {
        LdapDirectory {
            timeout,
            down: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn is_down(&self, at: &SocketAddr) -> bool {
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        down.get(at)
            .is_some_and(|until| std::time::Instant::now() < *until)
    }

    fn mark(&self, at: SocketAddr, answered: bool) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if answered {
            down.remove(&at);
        } else {
            if down.len() > 1024 {
                let now = std::time::Instant::now();
                down.retain(|_, until| now < *until);
            }
            down.insert(at, std::time::Instant::now() + DOWN_FOR);
        }
    }

    /// Certificates the domain's directory holds for `address` (DER, in the order read),
    /// noting each server asked in `trail`. `Ok(empty)` when the domain has no LDAP
    /// service or its directory has nothing; `Err` when no server answered.
    pub async fn certificates(
        &self,
        dns: &DnsCerts,
        address: &str,
        trail: &mut Vec<String>,
    ) -> Result<Vec<Vec<u8>>, DiscoveryError> {
        let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        let srv = Name::from_ascii(format!("_ldap._tcp.{domain}."))
            .map_err(|e| DiscoveryError::Ldap(format!("_ldap._tcp.{domain}: {e}")))?;
        let targets = rfc2782_order(dns.srv(&srv).await?, &mut random_below);
        if targets.is_empty() {
            trail.push(format!("ldap {srv}: no SRV records"));
            return Ok(Vec::new());
        }
        let mut servers = Vec::new();
        for t in &targets {
            match dns.addresses(&t.host).await {
                Ok(ips) if !ips.is_empty() => {
                    servers.extend(ips.into_iter().map(|ip| (t, SocketAddr::new(ip, t.port))));
                }
                Ok(_) => trail.push(format!("ldap {}: no address", t.host)),
                Err(e) => trail.push(format!("ldap {}: {e}", t.host)),
            }
        }
        // A server that did not answer in the last minute is asked only after the others.
        let (lately_down, up): (Vec<_>, Vec<_>) =
            servers.into_iter().partition(|(_, at)| self.is_down(at));
        for (t, at) in up.into_iter().chain(lately_down) {
            match tokio::time::timeout(self.timeout * 4, self.ask(at, address)).await {
                Ok(Ok((certs, bases))) => {
                    self.mark(at, true);
                    trail.push(format!(
                        "ldap {} ({at}): {} certificate(s) under {}",
                        t.host,
                        certs.len(),
                        bases.join(", ")
                    ));
                    return Ok(certs);
                }
                Ok(Err(e)) => {
                    self.mark(at, false);
                    trail.push(format!("ldap {} ({at}): {e}", t.host));
                }
                Err(_) => {
                    self.mark(at, false);
                    trail.push(format!("ldap {} ({at}): no answer in time", t.host));
                }
            }
        }
        Err(DiscoveryError::Ldap(format!(
            "no LDAP server of {domain} answered ({} tried)",
            targets.len()
        )))
    }

    /// One server: anonymous bind, rootDSE, a search per naming context.
    async fn ask(
        &self,
        at: SocketAddr,
        address: &str,
    ) -> Result<(Vec<Vec<u8>>, Vec<String>), ldap3::LdapError> {
        let settings = LdapConnSettings::new().set_conn_timeout(self.timeout);
        let (conn, mut ldap) =
            LdapConnAsync::with_settings(settings, &format!("ldap://{at}")).await?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.timeout)
            .simple_bind("", "")
            .await?
            .success()?;
        let (root, _) = ldap
            .with_timeout(self.timeout)
            .search("", Scope::Base, "(objectClass=*)", vec!["namingContexts"])
            .await?
            .success()?;
        let bases: Vec<String> = root
            .into_iter()
            .filter_map(entry)
            .flat_map(|e| values(&e, "namingcontexts"))
            .filter_map(|v| String::from_utf8(v).ok())
            .collect();
        let filter = format!("(mail={})", ldap_escape(address));
        let attrs = vec!["userCertificate", "userCertificate;binary"];
        let mut certs = Vec::new();
        for base in &bases {
            let (found, _) = ldap
                .with_timeout(self.timeout)
                .search(base, Scope::Subtree, &filter, attrs.clone())
                .await?
                .success()?;
            for e in found.into_iter().filter_map(entry) {
                for v in values(&e, "usercertificate") {
                    if !certs.contains(&v) {
                        certs.push(v);
                    }
                }
            }
        }
        let _ = ldap.unbind().await;
        Ok((certs, bases))
    }
}

/// Parse a result entry; ldap3 panics on a malformed one, which a hostile server could send.
fn entry(r: ldap3::ResultEntry) -> Option<SearchEntry> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(r))).ok()
}

/// Every value of the attribute `name` (lower case), with or without options such as
/// `;binary`, text or binary.
fn values(e: &SearchEntry, name: &str) -> Vec<Vec<u8>> {
    let matches = |k: &str| {
        let base = k.split(';').next().unwrap_or_default();
        base.eq_ignore_ascii_case(name)
    };
    let text = e
        .attrs
        .iter()
        .filter(|(k, _)| matches(k))
        .flat_map(|(_, v)| v.iter().map(|s| s.as_bytes().to_vec()));
    let bin = e
        .bin_attrs
        .iter()
        .filter(|(k, _)| matches(k))
        .flat_map(|(_, v)| v.iter().cloned());
    text.chain(bin).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(priority: u16, weight: u16, port: u16) -> SrvTarget {
        SrvTarget {
            priority,
            weight,
            port,
            host: Name::from_ascii("h.example.").unwrap_or_default(),
        }
    }

    /// RFC 2782: all of priority 0 before any of priority 10, whatever their weights.
    #[test]
    fn rfc2782_priority_first() {
        let order = rfc2782_order(vec![t(10, 100, 1), t(0, 0, 2), t(0, 5, 3)], &mut |n| n - 1);
        let ports: Vec<u16> = order.iter().map(|t| t.port).collect();
        assert_eq!(ports[2], 1);
        assert!(ports[..2].contains(&2) && ports[..2].contains(&3));
    }

    /// RFC 2782: within a priority, a target is picked with probability weight / total.
    #[test]
    fn rfc2782_weight_shares_the_first_pick() {
        let mut first_heavy = 0;
        let mut seed = 1u32;
        let mut rand = |n: u32| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 8) % n
        };
        for _ in 0..1000 {
            let order = rfc2782_order(vec![t(0, 10, 1), t(0, 90, 2)], &mut rand);
            if order[0].port == 2 {
                first_heavy += 1;
            }
        }
        assert!((820..=980).contains(&first_heavy), "{first_heavy} of 1000");
    }
}
