//! Rollup tier windows: a tier window of a series is the merge of that series' base windows
//! inside it, kept by the partition that keeps them.
//!
//! - Its sketch is `folded`: the merge of its base windows that have closed. Base windows still
//!   open are *linked* to it (`open_parts`) and merged in when it is output, so the hot path
//!   (merging partial entries into base windows) never touches a tier window.
//! - Linking happens at output time: a base window changed since the last poll is linked to
//!   its tier windows (created then, or when a base window closes first) and the tier windows
//!   are marked for output ([`PartitionState::propagate_to_tiers`]).
//! - When a base window closes its final sketch is folded in ([`PartitionState::fold_closed`]);
//!   a correction of a closed base window folds the correction's delta in
//!   ([`PartitionState::fold_correction`]): a tier window already closed gets revision + 1 and
//!   its late count raised, like a base window. Either way `folded` is the merge of the closed
//!   base windows, which is what checkpoints save.
//! - A tier window closes once the watermark passes its end plus the allowed lateness (after
//!   its base windows, which all end earlier or at the same time) and is evicted like a base
//!   window: past the correction horizon, with its final version stored and checkpointed.
//! - Memory: at most [`Settings::max_tier_series`](super::Settings::max_tier_series) series
//!   per (tier, tier window, tenant, metric, dimension set); further base windows fold into that
//!   tier window's overflow series ([`overflow_series`]).

use super::PartitionState;
use crate::state::snapshot::KeyRecord;
use crate::state::tiers::{overflow_series, tier_key, MAX_TIERS};
use crate::state::window::{Lookup, TierParts, WindowId, WindowKey, WindowState};
use rtdash_shared::sketch::{Sketch, SketchSpec};
use std::borrow::Cow;
use std::sync::Arc;

/// The tier windows one base window feeds.
pub(super) type Links = ([WindowId; MAX_TIERS], usize);

impl PartitionState {
    /// Links the open base windows changed since the last poll to their tier windows and
    /// marks those for output (their open part changed). Called by `poll_outputs`.
    pub(super) fn propagate_to_tiers(&mut self) {
        if self.settings.tiers.is_empty() {
            return;
        }
        for i in 0..self.changes.len() {
            let (slot, uid) = self.changes[i];
            let Some(window) = self.windows.get(slot).filter(|w| w.uid == uid) else {
                continue;
            };
            if window.tier.is_some() || window.is_final {
                continue;
            }
            let (links, len) = self.links_of(slot, false);
            for link in &links[..len] {
                self.mark_output_changed(*link);
            }
        }
    }

    /// A base window closed: its final sketch is folded into its tier windows.
    pub(super) fn fold_closed(&mut self, slot: usize) {
        if self.settings.tiers.is_empty() {
            return;
        }
        let (links, len) = self.links_of(slot, false);
        if len == 0 {
            return;
        }
        let base = WindowId {
            slot,
            uid: self.windows[slot].uid,
        };
        // Taken out for the folds and put back: no copy of the sketch.
        let sketch = std::mem::replace(
            &mut self.windows[slot].sketch,
            Sketch::new(SketchSpec::COUNT),
        );
        for link in &links[..len] {
            if let Some(tier) = self.tier_window_mut(*link) {
                tier.sketch.merge(&sketch);
                if let Some(parts) = &mut tier.tier {
                    parts.open_parts.retain(|part| *part != base);
                }
                self.mark_changed(link.slot, false);
            }
        }
        self.windows[slot].sketch = sketch;
    }

    /// `delta` (of `events` events) was merged into the closed base window at `slot` as a
    /// correction: it is folded into the base window's tier windows; a closed one is corrected
    /// (revision + 1, late count raised, written at once).
    pub(super) fn fold_correction(&mut self, slot: usize, delta: &Sketch, events: u64) {
        if self.settings.tiers.is_empty() {
            return;
        }
        let (links, len) = self.links_of(slot, true);
        for link in &links[..len] {
            let Some(tier) = self.tier_window_mut(*link) else {
                continue;
            };
            tier.sketch.merge(delta);
            let corrected = tier.is_final;
            if corrected {
                tier.revision = tier.revision.saturating_add(1);
                tier.late_count = tier.late_count.saturating_add(events);
                self.counters.tier_corrections += 1;
            }
            self.mark_changed(link.slot, corrected);
        }
    }

