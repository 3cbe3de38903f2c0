//! The aggregator's mutable state: what the per-event path ([`super::update`]) finds and
//! fills, the drain ([`super::drain`]) takes, and the keys ([`super::key`]) identify.

use crate::codec::same_bytes;
use crate::metric::CompiledMetric;
use crate::sketch::Sketch;
use crate::time::UnixMillis;
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Counters of what [`Aggregator::add`](super::Aggregator::add) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddOutcome {
    /// Series deltas updated (one per matched metric and dimension set).
    pub series_updated: usize,
    /// Of those, how many were folded into an overflow series.
    pub overflowed: usize,
}

/// Series ceilings by tenant: the most series per (metric, dimension set, window) any of the
/// tenant's metrics admits, whatever its definition says. Tenants not listed have none.
pub type SeriesCeilings = HashMap<String, u32>;

// Kept beside `Work`, whose per-event methods count into it, so that this module depends on no
// other module of the aggregator.

/// The mutable state of an [`Aggregator`](super::Aggregator).
///
/// The per-event work is one hash lookup per matched metric: a [`Combo`] is one combination
/// of (window, metric, tenant, values of every dimension of the metric) seen since the last
/// drain, found by a 64-bit hash of those bytes (equal hashes are compared in full), and it
/// lists the delta [`Series`] of each of the metric's dimension sets (a rollup's values are a
/// part of the full set's, so one combination always feeds the same series). A combination
/// is resolved into its series only when it is first seen: the series are looked up by the
/// group (window, tenant, metric) and a short key of the dimension set's values alone (see
/// [`Work::write_inner_key`]), and the canonical series key is only written for a series new
/// since the last drain (for the series cap) and at drain. Combinations that touched an
/// overflow series are not remembered (they take the resolving path on every event), so that
/// there are never more combinations than admitted series: memory stays bounded by the cap.
#[derive(Debug)]
pub(super) struct Work {
    /// The delta of each series with a pending delta, in creation order since the last drain
    /// (apart from [`Work::series`] so that updates touch only the sketches).
    pub(super) sketches: Vec<Sketch>,
    /// What each of `sketches` is the delta of.
    pub(super) series: Vec<Series>,
    /// Updates with a value or a unique hash not yet recorded into `sketches` (see
    /// [`Work::apply_log`]).
    pub(super) log: Vec<Update>,
    /// `log` grouped by series while it is applied (reused).
    pub(super) sorted_log: Vec<Update>,
    /// Per series, where its updates start in `sorted_log` (reused).
    pub(super) log_offsets: Vec<u32>,
    /// Indices into `series` by [`Series::hash`] (collisions are compared).
    pub(super) series_index: HashTable<u32>,
    /// Combinations seen since the last drain, by [`Combo::hash`] (collisions are compared).
    pub(super) combos: HashTable<Combo>,
    /// The series of combinations of metrics with more than [`INLINE_SERIES`] dimension sets.
    pub(super) combo_series: Vec<u32>,
    /// Delta groups, in creation order since the last drain.
    pub(super) groups: Vec<Group>,
    /// Indices into `groups` by a hash of their [`GroupKey`] (collisions are compared).
    pub(super) group_index: HashMap<u64, Vec<usize>, RandomState>,
    /// Hashes combinations, series and group keys.
    pub(super) hasher: RandomState,
    /// The groups of the latest lookups, most recent first: an event feeds several metrics,
    /// each its own group, and the events of a request mostly share tenant and window.
    pub(super) recent_groups: [usize; RECENT_GROUPS],
    /// The tenants' series ceilings (read when a series is new, not per event).
    pub(super) ceilings: Arc<SeriesCeilings>,
    /// Series admitted per (tenant, metric, dimension set, window), for the series cap.
    pub(super) admitted: Vec<(CapKey, HashSet<u64, RandomState>)>,
    /// Indices into `admitted` by a hash of their key (collisions are compared), so that a
    /// lookup allocates nothing.
    pub(super) admitted_index: HashMap<u64, Vec<usize>, RandomState>,
    /// Reused canonical key buffer (window prefix and canonical series bytes).
    pub(super) scratch: Vec<u8>,
    /// Reused inner key buffer.
    pub(super) inner: Vec<u8>,
    /// Reused combination key buffer (see [`Work::write_combo_key`]).
    pub(super) combo_key: Vec<u8>,
    /// Reused buffer holding the canonical text (UTF-8) of the current event's dimension
    /// values.
    pub(super) text: Vec<u8>,
    /// Reused buffer for the canonical text of values that are neither strings nor integers.
    pub(super) other_text: String,
    /// Byte range of each dimension value in `text` (`None`: absent).
    pub(super) ranges: Vec<Option<(usize, usize)>>,
}

/// A deferred [`Sketch::record`] of a value and/or unique hash into one series.
///
/// Recording into a sketch touches its value statistics, digest buffer and HyperLogLog, each
/// its own allocation: spread over the sketches of every series, that is a few cache misses
/// per event. Updates are therefore logged (a sequential write) and applied
/// [`LOG_CAPACITY`] at a time grouped by series, in arrival order within each series, so that
/// every sketch receives exactly the same records in the same order, once per batch while its
/// memory is in cache.
///
/// 24 bytes, as before weights: the event's weight (below 2^31) shares a word with the
/// "has a unique hash" flag, and "no value" is a NaN (event values are finite).
#[derive(Clone, Copy, Debug)]
pub(super) struct Update {
    pub(super) series: u32,
    /// The weight, and [`HAS_UNIQUE`].
    weight_flags: u32,
    /// NaN: no value.
    value: f64,
    unique: u64,
}

