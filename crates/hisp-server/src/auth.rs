//! Password checks, shared by SMTP submission (RFC 4954) and the REST API.
//!
//! Argon2id runs off the reactor, on at most half the cores at a time: each check takes about
//! 19 MiB and tens of milliseconds of a core, so a flood of attempts on many connections
//! must queue rather than take the memory and the cores that carry mail. An account that
//! failed [`MAX_FAILURES`] times within [`WINDOW_S`] is refused without a check until the
//! window ends, so online guessing is bounded however many connections or addresses it
//! comes from (a per-session delay alone bounds nothing: the guesser opens more sessions).
//! An unknown account is checked against a fixed hash, so the answer takes as long as for
//! a real one and does not tell which addresses exist. Any change the operator makes to the
//! directory lifts the locks (a locked user is let in again by `hisp user add` with a new
//! password).

use crate::users::{hash_password, verify_password};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use tokio::sync::Semaphore;

/// Failed checks of one account that lock it…
pub const MAX_FAILURES: u32 = 10;
/// …when they fall within this many seconds of the first; the lock ends with the window.
pub const WINDOW_S: i64 = 600;
/// Accounts tracked at most (each failure of an unknown address adds one); past this the
/// expired ones are dropped, and if that is not enough, all.
const TRACKED: usize = 10_000;

/// The outcome of a password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Right password: the account's address, lower-cased.
    Accepted(String),
    /// Wrong password or unknown account.
    Rejected,
    /// Too many recent failures: refused unchecked for this many more seconds.
    Locked(i64),
    /// The check could not be made (store unreadable, worker lost).
    Unavailable,
}

/// Bounds on password checking: concurrency, and failures per account.
pub struct AuthGuard {
    verifying: Semaphore,
    failures: Mutex<HashMap<String, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: i64,
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
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds `user` stays locked at `now`, if it is locked.
    pub fn locked(&self, user: &str, now: i64) -> Option<i64> {
        let map = self.failures.lock().ok()?;
        let f = map.get(&user.to_ascii_lowercase())?;
        let left = f.first + WINDOW_S - now;
        (f.count >= MAX_FAILURES && left > 0).then_some(left)
    }

    /// Count a failed check of `user` at `now`; true when this one locked the account.
    pub fn failed(&self, user: &str, now: i64) -> bool {
        let Ok(mut map) = self.failures.lock() else {
            return false;
        };
        if map.len() >= TRACKED {
            map.retain(|_, f| f.first + WINDOW_S > now);
            if map.len() >= TRACKED {
                map.clear();
            }
        }
        let f = map.entry(user.to_ascii_lowercase()).or_insert(Failures {
            count: 0,
            first: now,
        });
        if f.first + WINDOW_S <= now {
            *f = Failures {
                count: 0,
                first: now,
            };
        }
        f.count += 1;
        f.count == MAX_FAILURES
    }

    /// Forget every failure: the operator changed the directory (say, `hisp user add` with a
    /// new password for an account a guesser had locked).
    pub fn clear(&self) {
        if let Ok(mut map) = self.failures.lock() {
            map.clear();
        }
    }

    /// A right password clears the account's failures.
    pub fn succeeded(&self, user: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&user.to_ascii_lowercase());
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
            assert!(!g.failed("Dr.Bob@x.example", t0 + i64::from(i)));
            assert_eq!(g.locked("dr.bob@x.example", t0 + i64::from(i)), None);
        }
        assert!(g.failed("dr.bob@x.example", t0 + 20));
        // The window runs from the first failure (t0 + 1).
        assert_eq!(g.locked("DR.BOB@x.example", t0 + 20), Some(WINDOW_S - 19));
        assert_eq!(g.locked("dr.alice@x.example", t0 + 20), None);
        assert_eq!(g.locked("dr.bob@x.example", t0 + WINDOW_S), Some(1));
        assert_eq!(g.locked("dr.bob@x.example", t0 + 1 + WINDOW_S), None);
        // A new window starts from the next failure.
        assert!(!g.failed("dr.bob@x.example", t0 + 1 + WINDOW_S));
        assert_eq!(g.locked("dr.bob@x.example", t0 + 2 + WINDOW_S), None);
    }

    #[test]
    fn a_right_password_clears_the_failures() {
        let g = AuthGuard::new();
        for _ in 1..MAX_FAILURES {
            g.failed("a@x.example", 5);
        }
        g.succeeded("a@x.example");
        assert!(!g.failed("a@x.example", 6));
        assert_eq!(g.locked("a@x.example", 6), None);
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
