//! A small standalone distinct-count sketch: the [`hll`](super::hll) HyperLogLog at a low
//! precision, with its own compact encoding, for counts that need only a rough magnitude
//! (schema discovery's distinct values per property, see [`crate::discovery`]).
//!
//! At precision 10 (the default of [`DistinctSketch::new`]) the standard error is
//! 1.04/√1024 ≈ 3.3 %; the sketch stays sparse (4 bytes per distinct index) up to 128
//! entries, then holds 1,024 one-byte registers; encoded it is at most 2 + 768 bytes.
//!
//! Encoding: `precision: u8`, then `0` and up to `sparse_limit(p)` strictly increasing
//! sparse entries as `u32` little-endian, or `1` and the `2^p` registers packed 6 bits each.
//! Decoding validates everything and never panics.

use super::hll::{self, Hll};

/// Precision of the sketches [`DistinctSketch::new`] makes.
pub const DISTINCT_PRECISION: u8 = 10;
/// Lowest precision accepted from the wire.
pub const MIN_DISTINCT_PRECISION: u8 = 4;
/// Highest precision accepted from the wire (bounds a decoded sketch to 4 KiB).
pub const MAX_DISTINCT_PRECISION: u8 = 12;

/// Why an encoded [`DistinctSketch`] was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DistinctDecodeError {
    /// Shorter than its header or its declared content.
    #[error("distinct sketch truncated")]
    Truncated,
    /// Precision outside the accepted range.
    #[error("distinct sketch precision {0} is outside 4..=12")]
    Precision(u8),
    /// Unknown representation tag.
    #[error("distinct sketch representation {0} is unknown")]
    Tag(u8),
    /// A sparse entry is malformed or not strictly increasing, or there are too many.
    #[error("distinct sketch sparse entry {0} is invalid")]
    SparseEntry(usize),
    /// A register is out of range, or the register block has the wrong length.
    #[error("distinct sketch registers are invalid")]
    Registers,
}

/// A mergeable approximate distinct count.
#[derive(Clone, Debug)]
pub struct DistinctSketch(Hll);

impl Default for DistinctSketch {
    fn default() -> Self {
        Self::new()
    }
}

impl DistinctSketch {
    /// An empty sketch at [`DISTINCT_PRECISION`].
    pub fn new() -> Self {
        Self::with_precision(DISTINCT_PRECISION)
    }

    /// An empty sketch at precision `p` (clamped to the accepted range).
    pub fn with_precision(p: u8) -> Self {
        Self(Hll::with_precision(
            p.clamp(MIN_DISTINCT_PRECISION, MAX_DISTINCT_PRECISION),
        ))
    }

    /// Records the canonical bytes of one value.
    #[inline]
    pub fn insert(&mut self, canonical: &[u8]) {
        self.0.insert(super::unique_hash(canonical));
    }

    /// Merges another sketch in (exact union; a finer precision folds down).
    pub fn merge(&mut self, other: &DistinctSketch) {
        self.0.merge(&other.0);
    }

