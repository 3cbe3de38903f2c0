//! Series keys: (tenant, metric, dimension values), their canonical bytes, their stable id and
//! the partition they belong to.
//!
//! Canonical bytes (version 1), identical in every process and every release:
//!
//! ```text
//! 0x01 | str(tenant) | str(metric) | varint(n) | n × ( str(name) | 0x00 | 0x01 str(value) )
//! str(s) = varint(len(s)) bytes(s)        dimensions sorted by name; 0x00 = absent value
//! ```
//!
//! The series id is `xxh3_64` of those bytes with [`SERIES_HASH_SEED`]; the partition is the
//! id mapped onto `0..P` by multiply-shift (uniform, no modulo bias). Changing any of this
//! changes where series live, so it is covered by golden tests.

use crate::codec::{push_varint, read_varint, VarintError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed of the series-id hash. Never change it: ids and partitions are derived from it.
pub const SERIES_HASH_SEED: u64 = 0x7274_6461_7368_0001; // "rtdash" + 1
const CANONICAL_VERSION: u8 = 1;

/// One series of one metric of one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// Tenant.
    pub tenant: String,
    /// Metric name.
    pub metric: String,
    /// Dimension values sorted by dimension name; `None` when the event lacked the dimension.
    pub dims: Vec<(String, Option<String>)>,
}

/// A canonical-bytes problem (only raised when decoding bytes from elsewhere).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid canonical series bytes: {problem}")]
pub struct SeriesDecodeError {
    problem: &'static str,
    /// Set when a string was not UTF-8.
    #[source]
    utf8: Option<std::str::Utf8Error>,
}

impl SeriesDecodeError {
    fn new(problem: &'static str) -> Self {
        Self {
            problem,
            utf8: None,
        }
    }
}

impl SeriesKey {
    /// A key; dimensions are sorted by name.
    pub fn new(
        tenant: impl Into<String>,
        metric: impl Into<String>,
        dims: impl IntoIterator<Item = (String, Option<String>)>,
    ) -> Self {
        let mut dims: Vec<(String, Option<String>)> = dims.into_iter().collect();
        dims.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            tenant: tenant.into(),
            metric: metric.into(),
            dims,
        }
    }

    /// Appends the canonical bytes to `out`.
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        let mut writer = CanonicalWriter::start(out, &self.tenant, &self.metric, self.dims.len());
        for (name, value) in &self.dims {
            writer.dimension(name, value.as_deref());
        }
    }

    /// The canonical bytes.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        self.write_canonical(&mut out);
        out
    }

    /// Decodes canonical bytes.
    pub fn from_canonical(bytes: &[u8]) -> Result<Self, SeriesDecodeError> {
        let mut reader = Reader { rest: bytes };
        if reader.byte()? != CANONICAL_VERSION {
            return Err(SeriesDecodeError::new("unknown version"));
        }
        let tenant = reader.string()?;
        let metric = reader.string()?;
        let count = reader.varint()?;
        if count > 64 {
            return Err(SeriesDecodeError::new("too many dimensions"));
        }
        let mut dims = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let name = reader.string()?;
            let value = match reader.byte()? {
                0 => None,
                1 => Some(reader.string()?),
                _ => return Err(SeriesDecodeError::new("bad value tag")),
            };
            dims.push((name, value));
        }
        if !reader.rest.is_empty() {
            return Err(SeriesDecodeError::new("trailing bytes"));
        }
        Ok(Self {
            tenant,
            metric,
            dims,
        })
    }

    /// Stable 64-bit id.
    pub fn id(&self) -> u64 {
        series_id(&self.canonical())
    }

    /// Partition in `0..partitions`.
    pub fn partition(&self, partitions: u32) -> u32 {
        partition_of(self.id(), partitions)
    }

    /// The dimension values as a canonical JSON object (keys sorted, absent values `null`),
    /// e.g. `{"plan":"pro","region":"us-east"}`. This is the `series` column in QuestDB.
    pub fn dims_json(&self) -> String {
        let map: BTreeMap<&str, Option<&str>> = self
            .dims
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref()))
            .collect();
        serde_json::to_string(&map).unwrap_or_else(|_| String::from("{}"))
    }

    /// The dimension names joined by `,` (e.g. `plan,region`; empty for the total). Together
    /// with the metric it says which rollup a series belongs to.
    pub fn dim_set(&self) -> String {
        let names: Vec<&str> = self.dims.iter().map(|(name, _)| name.as_str()).collect();
        names.join(",")
    }

    /// Whether every `(name, value)` of `filter` is among the series' dimensions.
    pub fn matches(&self, filter: &BTreeMap<String, String>) -> bool {
        filter.iter().all(|(name, wanted)| {
            self.dims
                .iter()
                .any(|(have, value)| have == name && value.as_deref() == Some(wanted.as_str()))
        })
    }
}

