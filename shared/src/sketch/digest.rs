//! Percentiles: a t-digest (`tdigest` 1.x) behind a small buffer of raw values.
//!
//! `tdigest` 1.x's own `push` reserves a buffer of 5 × `max_size` values on the first push
//! (8 KB at our compression), which a million mostly tiny series can not afford. So values are
//! buffered here, in a `Vec` that grows only as values arrive, and folded into the digest with
//! `merge_unsorted` once [`DIGEST_BUFFER`] of them are pending. The crate's internal buffer is
//! never used, so nothing is lost to an unflushed digest: merges combine the centroids with
//! `merge_digests` and carry the other side's pending values over, queries fold the pending values
//! into a temporary copy, and the wire format carries the centroids and the pending values
//! separately.
//!
//! The compression ([`DIGEST_COMPRESSION`], tdigest's `max_size`) is pinned: it is part of the
//! wire format and checked on decode.

use tdigest::{Centroid, TDigest};

/// t-digest compression (`max_size`: most centroids a digest keeps).
///
/// Chosen by measurement with the data of `tests/sketch_accuracy.rs` (1,000,000 uniform or
/// lognormal values in 100 partials, each partial either a random sample or one slice of the
/// sorted data, merged one at a time as the aggregator does), worst rank error over 8 seeds:
///
/// | compression | p50    | p90    | p95    | p99    |
/// |-------------|--------|--------|--------|--------|
/// | 50          | 1.64 % | 0.53 % | 0.68 % | 0.21 % |
/// | 100         | 0.86 % | 0.37 % | 0.41 % | 0.20 % |
/// | 200         | 0.35 % | 0.20 % | 0.17 % | 0.12 % |
///
/// 100 leaves too little margin below the 1 % requirement at the median; 200 keeps it about
/// three times below. A full digest is at most 200 centroids × 16 bytes in memory.
pub const DIGEST_COMPRESSION: usize = 200;

/// How many raw values are buffered before they are folded into the centroids. Also the bound
/// on pending values accepted from the wire (strictly fewer than this).
pub const DIGEST_BUFFER: usize = 256;

/// Largest weight [`Digest::push_weighted`] adds as raw values.
const WEIGHTED_INLINE: u32 = 64;

/// The quantiles [`Digest::quantiles`] reports: p50, p90, p95, p99.
pub(crate) const QUANTILES: [f64; 4] = [0.5, 0.9, 0.95, 0.99];

/// Buffered t-digest (see the module docs).
#[derive(Clone, Debug, Default)]
pub(crate) struct Digest {
    /// Compressed centroids; `None` until the first fold.
    centroids: Option<Box<TDigest>>,
    /// Raw values not yet folded in; always fewer than [`DIGEST_BUFFER`].
    pending: Vec<f64>,
}

impl Digest {
    /// Rebuilds a digest from validated wire parts: centroids sorted by mean with positive
    /// integral weights, at most [`DIGEST_COMPRESSION`] of them, and fewer than
    /// [`DIGEST_BUFFER`] pending values; `min`/`max` bound every mean and value.
    pub(crate) fn from_parts(
        centroids: &[(f64, u64)],
        pending: Vec<f64>,
        min: f64,
        max: f64,
    ) -> Digest {
        let centroids = if centroids.is_empty() {
            None
        } else {
            let count: f64 = centroids.iter().map(|&(_, w)| w as f64).sum();
            let sum: f64 = centroids.iter().map(|&(m, w)| m * w as f64).sum();
            let list = centroids
                .iter()
                .map(|&(m, w)| Centroid::new(m, w as f64))
                .collect();
            Some(Box::new(TDigest::new(
                list,
                sum,
                count,
                Some(max),
                Some(min),
                DIGEST_COMPRESSION,
            )))
        };
        Digest { centroids, pending }
    }

    /// Adds one finite value.
    #[inline]
    pub(crate) fn push(&mut self, value: f64) {
        self.pending.push(value);
        if self.pending.len() >= DIGEST_BUFFER {
            self.fold();
        }
    }

    /// Adds one finite value `weight` times: as many raw values up to [`WEIGHTED_INLINE`]
    /// (exactly what that many pushes give), else as one centroid of that weight folded in at
    /// once (a digest merge, microseconds: only sample rates below 1/64 take it).
    pub(crate) fn push_weighted(&mut self, value: f64, weight: u32) {
        if weight <= WEIGHTED_INLINE {
            for _ in 0..weight {
                self.push(value);
            }
            return;
        }
        let w = f64::from(weight);
        let single = TDigest::new(
            vec![Centroid::new(value, w)],
            value * w,
            w,
            Some(value),
            Some(value),
            DIGEST_COMPRESSION,
        );
        let merged = match self.centroids.take() {
            Some(digest) => TDigest::merge_digests(vec![*digest, single]),
            None => single,
        };
        self.centroids = Some(Box::new(merged));
    }

    /// Folds the pending values into the centroids.
    fn fold(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // The next buffer is allocated at its full size at once (instead of growing through
        // seven reallocations): only a digest that filled one is folded.
        let mut batch = std::mem::replace(&mut self.pending, Vec::with_capacity(DIGEST_BUFFER));
        sort_finite(&mut batch);
        let folded = match self.centroids.take() {
            Some(digest) => digest.merge_sorted(batch),
            None => TDigest::new_with_size(DIGEST_COMPRESSION).merge_sorted(batch),
        };
        self.centroids = Some(Box::new(folded));
    }

