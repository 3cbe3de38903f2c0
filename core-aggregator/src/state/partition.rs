//! The state machine of one partition: exactly-once merging, watermarks, closing, late
//! corrections, output throttling and eviction. No I/O and no clock of its own: the live path,
//! `replay` and the unit tests drive it the same way.
//!
//! - [`PartitionState::apply`] takes one [`PartialBatch`] and the stream sequence it was
//!   stored at. Duplicates (by agent sequence number) are skipped. Each entry is merged into
//!   its window, classified by the partition watermark *before* the batch: open window ->
//!   merged; closed but within the correction horizon -> merged as a correction (`revision +
//!   1`, `late_count +=` its events); beyond the horizon -> [`Effect::Late`], window untouched.
//!   Then the batch's watermark is observed and every window it closes is closed.
//! - [`PartitionState::tick`] advances the clock while the partition is silent (so windows
//!   still close after the idle timeout), forgets long-gone agents and evicts windows.
//! - [`PartitionState::poll_outputs`] hands out the window versions due for the store and for
//!   live subscribers, throttled per window; closes, corrections and restored windows go out
//!   at once.
//!
//! Clocks: the partition clock is the newest `created_at` of any batch (the agents' clocks),
//! so replaying the same messages makes the same decisions. The wall clock enters only through
//! `tick(silent_for_ms)` and the output throttle.

use super::borrowed::{EntryParts, PartialBatchRef, SeriesParts};
use super::dedup::SeqTracker;
use super::snapshot::{
    encode_segment, AgentRecord, KeyRecord, PartitionMeta, Segment, SegmentRef, SourceRecord,
    WindowRecordRef,
};
use super::window::{Lookup, WindowId, WindowKey, WindowOutput, WindowState};
use rtdash_shared::event::is_identifier;
use rtdash_shared::messages::{LateRecord, PartialBatch, PartialEntry};
use rtdash_shared::sketch::Sketch;
use rtdash_shared::time::UnixMillis;
use rtdash_shared::window::{window_start, WatermarkTracker};
use slab::Slab;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

/// Silence shorter than this does not advance the clock (keeps busy partitions deterministic).
pub const SILENCE_THRESHOLD_MS: i64 = 1_000;
/// Largest window accepted (7 days).
pub const MAX_WINDOW_MS: i64 = 7 * 24 * 3_600_000;
/// Longest tenant or metric name accepted (they become NATS subject tokens).
pub const MAX_NAME_LEN: usize = 128;

/// How many store outputs one [`PartitionState::poll_outputs_within`] may make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreRoom {
    /// Store outputs in all.
    pub rows: usize,
    /// Of which outputs of open windows (provisional versions).
    pub provisional: usize,
}

impl StoreRoom {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        rows: usize::MAX,
        provisional: usize::MAX,
    };
}

/// Timing settings of the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// See [`crate::config::WindowsConfig::allowed_lateness_ms`].
    pub allowed_lateness_ms: i64,
    /// See [`crate::config::WindowsConfig::correction_horizon_ms`].
    pub correction_horizon_ms: i64,
    /// See [`crate::config::WindowsConfig::idle_timeout_ms`].
    pub idle_timeout_ms: i64,
    /// See [`crate::config::WindowsConfig::forget_agents_after_ms`].
    pub forget_agents_after_ms: i64,
    /// Minimum time between two store outputs of an open window.
    pub provisional_interval_ms: i64,
    /// Minimum time between two live outputs of a window.
    pub live_throttle_ms: i64,
    /// Provisional store outputs per second this partition makes at most (0 = no limit):
    /// with more open windows than this, each is stored every `open / this` seconds instead
    /// of every `provisional_interval_ms`.
    pub provisional_rows_per_s: i64,
}

impl Settings {
    /// Settings from the configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            allowed_lateness_ms: config.windows.allowed_lateness_ms,
            correction_horizon_ms: config.windows.correction_horizon_ms,
            idle_timeout_ms: config.windows.idle_timeout_ms,
            forget_agents_after_ms: config.windows.forget_agents_after_ms,
            provisional_interval_ms: config.writer.provisional_interval_ms,
            live_throttle_ms: config.live.throttle_ms,
            provisional_rows_per_s: match config.writer.provisional_rows_per_s {
                0 => 0,
                total => (total / u64::from(config.streams.partitions.max(1))).max(1) as i64,
            },
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::from_config(&crate::config::Config::default())
    }
}

