//! The aggregation code shared by every path that turns events into window sketches: the edge
//! agent's live path, recomputation from the raw-event archive, and the in-process benchmark.
//! One implementation, so a backfill computes exactly what the live path computed.
//!
//! [`Aggregator::add`] folds an event into the delta sketch of every (metric, dimension set)
//! series it feeds; [`Aggregator::drain`] takes the deltas accumulated since the previous
//! drain. Bounded memory: per tenant, metric, dimension set and window at most
//! `max_series_per_window` distinct series are admitted; events of further series fold into
//! one overflow series (every dimension value `__overflow__`) and are counted.

use crate::codec::{push_varint, read_varint, same_bytes};
use crate::event::{Event, Scalar};
use crate::messages::PartialEntry;
use crate::metric::{property, CompiledMetric, DimensionSource, MetricSet, OVERFLOW_VALUE};
use crate::series::{series_id, CanonicalWriter, SeriesKey};
use crate::sketch::{unique_hash, Sketch};
use crate::time::UnixMillis;
use crate::window::window_start;
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

/// Counters of what [`Aggregator::add`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddOutcome {
    /// Series deltas updated (one per matched metric and dimension set).
    pub series_updated: usize,
    /// Of those, how many were folded into an overflow series.
    pub overflowed: usize,
}

/// Folds events into per-window delta sketches.
#[derive(Debug)]
pub struct Aggregator {
    metrics: Arc<MetricSet>,
    /// Everything `add` mutates, apart from `metrics` so that `add` can borrow both at once.
    work: Work,
    overflowed_total: u64,
}

/// The mutable state of an [`Aggregator`].
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
struct Work {
    /// The delta of each series with a pending delta, in creation order since the last drain
    /// (apart from [`Work::series`] so that updates touch only the sketches).
    sketches: Vec<Sketch>,
    /// What each of `sketches` is the delta of.
    series: Vec<Series>,
    /// Updates with a value or a unique hash not yet recorded into `sketches` (see
    /// [`Work::apply_log`]).
    log: Vec<Update>,
    /// `log` grouped by series while it is applied (reused).
    sorted_log: Vec<Update>,
    /// Per series, where its updates start in `sorted_log` (reused).
    log_offsets: Vec<u32>,
    /// Indices into `series` by [`Series::hash`] (collisions are compared).
    series_index: HashTable<u32>,
    /// Combinations seen since the last drain, by [`Combo::hash`] (collisions are compared).
    combos: HashTable<Combo>,
    /// The series of combinations of metrics with more than [`INLINE_SERIES`] dimension sets.
    combo_series: Vec<u32>,
    /// Delta groups, in creation order since the last drain.
    groups: Vec<Group>,
    /// Indices into `groups` by a hash of their [`GroupKey`] (collisions are compared).
    group_index: HashMap<u64, Vec<usize>, RandomState>,
    /// Hashes combinations, series and group keys.
    hasher: RandomState,
    /// The groups of the latest lookups, most recent first: an event feeds several metrics,
    /// each its own group, and the events of a request mostly share tenant and window.
    recent_groups: [usize; RECENT_GROUPS],
    /// Series admitted per (tenant, metric, dimension set, window), for the series cap.
    admitted: Vec<(CapKey, HashSet<u64, RandomState>)>,
    /// Indices into `admitted` by a hash of their key (collisions are compared), so that a
    /// lookup allocates nothing.
    admitted_index: HashMap<u64, Vec<usize>, RandomState>,
    /// Reused canonical key buffer (window prefix and canonical series bytes).
    scratch: Vec<u8>,
    /// Reused inner key buffer.
    inner: Vec<u8>,
    /// Reused combination key buffer (see [`Work::write_combo_key`]).
    combo_key: Vec<u8>,
    /// Reused buffer holding the canonical text (UTF-8) of the current event's dimension
    /// values.
    text: Vec<u8>,
    /// Reused buffer for the canonical text of values that are neither strings nor integers.
    other_text: String,
    /// Byte range of each dimension value in `text` (`None`: absent).
    ranges: Vec<Option<(usize, usize)>>,
}

/// A deferred [`Sketch::record`] of a value and/or unique hash into one series.
///
/// Recording into a sketch touches its value statistics, digest buffer and HyperLogLog, each
/// its own allocation: spread over the sketches of every series, that is a few cache misses
/// per event. Updates are therefore logged (a sequential write) and applied
/// [`LOG_CAPACITY`] at a time grouped by series, in arrival order within each series, so that
/// every sketch receives exactly the same records in the same order, once per batch while its
/// memory is in cache.
#[derive(Clone, Copy, Debug)]
struct Update {
    series: u32,
    has_value: bool,
    has_unique: bool,
    value: f64,
    unique: u64,
}

impl Update {
    #[inline]
    fn new(series: u32, value: Option<f64>, unique: Option<u64>) -> Self {
        Self {
            series,
            has_value: value.is_some(),
            has_unique: unique.is_some(),
            value: value.unwrap_or(0.0),
            unique: unique.unwrap_or(0),
        }
    }
}

/// Updates logged before they are applied.
const LOG_CAPACITY: usize = 8192;

/// One delta series: a dimension set's values within a [`Group`].
#[derive(Debug)]
struct Series {
    /// Hash of (`group`, `key`), for [`Work::series_index`].
    hash: u64,
    /// Index into [`Work::groups`].
    group: u32,
    /// See [`Work::write_inner_key`].
    key: Box<[u8]>,
}

