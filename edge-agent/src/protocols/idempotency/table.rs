//! A fixed-capacity set of 64-bit id hashes: open addressing with linear probing in one flat
//! array, 8 bytes per slot, filled to at most 80 % (probe runs stay short: a miss reads about
//! 13 slots, 1.5 cache lines, at that load).

/// Highest fill, in tenths of a slot: 8 of 10.
const MAX_LOAD_TENTHS: usize = 8;

/// A set of nonzero 64-bit hashes with a fixed number of slots.
#[derive(Debug)]
pub(super) struct IdTable {
    /// 0 marks an empty slot; stored hashes have their lowest bit set, so none is 0.
    slots: Vec<u64>,
    len: usize,
    /// Most entries: [`MAX_LOAD_TENTHS`] of the slots.
    limit: usize,
}

impl IdTable {
    /// A table that holds `ids` ids (`ids / 0.8` slots).
    pub(super) fn with_capacity(ids: usize) -> Self {
        let slots = (ids.max(8) * 10).div_ceil(MAX_LOAD_TENTHS);
        Self {
            slots: vec![0; slots],
            len: 0,
            limit: slots * MAX_LOAD_TENTHS / 10,
        }
    }

    /// Empties the table, keeping its allocation.
    pub(super) fn clear(&mut self) {
        self.slots.fill(0);
        self.len = 0;
    }

    /// Ids held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether no further id fits.
    pub(super) fn is_full(&self) -> bool {
        self.len >= self.limit
    }

    /// Heap bytes.
    pub(super) fn bytes(&self) -> usize {
        self.slots.len() * 8
    }

    /// The ids held, as stored.
    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots.iter().copied().filter(|&slot| slot != 0)
    }

    fn home(&self, stored: u64) -> usize {
        // Multiply-shift onto the slot count (no power of two needed).
        ((u128::from(stored) * self.slots.len() as u128) >> 64) as usize
    }

    /// Whether `hash` is held.
    pub(super) fn contains(&self, hash: u64) -> bool {
        let stored = hash | 1;
        let mut at = self.home(stored);
        loop {
            match self.slots[at] {
                0 => return false,
                slot if slot == stored => return true,
                _ => {
                    at = if at + 1 == self.slots.len() {
                        0
                    } else {
                        at + 1
                    }
                }
            }
        }
    }

    /// Adds `hash`; false when it was already held or the table is full.
    pub(super) fn insert(&mut self, hash: u64) -> bool {
        if self.is_full() {
            return false;
        }
        let stored = hash | 1;
        let mut at = self.home(stored);
        loop {
            match self.slots[at] {
                0 => {
                    self.slots[at] = stored;
                    self.len += 1;
                    return true;
                }
                slot if slot == stored => return false,
                _ => {
                    at = if at + 1 == self.slots.len() {
                        0
                    } else {
                        at + 1
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_was_inserted_up_to_its_limit() {
        let mut table = IdTable::with_capacity(1000);
        let hashes: Vec<u64> = (0..1000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        for &h in &hashes {
            assert!(!table.contains(h));
            assert!(table.insert(h));
            assert!(table.contains(h));
            assert!(!table.insert(h), "a second insert is a duplicate");
        }
        assert_eq!(table.len(), 1000);
        assert!(table.is_full());
        assert!(!table.insert(12345), "nothing more fits");
        assert!(hashes.iter().all(|&h| table.contains(h)));
        assert_eq!(table.iter().count(), 1000);
        table.clear();
        assert_eq!(table.len(), 0);
        assert!(!table.contains(hashes[0]));
    }
}
