//! Destinations suspended after failures that are about the host, not the message: no
//! address, no connection, no greeting, EHLO or STARTTLS failing. Postfix marks such a
//! destination dead and defers its other mail with "delivery temporarily suspended"; so do
//! we. Without it, a peer that is down or black-holes connections takes every delivery slot
//! for the connect and greeting timeouts, one message after another, while the mail for
//! every other peer waits. As in Postfix, it takes a failed cohort: as many host failures
//! in a row as deliveries were under way at once, so a busy peer that refuses one session
//! (too many from our address) while it takes the others is not taken for a dead one.
//!
//! A suspension lasts `queue.retry_first` (2 min). Mail for the domain meanwhile is put off
//! to its end without a connection and without counting an attempt, so it is not pushed
//! down the backoff schedule. When the suspension ends, one delivery (the probe) finds out
//! whether the host is back while the others wait a little more: a success lifts the
//! suspension, a host failure starts a new one. `hisp queue flush` and any change to the
//! directory (`hisp route add` fixing a route, say) lift every suspension.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// How long mail waits while a probe is under way (or the suspension's own length, when
/// that is shorter).
const PROBE_WAIT_S: i64 = 30;
/// A probe not reported within this long is taken as lost, and another may go.
const PROBE_LOST_S: i64 = 600;

/// What this daemon knows of its destination domains: deliveries under way, host failures
/// since the last success, and suspensions. A domain with none of these has no entry.
#[derive(Debug, Default)]
pub struct Destinations {
    map: Mutex<HashMap<String, Domain>>,
}

#[derive(Debug, Default)]
struct Domain {
    in_flight: u32,
    /// Host failures since the last success.
    failures: u32,
    /// The most deliveries under way at once since the last success (at least those under
    /// way then): that many failures in a row mean the host is down, not busy.
    cohort: u32,
    suspended: Option<Suspension>,
}

#[derive(Debug, Clone)]
struct Suspension {
    until: i64,
    reason: String,
    /// When the probe under way began.
    probe: Option<i64>,
}

impl Domain {
    fn idle(&self) -> bool {
        self.in_flight == 0 && self.failures == 0 && self.suspended.is_none()
    }
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

/// Leave to deliver to a domain (a probe, when the domain was suspended), counted as under
/// way until dropped. Dropping a probe unreported (the attempt never reached the network)
/// lets the next delivery probe.
#[derive(Debug)]
pub struct Pass<'a> {
    dests: &'a Destinations,
    domain: String,
    /// When this probe began (`None`: not a probe, or reported).
    probe: Option<i64>,
}

impl Destinations {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Domain>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// May mail for `domain` go at `now`? `length` is how long a suspension lasts.
    pub fn gate(&self, domain: &str, now: i64, length: i64) -> Gate<'_> {
        let domain = domain.to_ascii_lowercase();
        let mut map = self.lock();
        let d = map.entry(domain.clone()).or_default();
        let mut probe = None;
        if let Some(s) = d.suspended.as_mut() {
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
            probe = Some(now);
        }
        d.in_flight += 1;
        d.cohort = d.cohort.max(d.in_flight);
        Gate::Go(Pass {
            dests: self,
            domain,
            probe,
        })
    }

    /// Lift every suspension: the operator changed the directory or flushed the queue.
    pub fn clear(&self) {
        let mut map = self.lock();
        for d in map.values_mut() {
            d.failures = 0;
            d.suspended = None;
        }
        map.retain(|_, d| !d.idle());
    }

    /// Deliveries under way per domain, for sharing the slots among destinations
    /// ([`hisp_store::Share`]).
    pub fn under_way(&self) -> Vec<(String, usize)> {
        let map = self.lock();
        let busy = map.iter().filter(|(_, d)| d.in_flight > 0);
        busy.map(|(name, d)| (name.clone(), d.in_flight as usize))
            .collect()
    }

    /// Whether fewer than `limit` deliveries to `domain` are under way.
    pub fn has_room(&self, domain: &str, limit: usize) -> bool {
        let map = self.lock();
        let busy = map
            .get(&domain.to_ascii_lowercase())
            .map_or(0, |d| d.in_flight);
        (busy as usize) < limit
    }

    /// How many domains are suspended (for `/metrics`).
    pub fn suspended(&self) -> usize {
        self.lock()
            .values()
            .filter(|d| d.suspended.is_some())
            .count()
    }
}

