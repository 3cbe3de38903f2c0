//! Workloads of partial entries for the core aggregator's tests, published through
//! [`crate::fake_agent::FakeAgent`]s: a seeded random one whose exact aggregates the test
//! keeps ([`Workload`]), and a large deterministic backlog for throughput measurements
//! ([`Backlog`]).

use std::collections::BTreeMap;

use rtdash_shared::messages::PartialEntry;
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::{unique_hash, Sketch, SketchSpec};
use rtdash_shared::time::{now_millis, UnixMillis};

use crate::model::Expected;
use crate::rng::TestRng;

/// Tenant of every test series.
pub const TENANT: &str = "t1";
/// Metric of every test series.
pub const METRIC: &str = "latency";
/// Window size of the test metric.
pub const WINDOW_MS: i64 = 1_000;

/// A window start `minutes_ago` minutes ago (aligned to [`WINDOW_MS`]), as the base of a
/// test's event times.
pub fn base(minutes_ago: i64) -> UnixMillis {
    let t = now_millis() - minutes_ago * 60_000;
    t - t.rem_euclid(WINDOW_MS)
}

/// The test workload: `series` series of one metric, values that sum exactly in f64 (multiples
/// of 0.25 below 2^20), a unique key per event from a small user population.
#[derive(Clone, Debug)]
pub struct Workload {
    pub series: Vec<SeriesKey>,
    pub partitions: u32,
    pub rng: TestRng,
    /// What the aggregator must make of every entry made so far.
    pub expected: Expected,
}

impl Workload {
    /// `series` series (the first the total, the others by region and host) over `partitions`,
    /// random numbers from `seed` (see [`TestRng::seeded`]).
    pub fn new(series: usize, partitions: u32, seed: u64) -> Self {
        let series = (0..series)
            .map(|i| {
                if i == 0 {
                    SeriesKey::new(TENANT, METRIC, [])
                } else {
                    SeriesKey::new(
                        TENANT,
                        METRIC,
                        [
                            ("region".to_owned(), Some(format!("r{}", i % 5))),
                            ("host".to_owned(), Some(format!("h{i}"))),
                        ],
                    )
                }
            })
            .collect();
        Self {
            series,
            partitions,
            rng: TestRng::seeded("workload", seed),
            expected: Expected::new(),
        }
    }

    /// Entries for window `start`, one flush of one agent, grouped by partition: each series
    /// is touched with probability 1/2, with 1 to 4 events.
    pub fn flush(&mut self, start: UnixMillis) -> BTreeMap<u32, Vec<PartialEntry>> {
        let mut out: BTreeMap<u32, Vec<PartialEntry>> = BTreeMap::new();
        for index in 0..self.series.len() {
            if self.rng.below(2) == 0 {
                continue;
            }
            let events = 1 + self.rng.below(4) as usize;
            let entry = self.entry(index, start, events, false);
            out.entry(entry.series.partition(self.partitions))
                .or_default()
                .push(entry);
        }
        out
    }

    /// One entry of `events` events for series `index` in window `start` (recorded in the
    /// expectation; `late` counts them as late too).
    pub fn entry(
        &mut self,
        index: usize,
        start: UnixMillis,
        events: usize,
        late: bool,
    ) -> PartialEntry {
        let series = self.series[index].clone();
        let mut sketch = Sketch::new(SketchSpec::ALL);
        let acc = self
            .expected
            .entry((series.dims_json(), start))
            .or_default();
        for _ in 0..events {
            let value = self.rng.below(4_000_000) as f64 * 0.25;
            let user = format!("u{}", self.rng.below(500));
            sketch.record(Some(value), Some(unique_hash(user.as_bytes())));
            acc.add(value, Some(user));
            if late {
                acc.late += 1;
            }
        }
        PartialEntry {
            series,
            window_start: start,
            window_ms: WINDOW_MS,
            sketch,
        }
    }
}

/// A throughput backlog: [`Backlog::SERIES`] series over `partitions` (by region and host),
/// batches of [`Backlog::ENTRIES_PER_BATCH`] deltas of 5 events each, round-robin over the
/// partitions, one-minute windows, a new window every 1,000 batches (as live: the deltas of a
/// flush go to the current minute). Deterministic, so runs compare.
#[derive(Clone, Debug)]
pub struct Backlog {
    by_partition: Vec<Vec<SeriesKey>>,
    /// The first window: a minute boundary an hour ago.
    base: UnixMillis,
    cursor: usize,
}

impl Backlog {
    /// Distinct series.
    pub const SERIES: usize = 20_000;
    /// Series deltas per batch.
    pub const ENTRIES_PER_BATCH: usize = 500;

    pub fn new(partitions: u32) -> Self {
        let mut by_partition: Vec<Vec<SeriesKey>> = vec![Vec::new(); partitions as usize];
        for i in 0..Self::SERIES {
            let key = SeriesKey::new(
                TENANT,
                METRIC,
                [
                    ("region".to_owned(), Some(format!("r{}", i % 16))),
                    ("host".to_owned(), Some(format!("host-{i}"))),
                ],
            );
            by_partition[key.partition(partitions) as usize].push(key);
        }
        Self {
            by_partition,
            base: base(60) - base(60).rem_euclid(60_000),
            cursor: 0,
        }
    }

    /// Batch number `b`: its partition, window (the batch's watermark too) and entries.
    pub fn batch(&mut self, b: usize) -> (u32, UnixMillis, Vec<PartialEntry>) {
        let partition = (b % self.by_partition.len()) as u32;
        let window = self.base + (b / 1_000) as i64 * 60_000;
        let series = &self.by_partition[partition as usize];
        let entries = (0..Self::ENTRIES_PER_BATCH)
            .map(|_| {
                self.cursor = self.cursor.wrapping_add(7919);
                let key = series[self.cursor % series.len()].clone();
                let mut sketch = Sketch::new(SketchSpec::VALUES);
                for e in 0..5u64 {
                    let value = ((self.cursor as u64 * 31 + e * 17) % 1000) as f64;
                    sketch.record(Some(value), Some(unique_hash(&e.to_le_bytes())));
                }
                PartialEntry {
                    series: key,
                    window_start: window,
                    window_ms: 60_000,
                    sketch,
                }
            })
            .collect();
        (partition, window, entries)
    }
}