    /// The estimated number of distinct values recorded.
    pub fn estimate(&self) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.0.estimate()
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }

    /// The compact encoding (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let p = self.0.precision();
        match self.0.dense_registers() {
            Some(registers) => {
                let mut out = vec![p, 1];
                out.extend_from_slice(&hll::pack_registers(registers));
                out
            }
            None => {
                let entries = self.0.sparse_entries().unwrap_or_default();
                let mut out = Vec::with_capacity(2 + 4 * entries.len());
                out.extend_from_slice(&[p, 0]);
                for entry in entries {
                    out.extend_from_slice(&entry.to_le_bytes());
                }
                out
            }
        }
    }

    /// Decodes [`DistinctSketch::encode`]'s output, validating it.
    pub fn decode(bytes: &[u8]) -> Result<Self, DistinctDecodeError> {
        use DistinctDecodeError as E;
        let (&p, rest) = bytes.split_first().ok_or(E::Truncated)?;
        if !(MIN_DISTINCT_PRECISION..=MAX_DISTINCT_PRECISION).contains(&p) {
            return Err(E::Precision(p));
        }
        let (&tag, body) = rest.split_first().ok_or(E::Truncated)?;
        match tag {
            0 => {
                if body.len() % 4 != 0 {
                    return Err(E::Truncated);
                }
                let count = body.len() / 4;
                if count > hll::sparse_limit(p) {
                    return Err(E::SparseEntry(hll::sparse_limit(p)));
                }
                let mut entries = Vec::with_capacity(count);
                let mut previous: Option<u32> = None;
                for (index, chunk) in body.chunks_exact(4).enumerate() {
                    let e = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    let increasing = previous.is_none_or(|prev| (e >> 6) > (prev >> 6));
                    if !hll::valid_sparse_entry(e) || !increasing {
                        return Err(E::SparseEntry(index));
                    }
                    entries.push(e);
                    previous = Some(e);
                }
                Ok(Self(Hll::from_sparse(p, entries)))
            }
            1 => {
                if body.len() != (1usize << p) / 4 * 3 {
                    return Err(E::Registers);
                }
                let registers = hll::unpack_registers(body);
                if registers.iter().any(|&r| r > hll::max_register(p)) {
                    return Err(E::Registers);
                }
                Ok(Self(Hll::from_dense(p, registers.into_boxed_slice())))
            }
            other => Err(E::Tag(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(n: u64, p: u8) -> DistinctSketch {
        let mut s = DistinctSketch::with_precision(p);
        for i in 0..n {
            s.insert(format!("value-{i}").as_bytes());
        }
        s
    }

    #[test]
    fn estimates_stay_within_four_standard_errors() {
        for n in [0u64, 1, 7, 100, 1_000, 20_000] {
            let estimate = filled(n, DISTINCT_PRECISION).estimate();
            let tolerance = (n as f64 * 4.0 * 1.04 / 32.0).max(1.0);
            assert!(
                (estimate - n as f64).abs() <= tolerance,
                "{n} distinct values estimated as {estimate}"
            );
        }
    }

    #[test]
    fn sparse_and_dense_sketches_round_trip_and_merge_as_a_union() {
        for n in [3u64, 5_000] {
            let sketch = filled(n, DISTINCT_PRECISION);
            let bytes = sketch.encode();
            assert!(bytes.len() <= 2 + 768);
            let back = DistinctSketch::decode(&bytes).expect("decodes");
            assert_eq!(back.encode(), bytes);
        }
        let mut a = filled(3_000, 10);
        let b = filled(6_000, 12);
        a.merge(&b);
        let estimate = a.estimate();
        assert!((estimate - 6_000.0).abs() < 6_000.0 * 0.15, "{estimate}");
    }

    #[test]
    fn malformed_encodings_are_refused() {
        assert_eq!(
            DistinctSketch::decode(&[]).unwrap_err(),
            DistinctDecodeError::Truncated
        );
        assert_eq!(
            DistinctSketch::decode(&[13, 0]).unwrap_err(),
            DistinctDecodeError::Precision(13)
        );
        assert_eq!(
            DistinctSketch::decode(&[10, 7]).unwrap_err(),
            DistinctDecodeError::Tag(7)
        );
        assert_eq!(
            DistinctSketch::decode(&[10, 1, 0, 0]).unwrap_err(),
            DistinctDecodeError::Registers
        );
        let mut twice = vec![10, 0];
        let entry = DistinctSketch::decode(&filled(1, 10).encode())
            .expect("one")
            .encode();
        twice.extend_from_slice(&entry[2..]);
        twice.extend_from_slice(&entry[2..]);
        assert_eq!(
            DistinctSketch::decode(&twice).unwrap_err(),
            DistinctDecodeError::SparseEntry(1)
        );
    }
}
