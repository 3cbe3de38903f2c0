//! The sparse representation's entries (HLL++ style, see the parent module): one `u32` per
//! 25-bit index holding the largest ρ' seen for it, kept sorted and deduplicated, and their
//! conversion to dense registers.

/// The precision of sparse entries (HLL++'s p').
pub(super) const SPARSE_PRECISION: u8 = 25;
/// Bits of a sparse entry that hold ρ'.
pub(super) const RHO_BITS: u32 = 6;
pub(super) const RHO_MASK: u32 = (1 << RHO_BITS) - 1;
/// Largest ρ' of a sparse entry: 1 + the 64 − 25 remaining bits.
pub(super) const MAX_SPARSE_RHO: u32 = 64 - SPARSE_PRECISION as u32 + 1;

/// A sparse entry: 25-bit index above 6-bit ρ'.
#[inline]
pub(super) fn sparse_entry(hash: u64) -> u32 {
    let index = (hash >> (64 - SPARSE_PRECISION)) as u32;
    let rest = hash << SPARSE_PRECISION;
    let rho = if rest == 0 {
        MAX_SPARSE_RHO
    } else {
        rest.leading_zeros() + 1
    };
    (index << RHO_BITS) | rho
}

#[inline]
pub(super) fn entry_index(entry: u32) -> u32 {
    entry >> RHO_BITS
}

/// The dense (index, register value) at precision `p` that a sparse entry stands for.
#[inline]
pub(super) fn entry_to_dense(entry: u32, p: u8) -> (usize, u8) {
    let shift = u32::from(SPARSE_PRECISION - p);
    let index25 = entry_index(entry);
    let index = (index25 >> shift) as usize;
    let low = index25 & ((1u32 << shift) - 1);
    let rho = if low != 0 {
        // Leading zeros of `low` within its `shift` bits, plus one.
        low.leading_zeros() - (32 - shift) + 1
    } else {
        shift + (entry & RHO_MASK)
    };
    (index, rho as u8)
}

/// Whether a decoded sparse entry is well formed.
pub(crate) fn valid_sparse_entry(entry: u32) -> bool {
    let rho = entry & RHO_MASK;
    entry_index(entry) < (1 << SPARSE_PRECISION) && (1..=MAX_SPARSE_RHO).contains(&rho)
}

/// The sorted, deduplicated union of a sorted head `entries[..sorted]` and an unsorted tail.
pub(super) fn sorted_union(entries: &[u32], sorted: usize) -> Vec<u32> {
    let (head, tail) = entries.split_at(sorted.min(entries.len()));
    let mut tail = tail.to_vec();
    normalise_entries(&mut tail);
    merge_sorted_entries(head, &tail)
}

/// Turns `entries` (a sorted, deduplicated head `entries[..sorted]` and an unsorted tail) into
/// their sorted, deduplicated union, in place: the tail is normalised where it is, copied
/// aside, and merged with the head from the back.
pub(super) fn union_in_place(entries: &mut Vec<u32>, sorted: usize) {
    let sorted = sorted.min(entries.len());
    let kept = normalise_slice(&mut entries[sorted..]);
    entries.truncate(sorted + kept);
    if sorted == 0 || kept == 0 {
        return;
    }
    let tail = entries[sorted..].to_vec();
    let (mut i, mut j, mut w) = (sorted, tail.len(), entries.len());
    // Branch-free, from the largest entry down: of two entries the larger one goes first
    // (a larger index, or the larger ρ' of a shared index, which replaces both).
    while i > 0 && j > 0 {
        let (x, y) = (entries[i - 1], tail[j - 1]);
        let (ix, iy) = (entry_index(x), entry_index(y));
        w -= 1;
        entries[w] = x.max(y);
        i -= usize::from(ix >= iy);
        j -= usize::from(iy >= ix);
    }
    // What is left of either side is smaller than everything written.
    if j > 0 {
        entries[w - j..w].copy_from_slice(&tail[..j]);
        w -= j;
    } else if i > 0 && w != i {
        entries.copy_within(0..i, w - i);
        w -= i;
    } else {
        w -= i;
    }
    // `w` shared indexes were merged: close the gap they left at the front.
    if w > 0 {
        entries.copy_within(w.., 0);
        entries.truncate(entries.len() - w);
    }
}

