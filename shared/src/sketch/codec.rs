//! The sketch wire representation and its validation.
//!
//! `SketchWire` is what a [`Sketch`] looks like to serde: a tree of primitive fields that
//! postcard writes compactly (var-ints, raw `f64`s, length-prefixed lists) and serde_json writes
//! readably. It is our own format, independent of any library's internals:
//!
//! ```text
//! SketchWire  { spec: {values: bool, unique: bool}, count: u64,
//!               values: Option<ValuesWire>, unique: Option<HllWire> }
//! ValuesWire  { n: u64, min: f64, max: f64,
//!               sum: [f64],                  // canonical exact-sum parts, ascending magnitude
//!               compression: u32,            // t-digest max_size, must equal DIGEST_COMPRESSION
//!               centroids: [(f64, u64)],     // (mean, weight), ascending mean
//!               pending: [f64] }             // raw values not yet in a centroid, ascending
//! HllWire     { precision: u8, registers: Sparse([u32]) | Dense([u8]) }
//!               // Sparse: entries (25-bit index << 6 | rho'), delta-encoded, strictly increasing
//!               // Dense: 2^precision registers packed 6 bits each (3 bytes per 4 registers)
//! ```
//!
//! JSON is for reading and debugging: serde_json, built without its `float_roundtrip` feature,
//! may parse a float one unit in the last place off, so store and merge the binary form.
//!
//! Any change to this layout or to its meaning (precision, hash seed, compression, ρ encoding)
//! is a format change: bump [`SKETCH_FORMAT_VERSION`](super::SKETCH_FORMAT_VERSION) and
//! regenerate the golden fixtures on purpose.
//!
//! Decoding never trusts a length: every list is read through `Capped`, which stores at most a
//! fixed number of elements (so allocation is bounded by the format's largest valid sketch, and
//! by the input length) and only counts the rest, so that validation can report the overrun as a
//! typed error. Then `TryFrom<SketchWire>` checks every invariant the in-memory sketch relies
//! on before building it.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::digest::{Digest, DIGEST_BUFFER, DIGEST_COMPRESSION};
use super::hll::{self, Hll, MAX_PRECISION, MIN_PRECISION};
use super::sum::{ExactSum, MAX_SUM_PARTS};
use super::{Sketch, SketchSpec, Values, MAX_ABS_VALUE};

/// Largest magnitude of one exact-sum part accepted from the wire (2^1000). With at most
/// `MAX_SUM_PARTS` parts their total can not overflow while they are normalised.
const MAX_SUM_PART: f64 = 1.0715086071862673e301;

/// Largest digest weight total accepted, so that weights stay exact in an `f64`.
const MAX_DIGEST_WEIGHT: u64 = 1 << 53;

const SPARSE_CAP: usize = hll::sparse_limit(MAX_PRECISION);
const DENSE_CAP: usize = (1 << MAX_PRECISION) / 4 * 3;