    /// Closes the tier windows the watermark closes (after the base windows it closed, which
    /// were folded in as they closed).
    pub(super) fn close_tiers(&mut self, watermark: i64) {
        while let Some(&(end, uid, slot)) = self.tier_open.first() {
            if end.saturating_add(self.settings.allowed_lateness_ms) > watermark {
                break;
            }
            self.tier_open.pop_first();
            self.windows[slot].is_final = true;
            self.tier_closed.insert((end, uid, slot));
            self.counters.tier_closed += 1;
            self.mark_changed(slot, true);
        }
    }

    /// Evicts the closed tier windows past the correction horizon whose final version is
    /// stored and checkpointed.
    pub(super) fn evict_tiers(&mut self, watermark: i64) {
        let mut gone = Vec::new();
        for &(end, uid, slot) in &self.tier_closed {
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
            self.tier_closed.remove(&entry);
            let window = self.windows.remove(entry.2);
            self.forget_tier(&window);
            self.tier_tombstones.push(KeyRecord {
                series: window.key.series.clone(),
                start: window.key.start,
                size_ms: window.key.size_ms,
            });
            self.counters.tier_evicted += 1;
        }
    }

    /// Drops a removed tier window from the tier index and the series count.
    pub(super) fn forget_tier(&mut self, window: &WindowState) {
        self.tier_index.remove(&window.key);
        if let Some(parts) = &window.tier {
            self.tier_cap
                .release(parts.index, window.key.start, &window.key.series);
        }
    }

    /// The sketch a tier window serves now: `folded` merged with its open base windows (a base
    /// window's own sketch for a base window).
    pub(super) fn served_sketch<'a>(&'a self, window: &'a WindowState) -> Cow<'a, Sketch> {
        let parts = match &window.tier {
            Some(parts) if !parts.open_parts.is_empty() => parts,
            _ => return Cow::Borrowed(&window.sketch),
        };
        let mut sketch = window.sketch.clone();
        for part in &parts.open_parts {
            if let Some(base) = self.windows.get(part.slot).filter(|w| w.uid == part.uid) {
                sketch.merge(&base.sketch);
            }
        }
        Cow::Owned(sketch)
    }

    /// Links every open base window to its tier windows (what the first poll after their
    /// change does): for readers that take outputs without polling (`replay`).
    pub fn link_open_windows(&mut self) {
        if self.settings.tiers.is_empty() {
            return;
        }
        let open: Vec<usize> = self.open.iter().map(|&(_, _, slot)| slot).collect();
        for slot in open {
            self.links_of(slot, false);
        }
    }

    /// Every tier window lying wholly in `[from, to)` (and of `tenant`, if given), for the
    /// store: what `replay` writes besides the base windows (a tier window only partly in the
    /// range would be rebuilt from part of its base windows).
    pub fn tier_outputs_in_range(
        &self,
        from: i64,
        to: i64,
        tenant: Option<&str>,
        now: i64,
    ) -> Vec<crate::state::WindowOutput> {
        self.tier_open
            .iter()
            .chain(&self.tier_closed)
            .map(|&(_, _, slot)| (slot, &self.windows[slot]))
            .filter(|(_, w)| {
                w.key.start >= from
                    && w.key.end() <= to
                    && tenant.is_none_or(|t| w.key.series.tenant == t)
            })
            .map(|(slot, w)| self.output_of(slot, w, now, true, false))
            .collect()
    }