/// Something notable [`PartitionState::apply`] or [`PartitionState::tick`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// The batch was applied before; skipped.
    Duplicate {
        /// Agent.
        agent_id: String,
        /// Its seq.
        seq: u64,
    },
    /// A window closed.
    Closed(WindowId),
    /// A closed window was corrected by late data.
    Corrected {
        /// The window.
        window: WindowId,
        /// Its new revision.
        revision: u32,
    },
    /// Data beyond the correction horizon: publish it on `rtdash.late.<tenant>`. The window is
    /// unchanged. `received_at` is the partition clock; the caller may set the wall clock.
    Late(Box<LateRecord>),
    /// An entry that cannot be a window (bad window size or alignment, a tenant or metric
    /// name that is not a subject token): publish it as a dead letter.
    Invalid {
        /// Agent.
        agent_id: String,
        /// Its seq.
        seq: u64,
        /// The entry.
        entry: Box<PartialEntry>,
        /// Why.
        reason: &'static str,
    },
}

/// Cumulative counts (not checkpointed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Batches applied.
    pub batches: u64,
    /// Series deltas merged (including corrections).
    pub merged_entries: u64,
    /// Duplicate batches skipped.
    pub duplicates: u64,
    /// Windows closed.
    pub closed: u64,
    /// Late corrections merged.
    pub corrections: u64,
    /// Entries beyond the horizon.
    pub late: u64,
    /// Invalid entries.
    pub invalid: u64,
    /// Windows evicted from memory.
    pub evicted: u64,
    /// Provisional store outputs put off because the store was backlogged.
    pub provisional_deferred: u64,
}

#[derive(Clone, Debug, Default)]
struct AgentSeqs {
    seqs: SeqTracker,
    last_seen: UnixMillis,
}

type QueueEntry = Reverse<(i64, u64, usize)>;

/// What one checkpoint saves, taken by [`PartitionState::capture`].
#[derive(Debug)]
pub struct Capture {
    /// A full snapshot (else a delta).
    pub full: bool,
    /// Segment bytes and the number of window records in them; `None` when no window
    /// changed (the manifest alone moves on).
    pub data: Option<(Vec<u8>, usize)>,
    /// Everything but the windows, as of the capture.
    pub meta: PartitionMeta,
    /// (slot, uid, version) of every window in the segment.
    entries: Vec<(usize, u64, u64)>,
    /// Tombstones in the segment (restored on failure).
    tombstones: Vec<KeyRecord>,
}

/// The batch fields `apply` needs besides the entries.
struct Header<'a> {
    agent_id: &'a str,
    seq: u64,
    acked_below: u64,
    watermark: UnixMillis,
    created_at: UnixMillis,
}

/// State of one partition. See the module docs.
#[derive(Debug)]
pub struct PartitionState {
    partition: u32,
    settings: Settings,
    windows: Slab<WindowState>,
    index: hashbrown::HashMap<Arc<WindowKey>, usize>,
    /// Open windows by (end, uid, slot).
    open: BTreeSet<(i64, u64, usize)>,
    /// Closed, not yet evicted windows by (end, uid, slot).
    closed: BTreeSet<(i64, u64, usize)>,
    next_uid: u64,
    tracker: WatermarkTracker,
    /// Mirror of the tracker's sources, for checkpoints: agent -> (watermark, last_seen).
    sources: HashMap<String, (UnixMillis, UnixMillis)>,
    agents: HashMap<String, AgentSeqs>,
    clock: Option<UnixMillis>,
    message_clock: Option<UnixMillis>,
    watermark: Option<UnixMillis>,
    stream_seq: u64,
    /// Stream sequence of the last capture.
    captured_seq: u64,
    /// Windows changed since the last `poll_outputs`.
    changes: Vec<(usize, u64)>,
    store_queue: BinaryHeap<QueueEntry>,
    live_queue: BinaryHeap<QueueEntry>,
    /// Windows changed since the last capture.
    checkpoint_dirty: Vec<(usize, u64)>,
    /// Windows evicted since the last capture.
    tombstones: Vec<KeyRecord>,
    counters: Counters,
    /// Due store outputs left queued by the last poll for want of room (see
    /// [`PartitionState::poll_outputs_within`]).
    store_backlog: usize,
}

