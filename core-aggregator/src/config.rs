//! Configuration of the core aggregator: built-in defaults, then `--config <file>` (TOML), then
//! environment variables `RTDASH_CORE_AGGREGATOR__<KEY>` (nested keys joined by `__`, e.g.
//! `RTDASH_CORE_AGGREGATOR__WINDOWS__ALLOWED_LATENESS_MS=30000`) and the shared sections
//! `RTDASH_NATS__*`, `RTDASH_QUESTDB__*`, `RTDASH_STREAMS__*`, `RTDASH_TELEMETRY__*`,
//! `RTDASH_ROLLUPS__*`.
//!
//! Every field below is documented with its default; an unknown key is an error naming it.

use rtdash_runtime::config::{ConfigError, Validate};
use rtdash_runtime::http::HttpServerConfig;
use rtdash_runtime::nats::{NatsConfig, StreamsConfig};
use rtdash_runtime::rollups::RollupsConfig;
use rtdash_runtime::secret::{self, Secret};
use rtdash_runtime::telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Admin listener (`/healthz`, `/readyz`, `/metrics`). Default `127.0.0.1:8082`.
    pub admin_listen: String,
    /// `[http]`: how long a client of the admin listener may take to send its request head
    /// and body.
    pub http: HttpServerConfig,
    /// This aggregator's identity in leases and checkpoints. Must be unique among running
    /// aggregators. Default: `agg-<hostname>-<random>`, new for every process. A stable id
    /// lets a restarted process take its own leases back at once instead of waiting for them
    /// to expire.
    pub instance_id: Option<String>,
    /// `[nats]`: how to reach NATS.
    pub nats: NatsConfig,
    /// `[streams]`: partition count, retention and durability of the streams this aggregator
    /// creates or updates at start.
    pub streams: StreamsConfig,
    /// `[questdb]`: where windows are written.
    pub questdb: QuestDbConfig,
    /// `[rollups]` (shared with the gateway): the rollup tiers kept beside each metric's
    /// window, and the retention of every windows table.
    pub rollups: RollupsConfig,
    /// `[telemetry]`: logs.
    pub telemetry: TelemetryConfig,
    /// `[windows]`: lateness, correction horizon and watermark idle timeout.
    pub windows: WindowsConfig,
    /// `[lease]`: partition ownership.
    pub lease: LeaseConfig,
    /// `[checkpoint]`: how often and where partition state is saved.
    pub checkpoint: CheckpointConfig,
    /// `[consumer]`: the per-partition durable pull consumers.
    pub consumer: ConsumerConfig,
    /// `[writer]`: the QuestDB writer thread.
    pub writer: WriterConfig,
    /// `[live]`: live updates and status reports on core NATS.
    pub live: LiveConfig,
    /// `[alerts]`: alert evaluation, webhook delivery, pipeline self-alerts.
    pub alerts: crate::alerts::config::AlertsConfig,
    /// `[backfill]`: the backfill jobs this aggregator claims and runs.
    pub backfill: BackfillConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            admin_listen: "127.0.0.1:8082".to_owned(),
            http: HttpServerConfig::default(),
            instance_id: None,
            nats: NatsConfig::default(),
            streams: StreamsConfig::default(),
            questdb: QuestDbConfig::default(),
            rollups: RollupsConfig::default(),
            telemetry: TelemetryConfig::default(),
            windows: WindowsConfig::default(),
            lease: LeaseConfig::default(),
            checkpoint: CheckpointConfig::default(),
            consumer: ConsumerConfig::default(),
            writer: WriterConfig::default(),
            backfill: BackfillConfig::default(),
            live: LiveConfig::default(),
            alerts: crate::alerts::config::AlertsConfig::default(),
        }
    }
}

/// `[questdb]`, a section shared with the gateway (`RTDASH_QUESTDB__TABLE` sets both). Unknown
/// keys are allowed here, because the gateway's keys (`pg_addr`, `user`...) arrive through the
/// same shared `RTDASH_QUESTDB__*` variables.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuestDbConfig {
    /// `host:port` of QuestDB's HTTP server (REST `/exec` and ILP over HTTP `/write`).
    /// Default `127.0.0.1:9000`.
    pub http: String,
    /// Table the windows are written to. Default `metric_windows`
    /// ([`rtdash_shared::schema::METRICS_TABLE`]); tests use their own.
    pub table: String,
    /// QuestDB's HTTP user (`http.user` in its server.conf), sent with basic auth on ILP
    /// writes and `/exec`. Default none: no authentication. Every deployed configuration sets
    /// it, with a password generated at first start (docs/security.md, "QuestDB").
    pub user: Option<String>,
    /// Its password (`http.password`; never logged).
    pub password: Option<Secret>,
    /// A file holding the password instead (read at start, one trailing newline removed):
    /// keeps it out of the process environment (docs/security.md, "Secrets").
    pub password_file: Option<std::path::PathBuf>,
}

