//! Discovery results kept for reuse: a recipient written to a hundred times an hour is
//! looked up once. A result with usable certificates lives until the earliest of its DNS
//! TTL, an hour, and the expiry of any certificate in it; "none usable" lives five
//! minutes; a failed lookup is not kept (DNS itself remembers failures briefly). Results
//! are keyed by address and anchor set, so a changed trust configuration starts afresh.

use crate::select::Policy;
use crate::{Discovery, DiscoveryError, Found};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest a result with usable certificates is kept.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// How long "none usable" is kept.
const NEGATIVE_TTL: Duration = Duration::from_secs(300);

type Key = (String, [u8; 32]);

/// Discovery with a bounded result cache.
pub struct CachedDiscovery {
    inner: Discovery,
    entries: Mutex<HashMap<Key, (Arc<Found>, Instant)>>,
    capacity: usize,
    /// Lookups answered from the cache.
    pub hits: AtomicU64,
    /// Lookups that went to DNS/LDAP.
    pub misses: AtomicU64,
}

impl CachedDiscovery {
    /// Keep at most `capacity` results.
    pub fn new(inner: Discovery, capacity: usize) -> CachedDiscovery {
        CachedDiscovery {
            inner,
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// As [`Discovery::discover`], from the cache when a fresh result is there.
    pub async fn discover(
        &self,
        address: &str,
        policy: &Policy<'_>,
    ) -> Result<Arc<Found>, DiscoveryError> {
        let key = (address.trim().to_ascii_lowercase(), policy.anchors.id());
        let now = Instant::now();
        if let Some(hit) = self.get(&key, now) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let found = Arc::new(self.inner.discover(&key.0, policy).await?);
        let until = now + ttl(&found, policy.at);
        self.put(key, found.clone(), until);
        Ok(found)
    }

    fn get(&self, key: &Key, now: Instant) -> Option<Arc<Found>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(_, until)| now < *until)
            .map(|(f, _)| f.clone())
    }

    fn put(&self, key: Key, found: Arc<Found>, until: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            let now = Instant::now();
            entries.retain(|_, (_, u)| now < *u);
            if entries.len() >= self.capacity {
                // Still full of live entries: drop an arbitrary half rather than grow.
                let drop: Vec<Key> = entries
                    .keys()
                    .take(entries.len() / 2 + 1)
                    .cloned()
                    .collect();
                for k in drop {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key, (found, until));
    }
}

fn ttl(found: &Found, at: i64) -> Duration {
    if found.usable.is_empty() {
        return NEGATIVE_TTL;
    }
    let mut ttl = MAX_TTL;
    if let Some(e) = found.expires {
        ttl = ttl.min(e.saturating_duration_since(Instant::now()));
    }
    for u in &found.usable {
        if let Some(end) = u.cert.not_after {
            ttl = ttl.min(Duration::from_secs(u64::try_from(end - at).unwrap_or(0)));
        }
    }
    ttl
}