impl PartitionState {
    /// An empty partition state.
    pub fn new(partition: u32, settings: Settings) -> Self {
        Self {
            partition,
            settings,
            windows: Slab::new(),
            index: hashbrown::HashMap::new(),
            open: BTreeSet::new(),
            closed: BTreeSet::new(),
            next_uid: 1,
            tracker: WatermarkTracker::new(settings.idle_timeout_ms),
            sources: HashMap::new(),
            agents: HashMap::new(),
            clock: None,
            message_clock: None,
            watermark: None,
            stream_seq: 0,
            captured_seq: 0,
            changes: Vec::new(),
            store_queue: BinaryHeap::new(),
            live_queue: BinaryHeap::new(),
            checkpoint_dirty: Vec::new(),
            tombstones: Vec::new(),
            counters: Counters::default(),
            store_backlog: 0,
        }
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The partition watermark.
    pub fn watermark(&self) -> Option<UnixMillis> {
        self.watermark
    }

    /// The partition clock.
    pub fn clock(&self) -> Option<UnixMillis> {
        self.clock
    }

    /// The last stream sequence applied (or skipped).
    pub fn stream_seq(&self) -> u64 {
        self.stream_seq
    }

    /// Windows in memory.
    pub fn window_count(&self) -> usize {
        self.windows.len()
    }

    /// Open windows in memory.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Cumulative counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Applies one batch stored at `stream_seq`. See the module docs.
    pub fn apply(&mut self, batch: PartialBatch, stream_seq: u64) -> Vec<Effect> {
        let PartialBatch {
            agent_id,
            seq,
            acked_below,
            watermark,
            created_at,
            entries,
            ..
        } = batch;
        let header = Header {
            agent_id: &agent_id,
            seq,
            acked_below,
            watermark,
            created_at,
        };
        self.apply_parts(
            header,
            entries.into_iter().map(EntryParts::from),
            stream_seq,
        )
    }

    /// [`apply`](Self::apply) for a batch decoded with [`super::decode_batch`] (the consumer's
    /// path: no string is copied unless a window is created).
    pub fn apply_borrowed(&mut self, batch: PartialBatchRef<'_>, stream_seq: u64) -> Vec<Effect> {
        let PartialBatchRef {
            agent_id,
            seq,
            acked_below,
            watermark,
            created_at,
            entries,
            ..
        } = batch;
        let header = Header {
            agent_id: &agent_id,
            seq,
            acked_below,
            watermark,
            created_at,
        };
        self.apply_parts(
            header,
            entries.into_iter().map(EntryParts::from),
            stream_seq,
        )
    }

    fn apply_parts<S: SeriesParts>(
        &mut self,
        header: Header<'_>,
        entries: impl Iterator<Item = EntryParts<S>>,
        stream_seq: u64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.stream_seq = self.stream_seq.max(stream_seq);
        let Header {
            agent_id,
            seq,
            acked_below,
            watermark,
            created_at,
        } = header;
        let agent = match self.agents.get_mut(agent_id) {
            Some(agent) => agent,
            None => self.agents.entry(agent_id.to_owned()).or_default(),
        };
        if agent.seqs.is_applied(seq) {
            agent.seqs.raise_floor(acked_below);
            self.counters.duplicates += 1;
            effects.push(Effect::Duplicate {
                agent_id: agent_id.to_owned(),
                seq,
            });
            return effects;
        }
        agent.seqs.mark_applied(seq);
        agent.seqs.raise_floor(acked_below);
        agent.last_seen = agent.last_seen.max(created_at);
        self.counters.batches += 1;

        for entry in entries {
            self.apply_entry(agent_id, seq, entry, &mut effects);
        }

        self.tracker.observe(agent_id, watermark, created_at);
        match self.sources.get_mut(agent_id) {
            Some(mark) => {
                mark.0 = mark.0.max(watermark);
                mark.1 = mark.1.max(created_at);
            }
            None => {
                self.sources
                    .insert(agent_id.to_owned(), (watermark, created_at));
            }
        }
        self.message_clock = Some(self.message_clock.map_or(created_at, |c| c.max(created_at)));
        self.clock = Some(self.clock.map_or(created_at, |c| c.max(created_at)));
        self.advance(&mut effects);
        effects
    }

    /// Records that the message at `stream_seq` was consumed without being applied (it could
    /// not be decoded and went to the dead-letter stream).
    pub fn skip(&mut self, stream_seq: u64) {
        self.stream_seq = self.stream_seq.max(stream_seq);
    }

    fn apply_entry<S: SeriesParts>(
        &mut self,
        agent_id: &str,
        seq: u64,
        entry: EntryParts<S>,
        effects: &mut Vec<Effect>,
    ) {
        if let Some(reason) = invalid_reason(&entry) {
            self.counters.invalid += 1;
            effects.push(Effect::Invalid {
                agent_id: agent_id.to_owned(),
                seq,
                entry: Box::new(entry.into_entry()),
                reason,
            });
            return;
        }
        let end = entry.window_start + entry.window_ms;
        let mut closed = false;
        if let Some(watermark) = self.watermark {
            if watermark >= end.saturating_add(self.settings.correction_horizon_ms) {
                self.counters.late += 1;
                effects.push(Effect::Late(Box::new(LateRecord {
                    agent_id: agent_id.to_owned(),
                    seq,
                    watermark,
                    received_at: self.clock.unwrap_or(watermark),
                    entry: entry.into_entry(),
                })));
                return;
            }
            closed = watermark >= end.saturating_add(self.settings.allowed_lateness_ms);
        }
        let lookup = Lookup {
            series: &entry.series,
            start: entry.window_start,
            size_ms: entry.window_ms,
        };
        let events = entry.sketch.count();
        let slot = match self.index.get(&lookup) {
            Some(&slot) => {
                self.windows[slot].sketch.merge(&entry.sketch);
                slot
            }
            None => {
                let EntryParts {
                    series,
                    window_start,
                    window_ms,
                    sketch,
                } = entry;
                let key = Arc::new(WindowKey {
                    series: series.into_key(),
                    start: window_start,
                    size_ms: window_ms,
                });
                self.insert_window(key, sketch, closed)
            }
        };
        self.counters.merged_entries += 1;
        if closed {
            let window = &mut self.windows[slot];
            window.revision = window.revision.saturating_add(1);
            window.late_count = window.late_count.saturating_add(events);
            let (uid, revision) = (window.uid, window.revision);
            self.counters.corrections += 1;
            effects.push(Effect::Corrected {
                window: WindowId { slot, uid },
                revision,
            });
        }
        self.mark_changed(slot, closed);
    }

    fn insert_window(&mut self, key: Arc<WindowKey>, sketch: Sketch, is_final: bool) -> usize {
        let uid = self.next_uid;
        self.next_uid += 1;
        let end = key.end();
        let mut state = WindowState::new(Arc::clone(&key), uid, sketch);
        state.is_final = is_final;
        let slot = self.windows.insert(state);
        self.index.insert(key, slot);
        if is_final {
            self.closed.insert((end, uid, slot));
        } else {
            self.open.insert((end, uid, slot));
        }
        slot
    }

    fn mark_changed(&mut self, slot: usize, urgent: bool) {
        let window = &mut self.windows[slot];
        if window.version == window.captured_version {
            self.checkpoint_dirty.push((slot, window.uid));
        }
        window.version += 1;
        window.urgent |= urgent;
        if !window.change_listed {
            window.change_listed = true;
            self.changes.push((slot, window.uid));
        }
    }

    /// Recomputes the watermark from the clock and closes what it closes.
    fn advance(&mut self, effects: &mut Vec<Effect>) {
        let Some(clock) = self.clock else { return };
        let Some(watermark) = self.tracker.current(clock) else {
            return;
        };
        if self.watermark.is_some_and(|current| watermark <= current) {
            return;
        }
        self.watermark = Some(watermark);
        while let Some(&(end, uid, slot)) = self.open.first() {
            if end.saturating_add(self.settings.allowed_lateness_ms) > watermark {
                break;
            }
            self.open.pop_first();
            self.windows[slot].is_final = true;
            self.closed.insert((end, uid, slot));
            self.counters.closed += 1;
            effects.push(Effect::Closed(WindowId { slot, uid }));
            self.mark_changed(slot, true);
        }
    }

    /// Periodic work: when the partition has been silent for `silent_for_ms` (wall clock) the
    /// clock advances by that much (so idle agents drop out and windows close); agents not
    /// heard from for `forget_agents_after_ms` are forgotten; closed windows past the
    /// correction horizon whose final version is stored and checkpointed are evicted.
    pub fn tick(&mut self, silent_for_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        if silent_for_ms >= SILENCE_THRESHOLD_MS {
            if let Some(message_clock) = self.message_clock {
                let extrapolated = message_clock.saturating_add(silent_for_ms);
                self.clock = Some(self.clock.map_or(extrapolated, |c| c.max(extrapolated)));
            }
        }
        self.advance(&mut effects);
        if let Some(clock) = self.clock {
            let before = clock.saturating_sub(self.settings.forget_agents_after_ms);
            if self.sources.values().any(|(_, seen)| *seen < before)
                || self.agents.values().any(|a| a.last_seen < before)
            {
                self.tracker.forget_older_than(before);
                self.sources.retain(|_, (_, seen)| *seen >= before);
                self.agents.retain(|_, agent| agent.last_seen >= before);
            }
        }
        self.evict();
        effects
    }

    fn evict(&mut self) {
        let Some(watermark) = self.watermark else {
            return;
        };
        let mut gone = Vec::new();
        for &(end, uid, slot) in &self.closed {
            if end.saturating_add(self.settings.correction_horizon_ms) > watermark {
                break;
            }
            let window = &self.windows[slot];
            if window.stored_version >= window.version
                && window.checkpointed_version >= window.version
            {
                gone.push((end, uid, slot));
            }
        }
        for entry in gone {
            self.closed.remove(&entry);
            let window = self.windows.remove(entry.2);
            self.index.remove(&window.key);
            self.tombstones.push(KeyRecord {
                series: window.key.series.clone(),
                start: window.key.start,
                size_ms: window.key.size_ms,
            });
            self.counters.evicted += 1;
        }
    }

    /// The store confirmed it holds `version` of `window`.
    pub fn confirm_stored(&mut self, window: WindowId, version: u64) {
        if let Some(state) = self.windows.get_mut(window.slot) {
            if state.uid == window.uid {
                state.stored_version = state.stored_version.max(version);
            }
        }
    }

    /// The current time between two store outputs of an open window: the configured
    /// interval, stretched so the open windows together make at most
    /// [`Settings::provisional_rows_per_s`] store outputs per second.
    pub fn provisional_interval_ms(&self) -> i64 {
        let base = self.settings.provisional_interval_ms;
        match self.settings.provisional_rows_per_s {
            budget if budget > 0 => {
                base.max((self.open.len() as i64).saturating_mul(1_000) / budget)
            }
            _ => base,
        }
    }

    /// Window versions due at wall-clock time `now` for the store and/or live subscribers.
    pub fn poll_outputs(&mut self, now: UnixMillis) -> Vec<WindowOutput> {
        self.poll_outputs_within(now, StoreRoom::UNLIMITED)
    }

    /// Due store outputs the last [`PartitionState::poll_outputs_within`] left queued for
    /// want of room (an upper bound: some may have nothing new by their turn).
    pub fn store_backlog(&self) -> usize {
        self.store_backlog
    }

    /// [`PartitionState::poll_outputs`] with at most `room.rows` store outputs, of which at
    /// most `room.provisional` of open windows. Live outputs are never limited.
    ///
    /// - Store outputs beyond `room.rows` stay queued, due, for the next poll: a slow store
    ///   holds up neither the consumer nor the live updates (the windows stay in memory until
    ///   their final version is confirmed anyway, so waiting costs no memory).
    /// - Provisional outputs beyond `room.provisional` are put off by one provisional
    ///   interval: they are only snapshots of what the final row will hold, and making them
    ///   while the store is behind would hold up the finals.
    pub fn poll_outputs_within(&mut self, now: UnixMillis, room: StoreRoom) -> Vec<WindowOutput> {
        let provisional = self.provisional_interval_ms();
        let live = self.settings.live_throttle_ms;
        for (slot, uid) in std::mem::take(&mut self.changes) {
            let Some(window) = self.windows.get_mut(slot).filter(|w| w.uid == uid) else {
                continue;
            };
            window.change_listed = false;
            if window.urgent {
                window.urgent = false;
                self.store_queue.push(Reverse((now, uid, slot)));
                self.live_queue.push(Reverse((now, uid, slot)));
                window.store_queued = true;
                window.live_queued = true;
                continue;
            }
            if !window.store_queued {
                window.store_queued = true;
                let due = now.max(window.last_store_at.saturating_add(provisional));
                self.store_queue.push(Reverse((due, uid, slot)));
            }
            if !window.live_queued {
                window.live_queued = true;
                let due = now.max(window.last_live_at.saturating_add(live));
                self.live_queue.push(Reverse((due, uid, slot)));
            }
        }
        let mut due: Vec<(usize, bool, bool)> = Vec::new();
        let mut slots: HashMap<usize, usize> = HashMap::new();
        let (mut rows, mut provisional_rows) = (0usize, 0usize);
        self.store_backlog = 0;
        for (queue, is_store) in [(&mut self.store_queue, true), (&mut self.live_queue, false)] {
            while let Some(&Reverse((at, uid, slot))) = queue.peek() {
                if at > now {
                    break;
                }
                if is_store && rows >= room.rows {
                    self.store_backlog = queue
                        .iter()
                        .filter(|Reverse((at, _, _))| *at <= now)
                        .count();
                    break;
                }
                queue.pop();
                let Some(window) = self.windows.get_mut(slot).filter(|w| w.uid == uid) else {
                    continue;
                };
                if is_store && !window.is_final && provisional_rows >= room.provisional {
                    // Still queued, one provisional interval later.
                    queue.push(Reverse((now.saturating_add(provisional), uid, slot)));
                    self.counters.provisional_deferred += 1;
                    continue;
                }
                let pending = if is_store {
                    window.store_queued = false;
                    window.store_sent_version < window.version
                } else {
                    window.live_queued = false;
                    window.live_sent_version < window.version
                };
                if !pending {
                    continue;
                }
                let at = *slots.entry(slot).or_insert_with(|| {
                    due.push((slot, false, false));
                    due.len() - 1
                });
                if is_store {
                    rows += 1;
                    if !window.is_final {
                        provisional_rows += 1;
                    }
                    due[at].1 = true;
                } else {
                    due[at].2 = true;
                }
            }
        }
        let mut outputs = Vec::with_capacity(due.len());
        for (slot, store, live) in due {
            let window = &mut self.windows[slot];
            if store {
                window.store_sent_version = window.version;
                window.last_store_at = now;
            }
            if live {
                window.live_sent_version = window.version;
                window.last_live_at = now;
            }
            outputs.push(output_of(slot, window, now, store, live));
        }
        outputs
    }

    /// Every window whose start lies in `[from, to)` (and of `tenant`, if given), for the store:
    /// what `replay` writes.
    pub fn outputs_in_range(
        &self,
        from: UnixMillis,
        to: UnixMillis,
        tenant: Option<&str>,
        now: UnixMillis,
    ) -> Vec<WindowOutput> {
        self.windows
            .iter()
            .filter(|(_, w)| {
                w.key.start >= from
                    && w.key.start < to
                    && tenant.is_none_or(|t| w.key.series.tenant == t)
            })
            .map(|(slot, w)| output_of(slot, w, now, true, false))
            .collect()
    }

    /// Marks every window for output at once (after a restore: the store may have missed the
    /// previous owner's last writes).
    pub fn reemit_all(&mut self) {
        let slots: Vec<usize> = self.windows.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            let window = &mut self.windows[slot];
            window.urgent = true;
            window.store_sent_version = 0;
            window.live_sent_version = 0;
            if !window.change_listed {
                window.change_listed = true;
                self.changes.push((slot, window.uid));
            }
        }
    }

