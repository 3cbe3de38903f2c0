//! The per-event path: [`Work::add_to_metric`] folds one event into the series of one metric
//! it feeds, through a remembered combination when there is one (one hash lookup), else by
//! resolving the combination into its series and admitting new series against the cap; value
//! and unique records are logged and applied in batches by [`Work::apply_log`].

use super::key::{combo_hash, write_dimension, KEY_PREFIX};
use super::state::{
    AddOutcome, CapKey, Combo, ComboKey, Group, GroupKey, Series, Update, Work, INLINE_SERIES,
    LOG_CAPACITY, RECENT_GROUPS,
};
use crate::codec::same_bytes;
use crate::event::Event;
use crate::metric::{CompiledMetric, MetricSet};
use crate::series::series_id;
use crate::sketch::{unique_hash, Sketch};
use crate::time::UnixMillis;
use crate::window::window_start;
use std::collections::HashSet;
use std::hash::BuildHasher;

impl Work {
    /// Records the logged updates (see [`Update`]) into their sketches, grouped by series.
    pub(super) fn apply_log(&mut self) {
        if self.log.is_empty() {
            return;
        }
        let Self {
            log,
            sorted_log,
            log_offsets,
            sketches,
            ..
        } = self;
        // Counting sort by series (stable: arrival order within a series is kept).
        log_offsets.clear();
        log_offsets.resize(sketches.len() + 1, 0);
        for update in log.iter() {
            log_offsets[update.series as usize + 1] += 1;
        }
        for at in 1..log_offsets.len() {
            log_offsets[at] += log_offsets[at - 1];
        }
        sorted_log.clear();
        sorted_log.resize(log.len(), log[0]);
        for update in log.iter() {
            let at = &mut log_offsets[update.series as usize];
            sorted_log[*at as usize] = *update;
            *at += 1;
        }
        log.clear();
        for update in sorted_log.iter() {
            let sketch = &mut sketches[update.series as usize];
            match update.weight() {
                1 => sketch.record(update.value(), update.unique()),
                weight => sketch.record_weighted(update.value(), update.unique(), weight),
            }
        }
    }

    /// The index of the group of (window, tenant, metric), created when missing.
    fn group(
        &mut self,
        metrics: &MetricSet,
        metric: &CompiledMetric,
        start: UnixMillis,
        window_ms: i64,
        tenant: &str,
    ) -> usize {
        let address = metric as *const CompiledMetric as usize;
        for slot in 0..RECENT_GROUPS {
            let index = self.recent_groups[slot];
            if self
                .groups
                .get(index)
                .is_some_and(|group| group.key.matches(start, window_ms, address, tenant))
            {
                // Move to the front.
                self.recent_groups.copy_within(0..slot, 1);
                self.recent_groups[0] = index;
                return index;
            }
        }
        let hash = self.hasher.hash_one((start, window_ms, address, tenant));
        let candidates = self.group_index.entry(hash).or_default();
        let found = candidates.iter().copied().find(|&index| {
            self.groups[index]
                .key
                .matches(start, window_ms, address, tenant)
        });
        let index = match found {
            Some(index) => index,
            None => {
                // The `Arc` of the metric being matched: kept by the group so that its address
                // stays unique and its definition is at hand when draining.
                let Some(owned) = metrics
                    .all()
                    .iter()
                    .find(|m| std::ptr::eq(&***m, metric))
                    .cloned()
                else {
                    unreachable!("for_each_match yields metrics of its own set");
                };
                let index = self.groups.len();
                self.groups.push(Group {
                    key: GroupKey {
                        window_start: start,
                        window_ms,
                        metric: address,
                        tenant: tenant.into(),
                    },
                    metric: owned,
                    admitted: vec![usize::MAX; metric.dimension_set_indices.len()],
                });
                candidates.push(index);
                index
            }
        };
        self.recent_groups.copy_within(0..RECENT_GROUPS - 1, 1);
        self.recent_groups[0] = index;
        index
    }

    /// The index in `admitted` of the series-cap set of (tenant, metric, dimension set,
    /// window), created when missing.
    /// The series cap of a metric of `tenant` whose definition admits `defined`: the lower of
    /// that and the tenant's ceiling.
    fn series_cap(&self, defined: u32, tenant: &str) -> usize {
        let ceiling = if self.ceilings.is_empty() {
            None
        } else {
            self.ceilings.get(tenant).copied()
        };
        ceiling.map_or(defined, |ceiling| ceiling.min(defined)) as usize
    }

    fn cap_set(
        &mut self,
        tenant: &str,
        metric: &str,
        dim_set: usize,
        window_start: UnixMillis,
    ) -> usize {
        let hash = self
            .hasher
            .hash_one((tenant, metric, dim_set, window_start));
        let candidates = self.admitted_index.entry(hash).or_default();
        let found = candidates.iter().copied().find(|&index| {
            let key = &self.admitted[index].0;
            key.dim_set == dim_set
                && key.window_start == window_start
                && *key.tenant == *tenant
                && *key.metric == *metric
        });
        found.unwrap_or_else(|| {
            let index = self.admitted.len();
            self.admitted.push((
                CapKey {
                    tenant: tenant.into(),
                    metric: metric.into(),
                    dim_set,
                    window_start,
                },
                HashSet::default(),
            ));
            candidates.push(index);
            index
        })
    }

