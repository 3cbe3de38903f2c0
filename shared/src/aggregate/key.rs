//! The keys the aggregator identifies deltas by, and their encoding: the combination key of
//! an event's (tenant, dimension values) within a metric, the inner key of one dimension set's
//! series within its group, the delta key (window prefix and canonical series bytes) admitted
//! against the series cap, and the decoding of inner keys back into canonical series bytes at
//! drain.

use super::state::Work;
use crate::codec::{push_varint, read_varint};
use crate::event::{Event, Scalar};
use crate::metric::{property, CompiledMetric, DimensionSource, OVERFLOW_VALUE};
use crate::series::CanonicalWriter;
use crate::time::UnixMillis;
use foldhash::fast::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Bytes [`Work::write_key`] writes before the canonical series bytes: the window start and
/// size, 8 bytes each.
pub(super) const KEY_PREFIX: usize = 16;

/// Writes the canonical series bytes of an inner key of `metric` into `out`; false when the
/// inner key is malformed.
pub(super) fn write_canonical(
    out: &mut Vec<u8>,
    tenant: &str,
    metric: &CompiledMetric,
    inner: &[u8],
) -> bool {
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
pub(super) fn write_dimension(
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
pub(super) fn combo_hash(
    hasher: &RandomState,
    start: UnixMillis,
    metric: usize,
    key: &[u8],
) -> u64 {
    let mut state = hasher.build_hasher();
    state.write_u64((start as u64) ^ (metric as u64).rotate_left(32));
    state.write(key);
    state.finish()
}

impl Work {
    /// Writes the key of a combination within its window and metric into `combo_key`: the
    /// tenant (varint length and bytes), then per dimension of the metric, in name order, its
    /// value as [`push_value`] writes it.
    pub(super) fn write_combo_key(&mut self, tenant: &str) {
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
    pub(super) fn write_inner_key(&mut self, set_index: usize, indices: &[usize], overflow: bool) {
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
    pub(super) fn write_key(
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