    /// Whether anything changed since the last capture.
    pub fn has_unsaved_changes(&self) -> bool {
        self.stream_seq > self.captured_seq
            || !self.checkpoint_dirty.is_empty()
            || !self.tombstones.is_empty()
    }

    /// Captures what a checkpoint must save: a segment of every window (`full`) or of those
    /// changed since the previous capture with tombstones of the evicted ones, and the
    /// [`meta`](Self::meta). The state goes on changing while the capture is written; report
    /// the outcome with [`capture_saved`](Self::capture_saved) or
    /// [`capture_failed`](Self::capture_failed).
    pub fn capture(&mut self, full: bool) -> Capture {
        let dirty = std::mem::take(&mut self.checkpoint_dirty);
        let tombstones = std::mem::take(&mut self.tombstones);
        let mut entries = Vec::new();
        let data = if full {
            let records: Vec<WindowRecordRef<'_>> =
                self.windows.iter().map(|(_, w)| record_ref(w)).collect();
            let count = records.len();
            entries.extend(
                self.windows
                    .iter()
                    .map(|(slot, w)| (slot, w.uid, w.version)),
            );
            let segment = SegmentRef {
                windows: records,
                tombstones: Vec::new(),
            };
            Some((encode_segment(&segment), count))
        } else {
            let mut records = Vec::new();
            for &(slot, uid) in &dirty {
                if let Some(window) = self.windows.get(slot).filter(|w| w.uid == uid) {
                    if window.version > window.captured_version {
                        records.push(record_ref(window));
                        entries.push((slot, uid, window.version));
                    }
                }
            }
            if records.is_empty() && tombstones.is_empty() {
                None
            } else {
                let count = records.len();
                let segment = SegmentRef {
                    windows: records,
                    tombstones: tombstones.iter().collect(),
                };
                Some((encode_segment(&segment), count))
            }
        };
        for &(slot, _, version) in &entries {
            self.windows[slot].captured_version = version;
        }
        self.captured_seq = self.stream_seq;
        Capture {
            full,
            data,
            meta: self.meta(),
            entries,
            tombstones,
        }
    }

