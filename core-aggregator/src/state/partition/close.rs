//! Closing windows: the watermark advancing (on a batch, or on the wall clock while the
//! partition is silent), and evicting closed windows once past the correction horizon. A base
//! window closing is folded into its tier windows, which close after it.

use super::{Effect, PartitionState, SILENCE_THRESHOLD_MS};
use crate::state::snapshot::KeyRecord;
use crate::state::window::WindowId;

impl PartitionState {
    /// Recomputes the watermark from the clock and closes what it closes.
    pub(super) fn advance(&mut self, effects: &mut Vec<Effect>) {
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
            self.fold_closed(slot);
        }
        self.close_tiers(watermark);
    }

    /// Periodic work: when the partition has been silent for `silent_for_ms` (wall clock) the
    /// clock advances by that much (so idle agents drop out and windows close); agents not
    /// heard from for `forget_agents_after_ms` are forgotten; closed windows past the
    /// correction horizon whose final version is stored and checkpointed are evicted (base and
    /// tier windows alike).
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

    pub(super) fn evict(&mut self) {
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
        self.evict_tiers(watermark);
    }
}
