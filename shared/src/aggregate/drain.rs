//! Taking the deltas out ([`Work::drain`]) and letting memory go: the tables keep only the
//! room the last drain needed, series-cap bookkeeping of old windows is forgotten, and what is
//! held is accounted for ([`Work::approx_bytes`]).

use super::key::write_canonical;
use super::state::{CapKey, Combo, Group, Series, Update, Work, RECENT_GROUPS};
use crate::messages::PartialEntry;
use crate::series::SeriesKey;
use crate::sketch::Sketch;
use crate::time::UnixMillis;
use foldhash::fast::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

impl Work {
    /// Takes every delta accumulated since the previous drain.
    pub(super) fn drain(&mut self) -> Vec<PartialEntry> {
        self.apply_log();
        let series = std::mem::take(&mut self.series);
        let sketches = std::mem::take(&mut self.sketches);
        let groups = std::mem::take(&mut self.groups);
        // The tables keep the room this drain's deltas needed (the next ones are usually
        // alike), not more: a burst of series does not hold its memory after the drain.
        let combos = self.combos.len();
        self.forget_combos();
        self.combos.shrink_to(combos, |combo| combo.hash);
        self.series_index.clear();
        // Empty: the hasher is never called.
        self.series_index.shrink_to(series.len(), |_| 0);
        self.log_offsets.shrink_to(series.len() + 1);
        self.group_index.clear();
        self.recent_groups = [usize::MAX; RECENT_GROUPS];
        let mut entries = Vec::with_capacity(series.len());
        // Two groups give the same series only if two compiled metrics of one name applied to
        // one tenant in one window (definitions replaced since the last drain): their deltas
        // are then merged into one entry per series, as a single key map would have.
        let mut seen = HashSet::with_capacity_and_hasher(groups.len(), RandomState::default());
        let duplicates = !groups.iter().all(|group| {
            seen.insert((
                group.key.window_start,
                group.key.window_ms,
                &*group.key.tenant,
                group.metric.def.name.as_str(),
            ))
        });
        drop(seen);
        let mut canonical = Vec::with_capacity(128);
        for (one, sketch) in series.into_iter().zip(sketches) {
            let Some(group) = groups.get(one.group as usize) else {
                continue;
            };
            if !write_canonical(&mut canonical, &group.key.tenant, &group.metric, &one.key) {
                // Written by `write_inner_key` in this process; decoding cannot fail.
                continue;
            }
            let Ok(key) = SeriesKey::from_canonical(&canonical) else {
                continue;
            };
            entries.push(PartialEntry {
                series: key,
                window_start: group.key.window_start,
                window_ms: group.key.window_ms,
                sketch,
            });
        }
        if duplicates {
            entries = merge_duplicates(entries);
        }
        entries
    }

    /// Forgets series-cap bookkeeping of windows that started before `before`.
    pub(super) fn forget_windows_before(&mut self, before: UnixMillis) {
        let before_len = self.admitted.len();
        self.admitted.retain(|(key, _)| key.window_start >= before);
        if self.admitted.len() != before_len {
            // Indices moved: rebuild the index and forget the ones the groups remembered.
            self.admitted_index.clear();
            for (index, (key, _)) in self.admitted.iter().enumerate() {
                let hash = self.hasher.hash_one((
                    &*key.tenant,
                    &*key.metric,
                    key.dim_set,
                    key.window_start,
                ));
                self.admitted_index.entry(hash).or_default().push(index);
            }
            for group in &mut self.groups {
                group.admitted.fill(usize::MAX);
            }
            // Remembered combinations stay valid: they lead only to series with a pending
            // delta, never to an overflow series (whose events may now be admitted).
        }
    }

    /// Approximate heap bytes held (deltas and series-cap bookkeeping): hash-table slots by
    /// capacity, keys, sketch heap, and a per-allocation overhead for the allocator. O(series).
    pub(super) fn approx_bytes(&self) -> usize {
        const ALLOCATION_OVERHEAD: usize = 16;
        // A hash table of `u32` indices: the index and one control byte per slot.
        let index_table = |capacity: usize| capacity * (std::mem::size_of::<u32>() + 1);
        let log = (self.log.capacity() + self.sorted_log.capacity())
            * std::mem::size_of::<Update>()
            + self.log_offsets.capacity() * std::mem::size_of::<u32>();
        let series = self.series.capacity() * std::mem::size_of::<Series>()
            + self.sketches.capacity() * std::mem::size_of::<Sketch>()
            + index_table(self.series_index.capacity())
            + self
                .series
                .iter()
                .map(|one| one.key.len() + ALLOCATION_OVERHEAD)
                .sum::<usize>()
            + self
                .sketches
                .iter()
                .map(|sketch| sketch.heap_bytes())
                .sum::<usize>();
        let combos = self.combos.capacity() * (std::mem::size_of::<Combo>() + 1)
            + self.combo_series.capacity() * std::mem::size_of::<u32>()
            + self
                .combos
                .iter()
                .map(|combo| combo.key.heap_bytes())
                .sum::<usize>();
        let group_slot = std::mem::size_of::<Group>();
        let index_slot = std::mem::size_of::<(u64, Vec<usize>)>() + 1;
        let groups = self.groups.capacity() * group_slot
            + self.group_index.capacity() * index_slot
            + self
                .groups
                .iter()
                .map(|group| {
                    group.key.tenant.len()
                        + group.admitted.capacity() * std::mem::size_of::<usize>()
                        + 2 * ALLOCATION_OVERHEAD
                })
                .sum::<usize>();
        let cap_slot = std::mem::size_of::<(CapKey, HashSet<u64, RandomState>)>();
        let index_slot = std::mem::size_of::<(u64, Vec<usize>)>() + 1 + 8;
        let admitted: usize = self.admitted.capacity() * cap_slot
            + self.admitted_index.capacity() * index_slot
            + self
                .admitted
                .iter()
                .map(|(key, set)| {
                    key.tenant.len()
                        + key.metric.len()
                        + set.capacity() * 9
                        + 3 * ALLOCATION_OVERHEAD
                })
                .sum::<usize>();
        log + series + combos + groups + admitted
    }

    /// Forgets every remembered combination (they are resolved again when next seen).
    fn forget_combos(&mut self) {
        self.combos.clear();
        self.combo_series.clear();
    }
}

/// Merges entries of the same series and window (rare: see [`Work::drain`]).
fn merge_duplicates(entries: Vec<PartialEntry>) -> Vec<PartialEntry> {
    let mut index: HashMap<(Vec<u8>, UnixMillis, i64), usize, RandomState> = HashMap::default();
    let mut out: Vec<PartialEntry> = Vec::with_capacity(entries.len());
    for entry in entries {
        let key = (
            entry.series.canonical(),
            entry.window_start,
            entry.window_ms,
        );
        match index.get(&key) {
            Some(&at) => out[at].sketch.merge(&entry.sketch),
            None => {
                index.insert(key, out.len());
                out.push(entry);
            }
        }
    }
    out
}