    /// `capture` is durably saved: its window versions count as checkpointed (which may let
    /// windows be evicted).
    pub fn capture_saved(&mut self, capture: Capture) {
        for (slot, uid, version) in capture.entries {
            if let Some(window) = self.windows.get_mut(slot).filter(|w| w.uid == uid) {
                window.checkpointed_version = window.checkpointed_version.max(version);
            }
        }
        self.evict();
    }

    /// `capture` could not be saved: what it held is captured again next time.
    pub fn capture_failed(&mut self, capture: Capture) {
        for (slot, uid, version) in capture.entries {
            if let Some(window) = self.windows.get_mut(slot).filter(|w| w.uid == uid) {
                if window.captured_version == version {
                    // Unchanged since: list it again (a later change listed it already).
                    window.captured_version = window.checkpointed_version;
                    self.checkpoint_dirty.push((slot, uid));
                }
            }
        }
        let mut tombstones = capture.tombstones;
        tombstones.append(&mut self.tombstones);
        self.tombstones = tombstones;
        self.captured_seq = self
            .captured_seq
            .min(capture.meta.stream_seq.saturating_sub(1));
    }

    /// Everything but the windows.
    pub fn meta(&self) -> PartitionMeta {
        let mut sources: Vec<SourceRecord> = self
            .sources
            .iter()
            .map(|(agent, (watermark, last_seen))| SourceRecord {
                agent: agent.clone(),
                watermark: *watermark,
                last_seen: *last_seen,
            })
            .collect();
        sources.sort_by(|a, b| a.agent.cmp(&b.agent));
        let mut agents: Vec<AgentRecord> = self
            .agents
            .iter()
            .map(|(agent, seqs)| AgentRecord {
                agent: agent.clone(),
                floor: seqs.seqs.floor(),
                applied_above: seqs.seqs.applied_above().collect(),
                last_seen: seqs.last_seen,
            })
            .collect();
        agents.sort_by(|a, b| a.agent.cmp(&b.agent));
        PartitionMeta {
            stream_seq: self.stream_seq,
            clock: self.clock,
            message_clock: self.message_clock,
            watermark: self.watermark,
            sources,
            agents,
        }
    }