impl Default for QuestDbConfig {
    fn default() -> Self {
        Self {
            http: "127.0.0.1:9000".to_owned(),
            table: rtdash_shared::schema::METRICS_TABLE.to_owned(),
            user: None,
            password: None,
            password_file: None,
        }
    }
}

impl QuestDbConfig {
    /// The user and password when both are set.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => Some((user, password.expose())),
            _ => None,
        }
    }
}

/// `[windows]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowsConfig {
    /// A window closes (is written `final`) once the partition watermark reaches its end plus
    /// this. Default 30 000 ms.
    pub allowed_lateness_ms: i64,
    /// Data for a closed window is merged as a correction (revision + 1) until the watermark
    /// reaches the window end plus this; later data goes to `rtdash.late.<tenant>`.
    /// Must exceed `allowed_lateness_ms`. Default 600 000 ms (10 min).
    pub correction_horizon_ms: i64,
    /// An agent that sent nothing for this long (by the agents' own clocks) no longer holds the
    /// partition watermark back. Default 30 000 ms.
    pub idle_timeout_ms: i64,
    /// Per-agent bookkeeping (watermark, applied sequence numbers) is forgotten after this long
    /// without a batch from the agent. Default 3 600 000 ms (1 h).
    pub forget_agents_after_ms: i64,
}

impl Default for WindowsConfig {
    fn default() -> Self {
        Self {
            allowed_lateness_ms: 30_000,
            correction_horizon_ms: 600_000,
            idle_timeout_ms: 30_000,
            forget_agents_after_ms: 3_600_000,
        }
    }
}

/// `[lease]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaseConfig {
    /// Lease lifetime; renewed every third of it. A dead aggregator's partitions are taken over
    /// within about `ttl_ms * 4 / 3`. Default 10 000 ms.
    pub ttl_ms: u64,
    /// An owner that could not renew stops consuming this long before its lease expires.
    /// Default: a fifth of `ttl_ms` (0 = default).
    pub fence_margin_ms: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            ttl_ms: 10_000,
            fence_margin_ms: 0,
        }
    }
}

impl LeaseConfig {
    /// The effective fence margin.
    pub fn margin(&self) -> Duration {
        if self.fence_margin_ms == 0 {
            Duration::from_millis(self.ttl_ms / 5)
        } else {
            Duration::from_millis(self.fence_margin_ms)
        }
    }

    /// The lease lifetime.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms)
    }
}

/// `[checkpoint]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Time between checkpoints of a busy partition (messages are acknowledged after each).
    /// Each checkpoint serialises every window changed since the previous one, so with many
    /// series a longer interval saves most of that work (a window changing every flush is
    /// written once per interval); a crash replays at most this much of the stream. Default
    /// 5 000 ms.
    pub interval_ms: u64,
    /// Object Store bucket holding window state (the manifest lives in KV
    /// `rtdash_checkpoints`). Default `rtdash_checkpoint_data`.
    pub data_bucket: String,
    /// A full snapshot replaces the chain of incremental deltas once it has this many deltas, or
    /// once the deltas together outweigh the snapshot. Default 32.
    pub max_deltas: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            interval_ms: 5_000,
            data_bucket: rtdash_shared::names::CHECKPOINT_DATA_BUCKET.to_owned(),
            max_deltas: 32,
        }
    }
}

/// `[consumer]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    /// JetStream redelivers a message not acknowledged within this. Must exceed
    /// `checkpoint.interval_ms` (messages are acknowledged after a checkpoint). Default 60 000.
    pub ack_wait_ms: u64,
    /// Messages delivered and not yet acknowledged, per partition. Default 1 000 000.
    pub max_ack_pending: i64,
    /// Messages asked for per pull request. Default 1 000.
    pub pull_batch: usize,
    /// Bytes asked for per pull request at most (bounds what a pull buffers). Default 8 MiB.
    pub pull_max_bytes: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            ack_wait_ms: 60_000,
            max_ack_pending: 1_000_000,
            pull_batch: 1_000,
            pull_max_bytes: 8 * 1024 * 1024,
        }
    }
}

