//! The live state of one watched (tenant, metric): the widget plans registered on it, its
//! [`Memory`] of series-windows and the [`Ring`] of derived widget values that streams read.
//!
//! - A [`Topic`] exists while at least one viewer holds it (`Arc`); dropping the last
//!   reference cancels its subscription.
//! - Viewers register the [`QueryPlan`]s of their widgets on the topic ([`PlanReg`],
//!   ref-counted the same way). For each incoming window the topic recomputes the served
//!   value of every registered plan the window feeds (once, whatever the number of viewers)
//!   and appends it to the ring with a new id.
//! - Ids come from one hub-wide counter seeded with the start time in microseconds, so they
//!   increase across topics and (practically) across restarts.
//! - A plan's value for a window is derived from memory only when memory is complete for that
//!   window (seeded for the plan and not pruned).
//! - Even while connected, a single update can be missed (a topic subscribes just after a
//!   window's final version was published); the `repair` task reads windows memory still holds
//!   as provisional after every partition closed them back from QuestDB
//!   ([`Topic::unfinished_before`], [`Topic::merge_rows`]).

use super::link::Link;
use super::memory::{MemEntry, Memory, UnfinishedRange};
use super::ring::{PlanReg, Ring, RingEntry};
use crate::config::LiveConfig;
use crate::metrics::FanoutMetrics;
use crate::query::{DerivedWindow, QueryPlan, WindowRow};
use rtdash_shared::messages::WindowUpdate;
use rtdash_shared::time::{now_millis, UnixMillis};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// State shared by the hub and its topics.
#[derive(Debug)]
pub(super) struct HubShared {
    pub(super) config: LiveConfig,
    /// Last id handed out.
    pub(super) next_id: AtomicU64,
    /// Upstream subscriptions open now.
    pub(super) subscriptions: AtomicU64,
    pub(super) link: watch::Sender<Link>,
    /// The id when the last resynchronisation began: a cursor before it may have missed
    /// updates lost while disconnected, so it cannot resume.
    pub(super) resynced_at: AtomicU64,
    pub(super) metrics: FanoutMetrics,
}

impl HubShared {
    /// Ids handed out from `last_id` on; the link connected, in its first epoch.
    pub(super) fn new(config: LiveConfig, last_id: u64, metrics: FanoutMetrics) -> Self {
        Self {
            config,
            next_id: AtomicU64::new(last_id),
            subscriptions: AtomicU64::new(0),
            link: watch::channel(Link {
                connected: true,
                epoch: 0,
            })
            .0,
            resynced_at: AtomicU64::new(0),
            metrics,
        }
    }
}

#[derive(Debug)]
struct TopicState {
    ring: Ring,
    memory: Memory,
    /// Registered plans, by value.
    plans: HashMap<QueryPlan, Weak<PlanReg>>,
    /// Longest registered plan window, ms.
    max_window_ms: i64,
    /// Invalidations so far: snapshot rows read in an older epoch do not seed memory.
    epoch: u64,
}

/// Live state of one (tenant, metric).
#[derive(Debug)]
pub struct Topic {
    /// Tenant.
    pub tenant: String,
    /// Metric.
    pub metric: String,
    /// Hub counter when the topic was created (its generation).
    pub generation: u64,
    hub: Arc<HubShared>,
    state: RwLock<TopicState>,
    notify: watch::Sender<u64>,
    cancel: CancellationToken,
}

impl Drop for Topic {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.hub.metrics.upstream_subscriptions.decrement(1.0);
        self.hub.subscriptions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A viewer's hold on a registered plan; dropping the last one unregisters it.
#[derive(Debug, Clone)]
pub struct PlanHandle {
    /// The registration.
    pub reg: Arc<PlanReg>,
    /// The topic it is registered on (kept alive by this handle).
    pub topic: Arc<Topic>,
}

impl Topic {
    /// A topic counted as one upstream subscription while it lives; `cancel` (its
    /// subscription's token) is cancelled when it is dropped.
    pub(super) fn new(
        hub: Arc<HubShared>,
        tenant: &str,
        metric: &str,
        cancel: CancellationToken,
    ) -> Self {
        let generation = hub.next_id.load(Ordering::SeqCst);
        let (notify, _) = watch::channel(generation);
        hub.subscriptions.fetch_add(1, Ordering::Relaxed);
        hub.metrics.upstream_subscriptions.increment(1.0);
        Self {
            tenant: tenant.to_owned(),
            metric: metric.to_owned(),
            generation,
            hub,
            state: RwLock::new(TopicState {
                ring: Ring::new(generation),
                memory: Memory::default(),
                plans: HashMap::new(),
                max_window_ms: 0,
                epoch: 0,
            }),
            notify,
            cancel,
        }
    }

