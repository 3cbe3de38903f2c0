//! The aggregation code shared by every path that turns events into window sketches: the edge
//! agent's live path, recomputation from the raw-event archive, and the in-process benchmark.
//! One implementation, so a backfill computes exactly what the live path computed.
//!
//! [`Aggregator::add`] folds an event into the delta sketch of every (metric, dimension set)
//! series it feeds; [`Aggregator::drain`] takes the deltas accumulated since the previous
//! drain. Bounded memory: per tenant, metric, dimension set and window at most
//! `max_series_per_window` distinct series are admitted, or fewer when the tenant's series
//! ceiling ([`Aggregator::set_series_ceilings`]) is lower; events of further series fold into
//! one overflow series (every dimension value `__overflow__`) and are counted.
//!
//! This file is the API. Behind it: `state.rs` (what is kept between drains and why it is laid
//! out so), `update.rs` (the per-event path and its batched log of sketch records), `key.rs`
//! (the key encodings), `drain.rs` (taking the deltas out, and memory), `tests.rs`.

mod drain;
mod key;
mod state;
#[cfg(test)]
mod tests;
mod update;

use crate::event::Event;
use crate::messages::PartialEntry;
use crate::metric::MetricSet;
use crate::time::UnixMillis;
use state::Work;
pub use state::{AddOutcome, SeriesCeilings};
use std::sync::Arc;

/// Folds events into per-window delta sketches.
#[derive(Debug)]
pub struct Aggregator {
    metrics: Arc<MetricSet>,
    /// Everything `add` mutates, apart from `metrics` so that `add` can borrow both at once.
    work: Work,
    overflowed_total: u64,
}

impl Aggregator {
    /// An aggregator over `metrics`.
    pub fn new(metrics: Arc<MetricSet>) -> Self {
        Self {
            metrics,
            work: Work::new(),
            overflowed_total: 0,
        }
    }

    /// Replaces the metric definitions (applies to events added from now on).
    pub fn set_metrics(&mut self, metrics: Arc<MetricSet>) {
        self.metrics = metrics;
    }

    /// Replaces the tenants' series ceilings (applies to series admitted from now on): a
    /// tenant's metrics admit at most the lower of their `max_series_per_window` and its
    /// ceiling. Series already admitted in a window stay admitted.
    pub fn set_series_ceilings(&mut self, ceilings: Arc<SeriesCeilings>) {
        self.work.ceilings = ceilings;
    }

    /// The definitions in force.
    pub fn metrics(&self) -> &Arc<MetricSet> {
        &self.metrics
    }

    /// Folds one validated event into every series it feeds.
    pub fn add(&mut self, event: &Event<'_>) -> AddOutcome {
        let mut outcome = AddOutcome::default();
        // Borrow the two fields apart instead of cloning the `Arc` per event: that clone is an
        // atomic increment and decrement of a count shared by every thread's aggregator over
        // the same set, a cache line that bounces between cores on every event.
        let Self { metrics, work, .. } = self;
        metrics.for_each_match_value(event, |metric, value| {
            work.add_to_metric(metrics, metric, event, value, &mut outcome)
        });
        self.overflowed_total += outcome.overflowed as u64;
        outcome
    }

    /// Takes every delta accumulated since the previous drain.
    pub fn drain(&mut self) -> Vec<PartialEntry> {
        self.work.drain()
    }

    /// Forgets series-cap bookkeeping of windows that started before `before`.
    pub fn forget_windows_before(&mut self, before: UnixMillis) {
        self.work.forget_windows_before(before);
    }

    /// Series with a pending delta.
    pub fn pending_series(&self) -> usize {
        self.work.sketches.len()
    }

    /// Events folded into overflow series so far.
    pub fn overflowed_total(&self) -> u64 {
        self.overflowed_total
    }

    /// Approximate heap bytes held (deltas and series-cap bookkeeping): hash-table slots by
    /// capacity, keys, sketch heap, and a per-allocation overhead for the allocator. O(series).
    pub fn approx_bytes(&self) -> usize {
        self.work.approx_bytes()
    }
}