/// `[writer]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WriterConfig {
    /// Capacity of the row channel to the writer thread. When it is full the partition
    /// consumers wait (and so stop pulling from JetStream). Default 100 000 rows.
    pub channel_rows: usize,
    /// Rows per ILP request at most. Default 100 000.
    pub batch_rows: usize,
    /// Bytes per ILP request at most, about (rows are counted at their state's length plus
    /// 320): a request is built whole in memory, and rows with a digest or a dense
    /// HyperLogLog in their state weigh 2 to 17 KB. 1 to 64 MiB. Default 32 MiB.
    pub batch_bytes: usize,
    /// A batch is sent at the latest this long after its first row. Default 1 000 ms: every
    /// request is one QuestDB transaction, and with `DEDUP UPSERT` each one that rewrites rows
    /// of the current windows costs QuestDB an out-of-order merge of the partition's tail, so
    /// fewer, larger requests cost it far less CPU (live updates do not wait for this).
    pub flush_ms: u64,
    /// Open (provisional) windows are written at most this often per window. Default 1 000.
    pub provisional_interval_ms: i64,
    /// Provisional rows per second this process writes at most, shared evenly by the
    /// `streams.partitions` partitions: a partition holding more open windows than its share
    /// writes each of them less often than `provisional_interval_ms` (every
    /// `open windows / share` seconds), so high-cardinality metrics do not flood QuestDB with
    /// upserts. Closes and corrections are never delayed. 0 = no limit. Default 20 000.
    pub provisional_rows_per_s: u64,
    /// Open rollup-tier windows (an hour, a day) are written and published live at most this
    /// often per window, and both together. Each output merges the tier window's open base
    /// windows and encodes the whole state, so this is most of what tiers cost the aggregator.
    /// Default 10 000.
    pub tier_interval_ms: i64,
    /// Longest wait between retries of a failed write (backoff doubles from 100 ms). Default
    /// 5 000.
    pub max_backoff_ms: u64,
    /// Timeout of one ILP request. Default 10 000 ms.
    pub request_timeout_ms: u64,
    /// Whether rows carry the window's mergeable sketch in the `state` column. Default true;
    /// false leaves the column null (the gateway then cannot merge percentiles or unique counts
    /// across windows or series): for measuring what the state costs.
    pub write_state: bool,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            channel_rows: 100_000,
            batch_rows: 100_000,
            batch_bytes: 32 * 1024 * 1024,
            flush_ms: 1_000,
            provisional_interval_ms: 1_000,
            provisional_rows_per_s: 20_000,
            tier_interval_ms: 10_000,
            max_backoff_ms: 5_000,
            request_timeout_ms: 10_000,
            write_state: true,
        }
    }
}

/// `[live]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// A changing window is published on `rtdash.live.<tenant>.<metric>` at most this often;
    /// the latest value is always sent eventually, closes and corrections at once.
    /// Default 250 ms.
    pub throttle_ms: i64,
    /// Interval of `PartitionStatus` reports on `rtdash.status.<p>`. Default 1 000 ms.
    pub status_interval_ms: u64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            throttle_ms: 250,
            status_interval_ms: 1_000,
        }
    }
}

/// `[backfill]` (see `backfill::jobs`). Unknown keys are ignored: the gateways' `[backfill]`
/// keys may be set for every component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackfillConfig {
    /// Whether this aggregator claims and runs backfill jobs. Default true.
    pub enabled: bool,
    /// Jobs this process runs at once (further queued jobs wait). Default 4.
    pub max_running: usize,
    /// How long after every partition's watermark has passed a window's end plus the
    /// correction horizon the window is rewritten (the live writer's last rows land first).
    /// Default 5 000 ms.
    pub settle_ms: u64,
    /// How often the job bucket is looked at for queued and abandoned jobs. Default 1 000 ms.
    pub poll_ms: u64,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_running: 4,
            settle_ms: 5_000,
            poll_ms: 1_000,
        }
    }
}

/// Whether `name` is a plain QuestDB identifier (letters, digits, `_`), safe to splice into SQL.
pub fn is_table_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

