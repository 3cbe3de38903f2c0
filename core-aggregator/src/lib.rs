//! rtdash's core aggregator: merges the edge agents' partial window sketches from JetStream
//! exactly once, closes windows on watermarks, merges late data as corrections, writes every
//! window to QuestDB and publishes live updates. See `docs/aggregator.md` for the design.
//!
//! ```text
//!  rtdash.partials.<p> ──durable pull consumer per owned partition──┐
//!        (JetStream)                                               v
//!   lease (KV rtdash_leases) ──> consumer::run_partition ── state::PartitionState (pure)
//!                                 │   │   │                     apply / tick / poll_outputs
//!   checkpoint (KV + Object Store) <──┘   │
//!   sink::late: late / DLQ streams <──────┤ (awaited)
//!   sink::live: live updates (core NATS) <┤ ──> observer ──> alerts ──> RTDASH_ALERTS ──> notifier
//!   sink::questdb: writer thread (ILP) <──┘ bounded channel, backpressure
//! ```
//!
//! Modules: [`config`] (settings), [`lease`] (partition ownership), [`consumer`] (the
//! per-partition worker), [`state`] (the deterministic state machine and its checkpoint
//! forms), [`checkpoint`] (KV manifest + Object Store window data), [`sink`] (where window
//! versions go: QuestDB, live updates, the late and dead-letter streams), [`backfill`]
//! (rebuilding a time range from the partials or from the raw-event archive), [`observer`]
//! (the alert hook), [`alerts`] (rule evaluation, alert state, transitions), [`notifier`]
//! (webhook delivery), [`metrics`], [`error`].
#![forbid(unsafe_code)]

pub mod alerts;
pub mod backfill;
pub mod checkpoint;
pub mod config;
pub mod consumer;
pub mod error;
pub mod lease;
pub mod metrics;
pub mod notifier;
pub mod observer;
pub mod sink;
pub mod state;

/// The backfill commands under their former paths (`core_aggregator::replay::replay`...).
pub use backfill::{recompute, replay};

pub use config::Config;
pub use error::Error;

