//! The `state` column and the `state` field of live updates: a window's mergeable sketch as
//! `base64(Sketch::encode())`, standard alphabet. The writer may pad or not; both decode.
//!
//! The shared crate has the same encoding (`Sketch::to_state`); this copy is to be folded
//! into it.

use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine;
use rtdash_shared::sketch::{Sketch, SketchDecodeError};

/// Standard alphabet, written without padding, read with or without.
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Largest state accepted, in base64 characters: a dense HyperLogLog (12 KiB) and a full
/// digest fit many times over.
pub const MAX_STATE_CHARS: usize = 256 * 1024;

/// Why a stored or published state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Longer than [`MAX_STATE_CHARS`].
    #[error("state of {0} characters is over the limit")]
    TooLong(usize),
    /// Not base64.
    #[error("state is not base64")]
    Base64(#[source] base64::DecodeError),
    /// Not a sketch.
    #[error("state is not a sketch")]
    Sketch(#[source] SketchDecodeError),
}

/// `base64(sketch.encode())`, unpadded.
pub fn encode_state(sketch: &Sketch) -> String {
    ENGINE.encode(sketch.encode())
}

/// The sketch of a `state` text.
pub fn decode_state(text: &str) -> Result<Sketch, StateError> {
    if text.len() > MAX_STATE_CHARS {
        return Err(StateError::TooLong(text.len()));
    }
    let bytes = ENGINE.decode(text).map_err(StateError::Base64)?;
    Sketch::decode(&bytes).map_err(StateError::Sketch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::sketch::SketchSpec;

    #[test]
    fn round_trip_padded_or_not() {
        let mut sketch = Sketch::new(SketchSpec::ALL);
        for i in 0..100 {
            sketch.record(Some(f64::from(i)), Some(i as u64 * 7919));
        }
        let text = encode_state(&sketch);
        assert!(!text.ends_with('='));
        assert_eq!(decode_state(&text).unwrap(), sketch);
        let padded = base64::engine::general_purpose::STANDARD.encode(sketch.encode());
        assert_eq!(decode_state(&padded).unwrap(), sketch);
        assert!(matches!(decode_state("%%%"), Err(StateError::Base64(_))));
        assert!(matches!(decode_state("AAAA"), Err(StateError::Sketch(_))));
    }
}
