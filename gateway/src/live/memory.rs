//! A topic's memory: the latest version of every series-window within the retention, one
//! [`Memory`] per window length (the metric's base windows and each rollup tier's arrive on
//! the same subject), seeded from snapshot queries and updated live, with its accounting:
//! entries and state bytes (the sketches merging plans need) bounded per topic, the oldest
//! windows going first, and the point before which windows were dropped. Pure: no I/O, no
//! locking (the topic holds it under its lock).

use super::update::LiveWindow;
use crate::metrics as names;
use crate::query::group::{group_key, GroupKey};
use crate::query::{self, DerivedWindow, QueryPlan, WindowRow};
use rtdash_runtime::error_chain::ErrorChain;
use rtdash_shared::sketch::Sketch;
use rtdash_shared::time::UnixMillis;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A series-window held in memory.
#[derive(Debug, Clone)]
pub(super) struct MemEntry {
    /// The latest version.
    pub(super) row: WindowRow,
    /// Its dimension set (`dim_set` column).
    pub(super) dim_set: String,
}

impl MemEntry {
    /// A stored row of `dim_set`.
    pub(super) fn from_row(row: WindowRow, dim_set: String) -> Self {
        Self { row, dim_set }
    }

    /// A live version; its state is decoded when `keep_state` says a registered plan
    /// merges it (else dropped: decoding costs, and memory is bounded).
    pub(super) fn from_live(update: LiveWindow, keep_state: impl Fn(i64, &str) -> bool) -> Self {
        let dim_set = update
            .dimensions
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(",");
        let window_ms = update.window_end - update.window_start;
        let state = match &update.state {
            Some(text) if keep_state(window_ms, &dim_set) => {
                match rtdash_shared::sketch::Sketch::from_state(text) {
                    Ok(sketch) => Some(Arc::new(sketch)),
                    Err(err) => {
                        metrics::counter!(names::STATE_DECODE_ERRORS).increment(1);
                        tracing::debug!(error = %ErrorChain(&err), "live state ignored");
                        None
                    }
                }
            }
            _ => None,
        };
        let series = serde_json::to_string(&update.dimensions).unwrap_or_else(|_| "{}".into());
        Self {
            row: WindowRow {
                window_start: update.window_start,
                window_end: update.window_end,
                series,
                dims: Arc::new(update.dimensions),
                stats: update.stats,
                state,
                revision: update.revision,
                is_final: update.is_final,
                late_count: update.late_count,
                updated_at: update.updated_at,
            },
            dim_set,
        }
    }

    /// Window length.
    pub(super) fn window_ms(&self) -> i64 {
        self.row.window_ms()
    }

    /// Whether this series-window feeds `plan` (its source's window length, dimension set,
    /// series or filter).
    pub(super) fn feeds(&self, plan: &QueryPlan) -> bool {
        if self.dim_set != plan.dim_set || self.window_ms() != plan.source_window_ms {
            return false;
        }
        match &plan.exact_series {
            Some(series) => *series == self.row.series,
            None => plan.filter.iter().all(|(name, wanted)| {
                self.row.dims.get(name).and_then(Option::as_deref) == Some(wanted.as_str())
            }),
        }
    }

    fn state_bytes(&self) -> usize {
        state_bytes(self.row.state.as_deref())
    }
}

fn state_bytes(state: Option<&Sketch>) -> usize {
    state.map_or(0, |s| std::mem::size_of::<Sketch>() + s.heap_bytes())
}

/// Windows of one dimension set and size that memory holds as not final although they are
/// closed everywhere (see [`Memories::unfinished_before`]).
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

/// The series-windows of one window length.
#[derive(Debug)]
pub(super) struct Memory {
    /// Window start -> series -> latest version.
    windows: BTreeMap<UnixMillis, HashMap<String, MemEntry>>,
    len: usize,
    state_bytes: usize,
    /// Windows starting before this were dropped (or never taken): inserts there are refused
    /// until a plan needing them lowers it again.
    pruned_before: UnixMillis,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            windows: BTreeMap::new(),
            len: 0,
            state_bytes: 0,
            pruned_before: i64::MIN,
        }
    }
}

