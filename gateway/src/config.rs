//! `[gateway]` configuration: defaults, then the TOML file given with `--config`, then
//! `RTDASH_GATEWAY__<KEY>` (and the shared `RTDASH_NATS__*`, `RTDASH_QUESTDB__*`,
//! `RTDASH_TELEMETRY__*`, `RTDASH_STREAMS__*`) environment variables.

pub use crate::query::tiers::RollupsConfig;
use rtdash_runtime::config::{ConfigError, Validate};
use rtdash_runtime::http::HttpServerConfig;
use rtdash_runtime::nats::{NatsConfig, StreamsConfig};
use rtdash_runtime::secret;
use rtdash_runtime::telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The gateway's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Listen address of the API, the streams and the UI.
    pub listen: String,
    /// Directory of the built web UI (`index.html` and assets), relative to the working
    /// directory unless absolute.
    pub web_root: PathBuf,
    /// Whole-request timeout for REST calls, in milliseconds (streams are exempt).
    pub request_timeout_ms: u64,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// REST requests served at once; more are shed with `503`.
    pub max_concurrent_requests: usize,
    /// How long shutdown waits for in-flight requests, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// Whether to create the JetStream streams and buckets that are missing at start.
    pub ensure_topology: bool,
    /// `[http]`: how long a client may take to send its request head and body.
    pub http: HttpServerConfig,
    /// Host names (or addresses) requests may carry in `Host`; others are answered `421`
    /// (DNS rebinding, see `docs/security.md`). Empty (the default): the host of `listen`
    /// unless it is `0.0.0.0`/`::`, `localhost`, `127.0.0.1` and `[::1]`. `["*"]`: any.
    pub allowed_hosts: Vec<String>,
    /// Webhook destinations allowed although not on the public internet (as
    /// `alerts.notifier.allow_destinations` of the core aggregators: `host`, `host:port`,
    /// `ip`, `ip:port`, `cidr`); alert rules pointing elsewhere inside are refused with `400`.
    /// Default empty.
    pub webhook_allow_destinations: Vec<String>,
    /// NATS connection.
    pub nats: NatsConfig,
    /// Stream settings (used when creating missing streams and buckets).
    pub streams: StreamsConfig,
    /// QuestDB connection.
    pub questdb: QuestDbConfig,
    /// Live streams.
    pub live: LiveConfig,
    /// Keys, sessions, links (`[auth]`).
    pub auth: crate::auth::AuthConfig,
    /// Tenant quotas: the defaults of every tenant (`[quotas]`; the operator sets a tenant's
    /// own with `PUT /v1/tenants/{tenant}/quotas`).
    pub quotas: crate::quota::Limits,
    /// Rollup tiers and the retention of each table (the aggregators' setting).
    pub rollups: RollupsConfig,
    /// Metric queries: the row cache.
    pub query: QueryConfig,
    /// Backfill jobs requested with metric definitions.
    pub backfill: BackfillConfig,
    /// Logs.
    pub telemetry: TelemetryConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            web_root: PathBuf::from("web/dist"),
            request_timeout_ms: 10_000,
            max_body_bytes: 1024 * 1024,
            max_concurrent_requests: 1024,
            shutdown_grace_ms: 10_000,
            ensure_topology: true,
            http: HttpServerConfig::default(),
            allowed_hosts: Vec::new(),
            webhook_allow_destinations: Vec::new(),
            nats: NatsConfig::default(),
            streams: StreamsConfig::default(),
            questdb: QuestDbConfig::default(),
            live: LiveConfig::default(),
            auth: crate::auth::AuthConfig::default(),
            quotas: crate::quota::Limits::default(),
            rollups: RollupsConfig::default(),
            query: QueryConfig::default(),
            backfill: BackfillConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// `[questdb]`: where metric windows are read from (PostgreSQL wire protocol).
///
/// Unknown keys are ignored here (not rejected) because `RTDASH_QUESTDB__*` variables are
/// shared with the components that write over ILP and have keys of their own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuestDbConfig {
    /// PostgreSQL wire address, `host:port`.
    pub pg_addr: String,
    /// User. Every deployed configuration gives the gateway QuestDB's read-only PostgreSQL
    /// user (`pg.readonly.user`), with a password generated at first start (docs/security.md,
    /// "QuestDB"); the default is QuestDB's out-of-the-box `admin`.
    pub user: String,
    /// Password (never logged).
    pub password: rtdash_runtime::secret::Secret,
    /// A file holding the password instead (read at start, one trailing newline removed):
    /// keeps it out of the process environment (docs/security.md, "Secrets").
    pub password_file: Option<std::path::PathBuf>,
    /// Database name.
    pub database: String,
    /// The metric windows table (tests use their own).
    pub table: String,
    /// Connections in the pool; queries are pipelined on each.
    pub pool_size: usize,
    /// Per-query timeout, in milliseconds.
    pub query_timeout_ms: u64,
    /// How long the rows of a metric query are reused for identical queries (same metric,
    /// filter, stat, window and range), in milliseconds; 0 only shares queries in flight.
    /// An answer is at most this much older than its request.
    pub query_cache_ms: u64,
    /// Create the table at start when it is missing (so a fresh system answers empty
    /// results instead of errors).
    pub create_table: bool,
}

