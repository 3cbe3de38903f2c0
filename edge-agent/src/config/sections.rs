//! The `[section]` tables of [`AgentConfig`](super::AgentConfig), each with its defaults.

use serde::{Deserialize, Serialize};

pub(super) const KIB: u64 = 1024;
pub(super) const MIB: u64 = 1024 * 1024;

/// `[ingest]`: HTTP request limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest request body as sent (compressed or not), in bytes; larger answers `413`.
    pub max_body_bytes: u64,
    /// Largest body after gzip decompression, in bytes; larger answers `413`.
    pub max_decompressed_bytes: u64,
    /// Most events in one batch; more answers `413` (`batch_too_large`).
    pub max_batch_items: usize,
    /// Requests processed at once; more answer `429`.
    pub max_concurrent_requests: usize,
    /// `Retry-After` on `429` and `503`, in seconds.
    pub retry_after_secs: u64,
    /// Bodies at least this large are parsed on the blocking thread pool, so a huge batch
    /// does not stall the async workers (health checks, small requests).
    pub blocking_threshold_bytes: u64,
    /// Answer `202` only once the accepted events are in a partial batch on the disk spool,
    /// so that a crash of the agent (`SIGKILL`, OOM kill) loses no acknowledged event. Every
    /// batch is then written to disk when it is made (`spool.memory_bytes` is not used; no
    /// fsync: the page cache survives a process crash, not a power loss), and each answer
    /// waits for the next flush (up to `flush_interval_ms`). When the disk refuses a batch,
    /// its answers wait for JetStream's acknowledgement instead. Off: events accepted since
    /// the last flush, and batches held in memory, are lost with the process.
    pub durable_ack: bool,
    /// Events per second one tenant may send through this agent when the operator has not
    /// set its `events_per_second` quota; 0: no limit. Over it, requests authenticated as the
    /// tenant answer `429 quota_exceeded` (see `ingest::tenant_rate`).
    pub tenant_events_per_second: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * MIB,
            max_decompressed_bytes: 64 * MIB,
            max_batch_items: 100_000,
            max_concurrent_requests: 256,
            retry_after_secs: 1,
            blocking_threshold_bytes: MIB,
            durable_ack: false,
            tenant_events_per_second: 0,
        }
    }
}

/// `[publish]`: JetStream publishing of partial batches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// Target size of one encoded batch, in bytes; a partition's deltas are cut into
    /// batches of about this size. Capped below the server's `max_payload` (1 MiB by
    /// default), as is `archive.chunk_bytes`.
    pub max_batch_bytes: u64,
    /// Publishes awaiting their acknowledgement at once (per outbox).
    pub max_in_flight: usize,
    /// How long to wait for an acknowledgement before retrying, in milliseconds.
    pub ack_timeout_ms: u64,
    /// Longest pause between retries after failures, in milliseconds.
    pub retry_backoff_max_ms: u64,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            max_batch_bytes: MIB,
            max_in_flight: 256,
            ack_timeout_ms: 5_000,
            retry_backoff_max_ms: 2_000,
        }
    }
}

/// `[spool]`: unacknowledged partial batches, in memory up to a budget, then on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Bytes of batches kept in memory; further batches go to disk segments.
    pub memory_bytes: u64,
    /// Bound on memory plus disk spool, in bytes; above it ingest answers `503`.
    pub max_bytes: u64,
    /// Size at which a disk segment file is closed and a new one started, in bytes.
    pub segment_bytes: u64,
    /// How often the last used batch sequence numbers are written to the state directory,
    /// in milliseconds (also at shutdown).
    pub seq_persist_interval_ms: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            memory_bytes: 64 * MIB,
            max_bytes: 1024 * MIB,
            segment_bytes: 64 * MIB,
            seq_persist_interval_ms: 5_000,
        }
    }
}

/// `[dlq]`: rejected input on its way to `rtdash.dlq.<tenant>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DlqConfig {
    /// Raw input kept per dead letter, in bytes (longer input is cut and marked).
    pub max_raw_bytes: usize,
    /// Dead letters kept in memory while they wait for NATS, in bytes; further ones go to a
    /// disk spool.
    pub queue_bytes: u64,
    /// Bound on the dead-letter disk spool, in bytes. Past it dead letters are dropped,
    /// counted in `rtdash_agent_dlq_dropped_total` and logged.
    pub spool_max_bytes: u64,
}

impl Default for DlqConfig {
    fn default() -> Self {
        Self {
            max_raw_bytes: 4 * KIB as usize,
            queue_bytes: 16 * MIB,
            spool_max_bytes: 256 * MIB,
        }
    }
}

/// What the archive does when its queue is full (NATS unreachable for a while).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveFullPolicy {
    /// Drop the newest archive chunks, count them in
    /// `rtdash_agent_archive_dropped_events_total` and log; ingest and aggregation go on.
    #[default]
    Drop,
    /// Count the archive queue in the memory budget, so ingest answers `503` when it is full.
    Backpressure,
}

/// How archive chunks are stored (see `rtdash_shared::archive`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveCompression {
    /// Plain NDJSON, readable by any reader.
    #[default]
    None,
    /// One zstd frame per chunk (header `Content-Encoding: zstd`): about a tenth of the bytes
    /// for NATS to carry and store, for about 0.2 us of agent CPU per event. Readers must
    /// decode chunks with `rtdash_shared::archive::decode_chunk`.
    Zstd,
}

/// `[archive]`: raw-event archive batching.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Size of one NDJSON chunk per tenant before compression, in bytes (at most what fits
    /// one NATS message uncompressed). Default: 256 KiB, and 1 MiB with `compression = "zstd"`
    /// (fewer, still small messages).
    pub chunk_bytes: Option<usize>,
    /// Chunks waiting for NATS (as stored, so compressed when they are), in bytes.
    pub max_queue_bytes: u64,
    /// What to do when the queue is full.
    pub when_full: ArchiveFullPolicy,
    /// How chunks are stored: `none` (NDJSON) or `zstd`.
    pub compression: ArchiveCompression,
    /// zstd level with `compression = "zstd"` (-7 to 19; 1 is fast and about tenfold).
    pub zstd_level: i32,
}

impl ArchiveConfig {
    /// `chunk_bytes`, or its default for the compression in force.
    pub fn effective_chunk_bytes(&self) -> usize {
        self.chunk_bytes.unwrap_or(match self.compression {
            ArchiveCompression::None => 256 * KIB as usize,
            ArchiveCompression::Zstd => MIB as usize,
        })
    }
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            chunk_bytes: None,
            max_queue_bytes: 64 * MIB,
            when_full: ArchiveFullPolicy::Drop,
            compression: ArchiveCompression::None,
            zstd_level: 1,
        }
    }
}
