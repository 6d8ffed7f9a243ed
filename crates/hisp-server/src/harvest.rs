//! A bound on directory harvesting across sessions. The relay port answers RCPT with
//! whether an address is one of our users (it must, to refuse mail it cannot deliver rather
//! than bounce it later), so a stranger can learn who has a Direct address here by trying
//! names. Each session is already closed after `max_refused_recipients` refusals and slowed
//! after a few; this counts refusals per client address (IPv6: its /64) across all its
//! sessions, as Postfix's anvil counts per client. Past `smtp.max_refused_recipients_per_ip`
//! within [`WINDOW_S`], every RCPT from that address gets `450 4.7.1` until the window ends,
//! whether the address exists or not, so the answers stop telling anything; a real peer's
//! mail is deferred, not lost. Loopback is not counted (a local filter or proxy carries
//! every peer's mail).

use crate::tally::Tally;
use std::net::IpAddr;
use std::sync::Mutex;

/// Refusals count within this many seconds of an address's first; the lock ends with it.
pub const WINDOW_S: i64 = 600;

/// Refused recipients per client address.
pub struct HarvestGuard {
    refused: Mutex<Tally<IpAddr>>,
}

impl std::fmt::Debug for HarvestGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HarvestGuard").finish_non_exhaustive()
    }
}

impl HarvestGuard {
    /// `max` refused recipients from one address within the window lock it.
    pub fn new(max: u32) -> HarvestGuard {
        HarvestGuard {
            refused: Mutex::new(Tally::new(max, WINDOW_S)),
        }
    }

    /// Seconds RCPT from `client` stays refused at `now`, if its address is locked.
    pub fn locked(&self, client: IpAddr, now: i64) -> Option<i64> {
        let key = hisp_smtp::per_ip::counted_key(client, true)?;
        self.refused.lock().ok()?.locked(&key, now)
    }

    /// Count a recipient refused to `client`; true when this one locked its address.
    pub fn refused(&self, client: IpAddr, now: i64) -> bool {
        let Some(key) = hisp_smtp::per_ip::counted_key(client, true) else {
            return false;
        };
        self.refused.lock().is_ok_and(|mut t| t.failed(key, now))
    }

    /// Forget every refusal: the operator changed the directory (perhaps added the users a
    /// peer was writing to).
    pub fn clear(&self) {
        if let Ok(mut t) = self.refused.lock() {
            t.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HarvestGuard;
    use std::net::IpAddr;

    #[test]
    fn an_address_locks_after_its_refusals_across_sessions_and_loopback_never_does() {
        let g = HarvestGuard::new(3);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(!g.refused(ip("192.0.2.7"), 100));
        assert!(!g.refused(ip("192.0.2.7"), 101));
        assert_eq!(g.locked(ip("192.0.2.7"), 101), None);
        assert!(g.refused(ip("192.0.2.7"), 102));
        assert_eq!(g.locked(ip("192.0.2.7"), 102), Some(598));
        assert_eq!(g.locked(ip("192.0.2.8"), 102), None);
        // One IPv6 /64 is one client.
        for n in 1..=3 {
            g.refused(ip(&format!("2001:db8::{n}")), 100);
        }
        assert!(g.locked(ip("2001:db8::99"), 100).is_some());
        assert_eq!(g.locked(ip("2001:db8:0:1::1"), 100), None);
        for _ in 0..10 {
            assert!(!g.refused(ip("127.0.0.1"), 100));
        }
        assert_eq!(g.locked(ip("127.0.0.1"), 100), None);
        g.clear();
        assert_eq!(g.locked(ip("192.0.2.7"), 102), None);
    }
}