use async_nats::jetstream::{self, object_store};
use consumer::{run_partition, WorkerContext};
use lease::{LeaseManager, LeaseSettings, WorkerFactory};
use observer::{NoObserver, WindowObserver};
use rtdash_runtime::admin::Readiness;
use rtdash_runtime::nats::Ensure;
use sink::live::LiveSink;
use sink::questdb::{ConfirmRouter, Ownership, QuestDbWriter};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Object Store bucket of checkpoint window data (the manifests are in
/// [`rtdash_shared::names::CHECKPOINTS_BUCKET`]).
pub use rtdash_shared::names::CHECKPOINT_DATA_BUCKET;

/// How long a graceful shutdown may take (workers checkpoint, the writer drains).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// This process's aggregator id: the configured one, or `agg-<host>-<random>`.
pub fn instance_id(config: &Config) -> String {
    if let Some(id) = &config.instance_id {
        return id.clone();
    }
    let host: String = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(32)
        .collect();
    let random = uuid::Uuid::new_v4().simple().to_string();
    if host.is_empty() {
        format!("agg-{}", &random[..8])
    } else {
        format!("agg-{host}-{}", &random[..8])
    }
}

/// Creates or updates every stream and bucket (including the checkpoint data bucket) and
/// checks that the partition count matches the one the partials stream was created with.
pub async fn setup_topology(js: &jetstream::Context, config: &Config) -> Result<(), Error> {
    if let Some(existing) = rtdash_runtime::nats::partition_count(js).await? {
        if existing != config.streams.partitions {
            return Err(Error::Usage(format!(
                "invalid config: `streams.partitions` is {} but {} was created with {existing} \
                 partitions; changing it moves series between partitions (see docs/aggregator.md)",
                config.streams.partitions,
                rtdash_shared::names::PARTIALS_STREAM
            )));
        }
    }
    rtdash_runtime::nats::ensure_topology(js, &config.streams, Ensure::CreateOrUpdate).await?;
    if js
        .get_object_store(&config.checkpoint.data_bucket)
        .await
        .is_err()
    {
        js.create_object_store(object_store::Config {
            bucket: config.checkpoint.data_bucket.clone(),
            description: Some("rtdash aggregator checkpoint window data".to_owned()),
            storage: if config.streams.storage == "memory" {
                jetstream::stream::StorageType::Memory
            } else {
                jetstream::stream::StorageType::File
            },
            num_replicas: config.streams.replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::js(format!("bucket {}", config.checkpoint.data_bucket), e))?;
    }
    alerts::setup(js, config).await?;
    Ok(())
}

/// `core-aggregator setup`: creates or updates the topology and the QuestDB table, then returns.
pub async fn setup(config: &Config) -> Result<(), Error> {
    let client = rtdash_runtime::nats::connect(&config.nats, "core-aggregator setup").await?;
    let js = rtdash_runtime::nats::jetstream(client.clone(), &config.nats);
    setup_topology(&js, config).await?;
    sink::questdb::ensure_table(
        config,
        Duration::from_millis(config.nats.connect_timeout_ms),
    )
    .await?;
    let _ = client.flush().await;
    Ok(())
}

/// Runs the aggregator until `shutdown` is cancelled, then stops gracefully: workers
/// checkpoint and acknowledge, leases are released, queued rows are written (bounded by
/// [`SHUTDOWN_GRACE`]).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    run_with_observer(config, shutdown, Arc::new(NoObserver)).await
}

/// [`run`] with an observer of every published window version (the alert hook).
pub async fn run_with_observer(
    config: Config,
    shutdown: CancellationToken,
    observer: Arc<dyn WindowObserver>,
) -> Result<(), Error> {
    let prometheus = rtdash_runtime::telemetry::metrics_handle();
    metrics::describe();
    let instance = instance_id(&config);
    let config = Arc::new(config);
    let client =
        rtdash_runtime::nats::connect(&config.nats, &format!("core-aggregator {instance}")).await?;
    let js = rtdash_runtime::nats::jetstream(client.clone(), &config.nats);
    setup_topology(&js, &config).await?;
    sink::questdb::ensure_table(
        &config,
        Duration::from_millis(config.nats.connect_timeout_ms),
    )
    .await?;
    let partitions = config.streams.partitions;
    let checkpoints = js
        .get_key_value(rtdash_shared::names::CHECKPOINTS_BUCKET)
        .await
        .map_err(|e| Error::js("bucket rtdash_checkpoints", e))?;
    let objects = js
        .get_object_store(&config.checkpoint.data_bucket)
        .await
        .map_err(|e| Error::js(format!("bucket {}", config.checkpoint.data_bucket), e))?;

    let ownership = Arc::new(Ownership::new(partitions));
    let confirmations = Arc::new(ConfirmRouter::default());
    let writer = QuestDbWriter::spawn(&config, Arc::clone(&ownership), Arc::clone(&confirmations))?;

    // One root for what this function starts: the stages below are stopped in order (the
    // workers when `shutdown` fires, then alert evaluation, the notifier, the writer, and the
    // admin endpoints last); an early return drops the guard, which stops whatever runs.
    let root = CancellationToken::new();
    let _stop_on_return = root.clone().drop_guard();
    let tasks = TaskTracker::new();
    let admin_stop = root.child_token();
    let readiness = Readiness::new();
    readiness.add_nats(client.clone());
    let questdb_ok = Arc::new(AtomicBool::new(true));
    tasks.spawn(sink::questdb::probe(
        config.questdb.clone(),
        Arc::clone(&questdb_ok),
        Duration::from_secs(2),
        admin_stop.clone(),
    ));
    {
        let questdb_ok = Arc::clone(&questdb_ok);
        let addr = config.questdb.http.clone();
        readiness.add("questdb", move || {
            if questdb_ok.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err(format!("QuestDB at {addr} does not answer"))
            }
        });
    }
    let listener = rtdash_runtime::net::bind(&config.admin_listen).await?;
    {
        let router = rtdash_runtime::admin::routes(readiness, prometheus);
        let stop = admin_stop.clone();
        let http = config.http.clone();
        tasks.spawn(async move {
            rtdash_runtime::http::serve(listener, router, stop, &http, metrics::admin_server())
                .await;
        });
    }
    tasks.close();
    // Alert evaluation sees every window version; the notifier delivers the transitions.
    let (observer, alerting) = if config.alerts.enabled {
        let alerting = alerts::Alerts::start(
            &config,
            &instance,
            client.clone(),
            js.clone(),
            observer,
            root.child_token(),
        )
        .await?;
        (alerting.observer(), Some(alerting))
    } else {
        (observer, None)
    };
    if config.backfill.enabled {
        let jobs = backfill::jobs::run(
            Arc::clone(&config),
            instance.clone(),
            client.clone(),
            js.clone(),
            // Stopped with the admin endpoints, last: a job cut short is failed a minute later.
            admin_stop.child_token(),
        );
        tasks.spawn(async move {
            if let Err(err) = jobs.await {
                tracing::error!(%err, "backfill jobs are not run by this aggregator");
            }
        });
    }
    let notifier = if config.alerts.notifier.enabled {
        let rules = alerting.as_ref().map(alerts::Alerts::rules);
        Some(notifier::Notifier::start(&config, js.clone(), rules, root.child_token()).await?)
    } else {
        None
    };
    tracing::info!(
        %instance,
        partitions,
        admin = %config.admin_listen,
        questdb = %config.questdb.http,
        table = %config.questdb.table,
        "core aggregator started"
    );

    let context = Arc::new(WorkerContext {
        config: Arc::clone(&config),
        instance: instance.clone(),
        js: js.clone(),
        client: client.clone(),
        checkpoints,
        objects,
        rows: writer.sender(),
        live: LiveSink::new(client.clone(), observer),
        side: sink::late::SidePublisher::new(js.clone(), &instance),
        ownership,
        confirmations,
        settings: state::Settings::from_config(&config),
    });
    let factory: WorkerFactory = {
        let context = Arc::clone(&context);
        Arc::new(move |assignment| Box::pin(run_partition(Arc::clone(&context), assignment)))
    };
    drop(context);
    let leases_result = LeaseManager::spawn(
        config.nats.clone(),
        LeaseSettings {
            instance: instance.clone(),
            partitions,
            ttl: config.lease.ttl(),
            margin: config.lease.margin(),
        },
        factory,
        shutdown,
        SHUTDOWN_GRACE,
    )
    .await;
    if let Err(err) = &leases_result {
        tracing::error!(%err, "partition leases could not be kept; stopping");
    }
    if let Some(alerting) = alerting {
        alerting.finish(SHUTDOWN_GRACE).await;
    }
    if let Some(notifier) = notifier {
        notifier.finish(Duration::from_secs(5)).await;
    }
    if !writer.finish(SHUTDOWN_GRACE).await {
        tracing::warn!(
            "rows still queued for QuestDB are rewritten from the checkpoints at the next start"
        );
    }
    let _ = client.flush().await;
    admin_stop.cancel();
    tasks.wait().await;
    tracing::info!("core aggregator stopped");
    leases_result
}