impl Default for QuestDbConfig {
    fn default() -> Self {
        Self {
            pg_addr: "127.0.0.1:8812".to_owned(),
            user: "admin".to_owned(),
            password: "quest".into(),
            password_file: None,
            database: "qdb".to_owned(),
            table: rtdash_shared::schema::METRICS_TABLE.to_owned(),
            pool_size: 4,
            query_timeout_ms: 5_000,
            query_cache_ms: 500,
            create_table: true,
        }
    }
}

/// `[query]`: metric queries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Bytes of decoded rows of windows that no longer change kept for repeated queries
    /// (least recently used out first); 0 disables the cache.
    pub row_cache_bytes: usize,
    /// The aggregators' `windows.correction_horizon_ms`: a window can be corrected until
    /// the watermark passes its end plus this, so only older windows are cached.
    pub correction_horizon_ms: i64,
    /// Longest time a cached chunk of rows is served, in seconds: how long a replay or a
    /// recompute of old windows can stay unseen by metric queries.
    pub row_cache_max_age_secs: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            row_cache_bytes: 256 * 1024 * 1024,
            correction_horizon_ms: 600_000,
            row_cache_max_age_secs: 3_600,
        }
    }
}

/// `[backfill]`: backfill jobs (docs/api.md "Backfill"). Unknown keys are ignored: the
/// aggregators' `[backfill]` keys may be set for every component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackfillConfig {
    /// How long after a definition is stored every edge agent counts it: windows starting
    /// before the definition's time plus this are recomputed, later ones are counted live.
    pub activation_margin_ms: i64,
    /// Jobs a tenant may have queued or running at once; more answer `429`.
    pub max_active_per_tenant: u64,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        Self {
            activation_margin_ms: 30_000,
            max_active_per_tenant: 4,
        }
    }
}

/// `[live]`: Server-Sent Event streams.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Streams open at once; more answer `503`.
    pub max_streams: usize,
    /// Streams open at once from one client address (behind `http.trusted_proxies`, the
    /// address the proxy forwarded for); more answer `429`. 0: no limit. Bounds what one
    /// client takes of `max_streams`.
    pub max_streams_per_client: u64,
    /// How long a widget snapshot is reused, in milliseconds: QuestDB sees at most one
    /// snapshot query per widget query per interval.
    pub snapshot_ttl_ms: u64,
    /// Recent updates kept per (tenant, metric) for `Last-Event-ID` resumption.
    pub ring_capacity: usize,
    /// How far back (from now) the latest window values are kept in memory, in seconds.
    pub memory_horizon_secs: u64,
    /// Most series-windows kept in memory per (tenant, metric).
    pub max_memory_entries: usize,
    /// Most bytes of window states (the sketches coarse and grouped widgets merge) kept in
    /// memory per (tenant, metric); beyond, the oldest windows go first (counted by
    /// `rtdash_gateway_live_state_evictions_total`).
    pub max_state_bytes: usize,
    /// Heartbeat comment interval on idle streams, in seconds: at each tick a stream that sent
    /// nothing since the previous tick sends a comment (so an idle stream is silent for less
    /// than twice this).
    pub keepalive_secs: u64,
    /// `status` event interval, in milliseconds.
    pub status_interval_ms: u64,
    /// No partition report for this long: the pipeline is `stale`, in milliseconds.
    pub stale_report_ms: u64,
    /// A partition this many messages behind is `behind`.
    pub stale_lag_messages: u64,
    /// A partition whose watermark is older than this is `behind`, in milliseconds.
    pub stale_watermark_ms: u64,
    /// Upper bound on the time range of a widget snapshot, in windows.
    pub max_snapshot_windows: usize,
    /// After a NATS reconnection streams get fresh snapshots at once, and again this long
    /// later (for rows QuestDB had not applied yet), in milliseconds; 0: only at once.
    pub resync_settle_ms: u64,
    /// How often windows held as not final although closed everywhere are read back from
    /// QuestDB (their final live update was missed), in milliseconds; 0 disables it.
    pub repair_interval_ms: u64,
    /// How long a (tenant, metric) keeps its upstream subscription and memory after its last
    /// stream closed, in milliseconds, so a reloaded dashboard gets the open windows' latest
    /// values at once (their provisional rows may not be in QuestDB yet); 0: dropped at once.
    pub topic_linger_ms: u64,
    /// Most (tenant, metric)s lingering at once; beyond, the oldest go first.
    pub max_lingering_topics: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            max_streams: 20_000,
            max_streams_per_client: 64,
            snapshot_ttl_ms: 5_000,
            ring_capacity: 4_096,
            memory_horizon_secs: 15 * 60,
            max_memory_entries: 200_000,
            max_state_bytes: 64 * 1024 * 1024,
            keepalive_secs: 15,
            status_interval_ms: 5_000,
            stale_report_ms: 10_000,
            stale_lag_messages: 100_000,
            stale_watermark_ms: 5 * 60_000,
            max_snapshot_windows: 2_000,
            resync_settle_ms: 3_000,
            repair_interval_ms: 1_000,
            topic_linger_ms: 30_000,
            max_lingering_topics: 1_000,
        }
    }
}

