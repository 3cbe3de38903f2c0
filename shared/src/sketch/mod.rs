//! The mergeable per-window summary of one series: exact `count`/`sum`/`min`/`max`/`avg`,
//! HyperLogLog `unique`, t-digest `p50`/`p90`/`p95`/`p99`.
//!
//! Edge agents [`record`](Sketch::record) events into sketches, publish them, and aggregators
//! [`merge`](Sketch::merge) the sketches of many agents. Merging is associative and commutative:
//!
//! - `count`, `min`, `max` and `sum` are exact whatever the order or grouping of merges (the sum
//!   is kept as an exact expansion, see [`sum`], and rounded once when served);
//! - `unique` is a pure function of the set of unique hashes seen (HyperLogLog registers are a
//!   union), so it is also independent of merge order;
//! - percentiles come from a t-digest, whose merge is commutative but only approximately
//!   associative: different groupings give estimates within the digest's error.
//!
//! Memory: a count-only sketch is 32 bytes with no heap. Values (`Option<Box<..>>`) and the
//! HyperLogLog are allocated on first use: one value costs 112 heap bytes (80 of value
//! statistics, 32 of pending-value buffer), one unique key 56 more (`tests/sketch_props.rs`
//! checks these bounds).
//! The HyperLogLog stays sparse (4 bytes per distinct index) up to 2,048 entries and then uses
//! 16 KiB; the digest buffers up to 256 raw values and then keeps at most 200 centroids.
//!
//! Wire: [`Sketch`] implements serde through its own versioned-by-the-envelope representation
//! (see [`codec`]), so it embeds in postcard and JSON messages; [`Sketch::encode`] /
//! [`Sketch::decode`] add a leading [`SKETCH_FORMAT_VERSION`] byte for standalone use, and
//! [`Sketch::to_state`] / [`Sketch::from_state`] carry that as base64 text (the `state` stored
//! with every window and sent with live updates, see [`state`]). Decoding validates everything and returns [`SketchDecodeError`], never panics, and allocates no more
//! than the largest valid sketch needs.
//!
//! Library choices: percentiles use `tdigest` 1.x (see [`digest`] for how its buffering is
//! handled); unique counts use a small HyperLogLog of our own, because the pinned
//! `hyperloglogplus` offers no way to read or write its registers for our wire format (see
//! [`hll`] for the evaluation of it and of the alternatives).

pub mod codec;
pub mod digest;
pub mod distinct;
pub mod hll;
pub mod state;
mod stats;
pub mod sum;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use codec::SketchDecodeError;
pub use digest::{DIGEST_BUFFER, DIGEST_COMPRESSION};
pub use hll::HLL_PRECISION;
pub use state::{StateDecodeError, MAX_STATE_LEN};
pub use stats::Stats;

use codec::SketchWire;
use digest::Digest;
use hll::Hll;
use sum::ExactSum;

/// Version byte that [`Sketch::encode`] writes first. Bump it with any change to the wire
/// representation or its meaning (hash seed, precision, compression), and regenerate the golden
/// fixtures deliberately. Message envelopes that embed sketches must bump their own version too.
pub const SKETCH_FORMAT_VERSION: u8 = 1;

/// Seed of [`unique_hash`]. Part of the wire format: sketches hashed with different seeds merge
/// into nonsense.
pub const UNIQUE_HASH_SEED: u64 = 0x7274_6461_7368_0001; // "rtdash" + 1

/// Largest magnitude of a value that is recorded. Larger values (and NaN/±∞) are not recorded as
/// values; the event still counts. The bound guarantees that sums of fewer than 2^64 values can
/// not overflow.
pub const MAX_ABS_VALUE: f64 = 1e288;

/// Which optional structures a metric's sketch carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct SketchSpec {
    /// The metric has a numeric field: keep sum/min/max/avg and percentiles.
    pub values: bool,
    /// The metric has a unique key: keep a HyperLogLog.
    pub unique: bool,
}

