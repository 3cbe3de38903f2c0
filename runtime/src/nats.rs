//! Connecting to NATS and creating rtdash's JetStream streams and key-value buckets.
//!
//! Every stream is created if missing; the owner of the topology (the core aggregator, or
//! `core-aggregator setup`) also updates existing streams to the configured settings. The
//! partition count is written into the partials stream's metadata (`rtdash.partitions`) so
//! every agent routes with the same count as the aggregators consume.

use crate::secret::Secret;
use async_nats::jetstream::{self, kv, stream};
use rtdash_shared::names;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// `[nats]`: how to reach the NATS server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// Give up on the first connection after this long, in milliseconds.
    pub connect_timeout_ms: u64,
    /// JetStream API request timeout, in milliseconds.
    pub request_timeout_ms: u64,
    /// A `.creds` file (NATS decentralised auth: user JWT and NKey seed). Excludes
    /// `user`/`password` and `token`.
    pub credentials: Option<String>,
    /// This service's NATS user. With `password`; every deployed configuration gives each
    /// service its own (`edge-agent`, `core-aggregator`, `gateway`), whose subject
    /// permissions the server enforces (docs/security.md, "NATS").
    pub user: Option<String>,
    /// The user's password (never logged).
    pub password: Option<Secret>,
    /// A file holding the password instead (read at start, one trailing newline removed;
    /// see [`crate::secret::read_file`]): keeps it out of the process environment.
    pub password_file: Option<PathBuf>,
    /// A token instead of a user and password (never logged).
    pub token: Option<Secret>,
    /// A file holding the token instead, as `password_file`.
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA the server's certificate must chain to. Setting it requires TLS
    /// (so does a `tls://` URL). The deployed configurations' CA is generated at first start.
    pub tls_ca: Option<String>,
    /// PEM client certificate, for servers that verify clients (with `tls_key`).
    pub tls_cert: Option<String>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<String>,
    /// Prefix of this connection's reply subjects (JetStream API answers, acks, watches).
    /// Default `_INBOX.<user>` when `user` is set (each service user may subscribe only to its
    /// own replies, so no service reads another's), else `_INBOX`.
    pub inbox_prefix: Option<String>,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            connect_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            credentials: None,
            user: None,
            password: None,
            password_file: None,
            token: None,
            token_file: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            inbox_prefix: None,
        }
    }
}

impl NatsConfig {
    /// Reads `password_file` and `token_file` into `password` and `token`.
    pub fn read_secret_files(&mut self) -> Result<(), crate::config::ConfigError> {
        let password = self.password_file.as_deref();
        if let Some(secret) =
            crate::secret::from_file_setting("nats.password", self.password.is_some(), password)?
        {
            self.password = Some(secret);
        }
        let token = self.token_file.as_deref();
        if let Some(secret) =
            crate::secret::from_file_setting("nats.token", self.token.is_some(), token)?
        {
            self.token = Some(secret);
        }
        Ok(())
    }

    /// Checks that credentials and TLS settings go together; the error names the key.
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        crate::nats_access::validate(self)
    }
}