/// A combination of (window, metric, tenant, dimension values) seen since the last drain.
/// Kept whole in its hash-table slot, key and series included, so that finding it and
/// comparing it touches one or two cache lines.
#[derive(Debug)]
struct Combo {
    /// Hash of (`start`, `metric`, `key`), for [`Work::combos`].
    hash: u64,
    start: UnixMillis,
    /// Address of the compiled metric (see [`GroupKey::metric`]).
    metric: usize,
    /// See [`Work::write_combo_key`].
    key: ComboKey,
    /// Indices into [`Work::sketches`], one per dimension set of the metric; for a metric
    /// with more than [`INLINE_SERIES`] sets, `series[0]` is where its series start in
    /// [`Work::combo_series`].
    series: [u32; INLINE_SERIES],
}

/// The key of a [`Combo`]: inline when short (the common case), else allocated.
#[derive(Debug)]
enum ComboKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl ComboKey {
    fn new(key: &[u8]) -> Self {
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
    fn is(&self, key: &[u8]) -> bool {
        match self {
            Self::Inline { len, bytes } => {
                usize::from(*len) == key.len() && same_bytes(&bytes[..key.len()], key)
            }
            Self::Heap(bytes) => same_bytes(bytes, key),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Self::Inline { .. } => 0,
            Self::Heap(bytes) => bytes.len(),
        }
    }
}

/// Bytes of a combination key kept inside its [`Combo`].
const INLINE_KEY: usize = 40;
/// Series kept inside a [`Combo`].
const INLINE_SERIES: usize = 4;

/// What a [`Group`] is the deltas of.
#[derive(Debug)]
struct GroupKey {
    window_start: UnixMillis,
    window_ms: i64,
    /// Address of the compiled metric (kept alive by [`Group::metric`], so never reused while
    /// the group exists).
    metric: usize,
    tenant: Box<str>,
}

impl GroupKey {
    fn matches(
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
struct Group {
    key: GroupKey,
    metric: Arc<CompiledMetric>,
    /// Per dimension set, its index in [`Work::admitted`] once looked up (`usize::MAX`: not
    /// yet).
    admitted: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CapKey {
    tenant: Box<str>,
    metric: Box<str>,
    dim_set: usize,
    window_start: UnixMillis,
}

const KEY_PREFIX: usize = 16;

/// Groups remembered by [`Work::group`] before it hashes.
const RECENT_GROUPS: usize = 4;

impl Aggregator {
    /// An aggregator over `metrics`.
    pub fn new(metrics: Arc<MetricSet>) -> Self {
        Self {
            metrics,
            work: Work {
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
                admitted: Vec::new(),
                admitted_index: HashMap::default(),
                scratch: Vec::with_capacity(128),
                inner: Vec::with_capacity(64),
                combo_key: Vec::with_capacity(128),
                text: Vec::with_capacity(128),
                other_text: String::new(),
                ranges: Vec::with_capacity(8),
            },
            overflowed_total: 0,
        }
    }

    /// Replaces the metric definitions (applies to events added from now on).
    pub fn set_metrics(&mut self, metrics: Arc<MetricSet>) {
        self.metrics = metrics;
    }

    /// The definitions in force.
    pub fn metrics(&self) -> &Arc<MetricSet> {
        &self.metrics
    }

    /// Folds one validated event into every series it feeds.
    pub fn add(&mut self, event: &Event<'_>) -> AddOutcome {
        let mut outcome = AddOutcome::default();
        // Borrow the two fields apart instead of cloning the `Arc` per event: that clone is an
        // atomic increment and decrement of a count shared by every thread's aggregator over
        // the same set, a cache line that bounces between cores on every event.
        let Self { metrics, work, .. } = self;
        metrics.for_each_match_value(event, |metric, value| {
            work.add_to_metric(metrics, metric, event, value, &mut outcome)
        });
        self.overflowed_total += outcome.overflowed as u64;
        outcome
    }

    /// Takes every delta accumulated since the previous drain.
    pub fn drain(&mut self) -> Vec<PartialEntry> {
        let work = &mut self.work;
        work.apply_log();
        let series = std::mem::take(&mut work.series);
        let sketches = std::mem::take(&mut work.sketches);
        let groups = std::mem::take(&mut work.groups);
        // The tables keep the room this drain's deltas needed (the next ones are usually
        // alike), not more: a burst of series does not hold its memory after the drain.
        let combos = work.combos.len();
        work.forget_combos();
        work.combos.shrink_to(combos, |combo| combo.hash);
        work.series_index.clear();
        // Empty: the hasher is never called.
        work.series_index.shrink_to(series.len(), |_| 0);
        work.log_offsets.shrink_to(series.len() + 1);
        work.group_index.clear();
        work.recent_groups = [usize::MAX; RECENT_GROUPS];
        let mut entries = Vec::with_capacity(series.len());
        // Two groups give the same series only if two compiled metrics of one name applied to
        // one tenant in one window (definitions replaced since the last drain): their deltas
        // are then merged into one entry per series, as a single key map would have.
        let mut seen = HashSet::with_capacity_and_hasher(groups.len(), RandomState::default());
        let duplicates = !groups.iter().all(|group| {
            seen.insert((
                group.key.window_start,
                group.key.window_ms,
                &*group.key.tenant,
                group.metric.def.name.as_str(),
            ))
        });
        drop(seen);
        let mut canonical = Vec::with_capacity(128);
        for (one, sketch) in series.into_iter().zip(sketches) {
            let Some(group) = groups.get(one.group as usize) else {
                continue;
            };
            if !write_canonical(&mut canonical, &group.key.tenant, &group.metric, &one.key) {
                // Written by `write_inner_key` in this process; decoding cannot fail.
                continue;
            }
            let Ok(key) = SeriesKey::from_canonical(&canonical) else {
                continue;
            };
            entries.push(PartialEntry {
                series: key,
                window_start: group.key.window_start,
                window_ms: group.key.window_ms,
                sketch,
            });
        }
        if duplicates {
            entries = merge_duplicates(entries);
        }
        entries
    }

    /// Forgets series-cap bookkeeping of windows that started before `before`.
    pub fn forget_windows_before(&mut self, before: UnixMillis) {
        let work = &mut self.work;
        let before_len = work.admitted.len();
        work.admitted.retain(|(key, _)| key.window_start >= before);
        if work.admitted.len() != before_len {
            // Indices moved: rebuild the index and forget the ones the groups remembered.
            work.admitted_index.clear();
            for (index, (key, _)) in work.admitted.iter().enumerate() {
                let hash = work.hasher.hash_one((
                    &*key.tenant,
                    &*key.metric,
                    key.dim_set,
                    key.window_start,
                ));
                work.admitted_index.entry(hash).or_default().push(index);
            }
            for group in &mut work.groups {
                group.admitted.fill(usize::MAX);
            }
            // Remembered combinations stay valid: they lead only to series with a pending
            // delta, never to an overflow series (whose events may now be admitted).
        }
    }

    /// Series with a pending delta.
    pub fn pending_series(&self) -> usize {
        self.work.sketches.len()
    }

    /// Events folded into overflow series so far.
    pub fn overflowed_total(&self) -> u64 {
        self.overflowed_total
    }

    /// Approximate heap bytes held (deltas and series-cap bookkeeping): hash-table slots by
    /// capacity, keys, sketch heap, and a per-allocation overhead for the allocator. O(series).
    pub fn approx_bytes(&self) -> usize {
        const ALLOCATION_OVERHEAD: usize = 16;
        let work = &self.work;
        // A hash table of `u32` indices: the index and one control byte per slot.
        let index_table = |capacity: usize| capacity * (std::mem::size_of::<u32>() + 1);
        let log = (work.log.capacity() + work.sorted_log.capacity())
            * std::mem::size_of::<Update>()
            + work.log_offsets.capacity() * std::mem::size_of::<u32>();
        let series = work.series.capacity() * std::mem::size_of::<Series>()
            + work.sketches.capacity() * std::mem::size_of::<Sketch>()
            + index_table(work.series_index.capacity())
            + work
                .series
                .iter()
                .map(|one| one.key.len() + ALLOCATION_OVERHEAD)
                .sum::<usize>()
            + work
                .sketches
                .iter()
                .map(|sketch| sketch.heap_bytes())
                .sum::<usize>();
        let combos = work.combos.capacity() * (std::mem::size_of::<Combo>() + 1)
            + work.combo_series.capacity() * std::mem::size_of::<u32>()
            + work
                .combos
                .iter()
                .map(|combo| combo.key.heap_bytes())
                .sum::<usize>();
        let group_slot = std::mem::size_of::<Group>();
        let index_slot = std::mem::size_of::<(u64, Vec<usize>)>() + 1;
        let groups = work.groups.capacity() * group_slot
            + work.group_index.capacity() * index_slot
            + work
                .groups
                .iter()
                .map(|group| {
                    group.key.tenant.len()
                        + group.admitted.capacity() * std::mem::size_of::<usize>()
                        + 2 * ALLOCATION_OVERHEAD
                })
                .sum::<usize>();
        let cap_slot = std::mem::size_of::<(CapKey, HashSet<u64, RandomState>)>();
        let index_slot = std::mem::size_of::<(u64, Vec<usize>)>() + 1 + 8;
        let admitted: usize = work.admitted.capacity() * cap_slot
            + work.admitted_index.capacity() * index_slot
            + work
                .admitted
                .iter()
                .map(|(key, set)| {
                    key.tenant.len()
                        + key.metric.len()
                        + set.capacity() * 9
                        + 3 * ALLOCATION_OVERHEAD
                })
                .sum::<usize>();
        log + series + combos + groups + admitted
    }
}

/// Merges entries of the same series and window (rare: see [`Aggregator::drain`]).
fn merge_duplicates(entries: Vec<PartialEntry>) -> Vec<PartialEntry> {
    let mut index: HashMap<(Vec<u8>, UnixMillis, i64), usize, RandomState> = HashMap::default();
    let mut out: Vec<PartialEntry> = Vec::with_capacity(entries.len());
    for entry in entries {
        let key = (
            entry.series.canonical(),
            entry.window_start,
            entry.window_ms,
        );
        match index.get(&key) {
            Some(&at) => out[at].sketch.merge(&entry.sketch),
            None => {
                index.insert(key, out.len());
                out.push(entry);
            }
        }
    }
    out
}

/// Writes the canonical series bytes of an inner key of `metric` into `out`; false when the
/// inner key is malformed.
fn write_canonical(out: &mut Vec<u8>, tenant: &str, metric: &CompiledMetric, inner: &[u8]) -> bool {
    out.clear();
    let mut reader = InnerReader { rest: inner };
    let Some(set_index) = reader.varint() else {
        return false;
    };
    let Some(indices) = metric.dimension_set_indices.get(set_index as usize) else {
        return false;
    };
    let mut writer = CanonicalWriter::start(out, tenant, &metric.def.name, indices.len());
    for &index in indices {
        let value = match reader.value() {
            Some(value) => value,
            None => return false,
        };
        writer.dimension(&metric.sorted_dimensions[index], value);
    }
    reader.rest.is_empty()
}

/// Reads an inner key (see [`Work::write_inner_key`]).
struct InnerReader<'a> {
    rest: &'a [u8],
}

impl<'a> InnerReader<'a> {
    fn varint(&mut self) -> Option<u64> {
        read_varint(&mut self.rest).ok()
    }

    /// `Some(None)`: an absent value; `None`: malformed.
    fn value(&mut self) -> Option<Option<&'a str>> {
        let (&present, rest) = self.rest.split_first()?;
        self.rest = rest;
        if present == 0 {
            return Some(None);
        }
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.rest.len() {
            return None;
        }
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        std::str::from_utf8(bytes).ok().map(Some)
    }
}

/// Appends `0` (absent) or `1`, the length (varint) and the bytes of a value.
#[inline]
fn push_value(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            push_varint(out, value.len() as u64);
            out.extend_from_slice(value.as_bytes());
        }
    }
}

