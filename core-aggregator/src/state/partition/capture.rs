//! Checkpoint forms of a partition: capturing what a checkpoint saves (all windows, or those
//! changed since the previous capture), and restoring a partition from a checkpoint.

use super::{AgentSeqs, Capture, PartitionState, Settings};
use crate::state::dedup::SeqTracker;
use crate::state::snapshot::{
    encode_segment, AgentRecord, PartitionMeta, Segment, SegmentRef, SourceRecord, WindowRecordRef,
};
use crate::state::window::{Lookup, WindowKey, WindowState};
use std::sync::Arc;

impl PartitionState {
    /// Whether anything changed since the last capture.
    pub fn has_unsaved_changes(&self) -> bool {
        self.stream_seq > self.captured_seq
            || !self.checkpoint_dirty.is_empty()
            || !self.tombstones.is_empty()
    }

    /// Captures what a checkpoint must save: a segment of every window (`full`) or of those
    /// changed since the previous capture with tombstones of the evicted ones, and the
    /// [`meta`](Self::meta). Tier windows are saved with their folded sketch (a change of an
    /// open base window changes the tier's output, not what it saves). The state goes on
    /// changing while the capture is written; report the outcome with
    /// [`capture_saved`](Self::capture_saved) or [`capture_failed`](Self::capture_failed).
    pub fn capture(&mut self, full: bool) -> Capture {
        let dirty = std::mem::take(&mut self.checkpoint_dirty);
        let tombstones = std::mem::take(&mut self.tombstones);
        let tier_tombstones = std::mem::take(&mut self.tier_tombstones);
        for &(slot, uid) in &dirty {
            if let Some(window) = self.windows.get_mut(slot).filter(|w| w.uid == uid) {
                window.checkpoint_listed = false;
            }
        }
        let mut entries = Vec::new();
        let mut windows = Vec::new();
        let mut tiers = Vec::new();
        let chosen: Vec<(usize, &WindowState)> = if full {
            self.windows.iter().collect()
        } else {
            dirty
                .iter()
                .filter_map(|&(slot, uid)| {
                    self.windows
                        .get(slot)
                        .filter(|w| w.uid == uid && w.version > w.captured_version)
                        .map(|w| (slot, w))
                })
                .collect()
        };
        for (slot, window) in chosen {
            entries.push((slot, window.uid, window.version));
            match window.tier {
                None => windows.push(record_ref(window)),
                Some(_) => tiers.push(record_ref(window)),
            }
        }
        let count = windows.len() + tiers.len();
        let data = if full || count > 0 || !tombstones.is_empty() || !tier_tombstones.is_empty() {
            let segment = SegmentRef {
                windows,
                tombstones: if full {
                    Vec::new()
                } else {
                    tombstones.iter().collect()
                },
                tiers,
                tier_tombstones: if full {
                    Vec::new()
                } else {
                    tier_tombstones.iter().collect()
                },
            };
            Some((encode_segment(&segment), count))
        } else {
            None
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
            tier_tombstones,
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
        for (slot, uid, _) in capture.entries {
            if let Some(window) = self.windows.get_mut(slot).filter(|w| w.uid == uid) {
                // Recorded again by the next capture, changed since or not.
                window.captured_version = window.checkpointed_version;
                if !window.checkpoint_listed {
                    window.checkpoint_listed = true;
                    self.checkpoint_dirty.push((slot, uid));
                }
            }
        }
        let mut tombstones = capture.tombstones;
        tombstones.append(&mut self.tombstones);
        self.tombstones = tombstones;
        let mut tier_tombstones = capture.tier_tombstones;
        tier_tombstones.append(&mut self.tier_tombstones);
        self.tier_tombstones = tier_tombstones;
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
    /// [`reemit_all`](Self::reemit_all)); open base windows are linked to their restored tier
    /// windows again by the first poll. Tier windows of a tier no longer configured are
    /// dropped.
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
                restored(&mut state.windows[slot], record.revision, record.late_count);
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
            for record in segment.tiers {
                let lookup = Lookup {
                    series: &record.series,
                    start: record.start,
                    size_ms: record.size_ms,
                };
                if let Some(slot) = state.tier_index.get(&lookup).copied() {
                    state.remove_slot(slot);
                }
                let Some(tier) = state.settings.tiers.index_of(record.size_ms) else {
                    continue;
                };
                state.tier_cap.count(tier, record.start, &record.series);
                let key = Arc::new(WindowKey {
                    series: record.series,
                    start: record.start,
                    size_ms: record.size_ms,
                });
                let slot = state.insert_tier_window(key, tier, 0, record.sketch, record.is_final);
                restored(&mut state.windows[slot], record.revision, record.late_count);
            }
            for tombstone in segment.tier_tombstones {
                let lookup = Lookup {
                    series: &tombstone.series,
                    start: tombstone.start,
                    size_ms: tombstone.size_ms,
                };
                if let Some(slot) = state.tier_index.get(&lookup).copied() {
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
        if window.tier.is_some() {
            self.tier_open.remove(&entry);
            self.tier_closed.remove(&entry);
            self.forget_tier(&window);
        } else {
            self.open.remove(&entry);
            self.closed.remove(&entry);
            self.index.remove(&window.key);
        }
    }
}

/// A window restored from a checkpoint: as saved, and saved.
fn restored(window: &mut WindowState, revision: u32, late_count: u64) {
    window.revision = revision;
    window.late_count = late_count;
    window.version = 1;
    window.checkpointed_version = 1;
    window.captured_version = 1;
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