    pub(super) fn add_to_metric(
        &mut self,
        metrics: &MetricSet,
        metric: &CompiledMetric,
        event: &Event<'_>,
        value: Option<f64>,
        outcome: &mut AddOutcome,
    ) {
        let def = &metric.def;
        let window_ms = def.window_ms();
        let start = window_start(event.occurred_at, window_ms);
        // The canonical text of every dimension value, computed once for all dimension sets.
        self.text.clear();
        self.ranges.clear();
        for source in &metric.dimension_sources {
            let from = self.text.len();
            let present = write_dimension(&mut self.text, &mut self.other_text, event, source);
            self.ranges.push(present.then_some((from, self.text.len())));
        }
        let unique = metric.unique_source.as_ref().and_then(|source| {
            let from = self.text.len();
            write_dimension(&mut self.text, &mut self.other_text, event, source)
                .then(|| unique_hash(&self.text[from..]))
        });
        let address = metric as *const CompiledMetric as usize;
        self.write_combo_key(&event.tenant_id);
        let hash = combo_hash(&self.hasher, start, address, &self.combo_key);
        let Self {
            combos,
            combo_series,
            sketches,
            combo_key,
            log,
            ..
        } = self;
        let found = combos.find(hash, |combo| {
            combo.hash == hash
                && combo.start == start
                && combo.metric == address
                && combo.key.is(combo_key)
        });
        if let Some(combo) = found {
            let sets = metric.dimension_set_indices.len();
            let series = if sets <= INLINE_SERIES {
                &combo.series[..sets]
            } else {
                let first = combo.series[0] as usize;
                &combo_series[first..first + sets]
            };
            if value.is_some() || unique.is_some() {
                for &one in series {
                    log.push(Update::new(one, value, unique, event.weight));
                }
                if log.len() >= LOG_CAPACITY {
                    self.apply_log();
                }
            } else {
                for &one in series {
                    sketches[one as usize].record_weighted(None, None, event.weight);
                }
            }
            outcome.series_updated += sets;
            return;
        }
        self.add_new_combination(
            metrics, metric, event, start, window_ms, hash, value, unique, outcome,
        );
    }

    /// Resolves a combination not seen since the last drain into its series (admitting new
    /// series against the cap), records the event into them, and remembers the combination
    /// unless an overflow series was involved.
    #[allow(clippy::too_many_arguments)]
    fn add_new_combination(
        &mut self,
        metrics: &MetricSet,
        metric: &CompiledMetric,
        event: &Event<'_>,
        start: UnixMillis,
        window_ms: i64,
        hash: u64,
        value: Option<f64>,
        unique: Option<u64>,
        outcome: &mut AddOutcome,
    ) {
        let def = &metric.def;
        let cap_series = self.series_cap(def.max_series_per_window, &event.tenant_id);
        let group = self.group(metrics, metric, start, window_ms, &event.tenant_id);
        let first = self.combo_series.len();
        let mut remember = true;
        for (set_index, indices) in metric.dimension_set_indices.iter().enumerate() {
            self.write_inner_key(set_index, indices, false);
            let one = match self.find_series(group) {
                Some(one) => one,
                None => {
                    // New since the last drain: admission against the series cap.
                    self.write_key(start, window_ms, &event.tenant_id, metric, indices, false);
                    let id = series_id(&self.scratch[KEY_PREFIX..]);
                    let mut cap = self.groups[group].admitted[set_index];
                    if cap == usize::MAX {
                        cap = self.cap_set(&event.tenant_id, &def.name, set_index, start);
                        self.groups[group].admitted[set_index] = cap;
                    }
                    let admitted = &mut self.admitted[cap].1;
                    let fits = admitted.contains(&id) || admitted.len() < cap_series;
                    if fits {
                        admitted.insert(id);
                        self.new_series(group, metric)
                    } else {
                        self.write_inner_key(set_index, indices, true);
                        outcome.overflowed += 1;
                        remember = false;
                        match self.find_series(group) {
                            Some(one) => one,
                            None => self.new_series(group, metric),
                        }
                    }
                }
            };
            if value.is_some() || unique.is_some() {
                // Logged like every other update of the series, so that its order holds.
                self.log.push(Update::new(one, value, unique, event.weight));
            } else {
                self.sketches[one as usize].record_weighted(None, None, event.weight);
            }
            self.combo_series.push(one);
            outcome.series_updated += 1;
        }
        let sets = metric.dimension_set_indices.len();
        let mut series = [0; INLINE_SERIES];
        if sets <= INLINE_SERIES {
            series[..sets].copy_from_slice(&self.combo_series[first..]);
            self.combo_series.truncate(first);
        } else {
            series[0] = first as u32;
        }
        if self.log.len() >= LOG_CAPACITY {
            self.apply_log();
        }
        if remember {
            self.combos.insert_unique(
                hash,
                Combo {
                    hash,
                    start,
                    metric: metric as *const CompiledMetric as usize,
                    key: ComboKey::new(&self.combo_key),
                    series,
                },
                |combo| combo.hash,
            );
        } else {
            self.combo_series.truncate(first);
        }
    }

    /// The series of `group` whose key is `inner`, if it has a delta.
    fn find_series(&self, group: usize) -> Option<u32> {
        let hash = self.series_hash(group);
        let group = group as u32;
        self.series_index
            .find(hash, |&at| {
                let one = &self.series[at as usize];
                one.hash == hash && one.group == group && same_bytes(&one.key, &self.inner)
            })
            .copied()
    }

    /// A new empty series of `group` keyed by `inner`.
    fn new_series(&mut self, group: usize, metric: &CompiledMetric) -> u32 {
        let hash = self.series_hash(group);
        let at = self.series.len() as u32;
        self.series.push(Series {
            hash,
            group: group as u32,
            key: self.inner.as_slice().into(),
        });
        self.sketches.push(Sketch::new(metric.spec));
        let series = &self.series;
        self.series_index
            .insert_unique(hash, at, |&i| series[i as usize].hash);
        at
    }

    fn series_hash(&self, group: usize) -> u64 {
        self.hasher.hash_one((group, self.inner.as_slice()))
    }
}