    /// Registers `plan` (or joins its registration).
    pub fn register(self: &Arc<Self>, plan: QueryPlan) -> PlanHandle {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = state.plans.get(&plan).and_then(Weak::upgrade) {
            return PlanHandle {
                reg: existing,
                topic: self.clone(),
            };
        }
        state.plans.retain(|_, reg| reg.strong_count() > 0);
        state.max_window_ms = state.max_window_ms.max(plan.window_ms);
        let reg = Arc::new(PlanReg {
            registered_at: self.hub.next_id.load(Ordering::SeqCst),
            seeded_from: AtomicI64::new(if self_contained(&plan) {
                i64::MIN
            } else {
                i64::MAX
            }),
            plan: plan.clone(),
        });
        state.plans.insert(plan, Arc::downgrade(&reg));
        PlanHandle {
            reg,
            topic: self.clone(),
        }
    }

    /// A receiver woken whenever entries are appended to the ring.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// The id every ring entry so far is at most (a fresh viewer's cursor).
    pub fn cursor(&self) -> u64 {
        let _state = self.state.read().unwrap_or_else(|e| e.into_inner());
        self.hub.next_id.load(Ordering::SeqCst)
    }

    /// Entries with id > `cursor`, or `None` when some were already evicted (`cursor` is
    /// below the floor). Returns the new cursor too.
    pub fn entries_after(&self, cursor: u64) -> Option<(Vec<Arc<RingEntry>>, u64)> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let latest = self.hub.next_id.load(Ordering::SeqCst);
        let entries = state.ring.after(cursor)?;
        Some((entries, latest.max(cursor)))
    }

