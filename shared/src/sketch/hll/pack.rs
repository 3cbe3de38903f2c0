//! The wire form of dense registers: 6 bits each.

/// Packs registers (each < 64) at 6 bits each, four registers to three bytes, little-endian
/// within each group. The register count must be a multiple of 4.
pub(crate) fn pack_registers(registers: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(registers.len() / 4 * 3);
    for group in registers.chunks(4) {
        let r = |i: usize| u32::from(group.get(i).copied().unwrap_or(0) & 0x3f);
        let bits = r(0) | r(1) << 6 | r(2) << 12 | r(3) << 18;
        out.extend_from_slice(&bits.to_le_bytes()[..3]);
    }
    out
}

/// Inverse of [`pack_registers`]; `packed.len()` must be a multiple of 3.
pub(crate) fn unpack_registers(packed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(packed.len() / 3 * 4);
    for group in packed.chunks(3) {
        let b = |i: usize| u32::from(group.get(i).copied().unwrap_or(0));
        let bits = b(0) | b(1) << 8 | b(2) << 16;
        for k in 0..4 {
            out.push(((bits >> (6 * k)) & 0x3f) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        let registers: Vec<u8> = (0..1024u32).map(|i| (i * 7 % 52) as u8).collect();
        let packed = pack_registers(&registers);
        assert_eq!(packed.len(), 768);
        assert_eq!(unpack_registers(&packed), registers);
    }
}
