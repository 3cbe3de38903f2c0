//! The records an agent publishes to the schema bucket, in a versioned postcard encoding:
//! one leading [`DISCOVERY_FORMAT_VERSION`] byte, then the record.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Version byte of every record. Bump it with any change to the records.
pub const DISCOVERY_FORMAT_VERSION: u8 = 1;

/// Most example values kept per property (per agent, and in the merged answer).
pub const MAX_EXAMPLES: usize = 5;

/// What one agent saw of one event type of one tenant within the horizon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TypeRecord {
    /// The event type.
    pub event_type: String,
    /// Events accepted (each once, whatever its weight).
    pub events: u64,
    /// Receive time of the first event (Unix ms).
    pub first_seen: i64,
    /// Receive time of the latest event (Unix ms).
    pub last_seen: i64,
    /// The properties kept, in the order first seen.
    pub properties: Vec<PropertyRecord>,
    /// Property occurrences not kept: names beyond the per-type cap (counted per event).
    pub properties_dropped: u64,
}

/// What one agent saw of one property of an event type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PropertyRecord {
    /// The property name.
    pub name: String,
    /// Events carrying it as a number.
    pub numbers: u64,
    /// Events carrying it as a string.
    pub strings: u64,
    /// Events carrying it as a boolean.
    pub bools: u64,
    /// Up to [`MAX_EXAMPLES`] distinct values in their canonical text, each cut to the
    /// agent's example length.
    pub examples: Vec<String>,
    /// [`crate::sketch::distinct::DistinctSketch::encode`] of the canonical values.
    pub distinct: Vec<u8>,
}

/// What one agent did not keep for a tenant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OverflowRecord {
    /// Events of event types beyond the per-tenant cap.
    pub event_types_dropped: u64,
    /// Events of this tenant whose properties were not recorded because the agent's total
    /// property cap was reached.
    pub properties_dropped: u64,
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryDecodeError {
    /// Empty input.
    #[error("empty schema record")]
    Empty,
    /// Another format version.
    #[error("schema record version {0} is not {DISCOVERY_FORMAT_VERSION}")]
    Version(u8),
    /// Not a record.
    #[error("malformed schema record")]
    Malformed(#[source] postcard::Error),
}

/// The encoding of a record.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut out = vec![DISCOVERY_FORMAT_VERSION];
    // Serializing plain structs of strings, integers and vectors into a Vec cannot fail.
    out.extend(postcard::to_stdvec(record).unwrap_or_default());
    out
}

/// Reads a record written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DiscoveryDecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DiscoveryDecodeError::Empty)?;
    if version != DISCOVERY_FORMAT_VERSION {
        return Err(DiscoveryDecodeError::Version(version));
    }
    postcard::from_bytes(body).map_err(DiscoveryDecodeError::Malformed)
}

impl TypeRecord {
    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Reads [`TypeRecord::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self, DiscoveryDecodeError> {
        decode(bytes)
    }
}

impl OverflowRecord {
    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Reads [`OverflowRecord::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self, DiscoveryDecodeError> {
        decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_other_versions_are_refused() {
        let record = TypeRecord {
            event_type: "click".into(),
            events: 3,
            first_seen: 1,
            last_seen: 2,
            properties: vec![PropertyRecord {
                name: "amount".into(),
                numbers: 3,
                strings: 0,
                bools: 0,
                examples: vec!["1.5".into()],
                distinct: vec![10, 0],
            }],
            properties_dropped: 0,
        };
        let bytes = record.encode();
        assert_eq!(TypeRecord::decode(&bytes).expect("decodes"), record);
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(matches!(
            TypeRecord::decode(&other),
            Err(DiscoveryDecodeError::Version(9))
        ));
        assert!(TypeRecord::decode(&bytes[..bytes.len() - 3]).is_err());
    }
}