    /// Merges another digest in. Commutative: the centroids are combined by one
    /// `merge_digests` (which sorts its input), the pending values are pooled and folded all at
    /// once if they reach [`DIGEST_BUFFER`].
    pub(crate) fn merge(&mut self, other: &Digest) {
        match (self.centroids.take(), &other.centroids) {
            (mine, None) => self.centroids = mine,
            (None, Some(theirs)) => self.centroids = Some(theirs.clone()),
            (Some(mine), Some(theirs)) => {
                let merged = TDigest::merge_digests(vec![*mine, (**theirs).clone()]);
                self.centroids = Some(Box::new(merged));
            }
        }
        self.pending.extend_from_slice(&other.pending);
        if self.pending.len() >= DIGEST_BUFFER {
            self.fold();
        }
    }

    /// p50, p90, p95, p99 (`None` when empty).
    pub(crate) fn quantiles(&self) -> [Option<f64>; 4] {
        let folded;
        let digest: &TDigest = if self.pending.is_empty() {
            match &self.centroids {
                Some(d) => d,
                None => return [None; 4],
            }
        } else {
            let base = match &self.centroids {
                Some(d) => (**d).clone(),
                None => TDigest::new_with_size(DIGEST_COMPRESSION),
            };
            folded = base.merge_sorted(self.sorted_pending());
            &folded
        };
        let q = digest.quantiles(&QUANTILES);
        [q[0], q[1], q[2], q[3]]
    }

    /// The centroids as (mean, weight) in ascending mean order. Weights are integral: every
    /// value enters with weight 1 and merging adds weights.
    pub(crate) fn centroid_parts(&self) -> Vec<(f64, u64)> {
        match &self.centroids {
            Some(d) => d
                .centroids()
                .iter()
                .map(|c| (c.mean(), c.weight() as u64))
                .collect(),
            None => Vec::new(),
        }
    }

    /// The pending values in ascending order (the canonical wire order); sorted here only when
    /// [`Digest::settle`] has not put them in that order already.
    pub(crate) fn sorted_pending(&self) -> Vec<f64> {
        let mut out = self.pending.clone();
        if !is_sorted_finite(&out) {
            sort_finite(&mut out);
        }
        out
    }

    /// Puts the pending values in ascending order in place, so that the reads that follow
    /// ([`Digest::quantiles`], the wire encoding) do not each sort a copy. Changes nothing the
    /// digest reports or encodes.
    pub(crate) fn settle(&mut self) {
        if !is_sorted_finite(&self.pending) {
            sort_finite(&mut self.pending);
        }
    }

    /// Heap bytes held, excluding the `Digest` value itself.
    pub(crate) fn heap_bytes(&self) -> usize {
        let pending = self.pending.capacity() * std::mem::size_of::<f64>();
        let centroids = self.centroids.as_ref().map_or(0, |d| {
            std::mem::size_of::<TDigest>() + std::mem::size_of_val(d.centroids())
        });
        pending + centroids
    }
}

/// Whether `values` are in `f64::total_cmp` order (a linear scan, far cheaper than a sort).
fn is_sorted_finite(values: &[f64]) -> bool {
    values.is_sorted_by(|a, b| a.total_cmp(b).is_le())
}

/// Sorts values in `f64::total_cmp` order, by sorting order-preserving integer keys (about twice
/// as fast as sorting with `total_cmp`, which dominated the per-event cost). The keys are kept
/// in the values' own slots (as bit patterns), so nothing is allocated.
fn sort_finite(values: &mut [f64]) {
    let key = |v: f64| {
        let bits = v.to_bits();
        if bits >> 63 == 1 {
            !bits
        } else {
            bits | 1 << 63
        }
    };
    let unkey = |k: u64| f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k });
    for v in values.iter_mut() {
        *v = f64::from_bits(key(*v));
    }
    values.sort_unstable_by_key(|v| v.to_bits());
    for v in values.iter_mut() {
        *v = unkey(v.to_bits());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_finite_matches_total_cmp() {
        let mut values = vec![
            3.5,
            -0.0,
            0.0,
            -1e300,
            1e-310,
            -1e-310,
            f64::MAX,
            f64::MIN,
            2.0,
            -2.0,
            0.0,
        ];
        let mut expected = values.clone();
        expected.sort_by(f64::total_cmp);
        assert!(!is_sorted_finite(&values));
        sort_finite(&mut values);
        assert!(is_sorted_finite(&values));
        assert_eq!(
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_settled_digest_reports_and_encodes_what_it_did() {
        let mut digest = Digest::default();
        for i in 0..200u32 {
            digest.push(f64::from((i * 7919) % 211) - 50.0);
        }
        let (quantiles, pending) = (digest.quantiles(), digest.sorted_pending());
        assert!(!is_sorted_finite(&digest.pending));
        digest.settle();
        assert!(is_sorted_finite(&digest.pending));
        assert_eq!(digest.quantiles(), quantiles);
        assert_eq!(digest.sorted_pending(), pending);
        digest.push(-1e9);
        assert_eq!(
            digest.sorted_pending()[0],
            -1e9,
            "a value added after settling"
        );
    }
}