/// The flag bit of [`Update::weight_flags`].
const HAS_UNIQUE: u32 = 1 << 31;

impl Update {
    #[inline]
    pub(super) fn new(series: u32, value: Option<f64>, unique: Option<u64>, weight: u32) -> Self {
        Self {
            series,
            weight_flags: (weight & !HAS_UNIQUE) | if unique.is_some() { HAS_UNIQUE } else { 0 },
            value: value.unwrap_or(f64::NAN),
            unique: unique.unwrap_or(0),
        }
    }

    #[inline]
    pub(super) fn value(&self) -> Option<f64> {
        (!self.value.is_nan()).then_some(self.value)
    }

    #[inline]
    pub(super) fn unique(&self) -> Option<u64> {
        (self.weight_flags & HAS_UNIQUE != 0).then_some(self.unique)
    }

    #[inline]
    pub(super) fn weight(&self) -> u32 {
        self.weight_flags & !HAS_UNIQUE
    }
}

/// Updates logged before they are applied.
pub(super) const LOG_CAPACITY: usize = 8192;

/// One delta series: a dimension set's values within a [`Group`].
#[derive(Debug)]
pub(super) struct Series {
    /// Hash of (`group`, `key`), for [`Work::series_index`].
    pub(super) hash: u64,
    /// Index into [`Work::groups`].
    pub(super) group: u32,
    /// See [`Work::write_inner_key`].
    pub(super) key: Box<[u8]>,
}

/// A combination of (window, metric, tenant, dimension values) seen since the last drain.
/// Kept whole in its hash-table slot, key and series included, so that finding it and
/// comparing it touches one or two cache lines.
#[derive(Debug)]
pub(super) struct Combo {
    /// Hash of (`start`, `metric`, `key`), for [`Work::combos`].
    pub(super) hash: u64,
    pub(super) start: UnixMillis,
    /// Address of the compiled metric (see [`GroupKey::metric`]).
    pub(super) metric: usize,
    /// See [`Work::write_combo_key`].
    pub(super) key: ComboKey,
    /// Indices into [`Work::sketches`], one per dimension set of the metric; for a metric
    /// with more than [`INLINE_SERIES`] sets, `series[0]` is where its series start in
    /// [`Work::combo_series`].
    pub(super) series: [u32; INLINE_SERIES],
}

/// The key of a [`Combo`]: inline when short (the common case), else allocated.
#[derive(Debug)]
pub(super) enum ComboKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl ComboKey {
    pub(super) fn new(key: &[u8]) -> Self {
        match u8::try_from(key.len()) {
            Ok(len) if key.len() <= INLINE_KEY => {
                let mut bytes = [0; INLINE_KEY];
                bytes[..key.len()].copy_from_slice(key);
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(key.into()),
        }
    }

    #[inline]
    pub(super) fn is(&self, key: &[u8]) -> bool {
        match self {
            Self::Inline { len, bytes } => {
                usize::from(*len) == key.len() && same_bytes(&bytes[..key.len()], key)
            }
            Self::Heap(bytes) => same_bytes(bytes, key),
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Self::Inline { .. } => 0,
            Self::Heap(bytes) => bytes.len(),
        }
    }
}

/// Bytes of a combination key kept inside its [`Combo`].
const INLINE_KEY: usize = 40;
/// Series kept inside a [`Combo`].
pub(super) const INLINE_SERIES: usize = 4;

/// What a [`Group`] is the deltas of.
#[derive(Debug)]
pub(super) struct GroupKey {
    pub(super) window_start: UnixMillis,
    pub(super) window_ms: i64,
    /// Address of the compiled metric (kept alive by [`Group::metric`], so never reused while
    /// the group exists).
    pub(super) metric: usize,
    pub(super) tenant: Box<str>,
}

impl GroupKey {
    pub(super) fn matches(
        &self,
        window_start: UnixMillis,
        window_ms: i64,
        metric: usize,
        tenant: &str,
    ) -> bool {
        self.window_start == window_start
            && self.window_ms == window_ms
            && self.metric == metric
            && *self.tenant == *tenant
    }
}

/// The deltas of one (window, tenant, compiled metric).
#[derive(Debug)]
pub(super) struct Group {
    pub(super) key: GroupKey,
    pub(super) metric: Arc<CompiledMetric>,
    /// Per dimension set, its index in [`Work::admitted`] once looked up (`usize::MAX`: not
    /// yet).
    pub(super) admitted: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct CapKey {
    pub(super) tenant: Box<str>,
    pub(super) metric: Box<str>,
    pub(super) dim_set: usize,
    pub(super) window_start: UnixMillis,
}

/// Groups remembered by [`Work::group`] before it hashes.
pub(super) const RECENT_GROUPS: usize = 4;

impl Work {
    /// Empty state, with the reused buffers allocated.
    pub(super) fn new() -> Self {
        Self {
            sketches: Vec::new(),
            series: Vec::new(),
            log: Vec::new(),
            sorted_log: Vec::new(),
            log_offsets: Vec::new(),
            series_index: HashTable::new(),
            combos: HashTable::new(),
            combo_series: Vec::new(),
            groups: Vec::new(),
            group_index: HashMap::default(),
            hasher: RandomState::default(),
            recent_groups: [usize::MAX; RECENT_GROUPS],
            ceilings: Arc::default(),
            admitted: Vec::new(),
            admitted_index: HashMap::default(),
            scratch: Vec::with_capacity(128),
            inner: Vec::with_capacity(64),
            combo_key: Vec::with_capacity(128),
            text: Vec::with_capacity(128),
            other_text: String::new(),
            ranges: Vec::with_capacity(8),
        }
    }
}
