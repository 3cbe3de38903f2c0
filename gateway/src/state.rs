//! What every handler shares ([`AppState`]), built by connecting to NATS, the config bucket
//! and QuestDB and starting the live hub and its background tasks.

use crate::auth::Guard;
use crate::config::GatewayConfig;
use crate::live::hub::Hub;
use crate::live::snapshot::SnapshotCache;
use crate::live::status::StatusTracker;
use crate::metrics;
use crate::query::QuestDb;
use crate::quota::streams::{ClientStreams, TenantStreams};
use crate::store::ConfigStore;
use crate::tasks::Tasks;
use metrics_exporter_prometheus::PrometheusHandle;
use rtdash_runtime::admin::Readiness;
use rtdash_runtime::error_chain::ErrorChain;
use rtdash_runtime::keys::KeyStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The gateway's configuration, as loaded at start.
    pub config: Arc<GatewayConfig>,
    /// Dashboards, alert rules and metric definitions (the `rtdash_config` bucket).
    pub store: ConfigStore,
    /// JetStream (the alert log).
    pub js: async_nats::jetstream::Context,
    /// Metric windows from QuestDB.
    pub db: Arc<QuestDb>,
    /// Shared upstream subscriptions per watched (tenant, metric).
    pub hub: Arc<Hub>,
    /// Widget snapshots, shared by the viewers of a widget.
    pub snapshots: Arc<SnapshotCache>,
    /// Pipeline freshness from the aggregators' reports.
    pub status: StatusTracker,
    /// Stream permits (`live.max_streams`).
    pub streams: Arc<Semaphore>,
    /// Open streams per tenant (the `open_streams` quota).
    pub tenant_streams: Arc<TenantStreams>,
    /// Open streams per client address (`live.max_streams_per_client`).
    pub client_streams: Arc<ClientStreams>,
    /// Cancelled on shutdown; ends every stream.
    pub shutdown: CancellationToken,
    /// Readiness checks for `/readyz`.
    pub readiness: Readiness,
    /// Prometheus handle for `/metrics`.
    pub prometheus: PrometheusHandle,
    /// Keys, sessions, links and the failed-attempt limiter.
    pub auth: Arc<Guard>,
    /// Backfill jobs (the `rtdash_backfill` bucket).
    pub backfills: crate::backfill::BackfillJobs,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("listen", &self.config.listen)
            .finish_non_exhaustive()
    }
}

