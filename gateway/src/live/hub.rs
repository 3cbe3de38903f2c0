//! The live hub: one upstream NATS subscription per watched (tenant, metric), shared by every
//! viewer, with the latest windows in memory and a bounded ring of derived widget updates.
//!
//! - A [`Topic`] exists while at least one viewer holds it (`Arc`); dropping the last
//!   reference cancels its subscription.
//! - Viewers register the [`QueryPlan`]s of their widgets on the topic ([`PlanReg`],
//!   ref-counted the same way). For each incoming window the topic recomputes the served
//!   value of every registered plan the window feeds (once, whatever the number of viewers)
//!   and appends it to the ring with a new id.
//! - Ids come from one hub-wide counter seeded with the start time in microseconds, so they
//!   increase across topics and (practically) across restarts. The ring keeps the last
//!   `ring_capacity` entries; `floor` says which ids it still covers.
//! - Memory: per topic, the latest version of every series-window within the retention
//!   (at least `memory_horizon_secs`, more for coarse widget windows), seeded from snapshot
//!   queries and updated live. A plan's value for a window is derived from memory only when
//!   memory is complete for that window (seeded for the plan and not pruned).
//! - The NATS link ([`Link`]): core NATS does not replay what was published while the
//!   gateway was disconnected. A monitor watches the client; while it is disconnected the
//!   link says so (streams show it as `status` `disconnected`); after every reconnection the
//!   topics' memory is dropped (it missed updates), the link's `epoch` moves on, and every
//!   stream sends fresh snapshots of its widgets (queried again, once per widget, whatever the
//!   number of viewers). A second resynchronisation follows `resync_settle_ms` later, for
//!   rows QuestDB had not applied yet at the first one.
//! - Even while connected, a single update can be missed (a topic subscribes just after a
//!   window's final version was published); [`super::repair`] reads windows memory still holds
//!   as provisional after every partition closed them back from QuestDB
//!   ([`Topic::unfinished_before`], [`Topic::merge_rows`]).

use crate::config::LiveConfig;
use crate::query::{self, DerivedWindow, QueryPlan, WindowRow};
use futures::{FutureExt, StreamExt};
use rtdash_runtime::trace_context::TraceParent;
use rtdash_shared::messages::WindowUpdate;
use rtdash_shared::time::{now_millis, UnixMillis};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long opening an upstream subscription may take.
const SUBSCRIBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How often the link monitor looks at the NATS client.
const LINK_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// The upstream NATS connection, as live streams see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// The client is connected.
    pub connected: bool,
    /// Resynchronisations so far: a stream that saw an older epoch sends fresh snapshots.
    pub epoch: u64,
}
/// Most updates drained from the subscription and applied as one batch.
const MAX_BATCH: usize = 4096;

/// (tenant, metric).
pub type TopicKey = (String, String);

/// One derived widget value in a topic's ring.
#[derive(Debug)]
pub struct RingEntry {
    /// Id (hub-wide, increasing).
    pub id: u64,
    /// The plan it is a value of.
    pub plan: Arc<PlanReg>,
    /// The value.
    pub window: DerivedWindow,
    /// When the gateway received the update behind it.
    pub received_at: UnixMillis,
    /// Serialized `update` event data per (widget id, stale flag), shared by every viewer of
    /// the same widget so a fan-out to thousands serializes once.
    pub rendered: Mutex<Vec<(String, bool, Arc<str>)>>,
}

impl RingEntry {
    /// The event data for `widget_id`, rendered by `render` on first use.
    pub fn rendered(
        &self,
        widget_id: &str,
        stale: bool,
        render: impl FnOnce() -> String,
    ) -> Arc<str> {
        let mut cache = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, json)) = cache
            .iter()
            .find(|(id, flag, _)| id == widget_id && *flag == stale)
        {
            return json.clone();
        }
        let json: Arc<str> = Arc::from(render());
        if cache.len() < 64 {
            cache.push((widget_id.to_owned(), stale, json.clone()));
        }
        json
    }
}