impl Memory {
    /// Puts `entry` in unless memory holds a strictly newer version; whether it changed
    /// what memory holds. A stored state for the version memory holds without one is taken
    /// (a live version arrives without it when no plan merged it yet).
    fn insert_if_newer(&mut self, entry: MemEntry) -> bool {
        if entry.row.window_start < self.pruned_before {
            return false;
        }
        let windows = self.windows.entry(entry.row.window_start).or_default();
        match windows.get_mut(&entry.row.series) {
            Some(existing) if !entry.row.supersedes(&existing.row) => {
                let same = existing.row.revision == entry.row.revision
                    && existing.row.is_final == entry.row.is_final
                    && existing.row.updated_at == entry.row.updated_at;
                if same && existing.row.state.is_none() && entry.row.state.is_some() {
                    self.state_bytes += entry.state_bytes();
                    existing.row.state = entry.row.state;
                }
                false
            }
            // On a tie the later arrival wins (NATS preserves the publisher's order).
            Some(existing) => {
                let changed = existing.row != entry.row;
                self.state_bytes = self.state_bytes + entry.state_bytes() - existing.state_bytes();
                *existing = entry;
                changed
            }
            None => {
                self.state_bytes += entry.state_bytes();
                windows.insert(entry.row.series.clone(), entry);
                self.len += 1;
                true
            }
        }
    }

    /// Drops windows starting before `floor`; whether any point was raised.
    fn prune_before(&mut self, floor: UnixMillis) -> bool {
        if floor <= self.pruned_before {
            return false;
        }
        let keep = self.windows.split_off(&floor);
        for entry in self.windows.values().flat_map(HashMap::values) {
            self.len -= 1;
            self.state_bytes -= entry.state_bytes();
        }
        self.windows = keep;
        self.pruned_before = floor;
        true
    }

    fn oldest(&self) -> Option<UnixMillis> {
        self.windows.keys().next().copied()
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

    /// The entries feeding `plan` in the served window starting at `bucket`.
    pub(super) fn entries<'a>(
        &'a self,
        plan: &'a QueryPlan,
        bucket: UnixMillis,
    ) -> impl Iterator<Item = &'a MemEntry> + 'a {
        self.windows
            .range(bucket..bucket + plan.window_ms)
            .flat_map(|(_, series)| series.values())
            .filter(move |entry| entry.feeds(plan))
    }

    /// `plan`'s value for the served window starting at `bucket`, from the series-windows
    /// that feed it and pass `keep` (a group); `None` when there are none.
    pub(super) fn derive_where(
        &self,
        plan: &QueryPlan,
        bucket: UnixMillis,
        now: UnixMillis,
        keep: impl Fn(&MemEntry) -> bool,
    ) -> Option<DerivedWindow> {
        let rows = self
            .entries(plan, bucket)
            .filter(|entry| keep(entry))
            .map(|entry| &entry.row);
        query::derive_bucket(plan, bucket, rows, now)
    }

