//! Handing out the window versions due for the store and for live subscribers, throttled per
//! window (see [`PartitionState::poll_outputs_within`]).

use super::{PartitionState, QueueEntry, StoreRoom};
use crate::state::window::{WindowId, WindowOutput, WindowState};
use rtdash_shared::time::UnixMillis;
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

/// Store and live outputs decided by one poll: (slot, store, live).
type Due = Vec<(usize, bool, bool)>;

impl PartitionState {
    /// The current time between two store outputs of an open window: the configured
    /// interval, stretched so the open windows together make at most
    /// [`super::Settings::provisional_rows_per_s`] store outputs per second.
    pub fn provisional_interval_ms(&self) -> i64 {
        self.stretched(self.open.len())
    }

    /// [`PartitionState::provisional_interval_ms`] for open tier windows: stretched by their
    /// own number (they come after the base windows' rows, see
    /// [`PartitionState::poll_outputs_within`]), and at least
    /// [`super::Settings::tier_interval_ms`]. They are also published live at this pace, with
    /// the same outputs: a tier window changes whenever any of its base windows does, each of
    /// its outputs merges its open base windows and encodes the whole state, and nobody
    /// watches an hour or a day closely enough to need it more often.
    pub fn tier_provisional_interval_ms(&self) -> i64 {
        self.stretched(self.tier_open.len())
            .max(self.settings.tier_interval_ms)
    }

