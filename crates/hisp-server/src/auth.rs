//! Password checks, shared by SMTP submission (RFC 4954) and the REST API.
//!
//! Argon2id runs off the reactor, on at most half the cores at a time: each check takes about
//! 19 MiB and tens of milliseconds of a core, so a flood of attempts on many connections
//! must queue rather than take the memory and the cores that carry mail. An account that
//! failed [`MAX_FAILURES`] times within [`WINDOW_S`] is refused without a check until the
//! window ends, so online guessing is bounded however many connections or addresses it
//! comes from (a per-session delay alone bounds nothing: the guesser opens more sessions).
//! A client address (IPv6: its /64) that failed [`MAX_ADDRESS_FAILURES`] times within the
//! same window, whatever the accounts, is refused the same way: that bounds password
//! spraying (one likely password tried on every account), which never trips an account's
//! lock. Loopback is not counted, as for the connection limits: a TLS proxy or an edge
//! gateway on the same host carries every user's logins. An unknown account is checked
//! against a fixed hash, so the answer takes as long as for a real one and does not tell
//! which addresses exist. Any change the operator makes to the directory lifts the locks (a
//! locked user is let in again by `hisp user add` with a new password).

use crate::tally::Tally;
use crate::users::{hash_password, verify_password};
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use tokio::sync::Semaphore;

/// Failed checks of one account that lock it…
pub const MAX_FAILURES: u32 = 10;
/// …and failed checks from one client address, of any accounts, that lock the address…
pub const MAX_ADDRESS_FAILURES: u32 = 30;
/// …when they fall within this many seconds of the first; the lock ends with the window.
pub const WINDOW_S: i64 = 600;

/// The outcome of a password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Right password: the account's address, lower-cased.
    Accepted(String),
    /// Wrong password or unknown account.
    Rejected,
    /// Too many recent failures of the account or from the client's address: refused
    /// unchecked for this many more seconds.
    Locked(i64),
    /// The check could not be made (store unreadable, worker lost).
    Unavailable,
}

/// What a failed check locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NewLocks {
    /// The account.
    pub account: bool,
    /// The client's address.
    pub address: bool,
}

/// Bounds on password checking: concurrency, failures per account and per client address.
pub struct AuthGuard {
    verifying: Semaphore,
    accounts: Mutex<Tally<String>>,
    addresses: Mutex<Tally<IpAddr>>,
}

/// The key a client is counted under (its IPv6 /64), or `None` for loopback.
fn address_key(ip: Option<IpAddr>) -> Option<IpAddr> {
    hisp_smtp::per_ip::counted_key(ip?, true)
}

impl std::fmt::Debug for AuthGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthGuard").finish_non_exhaustive()
    }
}

impl Default for AuthGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthGuard {
    /// Concurrent checks on at most half the cores (at least one), so a flood of attempts
    /// leaves the other half to the mail.
    pub fn new() -> AuthGuard {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        AuthGuard {
            verifying: Semaphore::new((cores / 2).max(1)),
            accounts: Mutex::new(Tally::new(MAX_FAILURES, WINDOW_S)),
            addresses: Mutex::new(Tally::new(MAX_ADDRESS_FAILURES, WINDOW_S)),
        }
    }

    /// Seconds a check of `user` from `client` stays refused at `now`, if the account or
    /// the address is locked.
    pub fn locked(&self, user: &str, client: Option<IpAddr>, now: i64) -> Option<i64> {
        let account = self
            .accounts
            .lock()
            .ok()
            .and_then(|t| t.locked(&user.to_ascii_lowercase(), now));
        let address = address_key(client).and_then(|key| {
            let t = self.addresses.lock().ok()?;
            t.locked(&key, now)
        });
        account.max(address)
    }

    /// Count a failed check of `user` from `client` at `now`; says what this one locked.
    pub fn failed(&self, user: &str, client: Option<IpAddr>, now: i64) -> NewLocks {
        let mut locks = NewLocks::default();
        if let Ok(mut t) = self.accounts.lock() {
            locks.account = t.failed(user.to_ascii_lowercase(), now);
        }
        if let (Some(key), Ok(mut t)) = (address_key(client), self.addresses.lock()) {
            locks.address = t.failed(key, now);
        }
        locks
    }

    /// Forget every failure: the operator changed the directory (say, `hisp user add` with a
    /// new password for an account a guesser had locked).
    pub fn clear(&self) {
        if let Ok(mut t) = self.accounts.lock() {
            t.clear();
        }
        if let Ok(mut t) = self.addresses.lock() {
            t.clear();
        }
    }

    /// A right password clears the account's failures (not the address's: a sprayer who
    /// knows one password must not wipe its count with it).
    pub fn succeeded(&self, user: &str) {
        if let Ok(mut t) = self.accounts.lock() {
            t.remove(&user.to_ascii_lowercase());
        }
    }