impl Pass<'_> {
    /// The host answered (whatever it said about the message): the domain is reachable.
    pub fn reached(mut self) {
        let mut map = self.dests.lock();
        if let Some(d) = map.get_mut(&self.domain) {
            d.failures = 0;
            d.cohort = d.in_flight;
            if d.suspended.take().is_some() {
                tracing::info!(domain = %self.domain, "destination reachable again: suspension lifted");
            }
        }
        self.probe = None;
    }

    /// The host failed before any transaction. The domain is suspended until `until` once
    /// such failures since the last success are as many as the deliveries that were under
    /// way at once meanwhile (Postfix's failed cohort): one session refused by a busy peer
    /// that is taking the others does not stop its mail. A failed probe suspends it again.
    pub fn unreachable(mut self, now: i64, until: i64, reason: &str) {
        let mut map = self.dests.lock();
        let Some(d) = map.get_mut(&self.domain) else {
            return;
        };
        d.failures += 1;
        let cohort = d.failures >= d.cohort;
        if !(self.probe.is_some() || cohort)
            || d.suspended.as_ref().is_some_and(|s| s.until >= until)
        {
            return;
        }
        if d.suspended.is_none() {
            tracing::warn!(
                domain = %self.domain,
                suspended_s = until - now,
                cause = reason,
                "destination unreachable: its other mail is deferred without a connection until the suspension ends"
            );
        }
        d.suspended = Some(Suspension {
            until,
            reason: reason.to_string(),
            probe: None,
        });
        self.probe = None;
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut map = self.dests.lock();
        let Some(d) = map.get_mut(&self.domain) else {
            return;
        };
        d.in_flight = d.in_flight.saturating_sub(1);
        // Only this probe's own mark: a suspension started since has its own probe.
        if let (Some(began), Some(s)) = (self.probe, d.suspended.as_mut()) {
            if s.probe == Some(began) {
                s.probe = None;
            }
        }
        if d.idle() {
            map.remove(&self.domain);
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
            Gate::Go(p) => panic!("let go (probe: {:?})", p.probe),
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
        assert!(probe.probe.is_some());
        assert_eq!(wait(d.gate("peer.example", 1127, 120)), 1157);
        probe.unreachable(1130, 1250, "timed out at greeting");
        assert_eq!(wait(d.gate("peer.example", 1200, 120)), 1250);
        let probe = go(d.gate("peer.example", 1250, 120));
        probe.reached();
        assert_eq!(d.suspended(), 0);
        assert!(go(d.gate("peer.example", 1251, 120)).probe.is_none());
        assert!(
            d.lock().is_empty(),
            "nothing kept for a domain that is fine"
        );
    }

    /// A busy peer refusing one session (421 at the greeting: too many from our address)
    /// while it takes the others is not a dead one.
    #[test]
    fn one_failure_among_deliveries_that_reach_the_host_suspends_nothing() {
        let d = Destinations::default();
        let passes: Vec<Pass<'_>> = (0..3).map(|_| go(d.gate("busy.example", 0, 120))).collect();
        let mut passes = passes.into_iter();
        passes
            .next()
            .unwrap()
            .unreachable(1, 121, "the server refused the session: 421");
        assert_eq!(d.suspended(), 0);
        passes.next().unwrap().reached();
        passes
            .next()
            .unwrap()
            .unreachable(2, 122, "the server refused the session: 421");
        assert_eq!(
            d.suspended(),
            0,
            "the failure count restarted at the success"
        );
        // As many failures in a row as deliveries were under way: a failed cohort.
        let (a, b) = (
            go(d.gate("busy.example", 3, 120)),
            go(d.gate("busy.example", 3, 120)),
        );
        a.unreachable(4, 124, "refused");
        b.unreachable(4, 124, "refused");
        assert_eq!(d.suspended(), 1);
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
        assert!(go(d.gate("peer.example", 121 + PROBE_LOST_S, 120))
            .probe
            .is_some());
    }

    #[test]
    fn a_directory_change_lifts_every_suspension() {
        let d = Destinations::default();
        go(d.gate("a.example", 0, 120)).unreachable(0, 120, "refused");
        go(d.gate("b.example", 0, 120)).unreachable(0, 120, "refused");
        assert_eq!(d.suspended(), 2);
        d.clear();
        assert_eq!(d.suspended(), 0);
        assert!(go(d.gate("a.example", 1, 120)).probe.is_none());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Gate(usize, i64),
        Reached(usize),
        Unreachable(usize),
        Drop(usize),
        Clear,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..3usize, 0..200i64).prop_map(|(d, dt)| Op::Gate(d, dt)),
            (0..8usize).prop_map(Op::Reached),
            (0..8usize).prop_map(Op::Unreachable),
            (0..8usize).prop_map(Op::Drop),
            Just(Op::Clear),
        ]
    }

    fn take<'a>(passes: &mut Vec<Pass<'a>>, i: usize) -> Option<Pass<'a>> {
        (!passes.is_empty()).then(|| passes.remove(i % passes.len()))
    }

    proptest::proptest! {
        /// Whatever the order of deliveries and outcomes: each domain's count of deliveries
        /// under way is the passes alive for it, a suspension's probe is a pass alive, mail
        /// waits only for a suspended domain, nothing is kept for a domain with nothing to
        /// remember, and nothing at all once every pass is gone and the suspensions lifted.
        #[test]
        fn the_bookkeeping_holds_for_any_sequence(ops in proptest::collection::vec(op(), 1..60)) {
            check_sequence(ops)?;
        }
    }

    fn check_sequence(ops: Vec<Op>) -> Result<(), proptest::test_runner::TestCaseError> {
        use proptest::{prop_assert, prop_assert_eq};
        let d = Destinations::default();
        let names = ["a.example", "b.example", "c.example"];
        let mut now = 0;
        let mut passes: Vec<Pass<'_>> = Vec::new();
        for op in ops {
            match op {
                Op::Gate(i, dt) => {
                    now += dt;
                    let was_suspended = d
                        .lock()
                        .get(names[i])
                        .is_some_and(|x| x.suspended.is_some());
                    match d.gate(names[i], now, 120) {
                        Gate::Go(p) => passes.push(p),
                        Gate::Wait { until, .. } => {
                            prop_assert!(was_suspended);
                            prop_assert!(until > now);
                        }
                    }
                }
                Op::Reached(i) => {
                    if let Some(p) = take(&mut passes, i) {
                        let name = p.domain.clone();
                        p.reached();
                        let map = d.lock();
                        prop_assert!(map.get(&name).is_none_or(|x| x.suspended.is_none()));
                    }
                }
                Op::Unreachable(i) => {
                    if let Some(p) = take(&mut passes, i) {
                        p.unreachable(now, now + 120, "refused");
                    }
                }
                Op::Drop(i) => drop(take(&mut passes, i)),
                Op::Clear => d.clear(),
            }
            let map = d.lock();
            for name in names {
                let alive = passes.iter().filter(|p| p.domain == name).count() as u32;
                match map.get(name) {
                    None => prop_assert_eq!(alive, 0),
                    Some(x) => {
                        prop_assert_eq!(x.in_flight, alive);
                        prop_assert!(!x.idle());
                        // A probe marked is one alive (none is forgotten here).
                        if let Some(began) = x.suspended.as_ref().and_then(|s| s.probe) {
                            let marked = passes
                                .iter()
                                .filter(|p| p.domain == name && p.probe == Some(began));
                            prop_assert_eq!(marked.count(), 1);
                        }
                    }
                }
            }
        }
        passes.clear();
        d.clear();
        prop_assert!(d.lock().is_empty());
        Ok(())
    }
}
