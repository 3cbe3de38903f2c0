//! Exact, order-independent summation of `f64` values.
//!
//! A plain `f64` accumulator is not associative: summing the same values in another order, or
//! summing partial sums from several agents, gives results that differ in the last bits. That
//! would make "split a stream into partials and merge them" disagree with "one sketch over the
//! whole stream", and would make a window's `sum` depend on the order in which the aggregator
//! happened to receive partials.
//!
//! `ExactSum` instead keeps the *exact* real-valued sum as a short list of non-overlapping
//! doubles (Shewchuk's expansion arithmetic, the algorithm behind Python's `math.fsum`). Adding a
//! value or merging another sum is exact, so the represented value does not depend on order, and
//! `ExactSum::value` returns that exact value correctly rounded to the nearest `f64`. The list is
//! kept in a *canonical* form (each part is the correctly rounded value of what the smaller parts
//! leave over), so equal sums have equal representations and encode to equal bytes.
//!
//! Typical data needs one part (integers below 2^53) or two (decimal fractions); up to two parts
//! are stored inline so the common case allocates nothing. The canonical form never has more
//! than `MAX_SUM_PARTS` (48) parts: consecutive parts are at least 53 binary orders of magnitude
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

/// Room for the general path: two canonical lists being merged (≤ 2 × 48 parts), plus the parts
/// canonicalisation may add (at most one per canonical part, ≤ 41).
const SCRATCH: usize = 160;

/// Room for the fast path (sums of up to two parts plus a value or another short sum).
const SMALL: usize = 8;

/// The exact sum of the `f64` values added to it (see the module docs).
#[derive(Clone, Debug, Default)]
pub(crate) struct ExactSum {
    parts: Parts,
}

/// Canonical parts in increasing magnitude; up to two inline (24 bytes in all).
#[derive(Clone, Debug, Default)]
enum Parts {
    #[default]
    Zero,
    One(f64),
    Two([f64; 2]),
    Many(Box<[f64]>),
}

impl Parts {
    fn from_slice(parts: &[f64]) -> Parts {
        match *parts {
            [] => Parts::Zero,
            [x] => Parts::One(x),
            [x, y] => Parts::Two([x, y]),
            ref xs => Parts::Many(xs.into()),
        }
    }
}

impl ExactSum {
    /// The canonical parts, in increasing magnitude; empty for a zero sum.
    pub(crate) fn parts(&self) -> &[f64] {
        match &self.parts {
            Parts::Zero => &[],
            Parts::One(x) => std::slice::from_ref(x),
            Parts::Two(xs) => xs,
            Parts::Many(xs) => xs,
        }
    }

    /// The exact sum, correctly rounded to the nearest `f64` (0.0 when nothing was added).
    pub(crate) fn value(&self) -> f64 {
        // In canonical form the largest part is the correctly rounded value of the whole.
        self.parts().last().copied().unwrap_or(0.0)
    }

    /// Adds one finite value exactly.
    #[inline]
    pub(crate) fn add(&mut self, x: f64) {
        match self.parts {
            Parts::Zero => {
                if x != 0.0 {
                    self.parts = Parts::One(x);
                }
            }
            Parts::One(a) => {
                // hi = fl(a + x) and lo = the exact rounding error: [lo, hi] is canonical.
                let (hi, lo) = two_sum(a, x);
                self.parts = if !hi.is_finite() {
                    Parts::One(f64::MAX.copysign(hi))
                } else if lo != 0.0 {
                    Parts::Two([lo, hi])
                } else if hi != 0.0 {
                    Parts::One(hi)
                } else {
                    Parts::Zero
                };
            }
            Parts::Two([lo, hi]) => {
                let (s, e) = two_sum(hi, x);
                let (t, f) = two_sum(lo, e);
                if f == 0.0 && s.is_finite() {
                    // The exact sum is s + t: renormalise as above.
                    let (c, r) = two_sum(s, t);
                    self.parts = if r != 0.0 {
                        Parts::Two([r, c])
                    } else if c != 0.0 {
                        Parts::One(c)
                    } else {
                        Parts::Zero
                    };
                } else {
                    self.combine(&[x]);
                }
            }
            Parts::Many(_) => self.combine(&[x]),
        }
    }

    /// Adds `x × weight` exactly: the rounded product and its rounding error (an FMA gives
    /// the error exactly: `x × weight` is `p + e` with both representable).
    pub(crate) fn add_product(&mut self, x: f64, weight: u32) {
        let w = f64::from(weight);
        let p = x * w;
        let e = x.mul_add(w, -p);
        self.add(p);
        if e != 0.0 {
            self.add(e);
        }
    }

