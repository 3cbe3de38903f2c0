//! A sketch as text: the `state` column of the windows tables and the `state` field of live
//! window updates, so that readers can merge windows (percentiles and unique counts of any
//! range, any filter) instead of combining finished numbers.
//!
//! The text is [`Sketch::encode`] (the versioned binary form: a [`SKETCH_FORMAT_VERSION`]
//! byte, then postcard) in base64 with the standard alphabet (`A-Z a-z 0-9 + /`) and `=`
//! padding, as RFC 4648 section 4 writes it. Readers here accept it with or without the
//! padding. Any change to the binary form bumps its version byte, which readers check first,
//! so stored states stay readable or fail with a clear error.
//!
//! Size (`cargo test -p rtdash-shared --test sketch_state -- --nocapture` prints it): a
//! count-only sketch is a few bytes; values cost about 8 bytes per pending value (fewer than
//! [`DIGEST_BUFFER`](super::DIGEST_BUFFER)) plus 9 to 17 per centroid (at most
//! [`DIGEST_COMPRESSION`](super::DIGEST_COMPRESSION)); unique keys 2 to 4 bytes per distinct
//! register while the HyperLogLog is sparse, 12 KiB dense; base64 adds a third.
//!
//! [`SKETCH_FORMAT_VERSION`]: super::SKETCH_FORMAT_VERSION

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use super::{Sketch, SketchDecodeError};

/// Longest state text [`Sketch::from_state`] reads (64 KiB): more than the largest valid
/// sketch needs (a dense HyperLogLog, a full digest with a full buffer and the longest exact
/// sum take about 24 KiB as text), so hostile text costs no more memory than a real state.
pub const MAX_STATE_LEN: usize = 64 * 1024;

/// The decoder: standard alphabet, padding optional.
const DECODER: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a state text is not a sketch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StateDecodeError {
    /// Longer than [`MAX_STATE_LEN`].
    #[error("sketch state of {0} bytes, at most {MAX_STATE_LEN} are valid")]
    TooLong(usize),
    /// Not base64 (standard alphabet).
    #[error("sketch state is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The bytes are not a valid sketch.
    #[error("invalid sketch state")]
    Sketch(#[from] SketchDecodeError),
}

impl Sketch {
    /// The state text of this sketch (see the module docs).
    pub fn to_state(&self) -> String {
        STANDARD.encode(self.encode())
    }

    /// Appends the state text of this sketch to `out` (reusing its allocation).
    pub fn append_state(&self, out: &mut String) {
        STANDARD.encode_string(self.encode(), out);
    }

    /// Reads a state text written by [`Sketch::to_state`] (padded or not). Never panics;
    /// allocates at most what [`MAX_STATE_LEN`] bytes decode to.
    pub fn from_state(text: &str) -> Result<Sketch, StateDecodeError> {
        if text.len() > MAX_STATE_LEN {
            return Err(StateDecodeError::TooLong(text.len()));
        }
        let bytes = DECODER.decode(text.trim_end_matches('='))?;
        Ok(Sketch::decode(&bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::{unique_hash, SketchSpec};

    #[test]
    fn round_trips_padded_and_unpadded() {
        let mut sketch = Sketch::new(SketchSpec::ALL);
        for i in 0..300u64 {
            sketch.record(Some(i as f64 * 1.5), Some(unique_hash(&i.to_le_bytes())));
        }
        let text = sketch.to_state();
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
        assert_eq!(text.len() % 4, 0, "padded: {text}");
        assert_eq!(Sketch::from_state(&text).unwrap(), sketch);
        assert_eq!(
            Sketch::from_state(text.trim_end_matches('=')).unwrap(),
            sketch
        );
        let mut appended = String::from("x");
        sketch.append_state(&mut appended);
        assert_eq!(&appended[1..], text);
    }

    #[test]
    fn rejects_bad_text_with_a_reason() {
        assert!(matches!(
            Sketch::from_state("not base64!"),
            Err(StateDecodeError::Base64(_))
        ));
        assert!(matches!(
            Sketch::from_state(""),
            Err(StateDecodeError::Sketch(SketchDecodeError::Empty))
        ));
        assert!(matches!(
            Sketch::from_state("Bw"),
            Err(StateDecodeError::Sketch(
                SketchDecodeError::UnsupportedVersion(7)
            ))
        ));
        let long = "A".repeat(MAX_STATE_LEN + 4);
        assert_eq!(
            Sketch::from_state(&long),
            Err(StateDecodeError::TooLong(MAX_STATE_LEN + 4))
        );
    }
}