/// `[streams]`: retention and durability of rtdash's streams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamsConfig {
    /// Number of partial partitions (`rtdash.partials.<0..P>`). Fixed for a deployment.
    pub partitions: u32,
    /// Replicas per stream (1 on one server, 3 on a cluster).
    pub replicas: usize,
    /// `file` or `memory`.
    pub storage: String,
    /// How long partials are kept (the replay horizon), in seconds.
    pub partials_max_age_secs: u64,
    /// Cap on the partials stream, in bytes (-1: none).
    pub partials_max_bytes: i64,
    /// Window in which JetStream drops a message whose `Nats-Msg-Id` it has seen, in seconds.
    pub duplicate_window_secs: u64,
    /// How long archived raw events are kept, in seconds.
    pub events_max_age_secs: u64,
    /// Cap on the raw-event archive, in bytes (-1: none).
    pub events_max_bytes: i64,
    /// How long dead letters, late data and alert transitions are kept, in seconds.
    pub side_streams_max_age_secs: u64,
    /// How long a schema discovery record is kept after its last write, in seconds (the
    /// `rtdash_schema` bucket's entry TTL; agents rewrite an active event type's record
    /// every `schema.publish_interval_ms`).
    pub schema_max_age_secs: u64,
    /// Cap on the `rtdash_schema` bucket, in bytes (oldest records go first).
    pub schema_max_bytes: i64,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self {
            partitions: 8,
            replicas: 1,
            storage: "file".to_owned(),
            partials_max_age_secs: 24 * 3600,
            partials_max_bytes: -1,
            duplicate_window_secs: 120,
            events_max_age_secs: 24 * 3600,
            events_max_bytes: -1,
            side_streams_max_age_secs: 7 * 24 * 3600,
            schema_max_age_secs: 24 * 3600,
            schema_max_bytes: 256 * 1024 * 1024,
        }
    }
}