/// A plan registered on a topic by one or more viewers.
#[derive(Debug)]
pub struct PlanReg {
    /// The plan.
    pub plan: QueryPlan,
    /// Hub counter when the plan was registered: the ring holds every value of this plan
    /// with a larger id (while `floor` allows).
    pub registered_at: u64,
    /// Start of the earliest range a snapshot seeded into memory for this plan
    /// (`i64::MAX` until one did): windows from there on are complete in memory.
    pub seeded_from: AtomicI64,
}

/// A series-window held in memory.
#[derive(Debug, Clone)]
struct MemEntry {
    row: WindowRow,
    dim_set: String,
    dims: BTreeMap<String, Option<String>>,
}

impl MemEntry {
    fn from_row(row: WindowRow, dim_set: String) -> Self {
        let dims = serde_json::from_str(&row.series).unwrap_or_default();
        Self { row, dim_set, dims }
    }

    fn feeds(&self, plan: &QueryPlan) -> bool {
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

#[derive(Debug, Default)]
struct TopicState {
    ring: VecDeque<Arc<RingEntry>>,
    /// Every entry with a larger id is still in the ring.
    floor: u64,
    /// Window start -> series -> latest version.
    memory: BTreeMap<UnixMillis, HashMap<String, MemEntry>>,
    memory_len: usize,
    /// Windows starting before this may be incomplete in memory.
    complete_from: UnixMillis,
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
        metrics::gauge!(crate::metrics::UPSTREAM_SUBSCRIPTIONS).decrement(1.0);
        self.hub
            .subscriptions
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
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

/// Windows of one dimension set and size that memory holds as not final although they are
/// closed everywhere (see [`Topic::unfinished_before`]).
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

impl Topic {
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
        if cursor < state.floor {
            return None;
        }
        let start = state.ring.partition_point(|entry| entry.id <= cursor);
        let entries: Vec<Arc<RingEntry>> = state.ring.range(start..).cloned().collect();
        Some((entries, latest.max(cursor)))
    }

    /// Whether a viewer that has seen everything up to `cursor` can resume `reg` from the
    /// ring without a gap.
    pub fn can_resume(&self, reg: &PlanReg, cursor: u64) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        cursor >= state.floor
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
            insert_if_newer(
                &mut state,
                MemEntry::from_row(row.clone(), reg.plan.dim_set.clone()),
            );
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
            .max(state.complete_from);
        let plan = &reg.plan;
        let now = now_millis();
        let mut buckets: Vec<UnixMillis> = state
            .memory
            .range(from..)
            .map(|(start, _)| plan.bucket_of(*start))
            .filter(|bucket| *bucket >= from)
            .collect();
        buckets.dedup();
        buckets
            .into_iter()
            .filter_map(|bucket| derive_from_memory(&state, plan, bucket, now))
            .collect()
    }

    /// Forgets memory after updates may have been missed (a NATS reconnection): plans that
    /// need memory to be complete stop producing values until a snapshot seeds them again.
    pub fn invalidate(&self) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.epoch += 1;
        state.memory.clear();
        state.memory_len = 0;
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
        prune_before(state, floor);
        while state.memory_len > self.hub.config.max_memory_entries {
            let Some((&oldest, _)) = state.memory.iter().next() else {
                break;
            };
            prune_before(state, oldest + 1);
        }
    }

    /// Applies a batch of updates and appends the derived values to the ring.
    fn apply(&self, updates: Vec<WindowUpdate>) {
        let entries = updates
            .into_iter()
            .filter(|update| update.tenant_id == self.tenant && update.metric == self.metric)
            .map(|update| {
                let dim_set = update
                    .dimensions
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(",");
                MemEntry {
                    row: WindowRow::from_update(&update),
                    dims: update.dimensions,
                    dim_set,
                }
            });
        self.merge(entries);
    }