/// Appends the canonical text of the event's value from `source` (what
/// [`Scalar::write_canonical`] writes for [`Event::dimension`]) to `out`; false when the value
/// is absent or null. `other` is scratch space for values that are neither strings nor
/// integers.
#[inline]
fn write_dimension(
    out: &mut Vec<u8>,
    other: &mut String,
    event: &Event<'_>,
    source: &DimensionSource,
) -> bool {
    match source {
        DimensionSource::Tenant => push_bytes(out, event.tenant_id.as_bytes()),
        DimensionSource::Source => push_bytes(out, event.source.as_bytes()),
        DimensionSource::EventType => push_bytes(out, event.event_type.as_bytes()),
        DimensionSource::Property(name) => match property(event, name) {
            None | Some(Scalar::Null) => return false,
            // Integers in decimal, as `write_canonical` writes them, without its generic path.
            Some(Scalar::Int(v)) => push_bytes(out, itoa::Buffer::new().format(*v).as_bytes()),
            Some(Scalar::UInt(v)) => push_bytes(out, itoa::Buffer::new().format(*v).as_bytes()),
            Some(Scalar::Str(v)) => push_bytes(out, v.as_bytes()),
            Some(value) => {
                other.clear();
                value.write_canonical(other);
                push_bytes(out, other.as_bytes());
            }
        },
    }
    true
}

