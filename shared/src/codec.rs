//! The byte-level pieces of the crate's own key encodings, written once: LEB128 varints (the
//! canonical series bytes of [`crate::series`] and the aggregator's inner keys) and an inlined
//! byte equality for the short keys and names compared on every event.

/// Why a varint could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The bytes ended inside the varint.
    Truncated,
    /// More than the ten bytes a `u64` needs.
    TooLong,
}

/// Appends `value` as an unsigned LEB128 varint (seven bits per byte, low bits first).
pub(crate) fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads an unsigned LEB128 varint from the front of `bytes` and advances past it.
pub(crate) fn read_varint(bytes: &mut &[u8]) -> Result<u64, VarintError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(VarintError::Truncated)?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(VarintError::TooLong)
}

/// Byte equality, inlined for the short keys and names compared on every event (`==` on
/// slices calls `memcmp`, whose call and dispatch cost more than comparing a few words).
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    let word = |bytes: &[u8], at: usize| {
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]))
    };
    let half = |bytes: &[u8], at: usize| {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]))
    };
    if len >= 8 {
        // Whole words, then the last word (overlapping the previous one).
        let mut at = 0;
        while at + 8 < len {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        word(a, len - 8) == word(b, len - 8)
    } else if len >= 4 {
        half(a, 0) == half(b, 0) && half(a, len - 4) == half(b, len - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for value in [
            0,
            1,
            0x7f,
            0x80,
            0x3fff,
            0x4000,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut bytes = Vec::new();
            push_varint(&mut bytes, value);
            bytes.push(0xaa);
            let mut rest = bytes.as_slice();
            assert_eq!(read_varint(&mut rest), Ok(value));
            assert_eq!(rest, [0xaa], "{value}");
        }
        assert_eq!(
            read_varint(&mut &[0x80, 0x80][..]),
            Err(VarintError::Truncated)
        );
        assert_eq!(read_varint(&mut &[0xff; 11][..]), Err(VarintError::TooLong));
    }

    #[test]
    fn same_bytes_is_equality() {
        let texts: Vec<Vec<u8>> = (0..40)
            .flat_map(|len| {
                let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 7) as u8).collect();
                let mut variants = vec![base.clone()];
                for at in 0..len {
                    let mut changed = base.clone();
                    changed[at] ^= 1;
                    variants.push(changed);
                }
                variants
            })
            .collect();
        for a in &texts {
            for b in &texts {
                assert_eq!(same_bytes(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }
}