    /// Series-windows in memory that are not final although their window ended at or before
    /// `closed_through` (closed in every partition): their final version was published but
    /// never arrived here (core NATS is at most once; a topic subscribed just after the
    /// publish and queried QuestDB before the row was applied). One range per dimension set
    /// and window size, covering every such window.
    pub fn unfinished_before(&self, closed_through: UnixMillis) -> Vec<UnfinishedRange> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let mut ranges: BTreeMap<(String, i64), UnfinishedRange> = BTreeMap::new();
        for entry in state
            .memory
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
                metrics::counter!(crate::metrics::LIVE_UPDATES_TOO_OLD).increment(1);
                continue;
            }
            if insert_if_newer(&mut state, entry.clone()) {
                touched.push(entry);
            }
        }
        self.enforce_cap(&mut state);
        if touched.is_empty() {
            return 0;
        }
        let plans: Vec<Arc<PlanReg>> = state.plans.values().filter_map(Weak::upgrade).collect();
        let mut dirty: Vec<(Arc<PlanReg>, UnixMillis)> = Vec::new();
        let mut seen: std::collections::HashSet<(usize, UnixMillis)> =
            std::collections::HashSet::new();
        for reg in &plans {
            let complete_from = reg
                .seeded_from
                .load(Ordering::SeqCst)
                .max(state.complete_from);
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
            let Some(window) = derive_from_memory(&state, &reg.plan, bucket, now) else {
                continue;
            };
            let id = self.hub.next_id.fetch_add(1, Ordering::SeqCst) + 1;
            state.ring.push_back(Arc::new(RingEntry {
                id,
                plan: reg,
                window,
                received_at: now,
                rendered: Mutex::new(Vec::new()),
            }));
            appended += 1;
            while state.ring.len() > self.hub.config.ring_capacity {
                if let Some(evicted) = state.ring.pop_front() {
                    state.floor = evicted.id;
                }
            }
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

fn insert_if_newer(state: &mut TopicState, entry: MemEntry) -> bool {
    if entry.row.window_start < state.complete_from {
        return false;
    }
    let windows = state.memory.entry(entry.row.window_start).or_default();
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
            state.memory_len += 1;
            true
        }
    }
}

fn prune_before(state: &mut TopicState, floor: UnixMillis) {
    if floor <= state.complete_from {
        return;
    }
    let keep = state.memory.split_off(&floor);
    let removed: usize = state.memory.values().map(HashMap::len).sum();
    state.memory = keep;
    state.memory_len -= removed;
    state.complete_from = floor;
}

fn derive_from_memory(
    state: &TopicState,
    plan: &QueryPlan,
    bucket: UnixMillis,
    now: UnixMillis,
) -> Option<DerivedWindow> {
    let rows = state
        .memory
        .range(bucket..bucket + plan.window_ms)
        .flat_map(|(_, series)| series.values())
        .filter(|entry| entry.feeds(plan))
        .map(|entry| &entry.row);
    query::derive_bucket(plan, bucket, rows, now)
}

/// State shared by the hub and its topics.
#[derive(Debug)]
pub struct HubShared {
    config: LiveConfig,
    /// Last id handed out.
    next_id: AtomicU64,
    subscriptions: AtomicU64,
    link: watch::Sender<Link>,
    /// The id when the last resynchronisation began: a cursor before it may have missed
    /// updates lost while disconnected, so it cannot resume.
    resynced_at: AtomicU64,
}

/// The live hub.
#[derive(Debug)]
pub struct Hub {
    client: async_nats::Client,
    shared: Arc<HubShared>,
    topics: Mutex<HashMap<TopicKey, Weak<Topic>>>,
    /// Serializes topic creation, so a burst of viewers opens one subscription.
    creating: tokio::sync::Mutex<()>,
    shutdown: CancellationToken,
    /// Random per process: event ids from another instance are not resumed here.
    instance: String,
}

impl Hub {
    /// A hub reading from `client`; subscriptions end with `shutdown`.
    pub fn new(
        client: async_nats::Client,
        config: LiveConfig,
        shutdown: CancellationToken,
    ) -> Self {
        let seed = (now_millis().max(0) as u64) * 1000;
        Self {
            client,
            shared: Arc::new(HubShared {
                config,
                next_id: AtomicU64::new(seed),
                subscriptions: AtomicU64::new(0),
                link: watch::channel(Link {
                    connected: true,
                    epoch: 0,
                })
                .0,
                resynced_at: AtomicU64::new(0),
            }),
            topics: Mutex::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
            shutdown,
            instance: format!("{:08x}", rand_u32()),
        }
    }

