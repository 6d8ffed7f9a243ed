//! A bound on the memory that messages being received hold at once, over every session of
//! every listener sharing it. The relay port takes DATA from anyone who names one valid
//! recipient, and a message is held in memory until the handler has committed it: without
//! a bound, many large messages at once (or a peer sending them slowly on purpose) could
//! take all the machine's memory. A message that would pass the bound is not kept; its
//! session reads it to the end and answers `452 4.3.1` (RFC 5321 §4.2.2, RFC 3463 X.3.1),
//! and the sender tries again later, as it does when a disk is full.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Budget unit: permits are KiB, so any size fits the semaphore's `u32` requests.
const UNIT: usize = 1024;

/// Memory that messages in DATA may hold at once.
#[derive(Debug)]
pub struct DataBudget {
    permits: Arc<Semaphore>,
    units: usize,
    refused: AtomicU64,
}

impl DataBudget {
    /// A budget of `bytes` (at least one KiB).
    pub fn new(bytes: usize) -> DataBudget {
        let units = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        DataBudget {
            permits: Arc::new(Semaphore::new(units)),
            units,
            refused: AtomicU64::new(0),
        }
    }

    /// The bound, in bytes.
    pub fn limit(&self) -> usize {
        self.units.saturating_mul(UNIT)
    }

    /// What messages hold now, in bytes.
    pub fn in_use(&self) -> usize {
        let free = self.permits.available_permits();
        self.units.saturating_sub(free).saturating_mul(UNIT)
    }

    /// Messages refused so far for want of room.
    pub fn refusals(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Counts a message refused for want of room.
    pub(crate) fn note_refusal(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// An empty claim for one message.
    pub(crate) fn claim(&self) -> Claim {
        Claim {
            permits: self.permits.clone(),
            held: None,
        }
    }
}

/// What one message holds of a [`DataBudget`]; given back when dropped.
#[derive(Debug)]
pub(crate) struct Claim {
    permits: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl Claim {
    /// Makes the claim cover `bytes` in all; false (holding what it held) when the budget
    /// has not that much left. Never waits: a session must not stall its peer on others.
    pub(crate) fn cover(&mut self, bytes: usize) -> bool {
        let need = bytes.div_ceil(UNIT);
        let units = self
            .held
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits);
        if need <= units {
            return true;
        }
        let Ok(more) = u32::try_from(need - units) else {
            return false;
        };
        let Ok(permit) = self.permits.clone().try_acquire_many_owned(more) else {
            return false;
        };
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_share_the_budget_and_give_it_back_when_dropped() {
        let budget = DataBudget::new(10 * 1024);
        assert_eq!(budget.limit(), 10 * 1024);
        let mut a = budget.claim();
        assert!(a.cover(6 * 1024));
        assert!(a.cover(5000), "a smaller size is already covered");
        assert_eq!(budget.in_use(), 6 * 1024);
        let mut b = budget.claim();
        assert!(!b.cover(5 * 1024), "6 + 5 KiB is over 10");
        assert!(b.cover(4 * 1024));
        assert!(!a.cover(7 * 1024));
        assert_eq!(
            budget.in_use(),
            10 * 1024,
            "a failed cover keeps what it held"
        );
        drop(a);
        assert!(b.cover(10 * 1024));
        drop(b);
        assert_eq!(budget.in_use(), 0);
        assert!(!budget.claim().cover(10 * 1024 + 1));
    }
}
