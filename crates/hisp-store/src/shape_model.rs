//! The shape of the queue by destination, as Postfix's `qshape` shows it: how much mail
//! waits for each peer HISP and for how long, and how much waits for that peer's MDNs;
//! and how an operator command picks the mail it acts on.

use crate::{QueueId, UnixTime};

/// What is in hand for one destination domain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DestinationShape {
    /// The recipients' domain (lower case).
    pub domain: String,
    /// Recipients waiting for delivery (`queued`), in delivery now included.
    pub waiting: u64,
    /// Those recipients by the age of their message: `by_age[i]` counts ages below
    /// `bounds[i]` (and at or above `bounds[i - 1]`); the last counts the rest.
    pub by_age: Vec<u64>,
    /// Of the waiting, those tried at least once (deferred).
    pub tried: u64,
    /// Of the waiting, those in delivery now (leased).
    pub in_delivery: u64,
    /// Recipients held by the operator (`hisp queue hold`), not counted as waiting.
    pub held: u64,
    /// When the oldest waiting message was queued.
    pub oldest: Option<UnixTime>,
    /// The last error recorded for a waiting recipient (of the one updated last).
    pub last_error: Option<String>,
    /// Recipients relayed and waiting for the peer's `processed` (or `dispatched`) MDN.
    pub awaiting_notification: u64,
    /// Of those, the ones past their deadline (the tracker fails them shortly).
    pub overdue: u64,
}

impl DestinationShape {
    /// An empty row for `domain` with `buckets` age buckets.
    pub fn new(domain: &str, buckets: usize) -> DestinationShape {
        DestinationShape {
            domain: domain.to_string(),
            by_age: vec![0; buckets],
            ..DestinationShape::default()
        }
    }

    /// Count one waiting recipient whose message is `age` seconds old, in `bounds`.
    pub fn add_waiting(&mut self, age: u64, bounds: &[u64]) {
        let bucket = bounds.iter().take_while(|&&b| age >= b).count();
        if let Some(n) = self.by_age.get_mut(bucket) {
            *n += 1;
        }
        self.waiting += 1;
    }
}

/// Which queued mail an operator command (`hisp queue hold`, `release`) takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueSelection {
    /// The recipients of one message.
    Message(QueueId),
    /// Every recipient in one destination domain.
    Domain(String),
}
