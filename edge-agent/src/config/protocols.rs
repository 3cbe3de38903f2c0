//! The `[segment]`, `[otlp]`, `[statsd]` and `[idempotency]` tables: the producers' own
//! protocols at the agent (see [`crate::protocols`] and `docs/producers.md`).

use super::sections::{KIB, MIB};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[segment]`: the Segment-compatible tracking API (`POST /v1/track`, `/v1/batch`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentConfig {
    /// Write key -> tenant: when not empty, a call must present one of these keys (HTTP Basic
    /// user, as every Segment SDK sends it; else `401`) and its events go to the key's tenant.
    /// Until access control verifies ingest keys (issue #16), this table is the key store.
    pub write_keys: BTreeMap<String, String>,
    /// Without `write_keys`: the tenant of every call, whatever write key it presents (a key
    /// is still required, its value not checked: a sidecar on loopback serving one tenant).
    /// With neither, calls answer `403`.
    pub tenant: Option<String>,
    /// `source` of every event; absent: the SDK's `context.library.name` (sanitised, e.g.
    /// `analytics-python`), else `segment`.
    pub source: Option<String>,
    /// Largest message, in bytes of its JSON (Segment documents 32 KB); a larger one is
    /// rejected alone (`message_too_large`), or the call with `413` when it is a single call.
    pub max_message_bytes: u64,
    /// Largest `/v1/batch` body after decompression, in bytes (Segment documents 500 KB);
    /// larger answers `413`.
    pub max_batch_bytes: u64,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            write_keys: BTreeMap::new(),
            tenant: None,
            source: None,
            max_message_bytes: 32 * KIB,
            max_batch_bytes: 512 * KIB,
        }
    }
}

/// `[otlp]`: OTLP/HTTP logs (`POST /v1/logs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// The tenant of every log record received; without it `/v1/logs` answers `403`.
    pub tenant: Option<String>,
    /// Event type of records that have neither an `event_name` nor an `event.name`
    /// attribute. Absent (the default): such records are rejected and reported in the
    /// answer's `partial_success`; plain logs are not events.
    pub default_event_type: Option<String>,
    /// `source` of records whose resource has no `service.name`.
    pub default_source: String,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            tenant: None,
            default_event_type: None,
            default_source: "otlp".to_owned(),
        }
    }
}

/// `[statsd]`: DogStatsD/StatsD over UDP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsdConfig {
    /// The tenant of every metric line. The listener runs when this is set (a sidecar's StatsD
    /// port serves one tenant) and not otherwise.
    pub tenant: Option<String>,
    /// UDP address to listen on. Loopback: UDP has no authentication, so only the service
    /// beside the agent may reach it.
    pub listen: String,
    /// `source` of every event.
    pub source: String,
    /// Requested kernel receive buffer (`SO_RCVBUF`), in bytes: what a burst may queue while
    /// the listener is busy. Linux caps it at `net.core.rmem_max` unless run as root; the
    /// size obtained is logged.
    pub recv_buffer_bytes: usize,
    /// Lines parsed before they are submitted together (fewer when the socket has nothing
    /// more to read).
    pub batch_lines: usize,
}

impl Default for StatsdConfig {
    fn default() -> Self {
        Self {
            tenant: None,
            listen: "127.0.0.1:8125".to_owned(),
            source: "statsd".to_owned(),
            recv_buffer_bytes: 8 * MIB as usize,
            batch_lines: 4096,
        }
    }
}

/// `[idempotency]`: events counted once when a producer retries them (see
/// [`crate::protocols::idempotency`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencyConfig {
    /// How long an event id is remembered, in seconds (at least this long unless the id
    /// bound below is reached first).
    pub horizon_secs: u64,
    /// Most ids remembered over the horizon. Memory is 12.5 bytes per id, allocated at start
    /// (the default, 4,194,304, takes 50 MiB: 7,000 ids/s over 10 minutes; 100,000 ids/s
    /// needs 60,000,000, 750 MiB). When more ids arrive within the horizon, the oldest ones
    /// are forgotten early.
    pub max_ids: u64,
    /// How often new ids are appended to `<state_dir>/idempotency`, in milliseconds (also at
    /// shutdown), so that a restart remembers them.
    pub persist_interval_ms: u64,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            horizon_secs: 600,
            max_ids: 4 * 1024 * 1024,
            persist_interval_ms: 1000,
        }
    }
}
