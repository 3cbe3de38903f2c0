//! Exact, order-independent summation of `f64` values.
//!
//! A plain `f64` accumulator is not associative: summing the same values in another order, or
//! summing partial sums from several agents, gives results that differ in the last bits. That
//! would make "split a stream into partials and merge them" disagree with "one sketch over the
//! whole stream", and would make a window's `sum` depend on the order in which the aggregator
//! happened to receive partials.
//!
//! [`ExactSum`] instead keeps the *exact* real-valued sum as a short list of non-overlapping
//! doubles (Shewchuk's expansion arithmetic, the algorithm behind Python's `math.fsum`). Adding a
//! value or merging another sum is exact, so the represented value does not depend on order, and
//! [`ExactSum::value`] returns that exact value correctly rounded to the nearest `f64`. The list is
//! kept in a *canonical* form (each part is the correctly rounded value of what the smaller parts
//! leave over), so equal sums have equal representations and encode to equal bytes.
//!
//! Typical data needs one part (integers below 2^53) or two (decimal fractions); the first two
//! parts are stored inline so the common case allocates nothing. The canonical form never has more
//! than [`MAX_SUM_PARTS`] parts: consecutive parts are at least 53 binary orders of magnitude
//! apart and a finite double spans 2,098 of them.
//!
//! Overflow: the sketch only accepts values with magnitude up to
//! [`MAX_ABS_VALUE`](super::MAX_ABS_VALUE) (1e288), and fewer than 2^64 of them, so a sum of
//! honest data can not exceed `f64::MAX`. Should hostile but individually valid inputs push an
//! intermediate result past it anyway, the sum saturates at ±`f64::MAX` instead of becoming
//! infinite.

/// Upper bound on the number of parts of a canonical sum (see the module docs); also the limit
/// enforced when decoding.
pub(crate) const MAX_SUM_PARTS: usize = 48;

/// Room for the parts of a non-canonical intermediate: a canonical list plus one added value, or
/// two canonical lists being merged.
const SCRATCH: usize = 2 * MAX_SUM_PARTS + 2;

/// The exact sum of the `f64` values added to it (see the module docs).
#[derive(Clone, Debug, Default)]
pub(crate) struct ExactSum {
    /// Parts when there are at most two (`spill` is then empty), in increasing magnitude.
    inline: [f64; 2],
    /// How many of `inline` are in use; 0 when `spill` holds the parts.
    inline_len: u8,
    /// Parts when there are more than two, in increasing magnitude.
    spill: Vec<f64>,
}

impl ExactSum {
    /// The canonical parts, in increasing magnitude; empty for a zero sum.
    pub(crate) fn parts(&self) -> &[f64] {
        if self.spill.is_empty() {
            &self.inline[..self.inline_len as usize]
        } else {
            &self.spill
        }
    }

    /// The exact sum, correctly rounded to the nearest `f64` (0.0 when nothing was added).
    pub(crate) fn value(&self) -> f64 {
        // In canonical form the largest part is the correctly rounded value of the whole.
        self.parts().last().copied().unwrap_or(0.0)
    }

    /// Adds one finite value exactly.
    pub(crate) fn add(&mut self, x: f64) {
        let mut buf = [0.0f64; SCRATCH];
        let mut n = self.load(&mut buf);
        n = grow(&mut buf, n, x);
        self.store_canonical(&mut buf, n);
    }

    /// Adds another exact sum exactly.
    pub(crate) fn merge(&mut self, other: &ExactSum) {
        let mut buf = [0.0f64; SCRATCH];
        let mut n = self.load(&mut buf);
        for &x in other.parts() {
            n = grow(&mut buf, n, x);
        }
        self.store_canonical(&mut buf, n);
    }

    /// Builds a sum from arbitrary finite parts (as found on the wire), normalising them.
    /// The caller bounds the number of parts and their magnitude.
    pub(crate) fn from_parts(parts: &[f64]) -> ExactSum {
        let mut sum = ExactSum::default();
        let mut buf = [0.0f64; SCRATCH];
        let mut n = 0;
        for &x in parts {
            n = grow(&mut buf, n, x);
            if n > MAX_SUM_PARTS {
                n = canonicalize(&mut buf, n);
            }
        }
        sum.store_canonical(&mut buf, n);
        sum
    }

    /// Heap bytes held (for memory accounting).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.spill.capacity() * std::mem::size_of::<f64>()
    }

    fn load(&self, buf: &mut [f64; SCRATCH]) -> usize {
        let parts = self.parts();
        buf[..parts.len()].copy_from_slice(parts);
        parts.len()
    }

    fn store_canonical(&mut self, buf: &mut [f64; SCRATCH], n: usize) {
        let n = if n >= 2 { canonicalize(buf, n) } else { n };
        let parts = &buf[..n];
        if parts.len() <= 2 {
            self.spill = Vec::new();
            self.inline = [0.0; 2];
            self.inline[..parts.len()].copy_from_slice(parts);
            self.inline_len = parts.len() as u8;
        } else {
            self.spill.clear();
            self.spill.extend_from_slice(parts);
            self.inline_len = 0;
        }
    }
}