    /// This process's instance tag.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Upstream subscriptions open now.
    pub fn subscriptions(&self) -> u64 {
        self.shared.subscriptions.load(Ordering::Relaxed)
    }

    /// The NATS link, and a receiver woken when it changes.
    pub fn link(&self) -> watch::Receiver<Link> {
        self.shared.link.subscribe()
    }

    /// Watches the NATS client until shutdown (see [`Link`]): polls its state and its
    /// connection count (which also catches a reconnection quicker than a poll).
    pub fn spawn_link_monitor(self: &Arc<Self>) {
        let hub = self.clone();
        tokio::spawn(async move {
            let stats = hub.client.statistics();
            let mut connects = stats.connects.load(Ordering::Relaxed);
            let mut connected = true;
            let mut settle: Option<tokio::time::Instant> = None;
            let settle_after = std::time::Duration::from_millis(hub.shared.config.resync_settle_ms);
            let mut tick = tokio::time::interval(LINK_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = hub.shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let now_connected = matches!(
                    hub.client.connection_state(),
                    async_nats::connection::State::Connected
                );
                let now_connects = stats.connects.load(Ordering::Relaxed);
                if now_connects != connects && now_connected {
                    connects = now_connects;
                    connected = true;
                    tracing::warn!(
                        "NATS reconnected: live updates published meanwhile were lost; \
                         resynchronising every stream"
                    );
                    hub.resync();
                    settle = (!settle_after.is_zero())
                        .then(|| tokio::time::Instant::now() + settle_after);
                } else if connected && !now_connected {
                    connected = false;
                    settle = None;
                    tracing::warn!("NATS disconnected: live streams are stale until it is back");
                    metrics::counter!(crate::metrics::NATS_DISCONNECTS).increment(1);
                    hub.shared.link.send_modify(|link| link.connected = false);
                } else if settle.is_some_and(|at| tokio::time::Instant::now() >= at) {
                    settle = None;
                    if connected {
                        hub.resync();
                    }
                }
            }
        });
    }

    /// Drops every topic's memory and moves the link to a new epoch: streams send fresh
    /// snapshots.
    pub fn resync(&self) {
        // An id of its own: a cursor from before the resynchronisation (at most the last id
        // issued before it) is below it, one issued after it is not.
        let mark = self.shared.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.resynced_at.store(mark, Ordering::SeqCst);
        for topic in &self.topics() {
            topic.invalidate();
        }
        self.shared.link.send_modify(|link| {
            link.connected = true;
            link.epoch += 1;
        });
        metrics::counter!(crate::metrics::LIVE_RESYNCS).increment(1);
    }