    /// The groups present in `plan`'s served window starting at `bucket`.
    pub(super) fn groups_in(&self, plan: &QueryPlan, bucket: UnixMillis) -> Vec<GroupKey> {
        let mut keys: Vec<GroupKey> = self
            .entries(plan, bucket)
            .map(|entry| group_key(plan, &entry.row))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// What [`Memories::enforce`] dropped: window length -> new drop point.
pub(super) type Pruned = Vec<(i64, UnixMillis)>;

/// A topic's memories, one per window length.
#[derive(Debug, Default)]
pub(super) struct Memories {
    by_window: BTreeMap<i64, Memory>,
}

impl Memories {
    /// The memory of windows of `window_ms`, if any arrived.
    pub(super) fn get(&self, window_ms: i64) -> Option<&Memory> {
        self.by_window.get(&window_ms)
    }

    /// Series-windows held.
    pub(super) fn len(&self) -> usize {
        self.by_window.values().map(|m| m.len).sum()
    }

    /// Bytes of states held.
    pub(super) fn state_bytes(&self) -> usize {
        self.by_window.values().map(|m| m.state_bytes).sum()
    }

    /// Starts of the windows held, oldest first (every length).
    #[cfg(test)]
    pub(super) fn window_starts(&self) -> Vec<UnixMillis> {
        let mut starts: Vec<UnixMillis> = self
            .by_window
            .values()
            .flat_map(|m| m.windows.keys().copied())
            .collect();
        starts.sort_unstable();
        starts
    }

    /// Forgets every series-window (updates may have been missed).
    pub(super) fn clear(&mut self) {
        self.by_window.clear();
    }

    /// Lets windows of `window_ms` from `floor` in again (a plan needs them).
    pub(super) fn allow_from(&mut self, window_ms: i64, floor: UnixMillis) {
        let memory = self.by_window.entry(window_ms).or_default();
        memory.pruned_before = memory.pruned_before.min(floor);
    }

    /// Where windows of `window_ms` were dropped before (`i64::MIN`: nothing dropped).
    pub(super) fn pruned_before(&self, window_ms: i64) -> UnixMillis {
        self.by_window
            .get(&window_ms)
            .map_or(i64::MIN, |m| m.pruned_before)
    }

    /// [`Memory::insert_if_newer`] into the memory of the entry's window length; entries
    /// starting before `floor` (the retention for that length) are refused.
    pub(super) fn insert_if_newer(&mut self, entry: MemEntry, floor: UnixMillis) -> bool {
        if entry.row.window_start < floor {
            return false;
        }
        self.by_window
            .entry(entry.window_ms())
            .or_default()
            .insert_if_newer(entry)
    }

    /// Drops windows before each length's retention floor, then the oldest windows of the
    /// fullest memory while more than `max_entries` series-windows or `max_state_bytes`
    /// bytes of states are held; returns where each changed memory now starts, and how many
    /// windows went for the state budget.
    pub(super) fn enforce(
        &mut self,
        floor: impl Fn(i64) -> UnixMillis,
        max_entries: usize,
        max_state_bytes: usize,
    ) -> (Pruned, u64) {
        let mut pruned: BTreeMap<i64, UnixMillis> = BTreeMap::new();
        for (window_ms, memory) in &mut self.by_window {
            if memory.prune_before(floor(*window_ms)) {
                pruned.insert(*window_ms, memory.pruned_before);
            }
        }
        let mut for_bytes = 0;
        loop {
            let over_entries = self.len() > max_entries;
            let over_bytes = self.state_bytes() > max_state_bytes;
            if !over_entries && !over_bytes {
                break;
            }
            let fullest = self
                .by_window
                .iter_mut()
                .filter(|(_, m)| m.len > 0)
                .max_by_key(|(_, m)| if over_bytes { m.state_bytes } else { m.len });
            let Some((window_ms, memory)) = fullest else {
                break;
            };
            let Some(oldest) = memory.oldest() else {
                break;
            };
            memory.prune_before(oldest + 1);
            pruned.insert(*window_ms, memory.pruned_before);
            if over_bytes {
                for_bytes += 1;
            }
        }
        (pruned.into_iter().collect(), for_bytes)
    }

    /// Series-windows that are not final although their window ended at or before
    /// `closed_through` (closed in every partition): their final version was published but
    /// never arrived here (core NATS is at most once; a topic subscribed just after the
    /// publish and queried QuestDB before the row was applied). One range per dimension set
    /// and window size, covering every such window.
    pub(super) fn unfinished_before(&self, closed_through: UnixMillis) -> Vec<UnfinishedRange> {
        let mut ranges: BTreeMap<(String, i64), UnfinishedRange> = BTreeMap::new();
        for entry in self
            .by_window
            .values()
            .flat_map(|m| m.windows.range(..closed_through))
            .flat_map(|(_, series)| series.values())
            .filter(|entry| !entry.row.is_final && entry.row.window_end <= closed_through)
        {
            let window_ms = entry.window_ms();
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