    /// Check `password` against `hash` (`None`: unknown account, checked against a fixed
    /// hash all the same), waiting for a free slot.
    pub async fn verify(&self, hash: Option<String>, password: &str) -> Option<bool> {
        let _slot = self.verifying.acquire().await.ok()?;
        let known = hash.is_some();
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            let hash = hash.unwrap_or_else(|| decoy().to_string());
            verify_password(&hash, &password)
        })
        .await
        .ok()?;
        Some(ok && known)
    }
}

/// The hash an unknown account's password is checked against (made once, of a random
/// password nobody knows).
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut secret = [0u8; 16];
        let _ = openssl::rand::rand_bytes(&mut secret);
        hash_password(&hex::encode(secret)).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_locks_after_repeated_failures_until_its_window_ends() {
        let g = AuthGuard::new();
        let t0 = 1_000_000;
        for i in 1..MAX_FAILURES {
            assert!(
                !g.failed("Dr.Bob@x.example", None, t0 + i64::from(i))
                    .account
            );
            assert_eq!(g.locked("dr.bob@x.example", None, t0 + i64::from(i)), None);
        }
        assert!(g.failed("dr.bob@x.example", None, t0 + 20).account);
        // The window runs from the first failure (t0 + 1).
        let left = |user, t| g.locked(user, None, t);
        assert_eq!(left("DR.BOB@x.example", t0 + 20), Some(WINDOW_S - 19));
        assert_eq!(left("dr.alice@x.example", t0 + 20), None);
        assert_eq!(left("dr.bob@x.example", t0 + WINDOW_S), Some(1));
        assert_eq!(left("dr.bob@x.example", t0 + 1 + WINDOW_S), None);
        // A new window starts from the next failure.
        assert!(
            !g.failed("dr.bob@x.example", None, t0 + 1 + WINDOW_S)
                .account
        );
        assert_eq!(left("dr.bob@x.example", t0 + 2 + WINDOW_S), None);
    }

    #[test]
    fn a_right_password_clears_the_failures() {
        let g = AuthGuard::new();
        for _ in 1..MAX_FAILURES {
            g.failed("a@x.example", None, 5);
        }
        g.succeeded("a@x.example");
        assert!(!g.failed("a@x.example", None, 6).account);
        assert_eq!(g.locked("a@x.example", None, 6), None);
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    /// Password spraying: one guess per account from one address never locks an account,
    /// but locks the address (an IPv6 client by its /64) for every account, the right
    /// password included; other addresses, and loopback, are not held back.
    #[test]
    fn an_address_locks_after_repeated_failures_across_accounts() {
        let g = AuthGuard::new();
        let sprayer = ip("2001:db8:5:6::1");
        for i in 1..MAX_ADDRESS_FAILURES {
            let locks = g.failed(&format!("user{i}@x.example"), sprayer, 100);
            assert_eq!(locks, NewLocks::default());
        }
        assert_eq!(g.locked("user99@x.example", sprayer, 100), None);
        let last = g.failed("user99@x.example", ip("2001:db8:5:6::beef"), 101);
        assert!(last.address && !last.account);
        assert_eq!(
            g.locked("dr.bob@x.example", ip("2001:db8:5:6:ffff::2"), 102),
            Some(WINDOW_S - 2)
        );
        assert_eq!(
            g.locked("dr.bob@x.example", ip("2001:db8:5:7::1"), 102),
            None
        );
        assert_eq!(g.locked("dr.bob@x.example", ip("192.0.2.7"), 102), None);
        assert_eq!(g.locked("dr.bob@x.example", None, 102), None);
        // A right password for one account does not wipe the address's count.
        g.succeeded("user1@x.example");
        assert!(g.locked("user1@x.example", sprayer, 103).is_some());
        assert_eq!(g.locked("user1@x.example", sprayer, 100 + WINDOW_S), None);
        // The operator changing the directory lifts every lock.
        g.failed("user1@x.example", sprayer, 100 + WINDOW_S);
        g.clear();
        assert_eq!(g.locked("user1@x.example", sprayer, 100 + WINDOW_S), None);

        let local = ip("127.0.0.1");
        for i in 0..MAX_ADDRESS_FAILURES * 2 {
            assert!(!g.failed(&format!("u{i}@x.example"), local, 200).address);
        }
        assert_eq!(g.locked("dr.bob@x.example", ip("::1"), 200), None);
        assert_eq!(g.locked("dr.bob@x.example", local, 200), None);
    }

    #[tokio::test]
    async fn an_unknown_account_is_checked_and_never_accepted() {
        let g = AuthGuard::new();
        let h = hash_password("right").unwrap();
        assert_eq!(g.verify(Some(h.clone()), "right").await, Some(true));
        assert_eq!(g.verify(Some(h), "wrong").await, Some(false));
        assert_eq!(g.verify(None, "anything").await, Some(false));
    }
}
