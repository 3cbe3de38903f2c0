//! One metric window of one series (a base window or a rollup tier window), as the partition
//! state keeps it.

use super::borrowed::SeriesParts;
use hashbrown::Equivalent;
use rtdash_shared::messages::{WindowUpdate, WindowUpdateView};
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::{Sketch, Stats};
use rtdash_shared::time::UnixMillis;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Identity of a window: series, start and size.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WindowKey {
    /// The series.
    pub series: SeriesKey,
    /// Inclusive start.
    pub start: UnixMillis,
    /// Size in milliseconds.
    pub size_ms: i64,
}

impl WindowKey {
    /// Exclusive end.
    pub fn end(&self) -> UnixMillis {
        self.start.saturating_add(self.size_ms)
    }
}

impl Hash for WindowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Lookup {
            series: &self.series,
            start: self.start,
            size_ms: self.size_ms,
        }
        .hash(state);
    }
}

/// A window identity made of borrowed parts (an owned or a borrowed series key), for lookups
/// without building a [`WindowKey`]. Hashes and compares exactly like [`WindowKey`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lookup<'a, S> {
    pub series: &'a S,
    pub start: UnixMillis,
    pub size_ms: i64,
}

impl<S: SeriesParts> Hash for Lookup<'_, S> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let series = self.series;
        state.write(series.tenant().as_bytes());
        state.write_u8(0xff);
        state.write(series.metric().as_bytes());
        state.write_u8(0xff);
        state.write_usize(series.dim_count());
        for index in 0..series.dim_count() {
            let (name, value) = series.dim(index);
            state.write(name.as_bytes());
            state.write_u8(0xff);
            match value {
                None => state.write_u8(0),
                Some(value) => {
                    state.write_u8(1);
                    state.write(value.as_bytes());
                    state.write_u8(0xff);
                }
            }
        }
        state.write_i64(self.start);
        state.write_i64(self.size_ms);
    }
}

impl<S: SeriesParts> Equivalent<Arc<WindowKey>> for Lookup<'_, S> {
    fn equivalent(&self, key: &Arc<WindowKey>) -> bool {
        let (a, b) = (self.series, &key.series);
        self.start == key.start
            && self.size_ms == key.size_ms
            && a.tenant() == b.tenant
            && a.metric() == b.metric
            && a.dim_count() == b.dims.len()
            && (0..a.dim_count()).all(|i| a.dim(i) == b.dim(i))
    }
}

/// Handle on a window in a [`super::PartitionState`]: its slot plus a unique id, so a handle
/// outliving its window (an evicted window's slot is reused) is recognised as stale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowId {
    pub(crate) slot: usize,
    pub(crate) uid: u64,
}

/// What a tier window has besides a base window's state. Its [`WindowState::sketch`] is
/// `folded`: the merge of its base windows that have closed; the ones still open are merged in
/// at output time.
#[derive(Debug)]
pub(crate) struct TierParts {
    /// The tier (index in [`super::TierSet`]).
    pub index: u8,
    /// Length of the base windows that feed it.
    pub base_ms: i64,
    /// Its base windows still open (linked at output time).
    pub open_parts: Vec<WindowId>,
}

/// A window's state: a base window (a metric's own window) or a tier window.
#[derive(Debug)]
pub(crate) struct WindowState {
    pub key: Arc<WindowKey>,
    pub uid: u64,
    /// A base window's merged deltas; a tier window's folded base windows.
    pub sketch: Sketch,
    /// `Some` for a tier window.
    pub tier: Option<Box<TierParts>>,
    /// For a base window: the tier windows it feeds, once linked (`None` until then).
    pub links: Option<Box<[WindowId]>>,
    pub revision: u32,
    pub is_final: bool,
    pub late_count: u64,
    /// Bumped by every change (for a tier window, also by a change of an open base window of
    /// it, which its checkpointed form does not hold).
    pub version: u64,
    /// Whether the checkpoint's dirty list holds this window (changed since the last capture).
    pub checkpoint_listed: bool,
    /// Version saved by the last durable checkpoint (0: never).
    pub checkpointed_version: u64,
    /// Version included in the last capture (possibly still being written).
    pub captured_version: u64,
    /// Latest version the store confirmed.
    pub stored_version: u64,
    /// Latest version handed to the store / to live subscribers.
    pub store_sent_version: u64,
    pub live_sent_version: u64,
    /// When the store / live output last got this window (wall clock, ms).
    pub last_store_at: i64,
    pub last_live_at: i64,
    /// Whether an output-queue entry for this window is outstanding with a due time at or
    /// before the next throttle slot.
    pub store_queued: bool,
    pub live_queued: bool,
    /// Whether the change list holds this window.
    pub change_listed: bool,
    /// Whether the last change must go out without throttling (close, correction, restore).
    pub urgent: bool,
}

