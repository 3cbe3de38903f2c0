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
//!
//! `sections.rs` holds the `[section]` tables, `validate.rs` the checks run at start.

mod auth;
mod protocols;
mod schema;
mod sections;
mod validate;

pub use auth::{AuthConfig, AuthMode};
pub use protocols::{IdempotencyConfig, OtlpConfig, SegmentConfig, StatsdConfig};
pub use schema::SchemaConfig;
pub use sections::{
    ArchiveCompression, ArchiveConfig, ArchiveFullPolicy, DlqConfig, IngestConfig, PublishConfig,
    SpoolConfig,
};

use rtdash_runtime::http::HttpServerConfig;
use rtdash_runtime::nats::{NatsConfig, StreamsConfig};
use rtdash_runtime::telemetry::TelemetryConfig;
use rtdash_shared::event::EventLimits;
use rtdash_shared::names;
use sections::MIB;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
    /// `[http]`: how long a client may take to send its request head and body, so that a
    /// few slow sockets cannot hold every `ingest.max_concurrent_requests` slot.
    pub http: HttpServerConfig,
    /// Publishing partial batches.
    pub publish: PublishConfig,
    /// Spool of unacknowledged partial batches.
    pub spool: SpoolConfig,
    /// Dead-letter queue.
    pub dlq: DlqConfig,
    /// Raw-event archive (only used with `archive_events = true`).
    pub archive: ArchiveConfig,
    /// The Segment-compatible tracking API.
    pub segment: SegmentConfig,
    /// OTLP/HTTP logs.
    pub otlp: OtlpConfig,
    /// DogStatsD/StatsD over UDP.
    pub statsd: StatsdConfig,
    /// Retried events counted once.
    pub idempotency: IdempotencyConfig,
    /// Schema discovery (`[schema]`).
    pub schema: SchemaConfig,
    /// How to reach NATS.
    pub nats: NatsConfig,
    /// Stream settings; the agent creates missing streams with them and routes with
    /// `partitions` only when the partials stream does not record its partition count.
    pub streams: StreamsConfig,
    /// Who may send events (`[auth]`): keys (default) or a loopback sidecar of one tenant.
    pub auth: AuthConfig,
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
            http: HttpServerConfig::default(),
            publish: PublishConfig::default(),
            spool: SpoolConfig::default(),
            dlq: DlqConfig::default(),
            archive: ArchiveConfig::default(),
            segment: SegmentConfig::default(),
            otlp: OtlpConfig::default(),
            statsd: StatsdConfig::default(),
            idempotency: IdempotencyConfig::default(),
            schema: SchemaConfig::default(),
            nats: NatsConfig::default(),
            streams: StreamsConfig::default(),
            auth: AuthConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
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