/// Why bytes (or a deserialised value) are not a valid sketch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SketchDecodeError {
    /// No bytes at all.
    #[error("empty sketch encoding")]
    Empty,
    /// The leading format version byte is not one this build reads.
    #[error("unsupported sketch format version {0} (this build reads {expected})", expected = super::SKETCH_FORMAT_VERSION)]
    UnsupportedVersion(u8),
    /// The bytes are not a postcard `SketchWire` (truncated, corrupted, wrong types).
    #[error("malformed sketch encoding: {0}")]
    Malformed(#[from] postcard::Error),
    /// Bytes follow a complete sketch.
    #[error("{0} trailing bytes after the sketch")]
    TrailingBytes(usize),
    /// Values or a HyperLogLog are present that the spec does not carry.
    #[error("sketch carries {0} but its spec does not include them")]
    SpecMismatch(&'static str),
    /// Counts contradict each other.
    #[error("inconsistent counts: {0}")]
    CountMismatch(&'static str),
    /// `min`/`max` non-finite, beyond ±`MAX_ABS_VALUE`, or `min > max`.
    #[error("invalid min/max")]
    InvalidMinMax,
    /// More exact-sum parts than any valid sum has.
    #[error("sum has {len} parts, at most {max} are valid")]
    TooManySumParts {
        /// Parts found.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A sum part is not finite or too large, or the sum is not within `n·min ..= n·max`.
    #[error("invalid sum")]
    InvalidSum,
    /// t-digest compression other than the pinned one.
    #[error("t-digest compression {0}, this build uses {expected}", expected = DIGEST_COMPRESSION)]
    Compression(u32),
    /// More centroids than the compression allows.
    #[error("t-digest has {len} centroids, at most {max} are valid")]
    TooManyCentroids {
        /// Centroids found.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A centroid's mean is non-finite, outside `[min, max]` or out of order, or its weight is 0.
    #[error("t-digest centroid {index} is invalid")]
    InvalidCentroid {
        /// Position in the list.
        index: usize,
    },
    /// More pending values than the buffer holds.
    #[error("{len} pending values, fewer than {max} are valid")]
    TooManyPending {
        /// Values found.
        len: usize,
        /// Limit (exclusive).
        max: usize,
    },
    /// A pending value is non-finite, outside `[min, max]` or out of order.
    #[error("pending value {index} is invalid")]
    InvalidPending {
        /// Position in the list.
        index: usize,
    },
    /// HyperLogLog precision outside the supported range.
    #[error("HyperLogLog precision {0} outside {MIN_PRECISION}..={MAX_PRECISION}")]
    InvalidPrecision(u8),
    /// Dense register array of the wrong length for its precision.
    #[error("dense HyperLogLog has {actual} packed register bytes, precision {precision} needs {expected}")]
    RegisterLength {
        /// Precision.
        precision: u8,
        /// Packed bytes needed.
        expected: usize,
        /// Packed bytes found.
        actual: usize,
    },
    /// A register holds a value impossible at its precision.
    #[error("HyperLogLog register {index} holds {value}, above the maximum {max}")]
    RegisterValue {
        /// Register index.
        index: usize,
        /// Value found.
        value: u8,
        /// Largest valid value.
        max: u8,
    },
    /// More sparse entries than a sparse sketch of this precision holds.
    #[error("sparse HyperLogLog has {len} entries, at most {max} are valid")]
    SparseTooLong {
        /// Entries found.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A sparse entry is malformed, overflows, or is not strictly increasing by index.
    #[error("sparse HyperLogLog entry {index} is invalid")]
    SparseEntry {
        /// Position in the list.
        index: usize,
    },
}

/// The serde shape of a [`Sketch`] (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SketchWire {
    spec: SketchSpec,
    count: u64,
    values: Option<ValuesWire>,
    unique: Option<HllWire>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ValuesWire {
    n: u64,
    min: f64,
    max: f64,
    sum: Capped<f64, MAX_SUM_PARTS>,
    compression: u32,
    centroids: Capped<(f64, u64), DIGEST_COMPRESSION>,
    pending: Capped<f64, DIGEST_BUFFER>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HllWire {
    precision: u8,
    registers: HllRegisters,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum HllRegisters {
    Sparse(Capped<u32, SPARSE_CAP>),
    Dense(CappedBytes<DENSE_CAP>),
}

/// A list read from untrusted input: keeps at most `MAX` elements, counts all of them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Capped<T, const MAX: usize> {
    items: Vec<T>,
    total: usize,
}

impl<T, const MAX: usize> Capped<T, MAX> {
    fn new(items: Vec<T>) -> Self {
        let total = items.len();
        Capped { items, total }
    }

    /// The elements, if there were no more than `limit` (≤ `MAX`) of them.
    fn within(&self, limit: usize) -> Result<&[T], usize> {
        if self.total > limit.min(MAX) {
            Err(self.total)
        } else {
            Ok(&self.items)
        }
    }
}

impl<T: Serialize, const MAX: usize> Serialize for Capped<T, MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.items.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for Capped<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(CappedVisitor::<T, MAX>(PhantomData))
    }
}

/// Reads a list into a [`Capped`].
struct CappedVisitor<T, const MAX: usize>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for CappedVisitor<T, MAX> {
    type Value = Capped<T, MAX>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Postcard's hint never exceeds the remaining input; serde_json gives none.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX));
        let mut total = 0usize;
        while let Some(item) = seq.next_element::<T>()? {
            if items.len() < MAX {
                if items.len() == items.capacity() {
                    // Grow geometrically, but never past the cap.
                    let target = (items.capacity() * 2).clamp(16, MAX);
                    items.reserve_exact(target - items.len());
                }
                items.push(item);
            }
            total = total.saturating_add(1);
        }
        Ok(Capped { items, total })
    }
}

/// A byte list read from untrusted input: keeps at most `MAX` bytes, counts all of them.
/// Written as serde bytes: in postcard a length and the raw bytes (the same as a list of `u8`),
/// in JSON a list of numbers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CappedBytes<const MAX: usize> {
    bytes: Vec<u8>,
    total: usize,
}

impl<const MAX: usize> CappedBytes<MAX> {
    fn new(bytes: Vec<u8>) -> Self {
        let total = bytes.len();
        CappedBytes { bytes, total }
    }

    fn from_slice(bytes: &[u8]) -> Self {
        CappedBytes {
            bytes: bytes.get(..MAX).unwrap_or(bytes).to_vec(),
            total: bytes.len(),
        }
    }

    /// The bytes, if there were no more than `limit` (≤ `MAX`) of them.
    fn within(&self, limit: usize) -> Result<&[u8], usize> {
        if self.total > limit.min(MAX) {
            Err(self.total)
        } else {
            Ok(&self.bytes)
        }
    }
}

impl<const MAX: usize> Serialize for CappedBytes<MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.bytes)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for CappedBytes<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor<const MAX: usize>;

        impl<'de, const MAX: usize> Visitor<'de> for BytesVisitor<MAX> {
            type Value = CappedBytes<MAX>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "bytes")
            }

            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(CappedBytes::from_slice(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                let list = CappedVisitor::<u8, MAX>(PhantomData).visit_seq(seq)?;
                Ok(CappedBytes {
                    bytes: list.items,
                    total: list.total,
                })
            }
        }

        deserializer.deserialize_bytes(BytesVisitor::<MAX>)
    }
}