impl WindowState {
    pub fn new(key: Arc<WindowKey>, uid: u64, sketch: Sketch) -> Self {
        Self {
            key,
            uid,
            sketch,
            tier: None,
            links: None,
            revision: 0,
            is_final: false,
            late_count: 0,
            version: 0,
            checkpoint_listed: false,
            checkpointed_version: 0,
            captured_version: 0,
            stored_version: 0,
            store_sent_version: 0,
            live_sent_version: 0,
            last_store_at: i64::MIN / 2,
            last_live_at: i64::MIN / 2,
            store_queued: false,
            live_queued: false,
            change_listed: false,
            urgent: false,
        }
    }
}

/// A version of a window to write and/or publish, with its statistics computed.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowOutput {
    /// The window (for the store's confirmation).
    pub id: WindowId,
    /// Which version this is.
    pub version: u64,
    /// The window's identity.
    pub key: Arc<WindowKey>,
    /// Statistics.
    pub stats: Stats,
    /// Revision (0 until closed, +1 per correction).
    pub revision: u32,
    /// Whether the window is closed.
    pub is_final: bool,
    /// Events merged after the close.
    pub late_count: u64,
    /// When this version was produced (wall clock).
    pub updated_at: UnixMillis,
    /// The window's sketch as text ([`rtdash_shared::sketch::Sketch::to_state`]), stored in
    /// the same row as the numbers; `None` when nothing needs it (see
    /// [`crate::state::Settings::write_state`] and [`WindowOutput::live_state`]).
    pub state: Option<String>,
    /// Whether live updates carry [`WindowOutput::state`]: the metric has values or a unique
    /// key (count-only stats merge exactly without it).
    pub live_state: bool,
    /// The tier (index in [`super::TierSet`]) of a tier window; `None` for a base window.
    pub tier: Option<u8>,
    /// Write it to the store.
    pub store: bool,
    /// Publish it live.
    pub live: bool,
}

impl WindowOutput {
    /// The message for live subscribers (and the alert hook).
    pub fn to_update(&self) -> WindowUpdate {
        WindowUpdate {
            tenant_id: self.key.series.tenant.clone(),
            metric: self.key.series.metric.clone(),
            dimensions: self.key.series.dims.iter().cloned().collect(),
            window_start: self.key.start,
            window_end: self.key.end(),
            stats: self.stats.clone(),
            revision: self.revision,
            is_final: self.is_final,
            late_count: self.late_count,
            updated_at: self.updated_at,
            state: self.live_state().map(str::to_owned),
        }
    }

    /// The state live updates carry, if any.
    pub fn live_state(&self) -> Option<&str> {
        self.state.as_deref().filter(|_| self.live_state)
    }

    /// The same message borrowed from this version (what live subscribers are sent).
    pub fn view(&self) -> WindowUpdateView<'_> {
        WindowUpdateView {
            tenant_id: &self.key.series.tenant,
            metric: &self.key.series.metric,
            dimensions: &self.key.series.dims,
            window_start: self.key.start,
            window_end: self.key.end(),
            stats: &self.stats,
            revision: self.revision,
            is_final: self.is_final,
            late_count: self.late_count,
            updated_at: self.updated_at,
            state: self.live_state(),
        }
    }
}