    /// Adds another exact sum exactly.
    pub(crate) fn merge(&mut self, other: &ExactSum) {
        self.combine(other.parts());
    }

    /// Builds a sum from arbitrary finite parts (as found on the wire), normalising them.
    /// The caller bounds the number of parts (≤ [`MAX_SUM_PARTS`]) and their magnitude.
    pub(crate) fn from_parts(parts: &[f64]) -> ExactSum {
        let mut sum = ExactSum::default();
        sum.combine(parts);
        sum
    }

    /// Heap bytes held (for memory accounting).
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.parts {
            Parts::Many(xs) => std::mem::size_of_val::<[f64]>(xs),
            _ => 0,
        }
    }

    /// Adds `extra` (any finite values) and stores the canonical result.
    fn combine(&mut self, extra: &[f64]) {
        let combined = combine_in::<SMALL>(self.parts(), extra)
            .or_else(|| combine_in::<SCRATCH>(self.parts(), extra));
        // The general path has room for every case `ExactSum` produces (see `SCRATCH`); should
        // it not, the sum is left as it was rather than becoming wrong.
        if let Some(parts) = combined {
            self.parts = parts;
        }
    }
}

/// `parts + extra` in canonical form, computed in an `N`-slot scratch space; `None` if that is
/// too small.
fn combine_in<const N: usize>(parts: &[f64], extra: &[f64]) -> Option<Parts> {
    let mut buf = [0.0f64; N];
    let mut n = parts.len();
    buf.get_mut(..n)?.copy_from_slice(parts);
    for &x in extra {
        n = grow(&mut buf, n, x)?;
    }
    let mut out = [0.0f64; N];
    let k = canonicalize(&mut buf, n, &mut out)?;
    Some(Parts::from_slice(&out[..k]))
}

/// Knuth's TwoSum: `(fl(a + b), a + b − fl(a + b))`, both exact.
#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let err = (a - (s - bb)) + (b - bb);
    (s, err)
}

/// Adds `x` to the expansion `buf[..n]` (non-overlapping, increasing magnitude, no zeros) and
/// returns the new length, or `None` without room. Exact unless the sum overflows, in which case
/// it saturates at ±`f64::MAX`.
fn grow(buf: &mut [f64], n: usize, mut x: f64) -> Option<usize> {
    let mut kept = 0;
    for j in 0..n {
        let mut y = buf[j];
        if x.abs() < y.abs() {
            std::mem::swap(&mut x, &mut y);
        }
        let hi = x + y;
        if !hi.is_finite() {
            buf[0] = f64::MAX.copysign(hi);
            return Some(1);
        }
        let lo = y - (hi - x);
        if lo != 0.0 {
            buf[kept] = lo;
            kept += 1;
        }
        x = hi;
    }
    if x != 0.0 {
        *buf.get_mut(kept)? = x;
        kept += 1;
    }
    Some(kept)
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

/// Writes the canonical form (see the module docs) of the expansion `buf[..n]` to `out`, in
/// increasing magnitude, and returns its length; `None` without room. Clobbers `buf`.
fn canonicalize(buf: &mut [f64], mut n: usize, out: &mut [f64]) -> Option<usize> {
    if n <= 1 {
        // A single part is its own correctly rounded value.
        out.get_mut(..n)?.copy_from_slice(&buf[..n]);
        return Some(n);
    }
    let mut k = 0;
    while n > 0 {
        let c = rounded(&buf[..n]);
        if c == 0.0 {
            break;
        }
        *out.get_mut(k)? = c;
        k += 1;
        n = grow(buf, n, -c)?;
    }
    // `out` holds the parts in decreasing magnitude.
    out[..k].reverse();
    Some(k)
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
        // 0.1 + 0.2 + 0.3 + 1 + 3e5 - 0.7 + 1e-20: the binary constants differ from the decimals
        // by less than 1e-16 in all, far below half an ulp of 300000.9 (2.9e-11).
        assert_eq!(forward.value(), 300_000.9);
        let naive: f64 = values.iter().sum();
        assert_ne!(naive, 300_000.9, "a plain f64 sum loses the small terms");
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
        assert_eq!(t.value(), 0.0);
        let u = ExactSum::from_parts(&[1e300, -1e300, 5.0, 1e-300]);
        assert_eq!(u.parts(), &[1e-300, 5.0]);
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