impl Validate for GatewayConfig {
    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        self.nats.read_secret_files()?;
        let set = self.questdb.password != QuestDbConfig::default().password;
        let file = self.questdb.password_file.as_deref();
        if let Some(password) = secret::from_file_setting("questdb.password", set, file)? {
            self.questdb.password = password;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.telemetry.validate()?;
        self.http.validate("http")?;
        rtdash_runtime::egress::Allowlist::parse(&self.webhook_allow_destinations)
            .map_err(|err| ConfigError::invalid("webhook_allow_destinations", err.to_string()))?;
        let positive = [
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_body_bytes", self.max_body_bytes as u64),
            (
                "max_concurrent_requests",
                self.max_concurrent_requests as u64,
            ),
            ("questdb.pool_size", self.questdb.pool_size as u64),
            ("questdb.query_timeout_ms", self.questdb.query_timeout_ms),
            ("live.max_streams", self.live.max_streams as u64),
            ("live.ring_capacity", self.live.ring_capacity as u64),
            ("live.memory_horizon_secs", self.live.memory_horizon_secs),
            (
                "live.max_memory_entries",
                self.live.max_memory_entries as u64,
            ),
            ("live.keepalive_secs", self.live.keepalive_secs),
            ("live.status_interval_ms", self.live.status_interval_ms),
            ("live.stale_report_ms", self.live.stale_report_ms),
            (
                "live.max_snapshot_windows",
                self.live.max_snapshot_windows as u64,
            ),
            ("live.max_state_bytes", self.live.max_state_bytes as u64),
            (
                "query.correction_horizon_ms",
                self.query.correction_horizon_ms.max(0) as u64,
            ),
            (
                "query.row_cache_max_age_secs",
                self.query.row_cache_max_age_secs,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                "listen",
                "must be a socket address such as 127.0.0.1:8080",
            ));
        }
        if !rtdash_shared::event::is_identifier(&self.questdb.table, 127) {
            return Err(ConfigError::invalid(
                "questdb.table",
                "must be 1 to 127 characters from [A-Za-z0-9_-]",
            ));
        }
        if self.questdb.pool_size > 64 {
            return Err(ConfigError::invalid(
                "questdb.pool_size",
                "must be at most 64",
            ));
        }
        if let Some(path) = &self.auth.operator_key_file {
            rtdash_runtime::keys::read_operator_key(path).map_err(|err| {
                ConfigError::invalid(
                    "auth.operator_key_file",
                    rtdash_runtime::error_chain::ErrorChain(&err).to_string(),
                )
            })?;
        }
        if self.auth.session_ttl_secs == 0 || self.auth.max_keys_per_tenant == 0 {
            return Err(ConfigError::invalid(
                "auth.session_ttl_secs",
                "and `auth.max_keys_per_tenant` must be at least 1",
            ));
        }
        if let Some((key, why)) = self.quotas.invalid() {
            return Err(ConfigError::invalid(format!("quotas.{key}"), why));
        }
        self.nats.validate()?;
        self.rollups.validate()?;
        self.streams.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_stable() {
        let config = GatewayConfig::default();
        config.validate().expect("defaults valid");
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(config.web_root, PathBuf::from("web/dist"));
    }

    #[test]
    fn bad_values_name_the_key() {
        let config = GatewayConfig {
            live: LiveConfig {
                max_streams: 0,
                ..LiveConfig::default()
            },
            ..GatewayConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("live.max_streams"), "{err}");
        let config = GatewayConfig {
            questdb: QuestDbConfig {
                table: "x; drop".into(),
                ..QuestDbConfig::default()
            },
            ..GatewayConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
