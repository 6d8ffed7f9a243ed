//! Destinations suspended after a failure that is about the host, not the message: no
//! address, no connection, no greeting, EHLO or STARTTLS failing. Postfix marks such a
//! destination dead and defers its other mail with "delivery temporarily suspended"; so do
//! we. Without it, a peer that is down or black-holes connections takes every delivery slot
//! for the connect and greeting timeouts, one message after another, while the mail for
//! every other peer waits.
//!
//! A suspension lasts `queue.retry_first` (2 min). Mail for the domain meanwhile is put off
//! to its end without a connection and without counting an attempt, so a message flushed
//! by the operator (`hisp queue flush`) is at worst held until then, not pushed down the
//! backoff schedule. When the suspension ends, one delivery (the probe) finds out whether
//! the host is back while the others wait a little more: a success lifts the suspension, a
//! host failure starts a new one. Any change to the directory (`hisp route add` fixing a
//! route, say) lifts every suspension.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// How long mail waits while a probe is under way (or the suspension's own length, when
/// that is shorter).
const PROBE_WAIT_S: i64 = 30;
/// A probe not reported within this long is taken as lost, and another may go.
const PROBE_LOST_S: i64 = 600;

/// The suspended destination domains of this daemon.
#[derive(Debug, Default)]
pub struct Destinations {
    map: Mutex<HashMap<String, Suspension>>,
}

#[derive(Debug, Clone)]
struct Suspension {
    until: i64,
    reason: String,
    /// When the probe under way began.
    probe: Option<i64>,
}

/// Whether a delivery may go ahead now.
#[derive(Debug)]
pub enum Gate<'a> {
    /// Go: report how the host answered through the pass.
    Go(Pass<'a>),
    /// Put the mail off until `until` (Unix time), for `reason`.
    Wait {
        /// When to try again.
        until: i64,
        /// Why, for the queue listing: the failure that suspended the domain.
        reason: String,
    },
}

/// Leave to deliver to a domain; a probe, when the domain was suspended. Dropping a probe
/// without reporting (the attempt never reached the network) lets the next delivery probe.
#[derive(Debug)]
pub struct Pass<'a> {
    dests: &'a Destinations,
    domain: String,
    probe: bool,
}

impl Destinations {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Suspension>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// May mail for `domain` go at `now`? `length` is how long a suspension lasts.
    pub fn gate(&self, domain: &str, now: i64, length: i64) -> Gate<'_> {
        let domain = domain.to_ascii_lowercase();
        let mut map = self.lock();
        let mut probe = false;
        if let Some(s) = map.get_mut(&domain) {
            let probing = s.probe.is_some_and(|began| now < began + PROBE_LOST_S);
            if now < s.until || probing {
                let until = if now < s.until {
                    s.until
                } else {
                    now + PROBE_WAIT_S.min(length).max(1)
                };
                return Gate::Wait {
                    until,
                    reason: s.reason.clone(),
                };
            }
            s.probe = Some(now);
            probe = true;
        }
        Gate::Go(Pass {
            dests: self,
            domain,
            probe,
        })
    }

    /// Lift every suspension: the operator changed the directory.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many domains are suspended (for `/metrics`).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Pass<'_> {
    /// The host answered (whatever it said about the message): the domain is reachable.
    pub fn reached(self) {
        if self.dests.lock().remove(&self.domain).is_some() {
            tracing::info!(domain = %self.domain, "destination reachable again: suspension lifted");
        }
    }

    /// The host failed before any transaction: suspend the domain until `until`.
    pub fn unreachable(self, now: i64, until: i64, reason: &str) {
        let fresh = self
            .dests
            .lock()
            .insert(
                self.domain.clone(),
                Suspension {
                    until,
                    reason: reason.to_string(),
                    probe: None,
                },
            )
            .is_none();
        if fresh {
            tracing::warn!(
                domain = %self.domain,
                suspended_s = until - now,
                cause = reason,
                "destination unreachable: its other mail is deferred without a connection until the suspension ends"
            );
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if !self.probe {
            return;
        }
        if let Some(s) = self.dests.lock().get_mut(&self.domain) {
            s.probe = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(g: Gate<'_>) -> Pass<'_> {
        match g {
            Gate::Go(p) => p,
            Gate::Wait { until, reason } => panic!("told to wait until {until}: {reason}"),
        }
    }

    fn wait(g: Gate<'_>) -> i64 {
        match g {
            Gate::Wait { until, .. } => until,
            Gate::Go(p) => panic!("let go (probe: {})", p.probe),
        }
    }

    #[test]
    fn a_host_failure_suspends_the_domain_until_a_probe_finds_it_back() {
        let d = Destinations::default();
        let first = go(d.gate("Peer.Example", 1000, 120));
        // Another delivery already under way when the first fails is not held back.
        let second = go(d.gate("peer.example", 1000, 120));
        first.unreachable(1005, 1125, "cannot connect to peer.example:25: refused");
        second.unreachable(1006, 1126, "cannot connect to peer.example:25: refused");
        assert_eq!(wait(d.gate("peer.example", 1100, 120)), 1126);
        assert!(matches!(d.gate("other.example", 1100, 120), Gate::Go(_)));
        // At the end, one probe goes; the rest wait for it, 30 s at a time.
        let probe = go(d.gate("peer.example", 1126, 120));
        assert!(probe.probe);
        assert_eq!(wait(d.gate("peer.example", 1127, 120)), 1157);
        probe.unreachable(1130, 1250, "timed out at greeting");
        assert_eq!(wait(d.gate("peer.example", 1200, 120)), 1250);
        let probe = go(d.gate("peer.example", 1250, 120));
        probe.reached();
        assert!(d.is_empty());
        assert!(!go(d.gate("peer.example", 1251, 120)).probe);
    }

    #[test]
    fn a_probe_that_never_reports_lets_the_next_one_go() {
        let d = Destinations::default();
        go(d.gate("peer.example", 0, 120)).unreachable(0, 120, "refused");
        // Dropped unreported (the attempt never reached the network).
        drop(go(d.gate("peer.example", 120, 120)));
        let probe = go(d.gate("peer.example", 121, 120));
        // Lost (never dropped, never reported): after PROBE_LOST_S another goes.
        std::mem::forget(probe);
        assert_eq!(wait(d.gate("peer.example", 200, 120)), 230);
        assert!(go(d.gate("peer.example", 121 + PROBE_LOST_S, 120)).probe);
    }

    #[test]
    fn a_directory_change_lifts_every_suspension() {
        let d = Destinations::default();
        go(d.gate("a.example", 0, 120)).unreachable(0, 120, "refused");
        go(d.gate("b.example", 0, 120)).unreachable(0, 120, "refused");
        assert_eq!(d.len(), 2);
        d.clear();
        assert!(!go(d.gate("a.example", 1, 120)).probe);
    }
}