/// Appends `bytes` to `out`; short slices (most keys' parts) byte by byte, which is cheaper
/// than the call into `memcpy` that `extend_from_slice` makes.
#[inline]
fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() <= 16 {
        out.reserve(16);
        for &byte in bytes {
            out.push(byte);
        }
    } else {
        out.extend_from_slice(bytes);
    }
}

/// The text of `range` in `text` (written from `&str`s by [`write_dimension`], so always
/// UTF-8 at these boundaries).
fn text_at(text: &[u8], (from, to): (usize, usize)) -> &str {
    std::str::from_utf8(&text[from..to]).unwrap_or_default()
}

/// The hash of a combination: its window and metric folded into one word, then the key bytes
/// (no length prefix: keys of one metric are self-delimiting, and equal hashes are compared).
#[inline]
fn combo_hash(hasher: &RandomState, start: UnixMillis, metric: usize, key: &[u8]) -> u64 {
    let mut state = hasher.build_hasher();
    state.write_u64((start as u64) ^ (metric as u64).rotate_left(32));
    state.write(key);
    state.finish()
}

impl Work {
    /// Records the logged updates (see [`Update`]) into their sketches, grouped by series.
    fn apply_log(&mut self) {
        if self.log.is_empty() {
            return;
        }
        let Self {
            log,
            sorted_log,
            log_offsets,
            sketches,
            ..
        } = self;
        // Counting sort by series (stable: arrival order within a series is kept).
        log_offsets.clear();
        log_offsets.resize(sketches.len() + 1, 0);
        for update in log.iter() {
            log_offsets[update.series as usize + 1] += 1;
        }
        for at in 1..log_offsets.len() {
            log_offsets[at] += log_offsets[at - 1];
        }
        sorted_log.clear();
        sorted_log.resize(log.len(), log[0]);
        for update in log.iter() {
            let at = &mut log_offsets[update.series as usize];
            sorted_log[*at as usize] = *update;
            *at += 1;
        }
        log.clear();
        for update in sorted_log.iter() {
            sketches[update.series as usize].record(
                update.has_value.then_some(update.value),
                update.has_unique.then_some(update.unique),
            );
        }
    }

    /// Forgets every remembered combination (they are resolved again when next seen).
    fn forget_combos(&mut self) {
        self.combos.clear();
        self.combo_series.clear();
    }

    /// The index of the group of (window, tenant, metric), created when missing.
    fn group(
        &mut self,
        metrics: &MetricSet,
        metric: &CompiledMetric,
        start: UnixMillis,
        window_ms: i64,
        tenant: &str,
    ) -> usize {
        let address = metric as *const CompiledMetric as usize;
        for slot in 0..RECENT_GROUPS {
            let index = self.recent_groups[slot];
            if self
                .groups
                .get(index)
                .is_some_and(|group| group.key.matches(start, window_ms, address, tenant))
            {
                // Move to the front.
                self.recent_groups.copy_within(0..slot, 1);
                self.recent_groups[0] = index;
                return index;
            }
        }
        let hash = self.hasher.hash_one((start, window_ms, address, tenant));
        let candidates = self.group_index.entry(hash).or_default();
        let found = candidates.iter().copied().find(|&index| {
            self.groups[index]
                .key
                .matches(start, window_ms, address, tenant)
        });
        let index = match found {
            Some(index) => index,
            None => {
                // The `Arc` of the metric being matched: kept by the group so that its address
                // stays unique and its definition is at hand when draining.
                let Some(owned) = metrics
                    .all()
                    .iter()
                    .find(|m| std::ptr::eq(&***m, metric))
                    .cloned()
                else {
                    unreachable!("for_each_match yields metrics of its own set");
                };
                let index = self.groups.len();
                self.groups.push(Group {
                    key: GroupKey {
                        window_start: start,
                        window_ms,
                        metric: address,
                        tenant: tenant.into(),
                    },
                    metric: owned,
                    admitted: vec![usize::MAX; metric.dimension_set_indices.len()],
                });
                candidates.push(index);
                index
            }
        };
        self.recent_groups.copy_within(0..RECENT_GROUPS - 1, 1);
        self.recent_groups[0] = index;
        index
    }

