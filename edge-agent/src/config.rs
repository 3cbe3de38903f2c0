//! `AgentConfig`: every setting of the edge agent, with its default.
//!
//! Loaded by [`rtdash_runtime::config::load`]: built-in defaults, then the optional TOML file
//! given with `--config`, then `RTDASH_EDGE_AGENT__<KEY>` environment variables (nested keys
//! joined by `__`, e.g. `RTDASH_EDGE_AGENT__INGEST__MAX_BODY_BYTES=1048576`) and the shared
//! `RTDASH_NATS__URL`, `RTDASH_STREAMS__PARTITIONS`, `RTDASH_TELEMETRY__LOG_FORMAT`.
//!
//! ```toml
//! listen = "127.0.0.1:8081"
//! state_dir = "/var/lib/rtdash/edge-agent"
//! flush_interval_ms = 500
//! archive_events = true
//! metrics_file = "/etc/rtdash/metrics.toml"
//!
//! [nats]
//! url = "nats://127.0.0.1:4222"
//! ```
//!
//! At an edge site (a leaf node with its own JetStream domain, `deploy/edge/`) set `site`:
//!
//! ```toml
//! site = "s1"          # publishes to rtdash.edge.s1.{partials,dlq,events}.*
//! [nats]
//! url = "nats://127.0.0.1:4231"   # the site's leaf node
//! ```

use rtdash_runtime::config::{ConfigError, Validate};
use rtdash_runtime::nats::{NatsConfig, StreamsConfig};
use rtdash_runtime::telemetry::TelemetryConfig;
use rtdash_shared::event::{is_identifier, EventLimits};
use rtdash_shared::names;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Every setting of the edge agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Address of the HTTP listener (ingest API, `/healthz`, `/readyz`, `/metrics`). Loopback
    /// by default: the agent is a sidecar.
    pub listen: String,
    /// Stable id of this agent (`[A-Za-z0-9_-]`, at most 64 bytes). When absent, an id is
    /// generated once and kept in `<state_dir>/agent-id`.
    pub agent_id: Option<String>,
    /// Directory for the agent id, the batch sequence numbers and the disk spool.
    pub state_dir: PathBuf,
    /// Edge site id (1 to 32 of `a-z 0-9 -`, not starting or ending with `-`) when the agent
    /// runs at an edge site: beside a NATS leaf node with its own JetStream domain
    /// (`deploy/edge/up.sh <site>`). Then the subject prefix is `rtdash.edge.<site>`, the agent
    /// creates no streams (the site's `RTDASH_EDGE_*` streams must exist), reads the partition
    /// count from `RTDASH_EDGE_PARTIALS`, and a generated agent id starts with `<site>-`.
    pub site: Option<String>,
    /// First subject tokens of everything the agent publishes: `<prefix>.partials.<p>`,
    /// `<prefix>.dlq.<tenant>`, `<prefix>.events.<tenant>`. Default `rtdash`, or
    /// `rtdash.edge.<site>` with `site` (then it may only be left out or set to that). With
    /// any prefix but `rtdash` the agent creates no streams: something else must capture those
    /// subjects (a stream recording `rtdash.partitions` in its metadata for the partials).
    pub subject_prefix: Option<String>,
    /// How often the aggregated deltas are published, in milliseconds (10 to 1000).
    pub flush_interval_ms: u64,
    /// Longest time a partition goes without a message (an empty heartbeat batch when there
    /// is no data), in milliseconds, so that windows close at the aggregator.
    pub heartbeat_interval_ms: u64,
    /// Number of aggregation shards (independent locks); 0 picks the number of CPUs.
    pub shards: usize,
    /// Global memory budget, in bytes: the bytes the allocator holds for the process (with
    /// jemalloc, the default build), else estimates of the aggregation state, the in-memory
    /// spool and the dead-letter and archive queues. Above it ingest answers `503`.
    pub memory_budget_bytes: u64,
    /// Optional TOML file of metric definitions (`[[metric]]` tables) loaded at startup; the
    /// `rtdash_config` key-value bucket is watched for more.
    pub metrics_file: Option<PathBuf>,
    /// Also publish every accepted event (batched NDJSON) to `rtdash.events.<tenant>`.
    pub archive_events: bool,
    /// How long shutdown waits for outstanding acknowledgements, in milliseconds, before it
    /// writes what is left to the disk spool.
    pub shutdown_grace_ms: u64,
    /// Bounds on single events.
    pub limits: EventLimits,
    /// HTTP ingest limits.
    pub ingest: IngestConfig,
    /// Publishing partial batches.
    pub publish: PublishConfig,
    /// Spool of unacknowledged partial batches.
    pub spool: SpoolConfig,
    /// Dead-letter queue.
    pub dlq: DlqConfig,
    /// Raw-event archive (only used with `archive_events = true`).
    pub archive: ArchiveConfig,
    /// How to reach NATS.
    pub nats: NatsConfig,
    /// Stream settings; the agent creates missing streams with them and routes with
    /// `partitions` only when the partials stream does not record its partition count.
    pub streams: StreamsConfig,
    /// Logs.
    pub telemetry: TelemetryConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8081".to_owned(),
            agent_id: None,
            state_dir: PathBuf::from(".rtdash/edge-agent"),
            site: None,
            subject_prefix: None,
            flush_interval_ms: 500,
            heartbeat_interval_ms: 1000,
            shards: 0,
            memory_budget_bytes: 512 * MIB,
            metrics_file: None,
            archive_events: false,
            shutdown_grace_ms: 10_000,
            limits: EventLimits::default(),
            ingest: IngestConfig::default(),
            publish: PublishConfig::default(),
            spool: SpoolConfig::default(),
            dlq: DlqConfig::default(),
            archive: ArchiveConfig::default(),
            nats: NatsConfig::default(),
            streams: StreamsConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

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