    fn stretched(&self, open: usize) -> i64 {
        let base = self.settings.provisional_interval_ms;
        match self.settings.provisional_rows_per_s {
            budget if budget > 0 => base.max((open as i64).saturating_mul(1_000) / budget),
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
    /// - Tier windows' store outputs get the room the base windows' leave: a tier row is a
    ///   merge of base rows, so under pressure the base rows go first (a tier's final row
    ///   still goes before any provisional one, which `room.provisional` keeps below the
    ///   whole room).
    pub fn poll_outputs_within(&mut self, now: UnixMillis, room: StoreRoom) -> Vec<WindowOutput> {
        self.propagate_to_tiers();
        self.queue_changes(now);
        let mut due: Due = Vec::new();
        let mut slots: HashMap<usize, usize> = HashMap::new();
        let mut used = StoreRoom {
            rows: 0,
            provisional: 0,
        };
        self.store_backlog = 0;
        for tier in [false, true] {
            let provisional = if tier {
                self.tier_provisional_interval_ms()
            } else {
                self.provisional_interval_ms()
            };
            let mut queue = std::mem::take(if tier {
                &mut self.tier_store_queue
            } else {
                &mut self.store_queue
            });
            self.drain_store(
                &mut queue,
                now,
                provisional,
                room,
                &mut used,
                (&mut due, &mut slots),
            );
            *(if tier {
                &mut self.tier_store_queue
            } else {
                &mut self.store_queue
            }) = queue;
        }
        while let Some(&Reverse((at, uid, slot))) = self.live_queue.peek() {
            if at > now {
                break;
            }
            self.live_queue.pop();
            let Some(window) = self.windows.get_mut(slot).filter(|w| w.uid == uid) else {
                continue;
            };
            window.live_queued = false;
            if window.live_sent_version >= window.version {
                continue;
            }
            let at = *slots.entry(slot).or_insert_with(|| {
                due.push((slot, false, false));
                due.len() - 1
            });
            due[at].2 = true;
        }
        let mut outputs = Vec::with_capacity(due.len());
        for (slot, store, mut live) in due {
            let window = &mut self.windows[slot];
            // A tier window stored goes live with the same output when it has news for
            // subscribers too (its own live turn then finds nothing new).
            live |= store
                && window.tier.is_some()
                && publishes_live(window)
                && window.live_sent_version < window.version;
            // Sorted once here rather than by every read of an output (statistics, state).
            window.sketch.settle();
            if store {
                window.store_sent_version = window.version;
                window.last_store_at = now;
            }
            if live {
                window.live_sent_version = window.version;
                window.last_live_at = now;
            }
            outputs.push(self.output_of(slot, &self.windows[slot], now, store, live));
        }
        outputs
    }

    /// Queues the windows changed since the last poll: closes, corrections and restores at
    /// once, others at their throttle.
    fn queue_changes(&mut self, now: UnixMillis) {
        let base_store = self.provisional_interval_ms();
        let tier_store = self.tier_provisional_interval_ms();
        let base_live = self.settings.live_throttle_ms;
        for (slot, uid) in std::mem::take(&mut self.changes) {
            let Some(window) = self.windows.get_mut(slot).filter(|w| w.uid == uid) else {
                continue;
            };
            window.change_listed = false;
            let (store_queue, store_every, live_every) = match &window.tier {
                // Published at the pace they are stored, so that one output (one merge of the
                // open base windows, one encoding of the state) serves both.
                Some(_) => (&mut self.tier_store_queue, tier_store, tier_store),
                None => (&mut self.store_queue, base_store, base_live),
            };
            let live_wanted = publishes_live(window);
            if window.urgent {
                window.urgent = false;
                store_queue.push(Reverse((now, uid, slot)));
                window.store_queued = true;
                if live_wanted {
                    self.live_queue.push(Reverse((now, uid, slot)));
                    window.live_queued = true;
                }
                continue;
            }
            // A tier window's two turns count from its last output of either kind, so that
            // they fall due together.
            let (last_store, last_live) = match window.tier {
                Some(_) => {
                    let last = window.last_store_at.max(window.last_live_at);
                    (last, last)
                }
                None => (window.last_store_at, window.last_live_at),
            };
            if !window.store_queued {
                window.store_queued = true;
                let due = now.max(last_store.saturating_add(store_every));
                store_queue.push(Reverse((due, uid, slot)));
            }
            if live_wanted && !window.live_queued {
                window.live_queued = true;
                let due = now.max(last_live.saturating_add(live_every));
                self.live_queue.push(Reverse((due, uid, slot)));
            }
        }
    }

    /// Pops the due store outputs of `queue` within `room` (counting into `used`).
    fn drain_store(
        &mut self,
        queue: &mut BinaryHeap<QueueEntry>,
        now: UnixMillis,
        provisional: i64,
        room: StoreRoom,
        used: &mut StoreRoom,
        (due, slots): (&mut Due, &mut HashMap<usize, usize>),
    ) {
        while let Some(&Reverse((at, uid, slot))) = queue.peek() {
            if at > now {
                break;
            }
            if used.rows >= room.rows {
                self.store_backlog += queue
                    .iter()
                    .filter(|Reverse((at, _, _))| *at <= now)
                    .count();
                break;
            }
            queue.pop();
            let Some(window) = self.windows.get_mut(slot).filter(|w| w.uid == uid) else {
                continue;
            };
            if !window.is_final && used.provisional >= room.provisional {
                // Still queued, one provisional interval later.
                queue.push(Reverse((now.saturating_add(provisional), uid, slot)));
                self.counters.provisional_deferred += 1;
                continue;
            }
            window.store_queued = false;
            if window.store_sent_version >= window.version {
                continue;
            }
            used.rows += 1;
            if !window.is_final {
                used.provisional += 1;
            }
            let at = *slots.entry(slot).or_insert_with(|| {
                due.push((slot, false, false));
                due.len() - 1
            });
            due[at].1 = true;
        }
    }

    /// Every base window whose start lies in `[from, to)` (and of `tenant`, if given), for the
    /// store: what `replay` writes (with [`PartitionState::tier_outputs_in_range`]).
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
                w.tier.is_none()
                    && w.key.start >= from
                    && w.key.start < to
                    && tenant.is_none_or(|t| w.key.series.tenant == t)
            })
            .map(|(slot, w)| self.output_of(slot, w, now, true, false))
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

    /// The output of `window` (at `slot`) now: its statistics and, where wanted, its state,
    /// from the sketch it serves (a tier window's merged with its open base windows).
    pub(super) fn output_of(
        &self,
        slot: usize,
        window: &WindowState,
        now: UnixMillis,
        store: bool,
        live: bool,
    ) -> WindowOutput {
        let mut sketch = self.served_sketch(window);
        if let Cow::Owned(merged) = &mut sketch {
            merged.settle();
        }
        let spec = sketch.spec();
        let live_state = spec.values || spec.unique;
        let state = ((store && self.settings.write_state) || (live && live_state))
            .then(|| sketch.to_state());
        WindowOutput {
            id: WindowId {
                slot,
                uid: window.uid,
            },
            version: window.version,
            key: Arc::clone(&window.key),
            stats: sketch.stats(),
            revision: window.revision,
            is_final: window.is_final,
            late_count: window.late_count,
            updated_at: now,
            state,
            live_state,
            tier: window.tier.as_ref().map(|parts| parts.index),
            store,
            live,
        }
    }
}

/// Whether `window`'s versions are published live: every base window, and every tier window
/// but one as long as its base windows (it repeats them: stored, not published again).
fn publishes_live(window: &WindowState) -> bool {
    window
        .tier
        .as_ref()
        .is_none_or(|parts| parts.base_ms != window.key.size_ms)
}