    /// The index in `admitted` of the series-cap set of (tenant, metric, dimension set,
    /// window), created when missing.
    fn cap_set(
        &mut self,
        tenant: &str,
        metric: &str,
        dim_set: usize,
        window_start: UnixMillis,
    ) -> usize {
        let hash = self
            .hasher
            .hash_one((tenant, metric, dim_set, window_start));
        let candidates = self.admitted_index.entry(hash).or_default();
        let found = candidates.iter().copied().find(|&index| {
            let key = &self.admitted[index].0;
            key.dim_set == dim_set
                && key.window_start == window_start
                && *key.tenant == *tenant
                && *key.metric == *metric
        });
        found.unwrap_or_else(|| {
            let index = self.admitted.len();
            self.admitted.push((
                CapKey {
                    tenant: tenant.into(),
                    metric: metric.into(),
                    dim_set,
                    window_start,
                },
                HashSet::default(),
            ));
            candidates.push(index);
            index
        })
    }

    fn add_to_metric(
        &mut self,
        metrics: &MetricSet,
        metric: &CompiledMetric,
        event: &Event<'_>,
        value: Option<f64>,
        outcome: &mut AddOutcome,
    ) {
        let def = &metric.def;
        let window_ms = def.window_ms();
        let start = window_start(event.occurred_at, window_ms);
        // The canonical text of every dimension value, computed once for all dimension sets.
        self.text.clear();
        self.ranges.clear();
        for source in &metric.dimension_sources {
            let from = self.text.len();
            let present = write_dimension(&mut self.text, &mut self.other_text, event, source);
            self.ranges.push(present.then_some((from, self.text.len())));
        }
        let unique = metric.unique_source.as_ref().and_then(|source| {
            let from = self.text.len();
            write_dimension(&mut self.text, &mut self.other_text, event, source)
                .then(|| unique_hash(&self.text[from..]))
        });
        let address = metric as *const CompiledMetric as usize;
        self.write_combo_key(&event.tenant_id);
        let hash = combo_hash(&self.hasher, start, address, &self.combo_key);
        let Self {
            combos,
            combo_series,
            sketches,
            combo_key,
            log,
            ..
        } = self;
        let found = combos.find(hash, |combo| {
            combo.hash == hash
                && combo.start == start
                && combo.metric == address
                && combo.key.is(combo_key)
        });
        if let Some(combo) = found {
            let sets = metric.dimension_set_indices.len();
            let series = if sets <= INLINE_SERIES {
                &combo.series[..sets]
            } else {
                let first = combo.series[0] as usize;
                &combo_series[first..first + sets]
            };
            if value.is_some() || unique.is_some() {
                for &one in series {
                    log.push(Update::new(one, value, unique));
                }
                if log.len() >= LOG_CAPACITY {
                    self.apply_log();
                }
            } else {
                for &one in series {
                    sketches[one as usize].record(None, None);
                }
            }
            outcome.series_updated += sets;
            return;
        }
        self.add_new_combination(
            metrics, metric, event, start, window_ms, hash, value, unique, outcome,
        );
    }

    /// Resolves a combination not seen since the last drain into its series (admitting new
    /// series against the cap), records the event into them, and remembers the combination
    /// unless an overflow series was involved.
    #[allow(clippy::too_many_arguments)]
    fn add_new_combination(
        &mut self,
        metrics: &MetricSet,
        metric: &CompiledMetric,
        event: &Event<'_>,
        start: UnixMillis,
        window_ms: i64,
        hash: u64,
        value: Option<f64>,
        unique: Option<u64>,
        outcome: &mut AddOutcome,
    ) {
        let def = &metric.def;
        let group = self.group(metrics, metric, start, window_ms, &event.tenant_id);
        let first = self.combo_series.len();
        let mut remember = true;
        for (set_index, indices) in metric.dimension_set_indices.iter().enumerate() {
            self.write_inner_key(set_index, indices, false);
            let one = match self.find_series(group) {
                Some(one) => one,
                None => {
                    // New since the last drain: admission against the series cap.
                    self.write_key(start, window_ms, &event.tenant_id, metric, indices, false);
                    let id = series_id(&self.scratch[KEY_PREFIX..]);
                    let mut cap = self.groups[group].admitted[set_index];
                    if cap == usize::MAX {
                        cap = self.cap_set(&event.tenant_id, &def.name, set_index, start);
                        self.groups[group].admitted[set_index] = cap;
                    }
                    let admitted = &mut self.admitted[cap].1;
                    let fits = admitted.contains(&id)
                        || admitted.len() < def.max_series_per_window as usize;
                    if fits {
                        admitted.insert(id);
                        self.new_series(group, metric)
                    } else {
                        self.write_inner_key(set_index, indices, true);
                        outcome.overflowed += 1;
                        remember = false;
                        match self.find_series(group) {
                            Some(one) => one,
                            None => self.new_series(group, metric),
                        }
                    }
                }
            };
            if value.is_some() || unique.is_some() {
                // Logged like every other update of the series, so that its order holds.
                self.log.push(Update::new(one, value, unique));
            } else {
                self.sketches[one as usize].record(None, None);
            }
            self.combo_series.push(one);
            outcome.series_updated += 1;
        }
        let sets = metric.dimension_set_indices.len();
        let mut series = [0; INLINE_SERIES];
        if sets <= INLINE_SERIES {
            series[..sets].copy_from_slice(&self.combo_series[first..]);
            self.combo_series.truncate(first);
        } else {
            series[0] = first as u32;
        }
        if self.log.len() >= LOG_CAPACITY {
            self.apply_log();
        }
        if remember {
            self.combos.insert_unique(
                hash,
                Combo {
                    hash,
                    start,
                    metric: metric as *const CompiledMetric as usize,
                    key: ComboKey::new(&self.combo_key),
                    series,
                },
                |combo| combo.hash,
            );
        } else {
            self.combo_series.truncate(first);
        }
    }