impl Validate for Config {
    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        self.nats.read_secret_files()?;
        let set = self.questdb.password.is_some();
        let file = self.questdb.password_file.as_deref();
        if let Some(password) = secret::from_file_setting("questdb.password", set, file)? {
            self.questdb.password = Some(password);
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.streams.validate()?;
        self.nats.validate()?;
        self.telemetry.validate()?;
        self.http.validate("http")?;
        self.rollups.validate()?;
        if self.rollups.tiers().len() > crate::state::MAX_TIERS {
            return Err(ConfigError::invalid(
                "rollups.tiers",
                format!("at most {} tiers", crate::state::MAX_TIERS),
            ));
        }
        if self.admin_listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                "admin_listen",
                "must be a socket address such as 127.0.0.1:8082",
            ));
        }
        if let Some(id) = &self.instance_id {
            if !rtdash_shared::event::is_identifier(id, 64) {
                return Err(ConfigError::invalid(
                    "instance_id",
                    "must be 1 to 64 characters from [A-Za-z0-9_-]",
                ));
            }
        }
        if self.questdb.http.is_empty() || self.questdb.http.contains(['/', ';']) {
            return Err(ConfigError::invalid(
                "questdb.http",
                "must be host:port, e.g. 127.0.0.1:9000",
            ));
        }
        if self.questdb.user.is_some() != self.questdb.password.is_some() {
            return Err(ConfigError::invalid(
                if self.questdb.user.is_some() {
                    "questdb.password"
                } else {
                    "questdb.user"
                },
                "must be set: `questdb.user` and `questdb.password` go together",
            ));
        }
        if !is_table_name(&self.questdb.table) {
            return Err(ConfigError::invalid(
                "questdb.table",
                "must be letters, digits and `_`, not starting with a digit",
            ));
        }
        let w = &self.windows;
        if w.allowed_lateness_ms < 0 {
            return Err(ConfigError::invalid(
                "windows.allowed_lateness_ms",
                "must not be negative",
            ));
        }
        if w.correction_horizon_ms <= w.allowed_lateness_ms {
            return Err(ConfigError::invalid(
                "windows.correction_horizon_ms",
                "must exceed windows.allowed_lateness_ms",
            ));
        }
        if w.idle_timeout_ms <= 0 {
            return Err(ConfigError::invalid(
                "windows.idle_timeout_ms",
                "must be positive",
            ));
        }
        if w.forget_agents_after_ms < w.idle_timeout_ms {
            return Err(ConfigError::invalid(
                "windows.forget_agents_after_ms",
                "must be at least windows.idle_timeout_ms",
            ));
        }
        if self.lease.ttl_ms < 300 {
            return Err(ConfigError::invalid("lease.ttl_ms", "must be at least 300"));
        }
        if self.lease.margin() >= self.lease.ttl() * 2 / 3 {
            return Err(ConfigError::invalid(
                "lease.fence_margin_ms",
                "must be below two thirds of lease.ttl_ms (renewals happen every third)",
            ));
        }
        if self.checkpoint.interval_ms == 0 {
            return Err(ConfigError::invalid(
                "checkpoint.interval_ms",
                "must be positive",
            ));
        }
        if self.checkpoint.data_bucket.is_empty()
            || !self
                .checkpoint
                .data_bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::invalid(
                "checkpoint.data_bucket",
                "must be letters, digits, `_` and `-`",
            ));
        }
        if self.consumer.ack_wait_ms <= self.checkpoint.interval_ms {
            return Err(ConfigError::invalid(
                "consumer.ack_wait_ms",
                "must exceed checkpoint.interval_ms (messages are acknowledged after a checkpoint)",
            ));
        }
        if self.consumer.max_ack_pending == 0
            || self.consumer.pull_batch == 0
            || self.consumer.pull_max_bytes < 8 * 1024 * 1024
        {
            return Err(ConfigError::invalid(
                "consumer",
                "max_ack_pending and pull_batch must be positive, pull_max_bytes at least \
                 8 MiB (the largest partial batch the stream accepts)",
            ));
        }
        if self.writer.channel_rows == 0 || self.writer.batch_rows == 0 {
            return Err(ConfigError::invalid(
                "writer.channel_rows",
                "writer.channel_rows and writer.batch_rows must be positive",
            ));
        }
        if !(1024 * 1024..=64 * 1024 * 1024).contains(&self.writer.batch_bytes) {
            return Err(ConfigError::invalid(
                "writer.batch_bytes",
                "must be 1 MiB to 64 MiB (1048576 to 67108864)",
            ));
        }
        if self.writer.provisional_interval_ms < 0
            || self.writer.tier_interval_ms < 0
            || self.live.throttle_ms < 0
        {
            return Err(ConfigError::invalid(
                "writer.provisional_interval_ms",
                "throttle intervals must not be negative",
            ));
        }
        if self.live.status_interval_ms == 0 {
            return Err(ConfigError::invalid(
                "live.status_interval_ms",
                "must be positive",
            ));
        }
        self.alerts.validate(w.correction_horizon_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_runtime::config::load_from;

    #[test]
    fn defaults_are_valid_and_env_overrides() {
        let config: Config = load_from("core-aggregator", None, Vec::new()).unwrap();
        assert_eq!(config, Config::default());
        let config: Config = load_from(
            "core-aggregator",
            None,
            vec![
                (
                    "RTDASH_CORE_AGGREGATOR__WINDOWS__ALLOWED_LATENESS_MS".to_owned(),
                    "1000".to_owned(),
                ),
                ("RTDASH_QUESTDB__TABLE".to_owned(), "t_1".to_owned()),
                (
                    "RTDASH_QUESTDB__PG_ADDR".to_owned(),
                    "127.0.0.1:1".to_owned(),
                ),
                ("RTDASH_NATS__URL".to_owned(), "nats://x:1".to_owned()),
            ],
        )
        .unwrap();
        assert_eq!(config.windows.allowed_lateness_ms, 1000);
        assert_eq!(config.questdb.table, "t_1");
        assert_eq!(config.nats.url, "nats://x:1");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (key, value, needle) in [
            (
                "RTDASH_CORE_AGGREGATOR__WINDOWS__CORRECTION_HORIZON_MS",
                "10",
                "correction_horizon_ms",
            ),
            ("RTDASH_QUESTDB__TABLE", "x;drop", "questdb.table"),
            (
                "RTDASH_CORE_AGGREGATOR__ADMIN_LISTEN",
                "nope",
                "admin_listen",
            ),
            ("RTDASH_CORE_AGGREGATOR__LEASE__TTL_MS", "5", "lease.ttl_ms"),
            ("RTDASH_CORE_AGGREGATOR__BOGUS", "1", "bogus"),
        ] {
            let err = load_from::<Config>(
                "core-aggregator",
                None,
                vec![(key.to_owned(), value.to_owned())],
            )
            .unwrap_err();
            assert!(err.to_string().contains(needle), "{key}: {err}");
        }
    }

    #[test]
    fn questdb_credentials_go_together_and_are_never_printed() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let config: Config = load_from(
            "core-aggregator",
            None,
            env(&[
                ("RTDASH_QUESTDB__USER", "rtdash"),
                ("RTDASH_CORE_AGGREGATOR__QUESTDB__PASSWORD", "hunter22"),
            ]),
        )
        .unwrap();
        assert_eq!(config.questdb.credentials(), Some(("rtdash", "hunter22")));
        assert!(!format!("{config:?}").contains("hunter22"));
        assert_eq!(Config::default().questdb.credentials(), None);
        for (pairs, needle) in [
            (
                &[("RTDASH_QUESTDB__USER", "rtdash")][..],
                "questdb.password",
            ),
            (
                &[("RTDASH_QUESTDB__PASSWORD", "hunter22")][..],
                "questdb.user",
            ),
        ] {
            let err = load_from::<Config>("core-aggregator", None, env(pairs)).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(needle), "{text}");
            assert!(!text.contains("hunter22"), "{text}");
        }
    }

    #[test]
    fn passwords_are_read_from_the_files_their_settings_name() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rtdash-agg-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            path.display().to_string()
        };
        let nats = file("nats", "n4ts-pass\n");
        let questdb = file("questdb", "qdb-pass\n");
        let env = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
            [
                ("RTDASH_NATS__USER", "core-aggregator"),
                ("RTDASH_NATS__PASSWORD_FILE", nats.as_str()),
                ("RTDASH_QUESTDB__USER", "admin"),
                (
                    "RTDASH_CORE_AGGREGATOR__QUESTDB__PASSWORD_FILE",
                    questdb.as_str(),
                ),
            ]
            .iter()
            .chain(extra)
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
        };
        let config: Config = load_from("core-aggregator", None, env(&[])).unwrap();
        assert_eq!(
            config.nats.password.as_ref().map(Secret::expose),
            Some("n4ts-pass")
        );
        assert_eq!(config.questdb.credentials(), Some(("admin", "qdb-pass")));
        let both = load_from::<Config>(
            "core-aggregator",
            None,
            env(&[("RTDASH_NATS__PASSWORD", "n4ts-pass")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            both.contains("`nats.password_file`")
                && both.contains("RTDASH_NATS__PASSWORD_FILE")
                && !both.contains("n4ts-pass"),
            "{both}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nats_credentials_are_validated() {
        let err = load_from::<Config>(
            "core-aggregator",
            None,
            vec![("RTDASH_NATS__USER".to_owned(), "core-aggregator".to_owned())],
        )
        .unwrap_err();
        assert!(err.to_string().contains("nats.password"), "{err}");
    }
}