/// Whether `site` is a valid edge site id: 1 to 32 of `a-z 0-9 -`, not starting or ending
/// with `-` (it is a subject token and part of the JetStream domain `edge-<site>`).
pub fn is_site_id(site: &str) -> bool {
    !site.is_empty()
        && site.len() <= 32
        && site
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !site.starts_with('-')
        && !site.ends_with('-')
}

/// Whether `prefix` can start a subject: dot-separated tokens of `[A-Za-z0-9_-]`.
fn is_subject_prefix(prefix: &str) -> bool {
    prefix.len() <= 128
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

impl AgentConfig {
    /// The subject prefix in force: `subject_prefix`, else `rtdash.edge.<site>` at a site,
    /// else `rtdash`.
    pub fn resolved_subject_prefix(&self) -> String {
        match (&self.subject_prefix, &self.site) {
            (Some(prefix), _) => prefix.clone(),
            (None, Some(site)) => names::edge_subject_prefix(site),
            (None, None) => names::DEFAULT_SUBJECT_PREFIX.to_owned(),
        }
    }

    /// Whether the agent creates rtdash's streams and buckets at start (`ensure_topology`):
    /// only when it publishes to the hub's own subjects (prefix `rtdash`, no site). At an
    /// edge site creating `RTDASH_PARTIALS` in the site's domain would capture
    /// `rtdash.partials.*` on both sides of the leaf connection.
    pub fn creates_topology(&self) -> bool {
        self.site.is_none() && self.resolved_subject_prefix() == names::DEFAULT_SUBJECT_PREFIX
    }

    /// The number of aggregation shards to use.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }
    }
}