/// Sorts entries and keeps, for each index, the one with the largest ρ'; returns how many
/// were kept (at the front of `entries`).
fn normalise_slice(entries: &mut [u32]) -> usize {
    entries.sort_unstable();
    // Sorted by (index, ρ'): of each run with one index, keep the last.
    let mut kept = 0;
    for i in 0..entries.len() {
        let e = entries[i];
        let last_of_run = entries
            .get(i + 1)
            .is_none_or(|next| entry_index(*next) != entry_index(e));
        if last_of_run {
            entries[kept] = e;
            kept += 1;
        }
    }
    kept
}

/// Sorts entries and keeps, for each index, the one with the largest ρ'.
pub(super) fn normalise_entries(entries: &mut Vec<u32>) {
    let kept = normalise_slice(entries);
    entries.truncate(kept);
}

/// Merges two sorted, deduplicated entry lists, keeping the larger ρ' for a shared index.
pub(super) fn merge_sorted_entries(a: &[u32], b: &[u32]) -> Vec<u32> {
    // Branch-free inner loop: the interleaving of two hash-ordered lists is random, so a
    // three-way `match` mispredicts about every other step.
    let mut out = vec![0u32; a.len() + b.len()];
    let (mut i, mut j, mut k) = (0, 0, 0);
    while let (Some(&x), Some(&y), Some(slot)) = (a.get(i), b.get(j), out.get_mut(k)) {
        let (ix, iy) = (entry_index(x), entry_index(y));
        // Same index: the larger ρ' (the larger entry); otherwise the smaller index.
        *slot = if ix == iy { x.max(y) } else { x.min(y) };
        i += usize::from(ix <= iy);
        j += usize::from(iy <= ix);
        k += 1;
    }
    let rest = a.get(i..).unwrap_or_default();
    let rest = if rest.is_empty() {
        b.get(j..).unwrap_or_default()
    } else {
        rest
    };
    if let Some(dst) = out.get_mut(k..k + rest.len()) {
        dst.copy_from_slice(rest);
    }
    out.truncate(k + rest.len());
    if out.capacity() > out.len() + out.len() / 2 + 16 {
        out.shrink_to_fit();
    }
    out
}

pub(super) fn sparse_to_dense(entries: &[u32], p: u8) -> Box<[u8]> {
    let mut registers = vec![0u8; 1 << p].into_boxed_slice();
    apply_entries(&mut registers, entries, p);
    registers
}

pub(super) fn apply_entries(registers: &mut [u8], entries: &[u32], p: u8) {
    for &e in entries {
        let (index, rho) = entry_to_dense(e, p);
        if let Some(r) = registers.get_mut(index) {
            *r = (*r).max(rho);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic 64-bit linear congruential sequence for the randomized tests.
    fn lcg(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed
        }
    }

    #[test]
    fn merging_sorted_entries_equals_normalising_the_union() {
        let mut next = lcg(1);
        for (na, nb) in [(0, 0), (0, 5), (7, 0), (100, 3), (1000, 1000)] {
            // Few distinct indexes, so that shared indexes with different ρ' occur.
            let mut entry =
                || ((next() >> 40) as u32 % 300) << RHO_BITS | ((next() >> 33) as u32 % 40 + 1);
            let mut a: Vec<u32> = (0..na).map(|_| entry()).collect();
            let mut b: Vec<u32> = (0..nb).map(|_| entry()).collect();
            let mut union: Vec<u32> = a.iter().chain(&b).copied().collect();
            normalise_entries(&mut a);
            normalise_entries(&mut b);
            normalise_entries(&mut union);
            assert_eq!(merge_sorted_entries(&a, &b), union);
            assert_eq!(merge_sorted_entries(&b, &a), union);
        }
    }

    #[test]
    fn union_in_place_equals_normalising_the_whole() {
        let mut next = lcg(5);
        for (head, tail) in [
            (0, 0),
            (0, 9),
            (9, 0),
            (1, 1),
            (100, 3),
            (3, 100),
            (700, 700),
        ] {
            for indexes in [4u64, 300, 1 << 25] {
                let mut entry = || {
                    (((next() >> 33) % indexes) as u32) << RHO_BITS
                        | ((next() >> 33) as u32 % 40 + 1)
                };
                let mut entries: Vec<u32> = (0..head).map(|_| entry()).collect();
                normalise_entries(&mut entries);
                let sorted = entries.len();
                entries.extend((0..tail).map(|_| entry()));
                let mut expected = entries.clone();
                normalise_entries(&mut expected);
                union_in_place(&mut entries, sorted);
                assert_eq!(entries, expected, "{head} {tail} {indexes}");
            }
        }
    }
}