    /// The topic of (tenant, metric), subscribing upstream if nobody watches it yet. Returns
    /// once the subscription is registered with the server.
    pub async fn topic(&self, tenant: &str, metric: &str) -> Result<Arc<Topic>, String> {
        let key = (tenant.to_owned(), metric.to_owned());
        if let Some(topic) = self.lookup(&key) {
            return Ok(topic);
        }
        let _creating = self.creating.lock().await;
        if let Some(topic) = self.lookup(&key) {
            return Ok(topic);
        }
        let subject = rtdash_shared::names::live_subject(tenant, metric);
        let subscribe = async {
            let subscriber = self
                .client
                .subscribe(subject)
                .await
                .map_err(|err| err.to_string())?;
            // The server has the subscription once the flush returns: a snapshot queried
            // after this point cannot miss an update published after it.
            self.client.flush().await.map_err(|err| err.to_string())?;
            Ok::<_, String>(subscriber)
        };
        let subscriber = tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribe)
            .await
            .map_err(|_| "subscribing timed out (is NATS reachable?)".to_owned())??;
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(topic) = topics.get(&key).and_then(Weak::upgrade) {
            // Someone else subscribed meanwhile: use theirs (ours is dropped, unsubscribing).
            return Ok(topic);
        }
        topics.retain(|_, topic| topic.strong_count() > 0);
        let generation = self.shared.next_id.load(Ordering::SeqCst);
        let (notify, _) = watch::channel(generation);
        let cancel = self.shutdown.child_token();
        let topic = Arc::new(Topic {
            tenant: tenant.to_owned(),
            metric: metric.to_owned(),
            generation,
            hub: self.shared.clone(),
            state: RwLock::new(TopicState {
                floor: generation,
                complete_from: i64::MIN,
                ..TopicState::default()
            }),
            notify,
            cancel: cancel.clone(),
        });
        topics.insert(key, Arc::downgrade(&topic));
        drop(topics);
        self.shared.subscriptions.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(crate::metrics::UPSTREAM_SUBSCRIPTIONS).increment(1.0);
        let weak = Arc::downgrade(&topic);
        tokio::spawn(run_subscription(subscriber, weak, cancel));
        Ok(topic)
    }

    /// Every topic watched now.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.values().filter_map(Weak::upgrade).collect()
    }

    fn lookup(&self, key: &TopicKey) -> Option<Arc<Topic>> {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.get(key).and_then(Weak::upgrade)
    }
}

async fn run_subscription(
    mut subscriber: async_nats::Subscriber,
    topic: Weak<Topic>,
    cancel: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            () = cancel.cancelled() => break,
            message = subscriber.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        let mut batch = Vec::new();
        let mut traces: Vec<TraceParent> = Vec::new();
        decode_into(&first.payload, &mut batch);
        note_trace(&first, &mut traces);
        while batch.len() < MAX_BATCH {
            match subscriber.next().now_or_never() {
                Some(Some(message)) => {
                    decode_into(&message.payload, &mut batch);
                    note_trace(&message, &mut traces);
                }
                _ => break,
            }
        }
        metrics::counter!(crate::metrics::LIVE_UPDATES_RECEIVED).increment(batch.len() as u64);
        let Some(topic) = topic.upgrade() else {
            break;
        };
        let span = fanout_span(&topic, &traces, batch.len());
        span.in_scope(|| topic.apply(batch));
    }
    let _ = subscriber.unsubscribe().await;
}

/// Most traces one fan-out span links to.
const MAX_TRACES: usize = 32;

/// Keeps the trace context of a live update (only while traces are exported).
fn note_trace(message: &async_nats::Message, traces: &mut Vec<TraceParent>) {
    if let Some(trace) = TraceParent::from_headers(message.headers.as_ref()) {
        if traces.len() < MAX_TRACES && !traces.contains(&trace) {
            traces.push(trace);
        }
    }
}

/// The span in which a batch of live updates is applied and handed to the SSE streams
/// (`gateway.live_fanout`): a child of the first traced update's emit span in the aggregator,
/// linked to the others; `Span::none()` when no update is traced.
fn fanout_span(topic: &Topic, traces: &[TraceParent], updates: usize) -> tracing::Span {
    let Some((parent, others)) = traces.split_first() else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!(
        parent: None,
        "gateway.live_fanout",
        tenant = %topic.tenant,
        metric = %topic.metric,
        updates
    );
    parent.set_parent_of(&span);
    for other in others {
        other.link_from(&span);
    }
    span
}

/// Appends the window versions of one live message to `batch`: a single [`WindowUpdate`] or a
/// batch of them (what the core aggregator publishes when a subject has several versions).
fn decode_into(payload: &[u8], batch: &mut Vec<WindowUpdate>) {
    match rtdash_shared::messages::decode_live_updates(payload, batch) {
        Ok(_) => {}
        Err(err) => {
            metrics::counter!(crate::metrics::LIVE_DECODE_ERRORS).increment(1);
            tracing::debug!(error = %err, "undecodable live update");
        }
    }
}