/// Why the gateway could not connect to what it needs.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// NATS unreachable or the topology could not be created.
    #[error(transparent)]
    Nats(#[from] rtdash_runtime::nats::NatsError),
    /// The operator key file is configured but cannot be used.
    #[error(transparent)]
    OperatorKey(#[from] rtdash_runtime::keys::OperatorKeyError),
    /// The session secret could not be read or created.
    #[error("cannot set up browser sessions")]
    Sessions(#[source] rtdash_runtime::keys::KeyStoreError),
    /// The config bucket is missing.
    #[error("config bucket {bucket} unavailable")]
    Bucket {
        /// Bucket name.
        bucket: String,
        /// JetStream's error.
        #[source]
        source: async_nats::jetstream::context::KeyValueError,
    },
}

impl AppState {
    /// Connects to NATS, loads the config bucket, prepares QuestDB and the hub; their
    /// background tasks run on `tasks` until its shutdown token is cancelled.
    pub async fn connect(config: GatewayConfig, tasks: &Tasks) -> Result<Self, ConnectError> {
        // The recorder first: the handles created below record into it.
        let prometheus = rtdash_runtime::telemetry::metrics_handle();
        metrics::describe();
        let client = rtdash_runtime::nats::connect(&config.nats, "rtdash-gateway").await?;
        let js = rtdash_runtime::nats::jetstream(client.clone(), &config.nats);
        if config.ensure_topology {
            rtdash_runtime::nats::ensure_topology(
                &js,
                &config.streams,
                rtdash_runtime::nats::Ensure::CreateMissing,
            )
            .await?;
        }
        let bucket = rtdash_shared::names::CONFIG_BUCKET;
        let kv = js
            .get_key_value(bucket)
            .await
            .map_err(|source| ConnectError::Bucket {
                bucket: bucket.to_owned(),
                source,
            })?;
        let store = ConfigStore::start(kv, tasks);
        let auth = Arc::new(start_keys(&js, &config, tasks).await?);
        if !store.wait_loaded(Duration::from_secs(10)).await {
            tracing::warn!("config bucket not loaded yet; answering from what arrived");
        }
        let db = Arc::new(QuestDb::new(
            config.questdb.clone(),
            &config.rollups,
            &config.query,
            tasks.clone(),
        ));
        if config.questdb.create_table {
            if let Err(err) = db.ensure_tables().await {
                tracing::warn!(error = %ErrorChain(&err), table = db.table(), "could not create the metrics tables");
            }
        }
        let status = StatusTracker::new(config.live.clone());
        status.learn_partitions(js.clone(), tasks);
        if let Err(err) = status.start(&client, tasks).await {
            tracing::warn!(error = %ErrorChain(&err), "could not subscribe to pipeline status");
        }
        let hub = Arc::new(Hub::new(
            client.clone(),
            config.live.clone(),
            metrics::FanoutMetrics::new(),
            tasks.clone(),
        ));
        hub.spawn_link_monitor();
        hub.spawn_linger_sweep();
        status.follow_link(hub.link(), tasks);
        crate::live::repair::spawn(
            hub.clone(),
            db.clone(),
            status.clone(),
            Duration::from_millis(config.live.repair_interval_ms),
            tasks,
        );
        let snapshots = Arc::new(SnapshotCache::new(
            db.clone(),
            Duration::from_millis(config.live.snapshot_ttl_ms),
            config.query.correction_horizon_ms,
        ));
        let readiness = Readiness::new();
        readiness.add_nats(client);
        let loaded = store.clone();
        readiness.add("config", move || {
            if loaded.is_loaded() {
                Ok(())
            } else {
                Err("config bucket not loaded".to_owned())
            }
        });
        let healthy = db.clone();
        readiness.add("questdb", move || {
            if healthy.is_healthy() {
                Ok(())
            } else {
                Err("QuestDB does not answer".to_owned())
            }
        });
        let keys = auth.keys.clone();
        readiness.add("keys", move || {
            if keys.is_loaded() {
                Ok(())
            } else {
                Err("keys bucket not loaded".to_owned())
            }
        });
        spawn_questdb_probe(db.clone(), tasks);
        let backfills = crate::backfill::BackfillJobs::start(js.clone(), db.clone(), tasks);
        Ok(Self {
            backfills,
            js,
            streams: Arc::new(Semaphore::new(config.live.max_streams)),
            tenant_streams: Arc::new(TenantStreams::default()),
            client_streams: Arc::new(ClientStreams::default()),
            config: Arc::new(config),
            store,
            db,
            hub,
            snapshots,
            status,
            shutdown: tasks.shutdown().clone(),
            readiness,
            prometheus,
            auth,
        })
    }
}

/// Opens the keys bucket, reads the operator key, starts the key store's watch and
/// last-used writer on `tasks`, and makes sure there is a session secret.
async fn start_keys(
    js: &async_nats::jetstream::Context,
    config: &GatewayConfig,
    tasks: &Tasks,
) -> Result<Guard, ConnectError> {
    let bucket = rtdash_shared::names::KEYS_BUCKET;
    let kv = js
        .get_key_value(bucket)
        .await
        .map_err(|source| ConnectError::Bucket {
            bucket: bucket.to_owned(),
            source,
        })?;
    let operator = match &config.auth.operator_key_file {
        Some(path) => Some(rtdash_runtime::keys::read_operator_key(path)?),
        None => {
            tracing::warn!(
                "no `auth.operator_key_file`: there is no operator credential (only tenant keys \
                 authenticate, and `/metrics` is closed unless `auth.metrics_public`)"
            );
            None
        }
    };
    let (keys, task) = KeyStore::new(kv, operator.as_ref());
    let shutdown = tasks.child_token();
    tasks.spawn("key store", task.run(shutdown));
    if !keys.wait_loaded(Duration::from_secs(10)).await {
        tracing::warn!("keys bucket not loaded yet; keys verify as they arrive");
    }
    keys.ensure_session_secret()
        .await
        .map_err(ConnectError::Sessions)?;
    Ok(Guard::new(keys, config.auth.clone()))
}

/// Pings QuestDB every 2 s (the `/readyz` check) until shutdown.
fn spawn_questdb_probe(db: Arc<QuestDb>, tasks: &Tasks) {
    let shutdown = tasks.child_token();
    tasks.spawn("questdb probe", async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = db.ping() => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    });
}