/// Adds `x` to the expansion `buf[..n]` (non-overlapping, increasing magnitude, no zeros) and
/// returns the new length. Exact unless the sum overflows, in which case it saturates.
fn grow(buf: &mut [f64; SCRATCH], n: usize, mut x: f64) -> usize {
    let mut kept = 0;
    for j in 0..n {
        let mut y = buf[j];
        if x.abs() < y.abs() {
            std::mem::swap(&mut x, &mut y);
        }
        let hi = x + y;
        if !hi.is_finite() {
            return saturate(buf, hi);
        }
        let lo = y - (hi - x);
        if lo != 0.0 {
            buf[kept] = lo;
            kept += 1;
        }
        x = hi;
    }
    if x != 0.0 {
        buf[kept] = x;
        kept += 1;
    }
    kept
}

fn saturate(buf: &mut [f64; SCRATCH], overflowed: f64) -> usize {
    buf[0] = f64::MAX.copysign(overflowed);
    1
}

/// The correctly rounded value of the expansion `parts` (Python's `fsum` final step).
fn rounded(parts: &[f64]) -> f64 {
    let Some((&top, rest)) = parts.split_last() else {
        return 0.0;
    };
    let mut hi = top;
    let mut lo = 0.0;
    let mut n = rest.len();
    while n > 0 {
        n -= 1;
        let x = hi;
        let y = parts[n];
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    // Round half to even across the remaining parts: if the parts below the break point push
    // in the same direction as `lo`, the tie is not a tie.
    if n > 0 && ((lo < 0.0 && parts[n - 1] < 0.0) || (lo > 0.0 && parts[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        let yr = x - hi;
        if y == yr {
            hi = x;
        }
    }
    hi
}

/// Rewrites the expansion `buf[..n]` in canonical form (see the module docs) and returns its
/// length.
fn canonicalize(buf: &mut [f64; SCRATCH], n: usize) -> usize {
    let mut out = [0.0f64; SCRATCH];
    let mut k = 0;
    let mut n = n;
    loop {
        let c = rounded(&buf[..n]);
        if c == 0.0 || k == out.len() {
            break;
        }
        out[k] = c;
        k += 1;
        n = grow(buf, n, -c);
        if n == 0 {
            break;
        }
    }
    // `out` holds the parts in decreasing magnitude.
    for (i, &c) in out[..k].iter().rev().enumerate() {
        buf[i] = c;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_exact_and_order_independent() {
        let values = [0.1, 0.2, 0.3, 1e16, 1.0, -1e16, 1e-20, 3.0e5, -0.7];
        let mut forward = ExactSum::default();
        for v in values {
            forward.add(v);
        }
        let mut backward = ExactSum::default();
        for v in values.iter().rev() {
            backward.add(*v);
        }
        assert_eq!(forward.parts(), backward.parts());
        // 0.1 + 0.2 + 0.3 + 1 + 3e5 - 0.7 + 1e-20, correctly rounded.
        assert_eq!(forward.value(), 300_000.900_000_000_000_000_000_01_f64);
    }

    #[test]
    fn cancellation_leaves_the_small_terms() {
        let mut s = ExactSum::default();
        for v in [1e300, 1.0, -1e300] {
            s.add(v);
        }
        assert_eq!(s.value(), 1.0);
        assert_eq!(s.parts(), &[1.0]);
        s.add(-1.0);
        assert_eq!(s.parts(), &[] as &[f64]);
        assert_eq!(s.value(), 0.0);
    }

    #[test]
    fn merge_equals_adding() {
        let mut a = ExactSum::default();
        let mut b = ExactSum::default();
        let mut whole = ExactSum::default();
        for i in 0..1000 {
            let v = (i as f64).sqrt() * 1e-3 + 1e10 * ((i % 7) as f64 - 3.0);
            whole.add(v);
            if i % 3 == 0 {
                a.add(v)
            } else {
                b.add(v)
            }
        }
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab.parts(), whole.parts());
        assert_eq!(ba.parts(), whole.parts());
    }

    #[test]
    fn wire_parts_normalise() {
        let s = ExactSum::from_parts(&[1.0, 1e-30, 2.0, -1e-30]);
        assert_eq!(s.parts(), &[3.0]);
        let t = ExactSum::from_parts(&[0.0, -0.0]);
        assert_eq!(t.parts(), &[] as &[f64]);
    }

    #[test]
    fn overflow_saturates() {
        let mut s = ExactSum::default();
        s.add(f64::MAX);
        s.add(f64::MAX);
        assert_eq!(s.value(), f64::MAX);
    }

    #[test]
    fn ties_round_to_even() {
        // 1 + 2^-53 is exactly half-way between 1 and the next double; a further tiny positive
        // part means the exact value is above the half-way point.
        let mut s = ExactSum::default();
        for v in [1.0, f64::EPSILON / 2.0, 1e-300] {
            s.add(v);
        }
        assert_eq!(s.value(), 1.0 + f64::EPSILON);
        let mut t = ExactSum::default();
        for v in [1.0, f64::EPSILON / 2.0] {
            t.add(v);
        }
        assert_eq!(t.value(), 1.0);
    }
}
