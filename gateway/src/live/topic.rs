//! The live state of one watched (tenant, metric): the widget plans registered on it, its
//! [`Memories`] of series-windows (one per window length: base windows and rollup tiers
//! arrive on the same subject) and the [`Ring`] of derived widget values that streams read.
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
use super::memory::{MemEntry, Memories, UnfinishedRange};
use super::ring::{LiveValue, PlanReg, Ring, RingEntry};
use super::update::LiveWindow;
use super::values::{self, Part};
use crate::config::LiveConfig;
use crate::metrics::{self as names, FanoutMetrics};
use crate::query::{QueryPlan, WindowRow};
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
    memory: Memories,
    /// Registered plans, by value.
    plans: HashMap<QueryPlan, Weak<PlanReg>>,
    /// Invalidations so far: snapshot rows read in an older epoch do not seed memory.
    epoch: u64,
}

impl TopicState {
    fn live_plans(&self) -> impl Iterator<Item = Arc<PlanReg>> + '_ {
        self.plans.values().filter_map(Weak::upgrade)
    }

    /// The retention of windows of `window_ms` in memory: the memory horizon, plus the
    /// longest served window of the plans reading them (so a plan's current window is
    /// complete), at least one such window.
    fn floor(&self, horizon_ms: i64, window_ms: i64, now: UnixMillis) -> UnixMillis {
        let longest = self
            .live_plans()
            .filter(|reg| reg.plan.source_window_ms == window_ms)
            .map(|reg| reg.plan.window_ms)
            .fold(window_ms, i64::max);
        now - horizon_ms - longest
    }

    /// Whether a registered plan merges the states of `(window_ms, dim_set)` windows.
    fn merges_states(&self, window_ms: i64, dim_set: &str) -> bool {
        self.live_plans().any(|reg| {
            reg.plan.needs_state()
                && reg.plan.source_window_ms == window_ms
                && reg.plan.dim_set == dim_set
        })
    }
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
    /// The metric's own window, from the plans registered (0 until one is): repair reads
    /// need it to tell the base table from a tier's.
    base_window_ms: AtomicI64,
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
            base_window_ms: AtomicI64::new(0),
            hub,
            state: RwLock::new(TopicState {
                ring: Ring::new(generation),
                memory: Memories::default(),
                plans: HashMap::new(),
                epoch: 0,
            }),
            notify,
            cancel,
        }
    }

    fn horizon_ms(&self) -> i64 {
        self.hub.config.memory_horizon_secs as i64 * 1000
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
        self.base_window_ms
            .store(plan.base_window_ms, Ordering::Relaxed);
        let reg = Arc::new(PlanReg::new(
            plan.clone(),
            self.hub.next_id.load(Ordering::SeqCst),
            if self_contained(&plan) {
                i64::MIN
            } else {
                i64::MAX
            },
        ));
        let source = plan.source_window_ms;
        state.plans.insert(plan, Arc::downgrade(&reg));
        // Windows this plan needs that memory dropped for being too old are let in again.
        let floor = state.floor(self.horizon_ms(), source, now_millis());
        state.memory.allow_from(source, floor);
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
    /// complete from `from` (or the retention, if later). Rows queried before the last
    /// invalidation are ignored (they may miss updates that were lost).
    pub fn seed<'r>(
        &self,
        reg: &PlanReg,
        rows: impl IntoIterator<Item = &'r WindowRow>,
        from: UnixMillis,
        epoch: u64,
    ) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if epoch != state.epoch {
            return;
        }
        let source = reg.plan.source_window_ms;
        let floor = state.floor(self.horizon_ms(), source, now_millis());
        state.memory.allow_from(source, floor);
        for row in rows {
            if row.window_ms() != source {
                continue;
            }
            state.memory.insert_if_newer(
                MemEntry::from_row(row.clone(), reg.plan.dim_set.clone()),
                floor,
            );
        }
        let complete = from.max(floor).max(state.memory.pruned_before(source));
        reg.seeded_from.fetch_min(complete, Ordering::SeqCst);
        self.enforce(&mut state);
    }

    /// Values of `reg` derived from memory for the windows memory is complete for, newest
    /// last: what a snapshot overlays, and what a viewer that fell behind gets.
    pub fn memory_values(&self, reg: &PlanReg) -> Vec<LiveValue> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        values::memory_values(&state.memory, reg, now_millis())
    }

    /// Forgets memory after updates may have been missed (a NATS reconnection): plans that
    /// need memory to be complete stop producing values until a snapshot seeds them again.
    pub fn invalidate(&self) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.epoch += 1;
        state.memory.clear();
        for reg in state.live_plans() {
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

    /// The metric's own window, once a plan registered (0 before).
    pub fn base_window_ms(&self) -> i64 {
        self.base_window_ms.load(Ordering::Relaxed)
    }

    /// Applies the retention and the entry and state budgets; plans lose completeness
    /// below what was dropped.
    fn enforce(&self, state: &mut TopicState) {
        let now = now_millis();
        let horizon = self.horizon_ms();
        let floors: HashMap<i64, UnixMillis> = {
            let mut lengths: Vec<i64> = state
                .live_plans()
                .map(|r| r.plan.source_window_ms)
                .collect();
            lengths.sort_unstable();
            lengths.dedup();
            lengths
                .into_iter()
                .map(|w| (w, state.floor(horizon, w, now)))
                .collect()
        };
        let (pruned, for_bytes) = state.memory.enforce(
            |w| floors.get(&w).copied().unwrap_or(now - horizon - w),
            self.hub.config.max_memory_entries,
            self.hub.config.max_state_bytes,
        );
        if for_bytes > 0 {
            metrics::counter!(names::LIVE_STATE_EVICTIONS).increment(for_bytes);
        }
        for (window_ms, dropped_before) in pruned {
            for reg in state.live_plans() {
                if reg.plan.source_window_ms == window_ms && !self_contained(&reg.plan) {
                    reg.seeded_from.fetch_max(dropped_before, Ordering::SeqCst);
                }
            }
        }
    }

    /// Applies a batch of live versions and appends the derived values to the ring;
    /// versions of another (tenant, metric) are ignored.
    pub(super) fn apply(&self, updates: Vec<LiveWindow>) {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let entries: Vec<MemEntry> = updates
            .into_iter()
            .filter(|update| update.tenant_id == self.tenant && update.metric == self.metric)
            .map(|update| MemEntry::from_live(update, |w, dims| state.merges_states(w, dims)))
            .collect();
        drop(state);
        self.merge(entries.into_iter());
    }

    /// Series-windows in memory that are not final although every partition closed them
    /// (see [`Memories::unfinished_before`]).
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
        let horizon = self.horizon_ms();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let mut touched: Vec<MemEntry> = Vec::new();
        let mut floors: HashMap<i64, UnixMillis> = HashMap::new();
        for entry in entries {
            let window_ms = entry.window_ms();
            let floor = *floors
                .entry(window_ms)
                .or_insert_with(|| state.floor(horizon, window_ms, now));
            if entry.row.window_start < floor {
                self.hub.metrics.updates_too_old.increment(1);
                continue;
            }
            if state.memory.insert_if_newer(entry.clone(), floor) {
                touched.push(entry);
            }
        }
        self.enforce(&mut state);
        if touched.is_empty() {
            return 0;
        }
        let plans: Vec<Arc<PlanReg>> = state.live_plans().collect();
        let mut dirty: Vec<(Arc<PlanReg>, UnixMillis, Part)> = Vec::new();
        let mut seen: HashSet<(usize, UnixMillis, Part)> = HashSet::new();
        for reg in &plans {
            let complete_from = reg.seeded_from.load(Ordering::SeqCst);
            for entry in &touched {
                if !entry.feeds(&reg.plan) {
                    continue;
                }
                let bucket = reg.plan.bucket_of(entry.row.window_start);
                if bucket < complete_from {
                    continue;
                }
                let Some(part) = values::part_of(reg, entry) else {
                    continue;
                };
                if seen.insert((Arc::as_ptr(reg) as usize, bucket, part.clone())) {
                    dirty.push((reg.clone(), bucket, part));
                }
            }
        }
        let mut appended = 0;
        for (reg, bucket, part) in dirty {
            let Some(value) = values::value(&state.memory, &reg, bucket, &part, now) else {
                continue;
            };
            let id = self.hub.next_id.fetch_add(1, Ordering::SeqCst) + 1;
            let entry = RingEntry {
                id,
                plan: reg,
                series: value.series,
                window: value.window,
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
    plan.is_one_row_per_window()
}

#[cfg(test)]
mod tests;