fn rand_u32() -> u32 {
    let id = uuid::Uuid::new_v4();
    let bytes = id.as_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::metric::MetricDefinition;
    use rtdash_shared::sketch::Stats;

    fn topic(config: LiveConfig) -> Arc<Topic> {
        let hub = Arc::new(HubShared {
            config,
            next_id: AtomicU64::new(1_000),
            subscriptions: AtomicU64::new(1),
            link: watch::channel(Link {
                connected: true,
                epoch: 0,
            })
            .0,
            resynced_at: AtomicU64::new(0),
        });
        let (notify, _) = watch::channel(1_000);
        Arc::new(Topic {
            tenant: "t".into(),
            metric: "m".into(),
            generation: 1_000,
            hub,
            state: RwLock::new(TopicState {
                floor: 1_000,
                complete_from: i64::MIN,
                ..TopicState::default()
            }),
            notify,
            cancel: CancellationToken::new(),
        })
    }

    fn def() -> MetricDefinition {
        MetricDefinition::from_json(
            br#"{"name":"m","event_type":"e","field":"v","dimensions":["region","plan"],"rollups":[["region"],[]]}"#,
        )
        .unwrap()
    }

    fn update(start: i64, dims: &[(&str, &str)], count: u64, updated_at: i64) -> WindowUpdate {
        WindowUpdate {
            tenant_id: "t".into(),
            metric: "m".into(),
            dimensions: dims
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
            window_start: start,
            window_end: start + 60_000,
            stats: Stats {
                count,
                sum: Some(count as f64),
                ..Stats::default()
            },
            revision: 0,
            is_final: false,
            late_count: 0,
            updated_at,
        }
    }

    #[test]
    fn live_messages_decode_single_and_batched() {
        use rtdash_shared::messages::WindowUpdates;
        use rtdash_shared::wire::{encode, Format};
        let mut batch = Vec::new();
        let single = encode(&update(0, &[("region", "eu")], 1, 10), Format::Json).unwrap();
        decode_into(&single, &mut batch);
        let many = WindowUpdates(vec![
            update(60_000, &[("region", "eu")], 2, 20),
            update(60_000, &[("region", "us")], 3, 20),
        ]);
        decode_into(&encode(&many, Format::Json).unwrap(), &mut batch);
        decode_into(b"not an envelope", &mut batch);
        let counts: Vec<u64> = batch.iter().map(|u| u.stats.count).collect();
        assert_eq!(counts, vec![1, 2, 3]);
    }

    fn filter(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unfinished_windows_are_listed_per_dimension_set_and_repaired_by_newer_rows() {
        let topic = topic(LiveConfig::default());
        let now = now_millis();
        let minute = |n: i64| (now / 60_000 - n) * 60_000;
        let plan = query::plan(
            &def(),
            "t",
            &filter(&[("region", "us")]),
            rtdash_shared::stat::Stat::Count,
            None,
        )
        .unwrap();
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
        let exact = topic.register(
            query::plan(
                &def(),
                "t",
                &filter(&[("region", "us")]),
                rtdash_shared::stat::Stat::Count,
                None,
            )
            .unwrap(),
        );
        let combined = topic.register(
            query::plan(
                &def(),
                "t",
                &filter(&[("plan", "pro")]),
                rtdash_shared::stat::Stat::Count,
                None,
            )
            .unwrap(),
        );
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
    }

    #[test]
    fn ring_eviction_moves_the_floor_and_stops_resumption() {
        let topic = topic(LiveConfig {
            ring_capacity: 4,
            ..LiveConfig::default()
        });
        let now = now_millis() / 60_000 * 60_000;
        let handle = topic.register(
            query::plan(
                &def(),
                "t",
                &filter(&[("region", "us")]),
                rtdash_shared::stat::Stat::Count,
                None,
            )
            .unwrap(),
        );
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
        assert!(state.memory_len <= 10, "{}", state.memory_len);
        assert!(state.complete_from > now - 5 * 60_000);
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
            .keys()
            .all(|start| *start > now - 3_600_000));
    }
}
