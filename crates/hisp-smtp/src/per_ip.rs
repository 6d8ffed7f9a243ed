//! Connections per client address, as Postfix's `smtpd_client_connection_count_limit` (50)
//! bounds them: one host opening hundreds of idle sessions (an SMTP session may wait five
//! minutes per command line, an HTTP connection 30 s per request head) would otherwise take
//! every slot of the listener from the clients that have work to do. Both SMTP ports and
//! the REST listener keep one [`PerIp`] each. IPv6 clients are counted per /64, the block
//! one host is usually given. Loopback is exempt unless the config says otherwise, as
//! Postfix exempts `$mynetworks`: local tools and a local edge gateway may open many.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// The live connections of each client address (or IPv6 /64) of one listener.
pub struct PerIp {
    limit: usize,
    exempt_loopback: bool,
    counts: Counts,
}

/// One admitted connection's place in its address's count, given back when dropped.
pub struct IpSlot {
    counts: Counts,
    /// `None` for an exempt address (not counted).
    key: Option<IpAddr>,
}

/// The address a client is counted under: itself (an IPv4-mapped IPv6 address as its
/// IPv4 address), or for IPv6 its /64.
fn counted_as(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// The address a client is counted under, or `None` for loopback when `exempt_loopback`.
pub fn counted_key(ip: IpAddr, exempt_loopback: bool) -> Option<IpAddr> {
    let key = counted_as(ip);
    // `::1` is looked at before the /64 mask (which makes it `::`), a mapped 127.0.0.1 after.
    let loopback = ip.is_loopback() || key.is_loopback();
    (!(exempt_loopback && loopback)).then_some(key)
}

impl PerIp {
    /// At most `limit` connections per address (at least one).
    pub fn new(limit: usize, exempt_loopback: bool) -> PerIp {
        PerIp {
            limit: limit.max(1),
            exempt_loopback,
            counts: Arc::default(),
        }
    }

    /// A slot for a new connection from `ip`, or `None` when that address has all it may.
    pub fn admit(&self, ip: IpAddr) -> Option<IpSlot> {
        let counts = self.counts.clone();
        let Some(ip) = counted_key(ip, self.exempt_loopback) else {
            return Some(IpSlot { counts, key: None });
        };
        let mut map = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            counts,
            key: Some(ip),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let Some(ip) = self.key else { return };
        let mut map = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sessions_are_counted_per_address_and_per_ipv6_64() {
        let p = PerIp::new(2, true);
        let a1 = p.admit(ip("192.0.2.1")).unwrap();
        let _a2 = p.admit(ip("192.0.2.1")).unwrap();
        assert!(p.admit(ip("192.0.2.1")).is_none());
        assert!(
            p.admit(ip("192.0.2.2")).is_some(),
            "another address has its own count"
        );
        drop(a1);
        assert!(
            p.admit(ip("192.0.2.1")).is_some(),
            "a closed session frees its place"
        );

        let _b1 = p.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b2 = p.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert!(p.admit(ip("2001:db8:1:2::77")).is_none(), "same /64");
        assert!(p.admit(ip("2001:db8:1:3::1")).is_some(), "another /64");
        // An IPv4-mapped client counts as its IPv4 address.
        let _c = p.admit(ip("198.51.100.7")).unwrap();
        let _d = p.admit(ip("::ffff:198.51.100.7")).unwrap();
        assert!(p.admit(ip("198.51.100.7")).is_none());
    }

    #[test]
    fn loopback_is_exempt_unless_configured_not_to_be() {
        let p = PerIp::new(1, true);
        let held: Vec<IpSlot> = (0..5).filter_map(|_| p.admit(ip("127.0.0.1"))).collect();
        assert_eq!(held.len(), 5);
        assert!(p.counts.lock().unwrap().is_empty());
        let strict = PerIp::new(1, false);
        let _one = strict.admit(ip("::1")).unwrap();
        assert!(strict.admit(ip("::1")).is_none());
    }
}
