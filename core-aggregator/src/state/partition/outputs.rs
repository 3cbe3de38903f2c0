//! Handing out the window versions due for the store and for live subscribers, throttled per
//! window (see [`PartitionState::poll_outputs_within`]).

use super::{PartitionState, StoreRoom};
use crate::state::window::{WindowId, WindowOutput, WindowState};
use rtdash_shared::time::UnixMillis;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

impl PartitionState {
    /// The current time between two store outputs of an open window: the configured
    /// interval, stretched so the open windows together make at most
    /// [`super::Settings::provisional_rows_per_s`] store outputs per second.
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
