//! A topic's memory: the latest version of every series-window within the retention (at
//! least `memory_horizon_secs`, more for coarse widget windows), seeded from snapshot queries
//! and updated live, with its accounting: an entry count bounded by `max_memory_entries`
//! (the oldest windows go first) and the start from which memory is complete. Pure: no I/O,
//! no locking (the topic holds it under its lock).

use crate::query::{self, DerivedWindow, QueryPlan, WindowRow};
use rtdash_shared::messages::WindowUpdate;
use rtdash_shared::time::UnixMillis;
use std::collections::{BTreeMap, HashMap};

/// A series-window held in memory.
#[derive(Debug, Clone)]
pub(super) struct MemEntry {
    /// The latest version.
    pub(super) row: WindowRow,
    /// Its dimension set (`dim_set` column).
    pub(super) dim_set: String,
    /// Its dimensions, parsed from `row.series` once.
    dims: BTreeMap<String, Option<String>>,
}

impl MemEntry {
    /// A stored row of `dim_set`.
    pub(super) fn from_row(row: WindowRow, dim_set: String) -> Self {
        let dims = serde_json::from_str(&row.series).unwrap_or_default();
        Self { row, dim_set, dims }
    }

    /// A live update.
    pub(super) fn from_update(update: WindowUpdate) -> Self {
        let dim_set = update
            .dimensions
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(",");
        Self {
            row: WindowRow::from_update(&update),
            dims: update.dimensions,
            dim_set,
        }
    }

    /// Whether this series-window feeds `plan`.
    pub(super) fn feeds(&self, plan: &QueryPlan) -> bool {
        if self.dim_set != plan.dim_set {
            return false;
        }
        match &plan.exact_series {
            Some(series) => *series == self.row.series,
            None => plan.filter.iter().all(|(name, wanted)| {
                self.dims.get(name).and_then(Option::as_deref) == Some(wanted.as_str())
            }),
        }
    }
}

/// Windows of one dimension set and size that memory holds as not final although they are
/// closed everywhere (see [`Memory::unfinished_before`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnfinishedRange {
    /// Dimension set (`dim_set` column).
    pub dim_set: String,
    /// Window size, in milliseconds.
    pub window_ms: i64,
    /// Start of the first such window.
    pub from: UnixMillis,
    /// End of the last such window.
    pub to: UnixMillis,
    /// Series-windows in the range that are not final.
    pub windows: usize,
}

/// The series-windows of one topic.
#[derive(Debug)]
pub(super) struct Memory {
    /// Window start -> series -> latest version.
    windows: BTreeMap<UnixMillis, HashMap<String, MemEntry>>,
    /// Entries in `windows`.
    len: usize,
    /// Windows starting before this may be incomplete in memory.
    complete_from: UnixMillis,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            windows: BTreeMap::new(),
            len: 0,
            complete_from: i64::MIN,
        }
    }
}

impl Memory {
    /// Windows starting before this may be incomplete.
    pub(super) fn complete_from(&self) -> UnixMillis {
        self.complete_from
    }

    /// Series-windows held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Starts of the windows held, oldest first.
    #[cfg(test)]
    pub(super) fn window_starts(&self) -> impl Iterator<Item = UnixMillis> + '_ {
        self.windows.keys().copied()
    }

    /// Forgets every series-window (updates may have been missed); what was complete stays
    /// complete once seeded again.
    pub(super) fn clear(&mut self) {
        self.windows.clear();
        self.len = 0;
    }

    /// Puts `entry` in unless memory holds a strictly newer version; whether it changed
    /// what memory holds. Windows before `complete_from` are not taken.
    pub(super) fn insert_if_newer(&mut self, entry: MemEntry) -> bool {
        if entry.row.window_start < self.complete_from {
            return false;
        }
        let windows = self.windows.entry(entry.row.window_start).or_default();
        match windows.get_mut(&entry.row.series) {
            // Keep the stored version only when it is strictly newer; on a tie the later
            // arrival wins (NATS preserves the publisher's order).
            Some(existing) if !entry.row.supersedes(&existing.row) => false,
            Some(existing) => {
                let changed = existing.row != entry.row;
                *existing = entry;
                changed
            }
            None => {
                windows.insert(entry.row.series.clone(), entry);
                self.len += 1;
                true
            }
        }
    }

    /// Drops windows starting before `retention_floor`, then the oldest windows while more
    /// than `max_entries` series-windows are held; memory is complete from there on.
    pub(super) fn enforce(&mut self, retention_floor: UnixMillis, max_entries: usize) {
        self.prune_before(retention_floor);
        while self.len > max_entries {
            let Some((&oldest, _)) = self.windows.iter().next() else {
                break;
            };
            self.prune_before(oldest + 1);
        }
    }

    fn prune_before(&mut self, floor: UnixMillis) {
        if floor <= self.complete_from {
            return;
        }
        let keep = self.windows.split_off(&floor);
        let removed: usize = self.windows.values().map(HashMap::len).sum();
        self.windows = keep;
        self.len -= removed;
        self.complete_from = floor;
    }

    /// The served windows of `plan` (by bucket start) that memory holds rows for, from
    /// `from` on.
    pub(super) fn buckets_from(&self, plan: &QueryPlan, from: UnixMillis) -> Vec<UnixMillis> {
        let mut buckets: Vec<UnixMillis> = self
            .windows
            .range(from..)
            .map(|(start, _)| plan.bucket_of(*start))
            .filter(|bucket| *bucket >= from)
            .collect();
        buckets.dedup();
        buckets
    }

    /// `plan`'s value for the served window starting at `bucket`, from the series-windows
    /// that feed it; `None` when there are none.
    pub(super) fn derive(
        &self,
        plan: &QueryPlan,
        bucket: UnixMillis,
        now: UnixMillis,
    ) -> Option<DerivedWindow> {
        let rows = self
            .windows
            .range(bucket..bucket + plan.window_ms)
            .flat_map(|(_, series)| series.values())
            .filter(|entry| entry.feeds(plan))
            .map(|entry| &entry.row);
        query::derive_bucket(plan, bucket, rows, now)
    }

    /// Series-windows that are not final although their window ended at or before
    /// `closed_through` (closed in every partition): their final version was published but
    /// never arrived here (core NATS is at most once; a topic subscribed just after the
    /// publish and queried QuestDB before the row was applied). One range per dimension set
    /// and window size, covering every such window.
    pub(super) fn unfinished_before(&self, closed_through: UnixMillis) -> Vec<UnfinishedRange> {
        let mut ranges: BTreeMap<(String, i64), UnfinishedRange> = BTreeMap::new();
        for entry in self
            .windows
            .range(..closed_through)
            .flat_map(|(_, series)| series.values())
            .filter(|entry| !entry.row.is_final && entry.row.window_end <= closed_through)
        {
            let window_ms = entry.row.window_end - entry.row.window_start;
            let range = ranges
                .entry((entry.dim_set.clone(), window_ms))
                .or_insert_with(|| UnfinishedRange {
                    dim_set: entry.dim_set.clone(),
                    window_ms,
                    from: entry.row.window_start,
                    to: entry.row.window_end,
                    windows: 0,
                });
            range.from = range.from.min(entry.row.window_start);
            range.to = range.to.max(entry.row.window_end);
            range.windows += 1;
        }
        ranges.into_values().collect()
    }
}