    /// Rebuilds a partition from a checkpoint: `meta`, then the segments in order (a full
    /// snapshot, then deltas). Every window is marked for output (see
    /// [`reemit_all`](Self::reemit_all)).
    pub fn restore(
        partition: u32,
        settings: Settings,
        meta: PartitionMeta,
        segments: impl IntoIterator<Item = Segment>,
    ) -> Self {
        let mut state = Self::new(partition, settings);
        for segment in segments {
            for record in segment.windows {
                let lookup = Lookup {
                    series: &record.series,
                    start: record.start,
                    size_ms: record.size_ms,
                };
                if let Some(slot) = state.index.get(&lookup).copied() {
                    state.remove_slot(slot);
                }
                let key = Arc::new(WindowKey {
                    series: record.series,
                    start: record.start,
                    size_ms: record.size_ms,
                });
                let slot = state.insert_window(key, record.sketch, record.is_final);
                let window = &mut state.windows[slot];
                window.revision = record.revision;
                window.late_count = record.late_count;
                window.version = 1;
                window.checkpointed_version = 1;
                window.captured_version = 1;
            }
            for tombstone in segment.tombstones {
                let lookup = Lookup {
                    series: &tombstone.series,
                    start: tombstone.start,
                    size_ms: tombstone.size_ms,
                };
                if let Some(slot) = state.index.get(&lookup).copied() {
                    state.remove_slot(slot);
                }
            }
        }
        for source in &meta.sources {
            state
                .tracker
                .observe(&source.agent, source.watermark, source.last_seen);
            state
                .sources
                .insert(source.agent.clone(), (source.watermark, source.last_seen));
        }
        state.tracker.restore_floor(meta.watermark);
        for agent in meta.agents {
            state.agents.insert(
                agent.agent,
                AgentSeqs {
                    seqs: SeqTracker::from_parts(agent.floor, agent.applied_above),
                    last_seen: agent.last_seen,
                },
            );
        }
        state.clock = meta.clock;
        state.message_clock = meta.message_clock;
        state.watermark = meta.watermark;
        state.stream_seq = meta.stream_seq;
        state.captured_seq = meta.stream_seq;
        state.reemit_all();
        state
    }

