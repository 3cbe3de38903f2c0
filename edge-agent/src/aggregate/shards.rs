//! `N` aggregators behind their own locks (see [the module docs](super)).

use crate::selfmetrics::PipelineMetrics;
use rtdash_shared::aggregate::{Aggregator, SeriesCeilings};
use rtdash_shared::event::Event;
use rtdash_shared::messages::PartialEntry;
use rtdash_shared::metric::MetricSet;
use rtdash_shared::time::UnixMillis;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes assumed per pending series before the first flush measured it.
const INITIAL_BYTES_PER_SERIES: u64 = 256;

#[derive(Debug)]
struct Shard {
    aggregator: Aggregator,
    /// Measured at the last drain: heap bytes per pending series.
    bytes_per_series: u64,
    /// Measured at the last drain: bytes of the series-cap bookkeeping.
    admitted_bytes: u64,
    /// Drains of this shard so far: events added now go out with drain `drains + 1`.
    drains: u64,
}

impl Shard {
    fn estimate(&self) -> u64 {
        self.admitted_bytes + self.aggregator.pending_series() as u64 * self.bytes_per_series
    }
}

/// What one request's events did to the aggregation state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddTotals {
    /// Series deltas updated.
    pub series_updated: u64,
    /// Of those, folded into overflow series.
    pub overflowed: u64,
    /// The drain ([`Shards::drain_all`], counted from 1) that takes these events out: a
    /// durable acknowledgement waits for it (see [`super::DurableAcks`]).
    pub flush: u64,
}

/// `N` aggregators behind their own locks (see the module docs).
#[derive(Debug)]
pub struct Shards {
    shards: Vec<Mutex<Shard>>,
    /// The pipeline's own metrics (late events, dead letters), flushed with the shards.
    pipeline: PipelineMetrics,
    estimates: Vec<AtomicU64>,
    next: AtomicUsize,
    /// Completed [`Shards::drain_all`] calls.
    drains: AtomicU64,
}

impl Shards {
    /// `count` shards (at least one) aggregating with `metrics`.
    pub fn new(count: usize, metrics: Arc<MetricSet>) -> Self {
        let count = count.max(1);
        Self {
            shards: (0..count)
                .map(|_| {
                    Mutex::new(Shard {
                        aggregator: Aggregator::new(Arc::clone(&metrics)),
                        bytes_per_series: INITIAL_BYTES_PER_SERIES,
                        admitted_bytes: 0,
                        drains: 0,
                    })
                })
                .collect(),
            estimates: (0..count).map(|_| AtomicU64::new(0)).collect(),
            next: AtomicUsize::new(0),
            drains: AtomicU64::new(0),
            pipeline: PipelineMetrics::default(),
        }
    }

    /// The pipeline's own metrics (see [`crate::selfmetrics`]).
    pub fn pipeline(&self) -> &PipelineMetrics {
        &self.pipeline
    }

    fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
        shard.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds `events` into one shard.
    pub fn add_all<'e, 'a: 'e>(
        &self,
        events: impl IntoIterator<Item = &'e Event<'a>>,
    ) -> AddTotals {
        let count = self.shards.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
        let mut guard = None;
        for offset in 0..count {
            let index = (start + offset) % count;
            if let Ok(shard) = self.shards[index].try_lock() {
                guard = Some((index, shard));
                break;
            }
        }
        let (index, mut shard) = match guard {
            Some(found) => found,
            None => (start, Self::lock(&self.shards[start])),
        };
        let mut totals = AddTotals {
            flush: shard.drains + 1,
            ..AddTotals::default()
        };
        for event in events {
            let outcome = shard.aggregator.add(event);
            totals.series_updated += outcome.series_updated as u64;
            totals.overflowed += outcome.overflowed as u64;
        }
        self.estimates[index].store(shard.estimate(), Ordering::Relaxed);
        totals
    }

    /// Replaces the metric definitions of every shard.
    pub fn set_metrics(&self, metrics: Arc<MetricSet>) {
        for shard in &self.shards {
            Self::lock(shard)
                .aggregator
                .set_metrics(Arc::clone(&metrics));
        }
    }

    /// Replaces the tenants' series ceilings of every shard.
    pub fn set_series_ceilings(&self, ceilings: Arc<SeriesCeilings>) {
        for shard in &self.shards {
            Self::lock(shard)
                .aggregator
                .set_series_ceilings(Arc::clone(&ceilings));
        }
    }

    /// Takes every shard's deltas; forgets series-cap bookkeeping of windows that started
    /// before `forget_before`.
    pub fn drain_all(&self, forget_before: UnixMillis) -> Vec<PartialEntry> {
        let mut entries = Vec::new();
        for (index, shard) in self.shards.iter().enumerate() {
            let mut shard = Self::lock(shard);
            let pending = shard.aggregator.pending_series() as u64;
            let before = shard.aggregator.approx_bytes() as u64;
            entries.extend(shard.aggregator.drain());
            shard.aggregator.forget_windows_before(forget_before);
            let after = shard.aggregator.approx_bytes() as u64;
            if let Some(per_series) = before.saturating_sub(after).checked_div(pending) {
                shard.bytes_per_series = per_series.max(64);
            }
            shard.admitted_bytes = after;
            shard.drains += 1;
            self.estimates[index].store(shard.estimate(), Ordering::Relaxed);
        }
        entries.extend(self.pipeline.drain());
        self.drains.fetch_add(1, Ordering::AcqRel);
        entries
    }

    /// Completed drains: the number of the last [`Shards::drain_all`].
    pub fn drains(&self) -> u64 {
        self.drains.load(Ordering::Acquire)
    }

    /// Estimated heap bytes of the aggregation state (updated on every add and drain).
    pub fn approx_bytes(&self) -> u64 {
        self.estimates
            .iter()
            .map(|e| e.load(Ordering::Relaxed))
            .sum()
    }

    /// Events folded into overflow series so far, over all shards.
    pub fn overflowed_total(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| Self::lock(shard).aggregator.overflowed_total())
            .sum()
    }

    /// The widest window of the metrics in force, in milliseconds.
    pub fn widest_window_ms(&self) -> i64 {
        let shard = Self::lock(&self.shards[0]);
        shard
            .aggregator
            .metrics()
            .all()
            .iter()
            .map(|m| m.def.window_ms())
            .max()
            .unwrap_or(60_000)
    }
}