impl StreamsConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        use crate::config::ConfigError;
        if self.partitions == 0 || self.partitions > 1024 {
            return Err(ConfigError::invalid(
                "streams.partitions",
                "must be 1 to 1024",
            ));
        }
        if !matches!(self.replicas, 1 | 3 | 5) {
            return Err(ConfigError::invalid(
                "streams.replicas",
                "must be 1, 3 or 5",
            ));
        }
        if !matches!(self.storage.as_str(), "file" | "memory") {
            return Err(ConfigError::invalid(
                "streams.storage",
                "must be `file` or `memory`",
            ));
        }
        if self.duplicate_window_secs == 0 {
            return Err(ConfigError::invalid(
                "streams.duplicate_window_secs",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    fn storage_type(&self) -> stream::StorageType {
        if self.storage == "memory" {
            stream::StorageType::Memory
        } else {
            stream::StorageType::File
        }
    }
}

/// NATS could not be reached or JetStream refused a request.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// A file named in `[nats]` (credentials, TLS CA, certificate or key) could not be read.
    #[error("cannot reach NATS at {url}: `nats.{key}` file {path}")]
    File {
        /// The URL to be tried.
        url: String,
        /// The key naming the file (`credentials`, `tls_ca`, `tls_cert`).
        key: &'static str,
        /// The file given.
        path: String,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The first connection failed.
    #[error("cannot reach NATS at {url}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        #[source]
        source: async_nats::ConnectError,
    },
    /// The first connection did not succeed within `nats.connect_timeout_ms`.
    #[error("cannot reach NATS at {url}: timed out")]
    ConnectTimeout {
        /// The URL tried.
        url: String,
    },
    /// JetStream refused or failed a request on a stream or bucket.
    #[error("JetStream {what}")]
    Request {
        /// Which object (`stream RTDASH_PARTIALS`, `bucket rtdash_config`).
        what: String,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stream or bucket is not what rtdash needs; `problem` says why and what to do (no
    /// underlying error: use [`NatsError::Request`] for a failed request).
    #[error("JetStream {what}: {problem}")]
    JetStream {
        /// Which object.
        what: String,
        /// What is wrong, in words.
        problem: String,
    },
}

fn js_error(
    what: impl Into<String>,
    err: impl std::error::Error + Send + Sync + 'static,
) -> NatsError {
    NatsError::Request {
        what: what.into(),
        source: Box::new(err),
    }
}

/// Connects, failing within `connect_timeout_ms` with an error naming the URL. Later
/// disconnections are retried forever by the client.
pub async fn connect(
    config: &NatsConfig,
    client_name: &str,
) -> Result<async_nats::Client, NatsError> {
    let options = async_nats::ConnectOptions::new()
        .name(client_name)
        .connection_timeout(Duration::from_millis(config.connect_timeout_ms))
        .request_timeout(Some(Duration::from_millis(config.request_timeout_ms)))
        .max_reconnects(None::<usize>);
    let options = crate::nats_access::apply(options, config).await?;
    let urls: Vec<&str> = config
        .url
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect();
    let connect = options.connect(urls.as_slice());
    match tokio::time::timeout(
        Duration::from_millis(config.connect_timeout_ms + 500),
        connect,
    )
    .await
    {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(source)) => Err(NatsError::Connect {
            url: config.url.clone(),
            source,
        }),
        Err(_) => Err(NatsError::ConnectTimeout {
            url: config.url.clone(),
        }),
    }
}

/// A JetStream context with the configured request timeout.
pub fn jetstream(client: async_nats::Client, config: &NatsConfig) -> jetstream::Context {
    let mut context = jetstream::new(client);
    context.set_timeout(Duration::from_millis(config.request_timeout_ms));
    context
}

/// Whether to change existing streams to match the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ensure {
    /// Create what is missing, leave existing streams as they are.
    CreateMissing,
    /// Create what is missing and update existing streams (topology owner).
    CreateOrUpdate,
}

/// Metadata key on the partials stream holding the partition count.
pub const PARTITIONS_METADATA: &str = "rtdash.partitions";

/// The stream configurations rtdash uses.
pub fn stream_configs(config: &StreamsConfig) -> Vec<stream::Config> {
    let side_age = Duration::from_secs(config.side_streams_max_age_secs);
    let base = |name: &str, subject: String, description: &str| stream::Config {
        name: name.to_owned(),
        subjects: vec![subject],
        description: Some(description.to_owned()),
        storage: config.storage_type(),
        num_replicas: config.replicas,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        duplicate_window: Duration::from_secs(config.duplicate_window_secs),
        max_age: side_age,
        ..Default::default()
    };
    let mut partials = base(
        names::PARTIALS_STREAM,
        format!("{}.*", names::PARTIALS_PREFIX),
        "rtdash edge partial deltas, one subject per partition",
    );
    partials.max_age = Duration::from_secs(config.partials_max_age_secs);
    partials.max_bytes = config.partials_max_bytes;
    partials.max_message_size = 8 * 1024 * 1024;
    partials.metadata = HashMap::from([(
        PARTITIONS_METADATA.to_owned(),
        config.partitions.to_string(),
    )]);
    let mut events = base(
        names::EVENTS_STREAM,
        format!("{}.*", names::EVENTS_PREFIX),
        "rtdash raw events archived for recomputation",
    );
    events.max_age = Duration::from_secs(config.events_max_age_secs);
    events.max_bytes = config.events_max_bytes;
    events.compression = Some(stream::Compression::S2);
    vec![
        partials,
        events,
        base(
            names::DLQ_STREAM,
            format!("{}.*", names::DLQ_PREFIX),
            "rtdash rejected input with reasons",
        ),
        base(
            names::LATE_STREAM,
            format!("{}.*", names::LATE_PREFIX),
            "rtdash data later than the correction horizon",
        ),
        base(
            names::ALERTS_STREAM,
            format!("{}.*", names::ALERTS_PREFIX),
            "rtdash alert transitions to deliver",
        ),
    ]
}

/// Creates (and with [`Ensure::CreateOrUpdate`], updates) every stream and bucket.
pub async fn ensure_topology(
    js: &jetstream::Context,
    config: &StreamsConfig,
    mode: Ensure,
) -> Result<(), NatsError> {
    for stream_config in stream_configs(config) {
        let name = stream_config.name.clone();
        match mode {
            Ensure::CreateOrUpdate => {
                let mut stream_config = stream_config;
                // Sources are added by edge-site setup (deploy/edge), not by this config:
                // keep the ones an existing stream has instead of wiping them.
                if stream_config.sources.is_none() {
                    if let Ok(mut existing) = js.get_stream(&name).await {
                        if let Ok(info) = existing.info().await {
                            stream_config.sources = info.config.sources.clone();
                        }
                    }
                }
                js.create_or_update_stream(stream_config)
                    .await
                    .map_err(|err| js_error(format!("stream {name}"), err))?;
            }
            Ensure::CreateMissing => {
                js.get_or_create_stream(stream_config)
                    .await
                    .map_err(|err| js_error(format!("stream {name}"), err))?;
            }
        }
    }
    let buckets = [
        (
            names::CONFIG_BUCKET,
            "rtdash configuration: metric definitions, dashboards, alert rules",
            5,
        ),
        (names::LEASES_BUCKET, "rtdash partition leases", 1),
        (
            names::CHECKPOINTS_BUCKET,
            "rtdash aggregator checkpoints",
            1,
        ),
        (
            names::KEYS_BUCKET,
            "rtdash credentials: API key hashes, last use, dashboard links, session secret",
            1,
        ),
    ];
    for (bucket, description, history) in buckets {
        if js.get_key_value(bucket).await.is_ok() {
            continue;
        }
        js.create_key_value(kv::Config {
            bucket: bucket.to_owned(),
            description: description.to_owned(),
            history,
            storage: config.storage_type(),
            num_replicas: config.replicas,
            max_value_size: 8 * 1024 * 1024,
            ..Default::default()
        })
        .await
        .map_err(|err| js_error(format!("bucket {bucket}"), err))?;
    }
    if js.get_key_value(names::SCHEMA_BUCKET).await.is_err() {
        js.create_key_value(kv::Config {
            bucket: names::SCHEMA_BUCKET.to_owned(),
            description: "rtdash schema discovery: event types and properties per tenant and agent"
                .to_owned(),
            history: 1,
            max_age: Duration::from_secs(config.schema_max_age_secs),
            max_bytes: config.schema_max_bytes,
            // A record holds at most 100 properties of 1.5 KiB by default.
            max_value_size: 1024 * 1024,
            storage: config.storage_type(),
            num_replicas: config.replicas,
            ..Default::default()
        })
        .await
        .map_err(|err| js_error(format!("bucket {}", names::SCHEMA_BUCKET), err))?;
    }
    if js.get_key_value(names::BACKFILL_BUCKET).await.is_err() {
        js.create_key_value(kv::Config {
            bucket: names::BACKFILL_BUCKET.to_owned(),
            description: "rtdash backfill jobs and their progress".to_owned(),
            history: 1,
            max_age: BACKFILL_JOB_MAX_AGE,
            storage: config.storage_type(),
            num_replicas: config.replicas,
            ..Default::default()
        })
        .await
        .map_err(|err| js_error(format!("bucket {}", names::BACKFILL_BUCKET), err))?;
    }
    Ok(())
}

/// How long backfill jobs (and their outcome) are kept in [`names::BACKFILL_BUCKET`].
pub const BACKFILL_JOB_MAX_AGE: Duration = Duration::from_secs(7 * 86_400);

/// The partition count recorded on the partials stream, if it exists.
pub async fn partition_count(js: &jetstream::Context) -> Result<Option<u32>, NatsError> {
    partition_count_of(js, names::PARTIALS_STREAM).await
}

/// The partition count recorded in the metadata (`rtdash.partitions`) of stream `name`, if
/// the stream exists and records one (an edge site's `RTDASH_EDGE_PARTIALS` carries the hub's
/// count, copied by `deploy/edge/up.sh`).
pub async fn partition_count_of(
    js: &jetstream::Context,
    name: &str,
) -> Result<Option<u32>, NatsError> {
    let mut stream = match js.get_stream(name).await {
        Ok(stream) => stream,
        Err(err)
            if matches!(
                err.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(_)
            ) =>
        {
            return Ok(None)
        }
        Err(err) => return Err(js_error(format!("stream {name}"), err)),
    };
    let info = stream
        .info()
        .await
        .map_err(|err| js_error(format!("stream {name}"), err))?;
    Ok(info
        .config
        .metadata
        .get(PARTITIONS_METADATA)
        .and_then(|value| value.parse().ok()))
}