impl Validate for AgentConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.telemetry.validate()?;
        if let Some(id) = &self.agent_id {
            if !is_identifier(id, 64) {
                return Err(ConfigError::invalid(
                    "agent_id",
                    "must be 1 to 64 characters from [A-Za-z0-9_-]",
                ));
            }
        }
        if let Some(site) = &self.site {
            if !is_site_id(site) {
                return Err(ConfigError::invalid(
                    "site",
                    "must be 1 to 32 of a-z, 0-9 and '-', not starting or ending with '-'",
                ));
            }
            if let Some(prefix) = &self.subject_prefix {
                if *prefix != names::edge_subject_prefix(site) {
                    return Err(ConfigError::invalid(
                        "subject_prefix",
                        format!(
                            "must be `{}` with site = \"{site}\" (the site's streams capture only that), or left out",
                            names::edge_subject_prefix(site)
                        ),
                    ));
                }
            }
        }
        if let Some(prefix) = &self.subject_prefix {
            if !is_subject_prefix(prefix) {
                return Err(ConfigError::invalid(
                    "subject_prefix",
                    "must be dot-separated tokens of [A-Za-z0-9_-] (no wildcards), at most 128 bytes",
                ));
            }
        }
        if !(10..=1000).contains(&self.flush_interval_ms) {
            return Err(ConfigError::invalid(
                "flush_interval_ms",
                "must be 10 to 1000 (windows must see deltas at least every second)",
            ));
        }
        if self.heartbeat_interval_ms < self.flush_interval_ms
            || self.heartbeat_interval_ms > 60_000
        {
            return Err(ConfigError::invalid(
                "heartbeat_interval_ms",
                "must be at least flush_interval_ms and at most 60000",
            ));
        }
        if self.shards > 256 {
            return Err(ConfigError::invalid("shards", "must be at most 256"));
        }
        if self.memory_budget_bytes < 16 * MIB {
            return Err(ConfigError::invalid(
                "memory_budget_bytes",
                "must be at least 16 MiB",
            ));
        }
        if self.state_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("state_dir", "must not be empty"));
        }
        let ingest = &self.ingest;
        positive("ingest.max_body_bytes", ingest.max_body_bytes)?;
        if ingest.max_decompressed_bytes < ingest.max_body_bytes {
            return Err(ConfigError::invalid(
                "ingest.max_decompressed_bytes",
                "must be at least ingest.max_body_bytes",
            ));
        }
        positive("ingest.max_batch_items", ingest.max_batch_items as u64)?;
        positive(
            "ingest.max_concurrent_requests",
            ingest.max_concurrent_requests as u64,
        )?;
        positive("ingest.retry_after_secs", ingest.retry_after_secs)?;
        if !(4 * KIB..=4 * MIB).contains(&self.publish.max_batch_bytes) {
            return Err(ConfigError::invalid(
                "publish.max_batch_bytes",
                "must be 4 KiB to 4 MiB (the partials stream accepts messages up to 8 MiB)",
            ));
        }
        positive("publish.max_in_flight", self.publish.max_in_flight as u64)?;
        if self.publish.ack_timeout_ms < 100 {
            return Err(ConfigError::invalid(
                "publish.ack_timeout_ms",
                "must be at least 100",
            ));
        }
        positive(
            "publish.retry_backoff_max_ms",
            self.publish.retry_backoff_max_ms,
        )?;
        if self.spool.max_bytes < self.spool.memory_bytes {
            return Err(ConfigError::invalid(
                "spool.max_bytes",
                "must be at least spool.memory_bytes",
            ));
        }
        if self.spool.memory_bytes >= self.memory_budget_bytes {
            return Err(ConfigError::invalid(
                "spool.memory_bytes",
                "must be below memory_budget_bytes",
            ));
        }
        if self.spool.segment_bytes < MIB {
            return Err(ConfigError::invalid(
                "spool.segment_bytes",
                "must be at least 1 MiB",
            ));
        }
        positive(
            "spool.seq_persist_interval_ms",
            self.spool.seq_persist_interval_ms,
        )?;
        positive("dlq.max_raw_bytes", self.dlq.max_raw_bytes as u64)?;
        positive("dlq.queue_bytes", self.dlq.queue_bytes)?;
        if !(KIB as usize..=16 * MIB as usize).contains(&self.archive.effective_chunk_bytes()) {
            return Err(ConfigError::invalid(
                "archive.chunk_bytes",
                "must be 1 KiB to 16 MiB",
            ));
        }
        if self.archive.max_queue_bytes < self.archive.effective_chunk_bytes() as u64 {
            return Err(ConfigError::invalid(
                "archive.max_queue_bytes",
                "must be at least archive.chunk_bytes",
            ));
        }
        if !(-7..=19).contains(&self.archive.zstd_level) {
            return Err(ConfigError::invalid(
                "archive.zstd_level",
                "must be -7 to 19",
            ));
        }
        if self.limits.max_event_bytes == 0 {
            return Err(ConfigError::invalid(
                "limits.max_event_bytes",
                "must be positive",
            ));
        }
        self.streams.validate()
    }
}

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be positive"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_runtime::config::load_from;

    fn env(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_listen_on_loopback() {
        let config: AgentConfig = load_from("edge-agent", None, env(&[])).expect("defaults");
        assert_eq!(config.listen, "127.0.0.1:8081");
        assert_eq!(config.flush_interval_ms, 500);
        assert_eq!(config.ingest.max_batch_items, 100_000);
        assert!(!config.archive_events);
        assert_eq!(config.archive.compression, ArchiveCompression::None);
        assert_eq!(config.archive.effective_chunk_bytes(), 256 * 1024);
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let config: AgentConfig = load_from(
            "edge-agent",
            None,
            env(&[
                ("RTDASH_EDGE_AGENT__INGEST__MAX_BODY_BYTES", "1048576"),
                ("RTDASH_EDGE_AGENT__ARCHIVE_EVENTS", "true"),
                ("RTDASH_EDGE_AGENT__AGENT_ID", "edge-7"),
                ("RTDASH_EDGE_AGENT__ARCHIVE__COMPRESSION", "zstd"),
                ("RTDASH_NATS__URL", "nats://10.1.2.3:4222"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.archive.compression, ArchiveCompression::Zstd);
        assert_eq!(config.archive.effective_chunk_bytes(), 1024 * 1024);
        assert_eq!(config.ingest.max_body_bytes, 1_048_576);
        assert!(config.archive_events);
        assert_eq!(config.agent_id.as_deref(), Some("edge-7"));
        assert_eq!(config.nats.url, "nats://10.1.2.3:4222");
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (key, value, expected) in [
            (
                "RTDASH_EDGE_AGENT__FLUSH_INTERVAL_MS",
                "5000",
                "flush_interval_ms",
            ),
            ("RTDASH_EDGE_AGENT__AGENT_ID", "a.b", "agent_id"),
            (
                "RTDASH_EDGE_AGENT__PUBLISH__MAX_BATCH_BYTES",
                "10",
                "publish.max_batch_bytes",
            ),
            ("RTDASH_EDGE_AGENT__FLUSH_INTERVAL", "5", "flush_interval"),
            ("RTDASH_EDGE_AGENT__SITE", "S1", "site"),
            (
                "RTDASH_EDGE_AGENT__ARCHIVE__ZSTD_LEVEL",
                "30",
                "archive.zstd_level",
            ),
            ("RTDASH_EDGE_AGENT__SITE", "s1-", "site"),
            (
                "RTDASH_EDGE_AGENT__SUBJECT_PREFIX",
                "rtdash.*",
                "subject_prefix",
            ),
            (
                "RTDASH_EDGE_AGENT__SUBJECT_PREFIX",
                "a..b",
                "subject_prefix",
            ),
        ] {
            let err =
                load_from::<AgentConfig>("edge-agent", None, env(&[(key, value)])).expect_err(key);
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn a_site_implies_the_prefix_and_no_topology() {
        let direct: AgentConfig = load_from("edge-agent", None, env(&[])).expect("defaults");
        assert_eq!(direct.resolved_subject_prefix(), "rtdash");
        assert!(direct.creates_topology());

        let site: AgentConfig = load_from(
            "edge-agent",
            None,
            env(&[("RTDASH_EDGE_AGENT__SITE", "eu-west-1")]),
        )
        .expect("valid");
        assert_eq!(site.resolved_subject_prefix(), "rtdash.edge.eu-west-1");
        assert!(!site.creates_topology());

        let explicit: AgentConfig = load_from(
            "edge-agent",
            None,
            env(&[
                ("RTDASH_EDGE_AGENT__SITE", "s1"),
                ("RTDASH_EDGE_AGENT__SUBJECT_PREFIX", "rtdash.edge.s1"),
            ]),
        )
        .expect("the implied prefix may be spelled out");
        assert_eq!(explicit.resolved_subject_prefix(), "rtdash.edge.s1");
        let err = load_from::<AgentConfig>(
            "edge-agent",
            None,
            env(&[
                ("RTDASH_EDGE_AGENT__SITE", "s1"),
                ("RTDASH_EDGE_AGENT__SUBJECT_PREFIX", "rtdash.edge.s2"),
            ]),
        )
        .expect_err("a prefix the site's streams do not capture");
        assert!(err.to_string().contains("rtdash.edge.s1"), "{err}");

        let custom: AgentConfig = load_from(
            "edge-agent",
            None,
            env(&[("RTDASH_EDGE_AGENT__SUBJECT_PREFIX", "acme.rtdash")]),
        )
        .expect("valid");
        assert!(
            !custom.creates_topology(),
            "streams for another prefix are not rtdash's"
        );
        for ok in ["s1", "a", "eu-west-1", &"x".repeat(32)] {
            assert!(is_site_id(ok), "{ok}");
        }
        for bad in ["", "S1", "a.b", "a_b", "-a", "a-", &"x".repeat(33)] {
            assert!(!is_site_id(bad), "{bad}");
        }
    }
}