    /// The series of `group` whose key is `inner`, if it has a delta.
    fn find_series(&self, group: usize) -> Option<u32> {
        let hash = self.series_hash(group);
        let group = group as u32;
        self.series_index
            .find(hash, |&at| {
                let one = &self.series[at as usize];
                one.hash == hash && one.group == group && same_bytes(&one.key, &self.inner)
            })
            .copied()
    }

    /// A new empty series of `group` keyed by `inner`.
    fn new_series(&mut self, group: usize, metric: &CompiledMetric) -> u32 {
        let hash = self.series_hash(group);
        let at = self.series.len() as u32;
        self.series.push(Series {
            hash,
            group: group as u32,
            key: self.inner.as_slice().into(),
        });
        self.sketches.push(Sketch::new(metric.spec));
        let series = &self.series;
        self.series_index
            .insert_unique(hash, at, |&i| series[i as usize].hash);
        at
    }

    fn series_hash(&self, group: usize) -> u64 {
        self.hasher.hash_one((group, self.inner.as_slice()))
    }

    /// Writes the key of a combination within its window and metric into `combo_key`: the
    /// tenant (varint length and bytes), then per dimension of the metric, in name order, its
    /// value as [`push_value`] writes it.
    fn write_combo_key(&mut self, tenant: &str) {
        let Self {
            combo_key,
            text,
            ranges,
            ..
        } = self;
        combo_key.clear();
        push_varint(combo_key, tenant.len() as u64);
        push_bytes(combo_key, tenant.as_bytes());
        for range in ranges.iter() {
            match *range {
                None => combo_key.push(0),
                Some((from, to)) => {
                    combo_key.push(1);
                    push_varint(combo_key, (to - from) as u64);
                    push_bytes(combo_key, &text[from..to]);
                }
            }
        }
    }

    /// Writes the key of one dimension set's series within its group into `inner`: the set's
    /// index (varint), then per dimension of the set `0` (absent) or `1`, the length (varint)
    /// and the canonical text of the value; with `overflow` every value is [`OVERFLOW_VALUE`].
    fn write_inner_key(&mut self, set_index: usize, indices: &[usize], overflow: bool) {
        let Self {
            inner,
            text,
            ranges,
            ..
        } = self;
        inner.clear();
        push_varint(inner, set_index as u64);
        for &index in indices {
            let value = if overflow {
                Some(OVERFLOW_VALUE)
            } else {
                ranges[index].map(|range| text_at(text, range))
            };
            push_value(inner, value);
        }
    }