    /// The tier windows the base window at `slot` feeds, linking it on first use: each tier
    /// window is found or created (its own series, or the overflow series when its group is
    /// full), and an open base window joins its open parts. A tier window created for a
    /// `correction` after the watermark closed it is created closed (like a base window first
    /// seen after its close); otherwise it is created open and the watermark closes it.
    fn links_of(&mut self, slot: usize, correction: bool) -> Links {
        let mut links = ([WindowId::default(); MAX_TIERS], 0);
        if let Some(known) = &self.windows[slot].links {
            links.1 = known.len();
            links.0[..known.len()].copy_from_slice(known);
            return links;
        }
        let window = &self.windows[slot];
        let key = Arc::clone(&window.key);
        let spec = window.sketch.spec();
        let base = WindowId {
            slot,
            uid: window.uid,
        };
        let open = !window.is_final;
        let fed: Vec<u8> = self.settings.tiers.fed_by(key.size_ms).collect();
        for tier in fed {
            let tier_slot = self.tier_window_for(&key, tier, spec, correction);
            let tier_window = &mut self.windows[tier_slot];
            if let Some(parts) = &mut tier_window.tier {
                if parts.base_ms == 0 {
                    // Restored from a checkpoint, which does not say.
                    parts.base_ms = key.size_ms;
                }
                if open {
                    parts.open_parts.push(base);
                }
            }
            links.0[links.1] = WindowId {
                slot: tier_slot,
                uid: tier_window.uid,
            };
            links.1 += 1;
        }
        self.windows[slot].links = Some(links.0[..links.1].into());
        links
    }

    /// The slot of base window `base`'s tier window in `tier`, created if needed (closed if
    /// `may_be_closed` and the watermark closed it).
    fn tier_window_for(
        &mut self,
        base: &WindowKey,
        tier: u8,
        spec: SketchSpec,
        may_be_closed: bool,
    ) -> usize {
        let tier_ms = self.settings.tiers.ms(tier);
        let own = Lookup {
            series: &base.series,
            start: rtdash_shared::window::window_start(base.start, tier_ms),
            size_ms: tier_ms,
        };
        if let Some(&slot) = self.tier_index.get(&own) {
            return slot;
        }
        let series = if self.tier_cap.admit(tier, own.start, &base.series, false) {
            base.series.clone()
        } else {
            self.counters.tier_overflowed += 1;
            let overflow = overflow_series(&base.series, self.partition);
            let lookup = Lookup {
                series: &overflow,
                start: own.start,
                size_ms: tier_ms,
            };
            if let Some(&slot) = self.tier_index.get(&lookup) {
                return slot;
            }
            self.tier_cap.admit(tier, own.start, &overflow, true);
            overflow
        };
        let key = Arc::new(tier_key(series, base, tier_ms));
        let closed = may_be_closed
            && self.watermark.is_some_and(|watermark| {
                watermark >= key.end().saturating_add(self.settings.allowed_lateness_ms)
            });
        let slot = self.insert_tier_window(key, tier, base.size_ms, Sketch::new(spec), closed);
        // Saved by the next checkpoint even while empty, so that a restore counts it against
        // the bound and folds the same series into the overflow series as before.
        self.mark_changed(slot, false);
        slot
    }

    /// Adds a tier window (created, or restored from a checkpoint).
    pub(super) fn insert_tier_window(
        &mut self,
        key: Arc<WindowKey>,
        tier: u8,
        base_ms: i64,
        folded: Sketch,
        is_final: bool,
    ) -> usize {
        let uid = self.next_uid;
        self.next_uid += 1;
        let end = key.end();
        let mut state = WindowState::new(Arc::clone(&key), uid, folded);
        state.is_final = is_final;
        state.tier = Some(Box::new(TierParts {
            index: tier,
            base_ms,
            open_parts: Vec::new(),
        }));
        let slot = self.windows.insert(state);
        self.tier_index.insert(key, slot);
        if is_final {
            self.tier_closed.insert((end, uid, slot));
        } else {
            self.tier_open.insert((end, uid, slot));
        }
        slot
    }

    fn tier_window_mut(&mut self, id: WindowId) -> Option<&mut WindowState> {
        self.windows
            .get_mut(id.slot)
            .filter(|w| w.uid == id.uid && w.tier.is_some())
    }

    /// A tier window's open part changed: it is due for output, not for a checkpoint (its
    /// folded state did not change).
    fn mark_output_changed(&mut self, id: WindowId) {
        let Some(window) = self.tier_window_mut(id) else {
            return;
        };
        window.version += 1;
        if !window.change_listed {
            window.change_listed = true;
            self.changes.push((id.slot, id.uid));
        }
    }
}