impl SketchWire {
    /// The canonical wire form of a sketch.
    pub(crate) fn from_sketch(sketch: &Sketch) -> SketchWire {
        let values = sketch.values.as_deref().map(|v| ValuesWire {
            n: v.n,
            min: v.min,
            max: v.max,
            sum: Capped::new(v.sum.parts().to_vec()),
            compression: DIGEST_COMPRESSION as u32,
            centroids: Capped::new(v.digest.centroid_parts()),
            pending: Capped::new(v.digest.sorted_pending()),
        });
        let unique = sketch
            .hll
            .as_deref()
            .filter(|h| !h.is_empty())
            .map(|h| HllWire {
                precision: h.precision(),
                registers: match h.dense_registers() {
                    Some(registers) => {
                        HllRegisters::Dense(CappedBytes::new(hll::pack_registers(registers)))
                    }
                    None => {
                        let entries = h.sparse_entries().unwrap_or_default();
                        let mut previous = 0u32;
                        let deltas = entries
                            .iter()
                            .map(|&e| {
                                let d = e - previous;
                                previous = e;
                                d
                            })
                            .collect();
                        HllRegisters::Sparse(Capped::new(deltas))
                    }
                },
            });
        SketchWire {
            spec: sketch.spec,
            count: sketch.count,
            values,
            unique,
        }
    }
}

impl TryFrom<SketchWire> for Sketch {
    type Error = SketchDecodeError;

    fn try_from(wire: SketchWire) -> Result<Sketch, SketchDecodeError> {
        use SketchDecodeError as E;
        if wire.values.is_some() && !wire.spec.values {
            return Err(E::SpecMismatch("values"));
        }
        if wire.unique.is_some() && !wire.spec.unique {
            return Err(E::SpecMismatch("a HyperLogLog"));
        }
        if wire.count == 0 && (wire.values.is_some() || wire.unique.is_some()) {
            return Err(E::CountMismatch("an empty sketch carries data"));
        }
        let values = match wire.values {
            Some(v) => Some(Box::new(decode_values(v, wire.count)?)),
            None => None,
        };
        let hll = match wire.unique {
            Some(h) => decode_hll(h, wire.count)?.map(Box::new),
            None => None,
        };
        Ok(Sketch {
            count: wire.count,
            spec: wire.spec,
            values,
            hll,
        })
    }
}

