//! Which batches of one (agent, partition) were already applied.
//!
//! Agents pipeline their publishes and retry with the same sequence number, so batches may reach
//! the stream out of order (seq 5 after seq 6), and a retried batch may be stored twice when it
//! falls outside JetStream's duplicate window (or is republished under another message id).
//! A [`SeqTracker`] remembers every applied sequence number at or above a `floor`; everything
//! below the floor counts as handled. A batch's `acked_below` raises the floor: every lower
//! sequence number was stored in the stream before that batch, so the consumer, reading the
//! stream in order, has already seen it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Applied sequence numbers of one agent in one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqTracker {
    /// Every sequence number below this was handled.
    floor: u64,
    /// Applied sequence numbers at or above `floor` (never contains `floor` itself: it is
    /// folded into the floor).
    applied_above: BTreeSet<u64>,
}

impl SeqTracker {
    /// A tracker restored from its parts.
    pub fn from_parts(floor: u64, applied_above: impl IntoIterator<Item = u64>) -> Self {
        let mut tracker = Self {
            floor,
            applied_above: applied_above.into_iter().filter(|s| *s >= floor).collect(),
        };
        tracker.compact();
        tracker
    }

    /// The floor.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// The applied sequence numbers above the floor.
    pub fn applied_above(&self) -> impl Iterator<Item = u64> + '_ {
        self.applied_above.iter().copied()
    }

    /// Whether `seq` was already applied.
    pub fn is_applied(&self, seq: u64) -> bool {
        seq < self.floor || self.applied_above.contains(&seq)
    }

    /// Records `seq` as applied.
    pub fn mark_applied(&mut self, seq: u64) {
        if seq >= self.floor {
            self.applied_above.insert(seq);
            self.compact();
        }
    }

    /// Every sequence number below `below` is handled (from a batch's `acked_below`).
    pub fn raise_floor(&mut self, below: u64) {
        if below > self.floor {
            self.floor = below;
            self.applied_above = self.applied_above.split_off(&below);
            self.compact();
        }
    }

    fn compact(&mut self) {
        while self.applied_above.first() == Some(&self.floor) {
            self.applied_above.pop_first();
            self.floor += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_sequences_fold_into_the_floor() {
        let mut t = SeqTracker::default();
        for seq in 0..100 {
            assert!(!t.is_applied(seq));
            t.mark_applied(seq);
            assert!(t.is_applied(seq));
        }
        assert_eq!(t.floor(), 100);
        assert_eq!(t.applied_above().count(), 0);
    }

    #[test]
    fn out_of_order_and_duplicates() {
        let mut t = SeqTracker::default();
        t.raise_floor(3); // a batch with acked_below 3 arrives first
        t.mark_applied(6);
        assert!(t.is_applied(6));
        assert!(!t.is_applied(5));
        assert!(!t.is_applied(3));
        assert!(t.is_applied(2));
        t.mark_applied(5);
        t.mark_applied(3);
        assert_eq!(t.floor(), 4);
        assert!(!t.is_applied(4));
        t.mark_applied(4);
        assert_eq!(t.floor(), 7);
        assert_eq!(t.applied_above().count(), 0);
        // A later batch's acked_below prunes what it covers.
        t.mark_applied(9);
        t.raise_floor(9);
        assert_eq!(t.floor(), 10);
        assert!(t.is_applied(8));
    }

    #[test]
    fn round_trips_through_parts() {
        let mut t = SeqTracker::default();
        t.raise_floor(10);
        t.mark_applied(12);
        t.mark_applied(15);
        let back = SeqTracker::from_parts(t.floor(), t.applied_above());
        assert_eq!(back, t);
    }
}