impl SketchSpec {
    /// Count only.
    pub const COUNT: SketchSpec = SketchSpec {
        values: false,
        unique: false,
    };
    /// Count and value statistics.
    pub const VALUES: SketchSpec = SketchSpec {
        values: true,
        unique: false,
    };
    /// Count and unique count.
    pub const UNIQUE: SketchSpec = SketchSpec {
        values: false,
        unique: true,
    };
    /// Everything.
    pub const ALL: SketchSpec = SketchSpec {
        values: true,
        unique: true,
    };
}

/// Hash of a unique-key's canonical bytes, with a fixed seed (same in every process and
/// version): xxh3-64 seeded with [`UNIQUE_HASH_SEED`].
pub fn unique_hash(canonical_bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(canonical_bytes, UNIQUE_HASH_SEED)
}

/// Mergeable summary of one series in one window.
///
/// Equality compares the canonical wire representation: a sketch equals its decoded encoding,
/// but two sketches of the same events merged in another grouping may differ in their digest
/// centroids; compare [`Sketch::stats`] for that. It allocates, so keep it off hot paths.
#[derive(Clone)]
pub struct Sketch {
    count: u64,
    spec: SketchSpec,
    values: Option<Box<Values>>,
    hll: Option<Box<Hll>>,
}

/// Value statistics; present once a value was recorded.
#[derive(Clone, Debug)]
struct Values {
    /// Number of values (≤ the event count: events may lack the field).
    n: u64,
    min: f64,
    max: f64,
    sum: ExactSum,
    digest: Digest,
}

impl Values {
    fn first(value: f64) -> Values {
        let mut sum = ExactSum::default();
        sum.add(value);
        let mut digest = Digest::default();
        digest.push(value);
        Values {
            n: 1,
            min: value,
            max: value,
            sum,
            digest,
        }
    }

    /// Records `value` as `weight` values (see [`Sketch::record_weighted`]).
    fn record_weighted(&mut self, value: f64, weight: u32) {
        self.n = self.n.saturating_add(u64::from(weight));
        if value < self.min {
            self.min = value;
        }
        if value > self.max {
            self.max = value;
        }
        self.sum.add_product(value, weight);
        self.digest.push_weighted(value, weight);
    }

    #[inline]
    fn record(&mut self, value: f64) {
        self.n = self.n.saturating_add(1);
        if value < self.min {
            self.min = value;
        }
        if value > self.max {
            self.max = value;
        }
        self.sum.add(value);
        self.digest.push(value);
    }

    fn merge(&mut self, other: &Values) {
        self.n = self.n.saturating_add(other.n);
        if other.min < self.min {
            self.min = other.min;
        }
        if other.max > self.max {
            self.max = other.max;
        }
        self.sum.merge(&other.sum);
        self.digest.merge(&other.digest);
    }
}

impl Sketch {
    /// An empty sketch carrying the structures of `spec`.
    pub fn new(spec: SketchSpec) -> Self {
        Sketch {
            count: 0,
            spec,
            values: None,
            hll: None,
        }
    }

    /// The structures this sketch carries.
    pub fn spec(&self) -> SketchSpec {
        self.spec
    }

    /// Records one event: count += 1; `value` feeds sum/min/max/percentiles (ignored unless
    /// `spec.values`, and ignored when non-finite or beyond ±[`MAX_ABS_VALUE`]); `unique` (from
    /// [`unique_hash`]) feeds the HyperLogLog (ignored unless `spec.unique`).
    #[inline]
    pub fn record(&mut self, value: Option<f64>, unique: Option<u64>) {
        self.count = self.count.saturating_add(1);
        if let Some(v) = value {
            if self.spec.values && v.is_finite() && v.abs() <= MAX_ABS_VALUE {
                match &mut self.values {
                    Some(values) => values.record(v),
                    None => self.values = Some(Box::new(Values::first(v))),
                }
            }
        }
        if let Some(hash) = unique {
            if self.spec.unique {
                self.hll
                    .get_or_insert_with(|| Box::new(Hll::new()))
                    .insert(hash);
            }
        }
    }