fn decode_values(v: ValuesWire, count: u64) -> Result<Values, SketchDecodeError> {
    use SketchDecodeError as E;
    if v.n == 0 || v.n > count {
        return Err(E::CountMismatch(
            "value count is 0 or above the event count",
        ));
    }
    let in_range = |x: f64| x.is_finite() && x.abs() <= MAX_ABS_VALUE;
    if !in_range(v.min) || !in_range(v.max) || v.min > v.max {
        return Err(E::InvalidMinMax);
    }

    let parts = v
        .sum
        .within(MAX_SUM_PARTS)
        .map_err(|len| E::TooManySumParts {
            len,
            max: MAX_SUM_PARTS,
        })?;
    if parts
        .iter()
        .any(|p| !p.is_finite() || p.abs() > MAX_SUM_PART)
    {
        return Err(E::InvalidSum);
    }
    let sum = ExactSum::from_parts(parts);
    // The exact sum lies in [n·min, n·max]. Rounding is monotone, so the rounded values do too;
    // the slack admits an `n` that is not exact in an f64 and JSON's last-bit float parsing.
    let n = v.n as f64;
    let (low, high) = (n * v.min, n * v.max);
    let slack = low.abs().max(high.abs()) * 1e-12;
    let total = sum.value();
    if !(total >= low - slack && total <= high + slack) {
        return Err(E::InvalidSum);
    }

    if v.compression as usize != DIGEST_COMPRESSION {
        return Err(E::Compression(v.compression));
    }
    let centroids = v
        .centroids
        .within(DIGEST_COMPRESSION)
        .map_err(|len| E::TooManyCentroids {
            len,
            max: DIGEST_COMPRESSION,
        })?;
    let mut weight: u64 = 0;
    let mut previous_mean = f64::NEG_INFINITY;
    for (index, &(mean, w)) in centroids.iter().enumerate() {
        let ok =
            mean.is_finite() && mean >= v.min && mean <= v.max && mean >= previous_mean && w >= 1;
        weight = weight.saturating_add(w);
        if !ok || weight > MAX_DIGEST_WEIGHT {
            return Err(E::InvalidCentroid { index });
        }
        previous_mean = mean;
    }
    let pending = v
        .pending
        .within(DIGEST_BUFFER - 1)
        .map_err(|len| E::TooManyPending {
            len,
            max: DIGEST_BUFFER,
        })?;
    let mut previous = f64::NEG_INFINITY;
    for (index, &x) in pending.iter().enumerate() {
        if !(x.is_finite() && x >= v.min && x <= v.max && x >= previous) {
            return Err(E::InvalidPending { index });
        }
        previous = x;
    }
    if weight + pending.len() as u64 != v.n {
        return Err(E::CountMismatch(
            "digest weights plus pending values differ from the value count",
        ));
    }
    let digest = Digest::from_parts(centroids, pending.to_vec(), v.min, v.max);
    Ok(Values {
        n: v.n,
        min: v.min,
        max: v.max,
        sum,
        digest,
    })
}

fn decode_hll(h: HllWire, count: u64) -> Result<Option<Hll>, SketchDecodeError> {
    use SketchDecodeError as E;
    let p = h.precision;
    if !(MIN_PRECISION..=MAX_PRECISION).contains(&p) {
        return Err(E::InvalidPrecision(p));
    }
    let decoded = match h.registers {
        HllRegisters::Sparse(deltas) => {
            let max = hll::sparse_limit(p);
            let deltas = deltas
                .within(max)
                .map_err(|len| E::SparseTooLong { len, max })?;
            if deltas.len() as u64 > count {
                return Err(E::CountMismatch(
                    "more sparse HyperLogLog entries than events",
                ));
            }
            let mut entries = Vec::with_capacity(deltas.len());
            let mut previous: Option<u32> = None;
            for (index, &d) in deltas.iter().enumerate() {
                let entry = match previous {
                    None => Some(d),
                    Some(prev) => prev.checked_add(d),
                };
                let ok = entry.filter(|&e| {
                    hll::valid_sparse_entry(e) && previous.is_none_or(|prev| (e >> 6) > (prev >> 6))
                });
                let Some(e) = ok else {
                    return Err(E::SparseEntry { index });
                };
                entries.push(e);
                previous = Some(e);
            }
            if entries.is_empty() {
                return Ok(None);
            }
            Hll::from_sparse(p, entries)
        }
        HllRegisters::Dense(packed) => {
            let expected = (1usize << p) / 4 * 3;
            let packed = packed
                .within(expected)
                .map_err(|actual| E::RegisterLength {
                    precision: p,
                    expected,
                    actual,
                })?;
            if packed.len() != expected {
                return Err(E::RegisterLength {
                    precision: p,
                    expected,
                    actual: packed.len(),
                });
            }
            let registers = hll::unpack_registers(packed);
            let max = hll::max_register(p);
            if let Some((index, &value)) = registers.iter().enumerate().find(|(_, &r)| r > max) {
                return Err(E::RegisterValue { index, value, max });
            }
            Hll::from_dense(p, registers.into_boxed_slice())
        }
    };
    Ok((!decoded.is_empty()).then_some(decoded))
}
