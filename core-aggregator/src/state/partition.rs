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
//!
//! Rollup tiers: each base window also feeds the tier windows holding it (an hour, a day):
//! `tiers.rs` keeps them, off the hot path (see its docs).
//!
//! This file holds the state and `apply`; `close.rs` the watermark, `tick` and eviction,
//! `outputs.rs` `poll_outputs`, `capture.rs` the checkpoint forms, `tiers.rs` the tier windows.

mod capture;
mod close;
mod outputs;
mod tiers;

use super::borrowed::{EntryParts, PartialBatchRef, SeriesParts};
use super::dedup::SeqTracker;
use super::settings::{Settings, StoreRoom};
use super::snapshot::{KeyRecord, PartitionMeta};
use super::tiers::TierCap;
use super::window::{Lookup, WindowId, WindowKey, WindowState};
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
    /// Tier windows closed.
    pub tier_closed: u64,
    /// Tier windows corrected after their close (by corrections of their base windows).
    pub tier_corrections: u64,
    /// Base windows folded into a tier window's overflow series (the tier window held
    /// [`Settings::max_tier_series`] series of their group).
    pub tier_overflowed: u64,
    /// Tier windows evicted from memory.
    pub tier_evicted: u64,
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
    /// Tier tombstones in the segment (restored on failure).
    tier_tombstones: Vec<KeyRecord>,
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
    /// Base and tier windows.
    windows: Slab<WindowState>,
    /// Base windows by key.
    index: hashbrown::HashMap<Arc<WindowKey>, usize>,
    /// Open base windows by (end, uid, slot).
    open: BTreeSet<(i64, u64, usize)>,
    /// Closed, not yet evicted base windows by (end, uid, slot).
    closed: BTreeSet<(i64, u64, usize)>,
    /// Tier windows by key (apart from base windows: a tier may have a base window's length).
    tier_index: hashbrown::HashMap<Arc<WindowKey>, usize>,
    /// Open tier windows by (end, uid, slot).
    tier_open: BTreeSet<(i64, u64, usize)>,
    /// Closed, not yet evicted tier windows by (end, uid, slot).
    tier_closed: BTreeSet<(i64, u64, usize)>,
    /// Series per tier window and group.
    tier_cap: TierCap,
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
    /// Store outputs of tier windows: served after the base windows' (see
    /// [`PartitionState::poll_outputs_within`]).
    tier_store_queue: BinaryHeap<QueueEntry>,
    live_queue: BinaryHeap<QueueEntry>,
    /// Windows changed since the last capture.
    checkpoint_dirty: Vec<(usize, u64)>,
    /// Base windows evicted since the last capture.
    tombstones: Vec<KeyRecord>,
    /// Tier windows evicted since the last capture.
    tier_tombstones: Vec<KeyRecord>,
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
            tier_index: hashbrown::HashMap::new(),
            tier_open: BTreeSet::new(),
            tier_closed: BTreeSet::new(),
            tier_cap: TierCap::new(settings.max_tier_series),
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
            tier_store_queue: BinaryHeap::new(),
            live_queue: BinaryHeap::new(),
            checkpoint_dirty: Vec::new(),
            tombstones: Vec::new(),
            tier_tombstones: Vec::new(),
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

    /// Base windows in memory.
    pub fn window_count(&self) -> usize {
        self.windows.len() - self.tier_window_count()
    }

    /// Tier windows in memory.
    pub fn tier_window_count(&self) -> usize {
        self.tier_open.len() + self.tier_closed.len()
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
                if closed {
                    self.fold_correction(slot, &entry.sketch, events);
                }
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
                let delta = closed.then(|| sketch.clone());
                let slot = self.insert_window(key, sketch, closed);
                if let Some(delta) = delta {
                    self.fold_correction(slot, &delta, events);
                }
                slot
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
        if !window.checkpoint_listed {
            window.checkpoint_listed = true;
            self.checkpoint_dirty.push((slot, window.uid));
        }
        window.version += 1;
        window.urgent |= urgent;
        if !window.change_listed {
            window.change_listed = true;
            self.changes.push((slot, window.uid));
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
