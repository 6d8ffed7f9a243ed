//! Failures counted per key (an account, a client address) within a fixed window: the
//! bookkeeping behind the login locks (`crate::auth`) and the lock on directory harvesting
//! (`crate::harvest`). A key that reaches its limit within the window from its first
//! failure is locked until that window ends.

use std::collections::HashMap;
use std::hash::Hash;

/// Keys tracked at most (each failure of a new key adds one); past this the expired ones
/// are dropped, and if that is not enough, all.
const TRACKED: usize = 10_000;

/// Failures per key within the window.
pub(crate) struct Tally<K> {
    max: u32,
    window: i64,
    map: HashMap<K, Failures>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: i64,
}

impl<K: Hash + Eq> Tally<K> {
    /// `max` failures within `window` seconds lock a key.
    pub(crate) fn new(max: u32, window: i64) -> Tally<K> {
        Tally {
            max,
            window,
            map: HashMap::new(),
        }
    }

    /// Seconds `key` stays locked at `now`, if it is.
    pub(crate) fn locked(&self, key: &K, now: i64) -> Option<i64> {
        let f = self.map.get(key)?;
        let left = f.first + self.window - now;
        (f.count >= self.max && left > 0).then_some(left)
    }

    /// Counts a failure; true when this one reached the limit.
    pub(crate) fn failed(&mut self, key: K, now: i64) -> bool {
        let window = self.window;
        if self.map.len() >= TRACKED {
            self.map.retain(|_, f| f.first + window > now);
            if self.map.len() >= TRACKED {
                self.map.clear();
            }
        }
        let f = self.map.entry(key).or_insert(Failures {
            count: 0,
            first: now,
        });
        if f.first + window <= now {
            *f = Failures {
                count: 0,
                first: now,
            };
        }
        f.count += 1;
        f.count == self.max
    }

    /// Forget `key`'s failures.
    pub(crate) fn remove(&mut self, key: &K) {
        self.map.remove(key);
    }

    /// Forget every failure.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn a_key_locks_at_its_limit_until_the_window_from_its_first_failure_ends() {
        let mut t = Tally::new(3, 600);
        assert!(!t.failed("a", 100));
        assert!(!t.failed("a", 200));
        assert_eq!(t.locked(&"a", 200), None);
        assert!(t.failed("a", 300), "the third locks");
        assert_eq!(t.locked(&"a", 300), Some(400));
        assert_eq!(t.locked(&"b", 300), None, "per key");
        assert_eq!(
            t.locked(&"a", 700),
            None,
            "the window ends 600 s after the first"
        );
        assert!(!t.failed("a", 700), "a new window counts afresh");
        t.remove(&"a");
        assert!(!t.failed("a", 701));
    }
}