    fn remove_slot(&mut self, slot: usize) {
        let window = self.windows.remove(slot);
        let entry = (window.key.end(), window.uid, slot);
        self.open.remove(&entry);
        self.closed.remove(&entry);
        self.index.remove(&window.key);
    }
}

fn record_ref(window: &WindowState) -> WindowRecordRef<'_> {
    WindowRecordRef {
        series: &window.key.series,
        start: window.key.start,
        size_ms: window.key.size_ms,
        sketch: &window.sketch,
        revision: window.revision,
        is_final: window.is_final,
        late_count: window.late_count,
    }
}

fn output_of(
    slot: usize,
    window: &WindowState,
    now: UnixMillis,
    store: bool,
    live: bool,
) -> WindowOutput {
    WindowOutput {
        id: WindowId {
            slot,
            uid: window.uid,
        },
        version: window.version,
        key: Arc::clone(&window.key),
        stats: window.sketch.stats(),
        revision: window.revision,
        is_final: window.is_final,
        late_count: window.late_count,
        updated_at: now,
        store,
        live,
    }
}

fn invalid_reason<S: SeriesParts>(entry: &EntryParts<S>) -> Option<&'static str> {
    if entry.window_ms <= 0 || entry.window_ms > MAX_WINDOW_MS {
        return Some("window size out of range");
    }
    if window_start(entry.window_start, entry.window_ms) != entry.window_start {
        return Some("window start not aligned to its size");
    }
    if entry.window_start.checked_add(entry.window_ms).is_none() {
        return Some("window end overflows");
    }
    if !is_identifier(entry.series.tenant(), MAX_NAME_LEN) {
        return Some("tenant is not an identifier");
    }
    if !is_identifier(entry.series.metric(), MAX_NAME_LEN) {
        return Some("metric is not an identifier");
    }
    None
}