    /// Whether a viewer that has seen everything up to `cursor` can resume `reg` from the
    /// ring without a gap.
    pub fn can_resume(&self, reg: &PlanReg, cursor: u64) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        cursor >= state.ring.floor()
            && cursor >= reg.registered_at
            && cursor >= self.generation
            && cursor >= self.hub.resynced_at.load(Ordering::SeqCst)
            && cursor <= self.hub.next_id.load(Ordering::SeqCst)
    }

    /// Puts snapshot rows (of `plan`'s dimension set, from `from`), queried after
    /// [`Topic::epoch`] answered `epoch`, into memory where they are newer, and marks `reg`
    /// complete from `from`. Rows queried before the last invalidation are ignored (they may
    /// miss updates that were lost).
    pub fn seed(&self, reg: &PlanReg, rows: &[WindowRow], from: UnixMillis, epoch: u64) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if epoch != state.epoch {
            return;
        }
        let retention_floor = self.retention_floor(&state);
        for row in rows {
            if row.window_start < retention_floor {
                continue;
            }
            state
                .memory
                .insert_if_newer(MemEntry::from_row(row.clone(), reg.plan.dim_set.clone()));
        }
        reg.seeded_from.fetch_min(from, Ordering::SeqCst);
        self.enforce_cap(&mut state);
    }

    /// Values of `reg` derived from memory for the windows memory is complete for, newest
    /// last: what a snapshot overlays, and what a viewer that fell behind gets.
    pub fn memory_values(&self, reg: &PlanReg) -> Vec<DerivedWindow> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let from = reg
            .seeded_from
            .load(Ordering::SeqCst)
            .max(state.memory.complete_from());
        let plan = &reg.plan;
        let now = now_millis();
        state
            .memory
            .buckets_from(plan, from)
            .into_iter()
            .filter_map(|bucket| state.memory.derive(plan, bucket, now))
            .collect()
    }

    /// Forgets memory after updates may have been missed (a NATS reconnection): plans that
    /// need memory to be complete stop producing values until a snapshot seeds them again.
    pub fn invalidate(&self) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.epoch += 1;
        state.memory.clear();
        for reg in state.plans.values().filter_map(Weak::upgrade) {
            if !self_contained(&reg.plan) {
                reg.seeded_from.store(i64::MAX, Ordering::SeqCst);
            }
        }
    }

    /// The memory epoch, to pass back to [`Topic::seed`] with rows queried after reading it.
    pub fn epoch(&self) -> u64 {
        self.state.read().unwrap_or_else(|e| e.into_inner()).epoch
    }

    /// The link's resynchronisation epoch (see [`Link`]).
    pub fn link_epoch(&self) -> u64 {
        self.hub.link.borrow().epoch
    }

    fn retention_floor(&self, state: &TopicState) -> UnixMillis {
        let horizon = self.hub.config.memory_horizon_secs as i64 * 1000;
        now_millis() - horizon - state.max_window_ms
    }

    fn enforce_cap(&self, state: &mut TopicState) {
        let floor = self.retention_floor(state);
        state
            .memory
            .enforce(floor, self.hub.config.max_memory_entries);
    }

    /// Applies a batch of live updates and appends the derived values to the ring; updates
    /// of another (tenant, metric) are ignored, and so are windows of another length than the
    /// registered plans' base window: the aggregators publish their rollup tier windows (an
    /// hour, a day) on the same subject, and memory, keyed by window start and series, holds
    /// base windows only (a tier window would replace the base window it starts with).
    pub(super) fn apply(&self, updates: Vec<WindowUpdate>) {
        let bases: Vec<i64> = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            let mut bases: Vec<i64> = state
                .plans
                .values()
                .filter_map(Weak::upgrade)
                .map(|reg| reg.plan.base_window_ms)
                .collect();
            bases.dedup();
            bases
        };
        let entries = updates
            .into_iter()
            .filter(|update| update.tenant_id == self.tenant && update.metric == self.metric)
            // With no plan registered the base is not known here: everything is kept, as before.
            .filter(|update| {
                bases.is_empty() || bases.contains(&(update.window_end - update.window_start))
            })
            .map(MemEntry::from_update);
        self.merge(entries);
    }

    /// Series-windows in memory that are not final although every partition closed them
    /// (see [`Memory::unfinished_before`]).
    pub fn unfinished_before(&self, closed_through: UnixMillis) -> Vec<UnfinishedRange> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.memory.unfinished_before(closed_through)
    }

    /// Merges stored rows of `dim_set` (read back for [`Topic::unfinished_before`]) like live
    /// updates: newer versions replace what memory holds and reach the viewers. Returns how
    /// many series-windows changed.
    pub fn merge_rows(&self, dim_set: &str, rows: Vec<WindowRow>) -> usize {
        self.merge(
            rows.into_iter()
                .map(|row| MemEntry::from_row(row, dim_set.to_owned())),
        )
    }

    /// Puts newer versions into memory and appends the derived values of every registered
    /// plan they feed to the ring; returns how many series-windows changed.
    fn merge(&self, entries: impl Iterator<Item = MemEntry>) -> usize {
        let now = now_millis();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let retention_floor = self.retention_floor(&state);
        let mut touched: Vec<MemEntry> = Vec::new();
        for entry in entries {
            if entry.row.window_start < retention_floor {
                self.hub.metrics.updates_too_old.increment(1);
                continue;
            }
            if state.memory.insert_if_newer(entry.clone()) {
                touched.push(entry);
            }
        }
        self.enforce_cap(&mut state);
        if touched.is_empty() {
            return 0;
        }
        let plans: Vec<Arc<PlanReg>> = state.plans.values().filter_map(Weak::upgrade).collect();
        let mut dirty: Vec<(Arc<PlanReg>, UnixMillis)> = Vec::new();
        let mut seen: HashSet<(usize, UnixMillis)> = HashSet::new();
        for reg in &plans {
            let complete_from = reg
                .seeded_from
                .load(Ordering::SeqCst)
                .max(state.memory.complete_from());
            for entry in &touched {
                if !entry.feeds(&reg.plan) {
                    continue;
                }
                let bucket = reg.plan.bucket_of(entry.row.window_start);
                if bucket < complete_from {
                    continue;
                }
                if seen.insert((Arc::as_ptr(reg) as usize, bucket)) {
                    dirty.push((reg.clone(), bucket));
                }
            }
        }
        let mut appended = 0;
        for (reg, bucket) in dirty {
            let Some(window) = state.memory.derive(&reg.plan, bucket, now) else {
                continue;
            };
            let id = self.hub.next_id.fetch_add(1, Ordering::SeqCst) + 1;
            let entry = RingEntry {
                id,
                plan: reg,
                window,
                received_at: now,
                rendered: Mutex::new(Vec::new()),
            };
            state
                .ring
                .push(Arc::new(entry), self.hub.config.ring_capacity);
            appended += 1;
        }
        if appended > 0 {
            let latest = self.hub.next_id.load(Ordering::SeqCst);
            drop(state);
            self.notify.send_replace(latest);
        }
        touched.len()
    }
}

