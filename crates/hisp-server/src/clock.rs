//! Time for the daemon as a value: the queue, the retry schedule and the notification
//! timeouts read "now" from a [`Clock`], so tests drive them with `tokio::time::pause()` and
//! `advance()` (which move tokio's clock, never `SystemTime`).

use std::sync::Arc;

/// A source of Unix time.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// Unix time that advances with tokio's clock: starts at `start` and moves as
/// `tokio::time::Instant` does, so a paused runtime can fast-forward hours in a test.
#[derive(Debug, Clone)]
pub struct TokioClock {
    start: i64,
    base: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `start` now.
    pub fn new(start: i64) -> TokioClock {
        TokioClock {
            start,
            base: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> i64 {
        self.start + self.base.elapsed().as_secs() as i64
    }
}

/// A clock that moves only when told to (tests of retries, expiry and timeouts).
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: i64) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicI64::new(start))
    }

    /// Move forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }

    /// Set the time.
    pub fn set(&self, t: i64) {
        self.0.store(t, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;