    /// Records one event standing for `weight` events (a producer's sample, e.g. a StatsD
    /// counter sent at `@0.1` has weight 10): count += `weight`; `value` counts `weight` times
    /// (the sum grows by `value × weight`, exactly; percentiles see it `weight` times); the
    /// unique hash once. The same as `weight` calls of [`Sketch::record`], up to the digest's
    /// grouping of equal values.
    pub fn record_weighted(&mut self, value: Option<f64>, unique: Option<u64>, weight: u32) {
        if weight <= 1 {
            self.record(value, unique);
            return;
        }
        self.count = self.count.saturating_add(u64::from(weight));
        if let Some(v) = value {
            if self.spec.values && v.is_finite() && v.abs() <= MAX_ABS_VALUE {
                match &mut self.values {
                    Some(values) => values.record_weighted(v, weight),
                    None => {
                        let mut values = Values::first(v);
                        values.record_weighted(v, weight - 1);
                        self.values = Some(Box::new(values));
                    }
                }
            }
        }
        if let Some(hash) = unique {
            if self.spec.unique {
                self.hll
                    .get_or_insert_with(|| Box::new(Hll::new()))
                    .insert(hash);
            }
        }
    }

    /// Merges another sketch into this one. Associative and commutative (percentiles up to the
    /// digest's error, see the module docs).
    ///
    /// Different specs: an empty sketch (count 0) is the identity for any sketch with events,
    /// whatever its spec, so merging into a fresh sketch adopts the other side's spec. When both
    /// sides have events, the result carries only the structures both carry: a structure
    /// missing on one side means that side's events were not measured for it (say the metric
    /// definition changed mid-window), so the combined statistic is unknown and is served as
    /// `None`. Two empty sketches merge into an empty one with the structures both carry.
    pub fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            if self.count == 0 {
                // Two empty sketches: keep what both would carry, so the order does not matter.
                self.spec = SketchSpec {
                    values: self.spec.values && other.spec.values,
                    unique: self.spec.unique && other.spec.unique,
                };
            }
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        self.count = self.count.saturating_add(other.count);
        let spec = SketchSpec {
            values: self.spec.values && other.spec.values,
            unique: self.spec.unique && other.spec.unique,
        };
        self.spec = spec;
        if !spec.values {
            self.values = None;
        } else if let Some(theirs) = &other.values {
            match &mut self.values {
                Some(mine) => mine.merge(theirs),
                None => self.values = Some(theirs.clone()),
            }
        }
        if !spec.unique {
            self.hll = None;
        } else if let Some(theirs) = &other.hll {
            match &mut self.hll {
                Some(mine) => mine.merge(theirs),
                None => self.hll = Some(theirs.clone()),
            }
        }
    }

    /// A copy keeping only the structures of `parts` (of those this sketch carries): what a
    /// reader that serves some statistics merges, without copying or merging the others (a
    /// dense HyperLogLog is 16 KiB). Merging into it keeps the restriction.
    pub fn restricted(&self, parts: SketchSpec) -> Sketch {
        let spec = SketchSpec {
            values: self.spec.values && parts.values,
            unique: self.spec.unique && parts.unique,
        };
        Sketch {
            count: self.count,
            spec,
            values: if spec.values {
                self.values.clone()
            } else {
                None
            },
            hll: if spec.unique { self.hll.clone() } else { None },
        }
    }

    /// Number of events recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Number of values recorded (events that carried a usable value).
    pub fn value_count(&self) -> u64 {
        self.values.as_ref().map_or(0, |v| v.n)
    }

    /// Whether no event was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The unrounded distinct-count estimate (`None` unless `spec.unique`).
    pub fn unique_estimate(&self) -> Option<f64> {
        self.spec
            .unique
            .then(|| self.hll.as_ref().map_or(0.0, |h| h.estimate()))
    }

    /// Puts buffered percentile values in their canonical order in place, so that reading
    /// [`Sketch::stats`] and encoding the sketch after it do not each sort a copy of them.
    /// Changes nothing the sketch reports or encodes.
    pub fn settle(&mut self) {
        if let Some(values) = &mut self.values {
            values.digest.settle();
        }
    }

    /// The served statistics. Takes `&self`: pending digest values are folded into a temporary
    /// copy, so this costs a digest merge (microseconds); call it when a window is served, not
    /// per event.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats {
            count: self.count,
            ..Stats::default()
        };
        if self.spec.values {
            match &self.values {
                Some(v) => {
                    let sum = v.sum.value();
                    let [p50, p90, p95, p99] = v.digest.quantiles();
                    stats.sum = Some(sum);
                    stats.min = Some(v.min);
                    stats.max = Some(v.max);
                    stats.avg = Some(sum / v.n as f64);
                    stats.p50 = p50;
                    stats.p90 = p90;
                    stats.p95 = p95;
                    stats.p99 = p99;
                }
                None => stats.sum = Some(0.0),
            }
        }
        if let Some(estimate) = self.unique_estimate() {
            let floor = u64::from(self.hll.as_ref().is_some_and(|h| !h.is_empty()));
            // `as` saturates; the estimate is finite and non-negative.
            stats.unique = Some((estimate.round() as u64).clamp(floor, self.count.max(floor)));
        }
        stats
    }

    /// Approximate heap bytes, for the agent's memory budget (cheap to call; excludes allocator
    /// overhead and `size_of::<Sketch>()` itself).
    pub fn heap_bytes(&self) -> usize {
        let values = self.values.as_ref().map_or(0, |v| {
            std::mem::size_of::<Values>() + v.sum.heap_bytes() + v.digest.heap_bytes()
        });
        let hll = self
            .hll
            .as_ref()
            .map_or(0, |h| std::mem::size_of::<Hll>() + h.heap_bytes());
        values + hll
    }

    /// Whether the HyperLogLog uses its dense registers (for diagnostics and tests).
    pub fn unique_is_dense(&self) -> bool {
        self.hll.as_ref().is_some_and(|h| h.is_dense())
    }

    /// Standalone binary encoding: [`SKETCH_FORMAT_VERSION`], then the postcard wire form.
    pub fn encode(&self) -> Vec<u8> {
        let wire = SketchWire::from_sketch(self);
        // Postcard only fails to serialise sequences of unknown length, and to write into a
        // full fixed buffer; SketchWire has neither.
        postcard::to_extend(&wire, vec![SKETCH_FORMAT_VERSION]).unwrap_or_default()
    }

    /// Decodes [`Sketch::encode`] output. Truncated, corrupted or hostile bytes give an error;
    /// this never panics and allocates at most what the largest valid sketch needs.
    pub fn decode(bytes: &[u8]) -> Result<Sketch, SketchDecodeError> {
        let (&version, body) = bytes.split_first().ok_or(SketchDecodeError::Empty)?;
        if version != SKETCH_FORMAT_VERSION {
            return Err(SketchDecodeError::UnsupportedVersion(version));
        }
        let (wire, rest) = postcard::take_from_bytes::<SketchWire>(body)?;
        if !rest.is_empty() {
            return Err(SketchDecodeError::TrailingBytes(rest.len()));
        }
        Sketch::try_from(wire)
    }
}

impl PartialEq for Sketch {
    fn eq(&self, other: &Sketch) -> bool {
        self.count == other.count
            && self.spec == other.spec
            && SketchWire::from_sketch(self) == SketchWire::from_sketch(other)
    }
}

impl fmt::Debug for Sketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Sketch");
        s.field("count", &self.count).field("spec", &self.spec);
        if let Some(v) = &self.values {
            s.field("n", &v.n)
                .field("min", &v.min)
                .field("max", &v.max)
                .field("sum", &v.sum.value())
                .field("centroids", &v.digest.centroid_parts().len())
                .field("pending", &v.digest.sorted_pending().len());
        }
        if let Some(h) = &self.hll {
            s.field("hll_precision", &h.precision()).field(
                "hll",
                &match h.sparse_entries() {
                    Some(entries) => format!("sparse({})", entries.len()),
                    None => "dense".to_owned(),
                },
            );
        }
        s.finish()
    }
}

impl Serialize for Sketch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SketchWire::from_sketch(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Sketch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = SketchWire::deserialize(deserializer)?;
        Sketch::try_from(wire).map_err(serde::de::Error::custom)
    }
}