    /// Writes the delta key of one dimension set into `scratch`; with `overflow` every value
    /// is [`OVERFLOW_VALUE`].
    fn write_key(
        &mut self,
        start: UnixMillis,
        window_ms: i64,
        tenant: &str,
        metric: &CompiledMetric,
        indices: &[usize],
        overflow: bool,
    ) {
        let Self {
            scratch,
            text,
            ranges,
            ..
        } = self;
        scratch.clear();
        scratch.extend_from_slice(&start.to_le_bytes());
        scratch.extend_from_slice(&window_ms.to_le_bytes());
        let mut writer = CanonicalWriter::start(scratch, tenant, &metric.def.name, indices.len());
        for &index in indices {
            let value = if overflow {
                Some(OVERFLOW_VALUE)
            } else {
                ranges[index].map(|range| text_at(text, range))
            };
            writer.dimension(&metric.sorted_dimensions[index], value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{parse_event, EventLimits};
    use crate::metric::MetricDefinition;
    use std::borrow::Cow;
    use std::collections::BTreeMap;

    const NOW: UnixMillis = 1_705_327_532_000;

    fn event(tenant: &str, kind: &str, props: &str, at_offset_ms: i64) -> Event<'static> {
        let at = crate::time::format_rfc3339(NOW + at_offset_ms);
        let json = format!(
            r#"{{"tenant_id":"{tenant}","source":"svc","event_type":"{kind}","properties":{props},"occurred_at":"{at}"}}"#
        );
        parse_event(json.as_bytes(), &EventLimits::default(), NOW)
            .expect("valid")
            .into_owned()
    }

    fn amount_metric(cap: u32) -> MetricDefinition {
        let mut def = MetricDefinition::from_json(
            br#"{"name":"amount","event_type":"pay","field":"usd","unique":"user","dimensions":["region"]}"#,
        )
        .expect("valid");
        def.max_series_per_window = cap;
        def
    }

    fn by_series(entries: &[PartialEntry]) -> BTreeMap<(String, String, i64), u64> {
        entries
            .iter()
            .map(|e| {
                (
                    (
                        e.series.metric.clone(),
                        e.series.dims_json(),
                        e.window_start,
                    ),
                    e.sketch.count(),
                )
            })
            .collect()
    }

    #[test]
    fn events_fold_into_every_dimension_set_and_window() {
        let mut agg = Aggregator::new(Arc::new(MetricSet::new([amount_metric(100)])));
        for (region, usd, user, offset) in [
            ("eu", 1.0, 1, 0),
            ("eu", 2.0, 2, 0),
            ("us", 4.0, 1, 0),
            ("eu", 8.0, 3, -60_000),
        ] {
            let props = format!(r#"{{"region":"{region}","usd":{usd},"user":{user}}}"#);
            let outcome = agg.add(&event("t", "pay", &props, offset));
            // amount: {region} and {}; events: 4 dimension sets
            assert_eq!(outcome.series_updated, 6);
        }
        let entries = agg.drain();
        assert_eq!(agg.pending_series(), 0);
        let counts = by_series(&entries);
        let w = window_start(NOW, 60_000);
        assert_eq!(
            counts[&("amount".into(), r#"{"region":"eu"}"#.into(), w)],
            2
        );
        assert_eq!(
            counts[&("amount".into(), r#"{"region":"us"}"#.into(), w)],
            1
        );
        assert_eq!(counts[&("amount".into(), "{}".into(), w)], 3);
        assert_eq!(counts[&("amount".into(), "{}".into(), w - 60_000)], 1);
        assert_eq!(counts[&("events".into(), "{}".into(), w)], 3);
        let total = entries
            .iter()
            .find(|e| {
                e.series.metric == "amount" && e.series.dims.is_empty() && e.window_start == w
            })
            .expect("total");
        let stats = total.sketch.stats();
        assert_eq!(stats.sum, Some(7.0));
        assert_eq!(stats.min, Some(1.0));
        assert_eq!(stats.max, Some(4.0));
        assert_eq!(stats.unique, Some(2));
    }

    #[test]
    fn series_beyond_the_cap_fold_into_overflow() {
        let mut agg = Aggregator::new(Arc::new(MetricSet::new([amount_metric(2)])));
        for region in ["a", "b", "c", "d", "a"] {
            agg.add(&event(
                "t",
                "pay",
                &format!(r#"{{"region":"{region}","usd":1}}"#),
                0,
            ));
        }
        assert_eq!(agg.overflowed_total(), 2);
        let counts = by_series(&agg.drain());
        let w = window_start(NOW, 60_000);
        assert_eq!(counts[&("amount".into(), r#"{"region":"a"}"#.into(), w)], 2);
        assert_eq!(counts[&("amount".into(), r#"{"region":"b"}"#.into(), w)], 1);
        assert_eq!(
            counts[&("amount".into(), r#"{"region":"__overflow__"}"#.into(), w)],
            2
        );
        assert_eq!(
            counts[&("amount".into(), "{}".into(), w)],
            5,
            "the total is never capped away"
        );
        // Admission survives a drain: `a` is still admitted, `c` still overflows.
        agg.add(&event("t", "pay", r#"{"region":"c","usd":1}"#, 0));
        agg.add(&event("t", "pay", r#"{"region":"a","usd":1}"#, 0));
        let counts = by_series(&agg.drain());
        assert_eq!(counts[&("amount".into(), r#"{"region":"a"}"#.into(), w)], 1);
        assert_eq!(
            counts[&("amount".into(), r#"{"region":"__overflow__"}"#.into(), w)],
            1
        );
        // Forgotten bookkeeping admits anew, also in the groups that already exist.
        agg.add(&event("t", "pay", r#"{"region":"a","usd":1}"#, 0));
        agg.forget_windows_before(w + 1);
        agg.add(&event("t", "pay", r#"{"region":"c","usd":1}"#, 0));
        let counts = by_series(&agg.drain());
        assert_eq!(counts[&("amount".into(), r#"{"region":"c"}"#.into(), w)], 1);
    }

    #[test]
    fn replaced_definitions_still_give_one_entry_per_series() {
        let mut agg = Aggregator::new(Arc::new(MetricSet::new([amount_metric(10)])));
        agg.add(&event("t", "pay", r#"{"region":"eu","usd":1}"#, 0));
        agg.set_metrics(Arc::new(MetricSet::new([amount_metric(10)])));
        agg.add(&event("t", "pay", r#"{"region":"eu","usd":2}"#, 0));
        assert_eq!(agg.pending_series(), 12, "two groups of six series each");
        let entries = agg.drain();
        let w = window_start(NOW, 60_000);
        assert_eq!(entries.len(), 6, "{:?}", by_series(&entries));
        let counts = by_series(&entries);
        assert_eq!(
            counts[&("amount".into(), r#"{"region":"eu"}"#.into(), w)],
            2
        );
        assert_eq!(counts[&("events".into(), "{}".into(), w)], 2);
    }

    /// A direct implementation of what the aggregator computes: per event, metric and
    /// dimension set, the canonical series key from [`Event::dimension`] and
    /// [`Scalar::canonical`], admitted against the cap as documented.
    #[derive(Default)]
    struct Reference {
        pending: HashMap<(Vec<u8>, UnixMillis, i64), Sketch>,
        admitted: HashMap<(String, String, usize, UnixMillis), HashSet<u64>>,
    }

    impl Reference {
        fn add(&mut self, metrics: &MetricSet, event: &Event<'_>) {
            metrics.for_each_match(event, |metric| {
                let def = &metric.def;
                let window_ms = def.window_ms();
                let start = window_start(event.occurred_at, window_ms);
                let value = def
                    .field
                    .as_deref()
                    .and_then(|f| event.property(f))
                    .and_then(|v| v.as_f64());
                let unique = def.unique.as_deref().and_then(|name| {
                    event
                        .dimension(name)
                        .map(|v| unique_hash(v.canonical().as_bytes()))
                });
                for (set_index, names) in metric.dimension_sets.iter().enumerate() {
                    let key = |overflow: bool| {
                        SeriesKey::new(
                            event.tenant_id.as_ref(),
                            def.name.as_str(),
                            names.iter().map(|name| {
                                let value = if overflow {
                                    Some(OVERFLOW_VALUE.to_owned())
                                } else {
                                    event.dimension(name).map(|v| v.canonical().into_owned())
                                };
                                (name.clone(), value)
                            }),
                        )
                        .canonical()
                    };
                    let mut canonical = key(false);
                    if !self
                        .pending
                        .contains_key(&(canonical.clone(), start, window_ms))
                    {
                        let id = series_id(&canonical);
                        let admitted = self
                            .admitted
                            .entry((
                                event.tenant_id.to_string(),
                                def.name.clone(),
                                set_index,
                                start,
                            ))
                            .or_default();
                        if admitted.contains(&id)
                            || admitted.len() < def.max_series_per_window as usize
                        {
                            admitted.insert(id);
                        } else {
                            canonical = key(true);
                        }
                    }
                    self.pending
                        .entry((canonical, start, window_ms))
                        .or_insert_with(|| Sketch::new(metric.spec))
                        .record(value, unique);
                }
            });
        }
    }

    #[test]
    fn random_events_give_what_the_direct_implementation_gives() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(7);
        let wide = MetricDefinition::from_json(
            br#"{"name":"wide","event_type":"*","field":"usd","unique":"user",
                 "dimensions":["region","source","plan","tenant_id"],
                 "rollups":[["plan"],["region","plan"],[]],"max_series_per_window":12}"#,
        )
        .expect("valid");
        // More dimension sets than a combination keeps inline.
        let tall = MetricDefinition::from_json(
            br#"{"name":"tall","event_type":"pay","unique":"region",
                 "dimensions":["region","source","plan"],
                 "rollups":[["plan"],["region"],["source"],["region","source"],[]]}"#,
        )
        .expect("valid");
        assert!(tall.dimension_sets().len() > INLINE_SERIES);
        let metrics = Arc::new(MetricSet::new([amount_metric(5), wide, tall]));
        let mut agg = Aggregator::new(Arc::clone(&metrics));
        let mut reference = Reference::default();
        let scalar = |rng: &mut StdRng| match rng.random_range(0..7) {
            0 => Scalar::Int(if rng.random_range(0..20) == 0 {
                i64::MIN
            } else {
                rng.random_range(-2..4)
            }),
            1 => Scalar::Str(format!("{}", rng.random_range(-2..4)).into()),
            2 => Scalar::Float(f64::from(rng.random_range(-2..4)) * 0.75),
            3 => Scalar::Bool(rng.random()),
            4 => Scalar::Null,
            5 => Scalar::UInt(u64::MAX - rng.random_range(0..2)),
            _ => Scalar::Str(["eu", "us", "", "é"][rng.random_range(0..4)].into()),
        };
        let mut compared = 0;
        for round in 0..40 {
            // Some rounds log more updates than are kept before they are applied.
            let events = if round % 10 == 5 {
                3_000
            } else {
                rng.random_range(0..400)
            };
            for _ in 0..events {
                let mut properties = Vec::new();
                for name in ["region", "plan", "user"] {
                    if rng.random_range(0..5) > 0 {
                        properties.push((Cow::Borrowed(name), scalar(&mut rng)));
                    }
                }
                if rng.random_range(0..4) > 0 {
                    properties.push((Cow::Borrowed("usd"), Scalar::Float(rng.random())));
                }
                let event = Event {
                    id: None,
                    tenant_id: Cow::Borrowed(["t0", "t1", "t2"][rng.random_range(0..3)]),
                    source: Cow::Borrowed(["a", "b"][rng.random_range(0..2)]),
                    event_type: Cow::Borrowed(["pay", "login"][rng.random_range(0..2)]),
                    properties,
                    occurred_at: NOW + rng.random_range(-3..3) * 40_000 + round * 30_000,
                };
                agg.add(&event);
                reference.add(&metrics, &event);
            }
            let mut got: HashMap<(Vec<u8>, UnixMillis, i64), Sketch> = HashMap::new();
            for entry in agg.drain() {
                let key = (
                    entry.series.canonical(),
                    entry.window_start,
                    entry.window_ms,
                );
                assert!(
                    got.insert(key, entry.sketch).is_none(),
                    "one entry per series"
                );
            }
            let expected = std::mem::take(&mut reference.pending);
            assert_eq!(got.len(), expected.len());
            for (key, sketch) in &expected {
                assert_eq!(got.get(key), Some(sketch), "{key:?}");
            }
            compared += expected.len();
            if round % 3 == 2 {
                let before = NOW + round * 30_000 - 60_000;
                agg.forget_windows_before(before);
                reference.admitted.retain(|key, _| key.3 >= before);
            }
        }
        assert!(compared > 1000, "{compared}");
        assert!(agg.overflowed_total() > 0);
    }

    #[test]
    fn a_burst_of_series_does_not_keep_its_memory_after_the_next_drain() {
        let mut agg = Aggregator::new(Arc::new(MetricSet::new([amount_metric(100_000)])));
        let idle = agg.approx_bytes();
        for region in 0..20_000 {
            let props = format!(r#"{{"region":"r{region}","usd":1}}"#);
            agg.add(&event("t", "pay", &props, 0));
        }
        let burst = agg.approx_bytes();
        assert_eq!(agg.drain().len(), 20_000 + 1 + 4);
        agg.add(&event("t", "pay", r#"{"region":"a","usd":1}"#, 60_000));
        agg.drain();
        agg.forget_windows_before(window_start(NOW, 60_000) + 60_000);
        let after = agg.approx_bytes();
        // What stays is mostly the update log, bounded by `LOG_CAPACITY`.
        let log_bound = 2 * LOG_CAPACITY * std::mem::size_of::<Update>();
        assert!(
            after < idle + log_bound + 64 * 1024,
            "idle {idle}, burst {burst}, after {after}"
        );
        assert!(
            after * 10 < burst,
            "idle {idle}, burst {burst}, after {after}"
        );
    }

    #[test]
    fn missing_dimensions_are_null() {
        let mut agg = Aggregator::new(Arc::new(MetricSet::new([amount_metric(10)])));
        agg.add(&event("t", "pay", r#"{"usd":1}"#, 0));
        let counts = by_series(&agg.drain());
        assert_eq!(
            counts[&(
                "amount".into(),
                r#"{"region":null}"#.into(),
                window_start(NOW, 60_000)
            )],
            1
        );
    }
}