/// The id of canonical series bytes.
pub fn series_id(canonical: &[u8]) -> u64 {
    xxh3_64_with_seed(canonical, SERIES_HASH_SEED)
}

/// Maps a series id onto `0..partitions` (multiply-shift).
pub fn partition_of(id: u64, partitions: u32) -> u32 {
    ((u128::from(id) * u128::from(partitions.max(1))) >> 64) as u32
}

/// Writes canonical bytes piece by piece without building a [`SeriesKey`] first (the edge
/// agent's hot path). Dimensions must be written in name order.
pub struct CanonicalWriter<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> CanonicalWriter<'o> {
    /// Starts a key with `dimensions` dimensions to follow.
    pub fn start(out: &'o mut Vec<u8>, tenant: &str, metric: &str, dimensions: usize) -> Self {
        out.push(CANONICAL_VERSION);
        write_str(out, tenant);
        write_str(out, metric);
        push_varint(out, dimensions as u64);
        Self { out }
    }

    /// Writes the next dimension (in name order).
    pub fn dimension(&mut self, name: &str, value: Option<&str>) {
        write_str(self.out, name);
        match value {
            None => self.out.push(0),
            Some(value) => {
                self.out.push(1);
                write_str(self.out, value);
            }
        }
    }
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    push_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// Reads canonical bytes front to back.
struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, SeriesDecodeError> {
        let (&byte, rest) = self
            .rest
            .split_first()
            .ok_or(SeriesDecodeError::new("truncated"))?;
        self.rest = rest;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, SeriesDecodeError> {
        read_varint(&mut self.rest).map_err(|err| match err {
            VarintError::Truncated => SeriesDecodeError::new("truncated"),
            VarintError::TooLong => SeriesDecodeError::new("varint too long"),
        })
    }

    fn string(&mut self) -> Result<String, SeriesDecodeError> {
        let len = self.varint()? as usize;
        if len > self.rest.len() {
            return Err(SeriesDecodeError::new("truncated string"));
        }
        let (bytes, rest) = self.rest.split_at(len);
        let text = std::str::from_utf8(bytes).map_err(|err| SeriesDecodeError {
            problem: "string is not UTF-8",
            utf8: Some(err),
        })?;
        self.rest = rest;
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SeriesKey {
        SeriesKey::new(
            "acme",
            "checkout_amount",
            [
                ("region".to_owned(), Some("us-east".to_owned())),
                ("plan".to_owned(), None),
            ],
        )
    }

    #[test]
    fn canonical_bytes_are_stable() {
        let key = key();
        assert_eq!(
            key.canonical(),
            b"\x01\x04acme\x0fcheckout_amount\x02\x04plan\x00\x06region\x01\x07us-east".to_vec()
        );
        // Golden values: a change here moves every series to another partition.
        assert_eq!(key.id(), series_id(&key.canonical()));
        assert_eq!(format!("{:016x}", key.id()), GOLDEN_ID);
        assert_eq!(key.partition(8), GOLDEN_PARTITION);
        assert_eq!(SeriesKey::from_canonical(&key.canonical()), Ok(key));
    }

    const GOLDEN_ID: &str = "6514bf289c073b11";
    const GOLDEN_PARTITION: u32 = 3;

    #[test]
    fn json_and_dim_set() {
        assert_eq!(key().dims_json(), r#"{"plan":null,"region":"us-east"}"#);
        assert_eq!(key().dim_set(), "plan,region");
        let total = SeriesKey::new("acme", "m", []);
        assert_eq!(total.dims_json(), "{}");
        assert_eq!(total.dim_set(), "");
    }

    #[test]
    fn filter_matching() {
        let mut filter = BTreeMap::new();
        filter.insert("region".to_owned(), "us-east".to_owned());
        assert!(key().matches(&filter));
        filter.insert("plan".to_owned(), "pro".to_owned());
        assert!(!key().matches(&filter));
    }

    #[test]
    fn partitions_spread_evenly() {
        let mut counts = [0u32; 8];
        for i in 0..80_000 {
            let key = SeriesKey::new("t", "m", [("user".to_owned(), Some(i.to_string()))]);
            counts[key.partition(8) as usize] += 1;
        }
        for count in counts {
            assert!((9_000..11_000).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn hostile_canonical_bytes_are_errors() {
        let good = key().canonical();
        for end in 0..good.len() {
            assert!(SeriesKey::from_canonical(&good[..end]).is_err());
        }
        assert!(SeriesKey::from_canonical(&[
            1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ])
        .is_err());
        assert!(SeriesKey::from_canonical(&[2]).is_err());
        let not_utf8 = SeriesKey::from_canonical(&[1, 1, 0xff, 0, 0]).unwrap_err();
        assert!(std::error::Error::source(&not_utf8).is_some(), "{not_utf8}");
    }
}