/// A plan served from one stored row per window needs no seeding to be exact.
fn self_contained(plan: &QueryPlan) -> bool {
    plan.exact_series.is_some() && plan.window_ms == plan.base_window_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, update};
    use crate::query;
    use rtdash_shared::metric::MetricDefinition;
    use rtdash_shared::stat::Stat;

    fn topic(config: LiveConfig) -> Arc<Topic> {
        let hub = Arc::new(HubShared::new(config, 1_000, FanoutMetrics::noop()));
        Arc::new(Topic::new(hub, "t", "m", CancellationToken::new()))
    }

    /// The `count` of metric `m` (kept by region and plan, by region, and in total) for
    /// `filter`.
    fn count_plan(filter: &[(&str, &str)]) -> QueryPlan {
        let def = MetricDefinition::from_json(
            br#"{"name":"m","event_type":"e","field":"v","dimensions":["region","plan"],"rollups":[["region"],[]]}"#,
        )
        .unwrap();
        query::plan(&def, "t", &fixtures::filter(filter), Stat::Count, None).unwrap()
    }

    #[test]
    fn unfinished_windows_are_listed_per_dimension_set_and_repaired_by_newer_rows() {
        let topic = topic(LiveConfig::default());
        let now = now_millis();
        let minute = |n: i64| (now / 60_000 - n) * 60_000;
        let plan = count_plan(&[("region", "us")]);
        let handle = topic.register(plan);
        let mut final_one = update(minute(5), &[("region", "eu")], 3, now);
        final_one.is_final = true;
        topic.apply(vec![
            update(minute(6), &[("region", "us")], 1, now),
            update(minute(4), &[("region", "us")], 2, now),
            final_one,
            update(minute(4), &[], 9, now),
            update(minute(1), &[("region", "us")], 4, now),
        ]);
        // Closed through the end of minute(3): minute(1) is still open, eu's is final.
        let ranges = topic.unfinished_before(minute(3));
        assert_eq!(
            ranges,
            vec![
                UnfinishedRange {
                    dim_set: String::new(),
                    window_ms: 60_000,
                    from: minute(4),
                    to: minute(3),
                    windows: 1,
                },
                UnfinishedRange {
                    dim_set: "region".into(),
                    window_ms: 60_000,
                    from: minute(6),
                    to: minute(3),
                    windows: 2,
                },
            ]
        );
        // Stored rows: one final (newer), one still provisional and older than memory's.
        let cursor = topic.cursor();
        let mut stored = WindowRow::from_update(&update(minute(6), &[("region", "us")], 1, now));
        stored.is_final = true;
        let stale = WindowRow::from_update(&update(minute(4), &[("region", "us")], 1, now - 10));
        assert_eq!(topic.merge_rows("region", vec![stored, stale]), 1);
        let (entries, _) = topic.entries_after(cursor).unwrap();
        assert_eq!(entries.len(), 1);
        assert!(Arc::ptr_eq(&entries[0].plan, &handle.reg));
        assert_eq!(entries[0].window.window_start, minute(6));
        assert!(entries[0].window.is_final);
        assert_eq!(entries[0].window.value, Some(1.0));
        let left = topic.unfinished_before(minute(3));
        assert_eq!(left[1].from, minute(4));
        assert_eq!(left[1].windows, 1);
    }

    #[test]
    fn exact_plans_stream_at_once_combined_plans_after_seeding() {
        let topic = topic(LiveConfig::default());
        let now = now_millis() / 60_000 * 60_000;
        let exact = topic.register(count_plan(&[("region", "us")]));
        let combined = topic.register(count_plan(&[("plan", "pro")]));
        let cursor = topic.cursor();
        topic.apply(vec![
            update(now, &[("region", "us")], 5, now),
            update(now, &[("plan", "pro"), ("region", "us")], 2, now),
        ]);
        let (entries, _) = topic.entries_after(cursor).unwrap();
        assert_eq!(entries.len(), 1, "the combined plan waits for its snapshot");
        assert!(Arc::ptr_eq(&entries[0].plan, &exact.reg));
        assert_eq!(entries[0].window.value, Some(5.0));
        // Seeding with the stored rows of the full set completes memory for the plan.
        let stored = WindowRow::from_update(&update(
            now,
            &[("plan", "pro"), ("region", "eu")],
            3,
            now - 1,
        ));
        topic.seed(&combined.reg, &[stored], now - 3_600_000, 0);
        let values = topic.memory_values(&combined.reg);
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].value, Some(5.0));
        let cursor = topic.cursor();
        topic.apply(vec![update(
            now,
            &[("plan", "pro"), ("region", "us")],
            4,
            now + 1,
        )]);
        let (entries, _) = topic.entries_after(cursor).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].window.value, Some(7.0));
        // An older version never replaces a newer one.
        let cursor = topic.cursor();
        topic.apply(vec![update(
            now,
            &[("plan", "pro"), ("region", "us")],
            1,
            now - 10,
        )]);
        assert!(topic.entries_after(cursor).unwrap().0.is_empty());
        // Another tenant's or metric's update is ignored.
        let mut foreign = update(now, &[("region", "us")], 99, now + 5);
        foreign.tenant_id = "x".into();
        topic.apply(vec![foreign]);
        assert!(topic.entries_after(cursor).unwrap().0.is_empty());
        // So is a rollup tier window (an hour) starting with the base window: it neither
        // replaces the base window in memory nor produces a value.
        let hour = now / 3_600_000 * 3_600_000;
        let mut tier = update(hour, &[("plan", "pro"), ("region", "us")], 500, now + 6);
        tier.window_end = hour + 3_600_000;
        topic.apply(vec![tier]);
        assert!(topic.entries_after(cursor).unwrap().0.is_empty());
        assert_eq!(topic.memory_values(&combined.reg)[0].value, Some(7.0));
    }

    #[test]
    fn ring_eviction_moves_the_floor_and_stops_resumption() {
        let topic = topic(LiveConfig {
            ring_capacity: 4,
            ..LiveConfig::default()
        });
        let now = now_millis() / 60_000 * 60_000;
        let handle = topic.register(count_plan(&[("region", "us")]));
        let start = topic.cursor();
        assert!(topic.can_resume(&handle.reg, start));
        for count in 1..=10 {
            topic.apply(vec![update(
                now,
                &[("region", "us")],
                count,
                now + count as i64,
            )]);
        }
        assert!(topic.entries_after(start).is_none(), "fell out of the ring");
        assert!(!topic.can_resume(&handle.reg, start));
        let recent = topic.cursor() - 2;
        let (entries, _) = topic.entries_after(recent).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].window.value, Some(10.0));
        // Memory still has the latest value for a resync.
        assert_eq!(topic.memory_values(&handle.reg)[0].value, Some(10.0));
    }

    #[test]
    fn memory_is_bounded() {
        let topic = topic(LiveConfig {
            max_memory_entries: 10,
            ..LiveConfig::default()
        });
        let now = now_millis() / 60_000 * 60_000;
        for minute in 0..5 {
            let updates = (0..5)
                .map(|i| update(now - minute * 60_000, &[("region", &i.to_string())], 1, now))
                .collect();
            topic.apply(updates);
        }
        let state = topic.state.read().unwrap();
        assert!(state.memory.len() <= 10, "{}", state.memory.len());
        assert!(state.memory.complete_from() > now - 5 * 60_000);
        // Too old for the horizon: not kept at all.
        drop(state);
        topic.apply(vec![update(
            now - 3 * 3_600_000,
            &[("region", "old")],
            1,
            now,
        )]);
        assert!(topic
            .state
            .read()
            .unwrap()
            .memory
            .window_starts()
            .all(|start| start > now - 3_600_000));
    }
}
