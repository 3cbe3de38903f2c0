//! The composition root: [`Agent::build`] turns the configuration into components (nothing
//! runs yet), [`Agent::spawn`] runs them, and the shutdown sequence stops them in order when
//! the caller's token is cancelled:
//!
//! 1. stop intake: the HTTP server stops accepting (requests in progress finish, for at most
//!    `shutdown_grace_ms`), ingest answers `503`, `/readyz` fails;
//! 2. flush: the flusher's final flush (heartbeats for every idle partition), archive
//!    chunks sealed;
//! 3. wait for acknowledgements, until the grace period (counted from step 2) ends;
//! 4. spool to disk: the publishers stop, whatever is unacknowledged goes to the disk spools,
//!    the sequence numbers are persisted;
//! 5. close: the background tasks stop, every task is awaited, the NATS client is flushed.
//!
//! Every task runs under one root token, through a child token per stage ([`Tokens`]), and
//! is tracked by one [`TaskTracker`] that is awaited at the end.

use crate::aggregate::{DurableAcks, FlushConfig, Flusher, InFlightRequests, Shards};
use crate::config::{AgentConfig, PublishConfig};
use crate::definitions::{self, Definitions};
use crate::error::AgentError;
use crate::ingest::tenant_rate::TenantRates;
use crate::ingest::{self, Ingest};
use crate::memory::{AllocatorStats, MemoryBudget};
use crate::metrics::{self, AgentMetrics};
use crate::protocols::idempotency::{self, Idempotency};
use crate::protocols::{self, statsd};
use crate::publish::archive::Archive;
use crate::publish::deadletter::{DeadLetters, DlqSettings};
use crate::publish::pipeline::{self, Outbox, PipelineConfig};
use crate::publish::seq::{now_micros, SeqState};
use crate::publish::spool::Spool;
use crate::site::{self, Topology};
use crate::state;
use rtdash_runtime::admin::{self, Readiness};
use rtdash_runtime::http::HttpServerConfig;
use rtdash_runtime::nats as rtnats;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The root token and its children, one per shutdown stage, cancelled in the order of the
/// fields. Cancelling the root stops everything at once (what the last stage does, and what
/// happens when [`Agent::build`] fails half-way).
#[derive(Debug)]
struct Tokens {
    root: CancellationToken,
    /// Cancelled when shutdown begins: the server drains, ingest answers `503`.
    intake: CancellationToken,
    flusher: CancellationToken,
    publishers: CancellationToken,
    /// The definitions watch, the housekeeping loop and the allocator statistics thread.
    background: CancellationToken,
}

impl Tokens {
    fn new() -> Self {
        let root = CancellationToken::new();
        Self {
            intake: root.child_token(),
            flusher: root.child_token(),
            publishers: root.child_token(),
            background: root.child_token(),
            root,
        }
    }
}

/// The outboxes, each with its publisher.
#[derive(Debug)]
struct Outboxes {
    partials: Arc<Spool>,
    dlq: Arc<DeadLetters>,
    archive: Option<Arc<Archive>>,
}

impl Outboxes {
    /// Opens the partials spool and the dead-letter queue (loading what the previous run left
    /// on disk), and the archive when `archive_events` is on; also the sequence numbers,
    /// raised above every batch left in the spool.
    fn open(
        config: &AgentConfig,
        agent_id: &str,
        prefix: &str,
        hard_max_batch_bytes: usize,
        metrics: &AgentMetrics,
    ) -> Result<(Self, SeqState), AgentError> {
        let state_dir = &config.state_dir;
        let spool_dir = state_dir.join("spool");
        // Durable acknowledgements write every batch to disk when it is made.
        let spool_memory = if config.ingest.durable_ack {
            0
        } else {
            config.spool.memory_bytes
        };
        let (spool, leftovers) = Spool::open(
            &spool_dir,
            agent_id,
            spool_memory,
            config.spool.max_bytes,
            config.spool.segment_bytes,
            metrics.clone(),
        )
        .map_err(|err| AgentError::state(&spool_dir, err))?;
        let spool = Arc::new(spool.with_subject_prefix(prefix));
        let mut seqs = SeqState::load(state_dir, agent_id, now_micros())
            .map_err(|err| AgentError::state(state_dir, err))?;
        for leftover in &leftovers {
            seqs.observe(leftover.partition, leftover.seq);
        }
        if !leftovers.is_empty() {
            tracing::info!(
                batches = leftovers.len(),
                "partial batches left in the disk spool will be published first"
            );
        }
        let dlq_dir = state_dir.join("dlq");
        let dlq = Arc::new(
            DeadLetters::open(
                &dlq_dir,
                agent_id,
                DlqSettings {
                    max_raw_bytes: config.dlq.max_raw_bytes,
                    queue_bytes: config.dlq.queue_bytes,
                    spool_max_bytes: config.dlq.spool_max_bytes,
                },
                metrics.clone(),
            )
            .map_err(|err| AgentError::state(&dlq_dir, err))?
            .with_subject_prefix(prefix),
        );
        let archive = if config.archive_events {
            // A chunk is sealed once it reaches its size, so it may exceed it by one event.
            let chunk_bytes = config
                .archive
                .effective_chunk_bytes()
                .min(hard_max_batch_bytes.saturating_sub(config.limits.max_event_bytes))
                .max(1024);
            let archive = Archive::new(
                agent_id,
                chunk_bytes,
                config.archive.max_queue_bytes,
                config.archive.when_full,
                metrics.clone(),
            )
            .with_subject_prefix(prefix)
            .with_compression(config.archive.compression, config.archive.zstd_level)
            .map_err(AgentError::Compressor)?;
            Some(Arc::new(archive))
        } else {
            None
        };
        let outboxes = Outboxes {
            partials: spool,
            dlq,
            archive,
        };
        Ok((outboxes, seqs))
    }
}

/// The `/readyz` checks: NATS connected, metric definitions loaded, not shutting down.
fn readiness(
    client: &async_nats::Client,
    definitions_ready: Arc<AtomicBool>,
    intake: CancellationToken,
) -> Readiness {
    let readiness = Readiness::new();
    readiness.add_nats(client.clone());
    readiness.add("definitions", move || {
        if definitions_ready.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err("metric definitions not loaded yet".to_owned())
        }
    });
    readiness.add("shutdown", move || {
        if intake.is_cancelled() {
            Err("shutting down".to_owned())
        } else {
            Ok(())
        }
    });
    readiness
}

/// Every component of an agent, built from its configuration; nothing runs yet.
pub(crate) struct Agent {
    config: AgentConfig,
    agent_id: String,
    topology: Topology,
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    metrics: AgentMetrics,
    outboxes: Outboxes,
    ingest: Arc<Ingest>,
    flusher: Flusher,
    definitions: Definitions,
    app: axum::Router,
    /// The key store's watch and last-used writer (keys mode).
    key_store: Option<rtdash_runtime::keys::KeyStoreTask>,
    tokens: Tokens,
    idempotency: Arc<Idempotency>,
    statsd: Option<statsd::Listener>,
}

impl Agent {
    /// Resolves the agent id, loads the local metric definitions, connects to NATS and
    /// readies the streams, opens the spools (loading what the previous run left) and wires
    /// ingest, aggregation and publishing together.
    pub(crate) async fn build(config: AgentConfig) -> Result<Self, AgentError> {
        let tokens = Tokens::new();
        // Whatever was started under the root stops if a later step fails.
        let stop_on_error = tokens.root.clone().drop_guard();
        // The recorder first: handles created before it would record nowhere.
        let prometheus = rtdash_runtime::telemetry::metrics_handle();
        metrics::describe();
        let metrics = AgentMetrics::new();

        let state_dir = config.state_dir.clone();
        std::fs::create_dir_all(&state_dir).map_err(|err| AgentError::state(&state_dir, err))?;
        let agent_id = state::resolve_agent_id(
            config.agent_id.as_deref(),
            config.site.as_deref(),
            &state_dir,
        )
        .map_err(|err| AgentError::state(&state_dir, err))?;
        let file_definitions = match &config.metrics_file {
            Some(path) => definitions::load_file(path)?,
            None => Vec::new(),
        };

        let client = rtnats::connect(&config.nats, &format!("edge-agent:{agent_id}")).await?;
        let js = rtnats::jetstream(client.clone(), &config.nats);
        let topology = site::prepare(&js, &config).await?;
        let auth = ingest::auth::AuthSetup::build(&config.auth, &js).await?;
        // Every message must fit the server's max_payload (1 MiB by default), headers included.
        let max_payload = client.server_info().max_payload;
        let hard_max_batch_bytes = max_payload.saturating_sub(4096).max(64 * 1024);

        let (outboxes, seqs) = Outboxes::open(
            &config,
            &agent_id,
            &topology.prefix,
            hard_max_batch_bytes,
            &metrics,
        )?;

        let shards = Arc::new(Shards::new(
            config.shard_count(),
            Definitions::initial_set(&file_definitions),
        ));
        let definitions = Definitions::new(file_definitions, Arc::clone(&shards), metrics.clone());
        let in_flight = Arc::new(InFlightRequests::default());
        let durable = config
            .ingest
            .durable_ack
            .then(|| Arc::new(DurableAcks::default()));
        let allocator = AllocatorStats::start(tokens.background.clone());
        match &allocator {
            Some(stats) => tracing::info!(
                allocated = stats.allocated(),
                "memory budget counts the allocator's figure (jemalloc stats.allocated)"
            ),
            None => tracing::info!(
                "memory budget counts per-component estimates (jemalloc is not the global allocator)"
            ),
        }
        let idempotency = Arc::new(
            Idempotency::open(
                &state_dir,
                config.idempotency.horizon_secs,
                config.idempotency.max_ids,
                rtdash_shared::time::now_millis(),
                metrics.clone(),
            )
            .map_err(AgentError::Idempotency)?,
        );
        let ingest = Arc::new(Ingest {
            limits: config.limits.clone(),
            config: config.ingest.clone(),
            shards: Arc::clone(&shards),
            dlq: Arc::clone(&outboxes.dlq),
            archive: outboxes.archive.clone(),
            spool: Arc::clone(&outboxes.partials),
            budget: MemoryBudget::new(
                config.memory_budget_bytes,
                Arc::clone(&shards),
                Arc::clone(&outboxes.partials),
                Arc::clone(&outboxes.dlq),
                outboxes.archive.clone(),
            )
            .with_allocator(allocator),
            in_flight: Arc::clone(&in_flight),
            concurrency: Arc::new(Semaphore::new(config.ingest.max_concurrent_requests)),
            metrics: metrics.clone(),
            shutdown: tokens.intake.clone(),
            max_raw_bytes: config.dlq.max_raw_bytes,
            tenant_rates: TenantRates::new(
                config.ingest.tenant_events_per_second,
                auth.ingest.key_store(),
            ),
            auth: auth.ingest,
            durable: durable.clone(),
            idempotency: Some(Arc::clone(&idempotency)),
            definitions_loaded: definitions.ready_flag(),
            schema: config
                .schema
                .enabled
                .then(|| Arc::new(crate::schema::Catalog::new(config.schema.clone()))),
        });
        let statsd = match &config.statsd.tenant {
            Some(tenant) => Some(
                statsd::Listener::bind(&config.statsd, tenant, Arc::clone(&ingest))
                    .map_err(AgentError::Statsd)?,
            ),
            None => None,
        };
        metrics.memory_budget.set(config.memory_budget_bytes as f64);

        let flusher = Flusher::new(
            FlushConfig {
                agent_id: agent_id.clone(),
                partitions: topology.partitions,
                max_batch_bytes: (config.publish.max_batch_bytes as usize)
                    .min(hard_max_batch_bytes),
                hard_max_batch_bytes,
                heartbeat: Duration::from_millis(config.heartbeat_interval_ms),
                interval: Duration::from_millis(config.flush_interval_ms),
                persist_every: Duration::from_millis(config.spool.seq_persist_interval_ms),
            },
            shards,
            Arc::clone(&outboxes.partials),
            seqs,
            in_flight,
            metrics.clone(),
        );
        let flusher = match durable {
            Some(durable) => flusher.with_durable_acks(durable),
            None => flusher,
        };

        let readiness = readiness(&client, definitions.ready_flag(), tokens.intake.clone());
        let keys_ready = Arc::clone(&ingest);
        readiness.add("keys", move || match keys_ready.auth.is_ready() {
            true => Ok(()),
            false => Err("keys bucket not loaded yet".to_owned()),
        });
        let app = ingest::router(Arc::clone(&ingest))
            .merge(protocols::router(&ingest, &config))
            .merge(admin::health_routes(readiness))
            .merge(ingest::auth::metrics_routes(prometheus, auth.metrics));

        stop_on_error.disarm();
        Ok(Self {
            config,
            agent_id,
            topology,
            client,
            js,
            metrics,
            outboxes,
            ingest,
            flusher,
            definitions,
            app,
            key_store: auth.task,
            tokens,
            idempotency,
            statsd,
        })
    }

    /// Starts every task and serves `listener` (bound to `addr`) until `shutdown` is
    /// cancelled; the shutdown sequence then runs (see the module docs).
    pub(crate) fn spawn(
        self,
        listener: TcpListener,
        addr: SocketAddr,
        shutdown: CancellationToken,
    ) -> AgentHandle {
        let tasks = TaskTracker::new();
        let flusher = tasks.spawn(self.flusher.run(self.tokens.flusher.clone()));
        let mut publish_js = async_nats::jetstream::new(self.client.clone());
        publish_js.set_timeout(Duration::from_millis(self.config.publish.ack_timeout_ms));
        let publishers = Publishers {
            tasks: &tasks,
            js: publish_js,
            client: &self.client,
            settings: &self.config.publish,
            metrics: &self.metrics,
            stop: &self.tokens.publishers,
        };
        let mut publisher_tasks = vec![
            publishers.spawn(&self.outboxes.partials, "partials"),
            publishers.spawn(&self.outboxes.dlq, "dlq"),
        ];
        if let Some(archive) = &self.outboxes.archive {
            publisher_tasks.push(publishers.spawn(archive, "archive"));
        }
        tasks.spawn(
            self.definitions
                .watch(self.js.clone(), self.tokens.background.clone()),
        );
        if let Some(key_store) = self.key_store {
            tasks.spawn(key_store.run(self.tokens.background.clone()));
        }
        if let Some(keys) = self.ingest.auth.key_store() {
            tasks.spawn(crate::aggregate::ceilings::follow(
                keys,
                Arc::clone(&self.ingest.shards),
                self.tokens.background.clone(),
            ));
        }
        if let Some(listener) = self.statsd {
            tasks.spawn(listener.run(self.tokens.intake.clone()));
        }
        tasks.spawn(idempotency::persist_loop(
            self.idempotency,
            Duration::from_millis(self.config.idempotency.persist_interval_ms),
            self.tokens.background.clone(),
        ));
        if let Some(catalog) = &self.ingest.schema {
            tasks.spawn(crate::schema::publisher::run(
                Arc::clone(catalog),
                self.js.clone(),
                match self.config.site {
                    Some(_) => crate::schema::publisher::Destination::Hub,
                    None => crate::schema::publisher::Destination::Local,
                },
                self.agent_id.clone(),
                Duration::from_millis(self.config.schema.publish_interval_ms),
                self.tokens.background.clone(),
            ));
        }
        tasks.spawn(housekeeping(
            self.ingest,
            Duration::from_millis(self.config.flush_interval_ms),
            self.tokens.background.clone(),
        ));
        let config = &self.config;
        tracing::info!(
            %addr,
            agent_id = %self.agent_id,
            partitions = self.topology.partitions,
            site = config.site.as_deref().unwrap_or("-"),
            subject_prefix = %self.topology.prefix,
            partials_stream = %self.topology.partials_stream,
            nats = %config.nats.url,
            state_dir = %config.state_dir.display(),
            "edge agent listening"
        );

        let running = Running {
            client: self.client,
            outboxes: self.outboxes,
            flusher,
            publishers: publisher_tasks,
            tasks,
            tokens: self.tokens,
            grace: Duration::from_millis(config.shutdown_grace_ms),
        };
        let http = config.http.clone();
        let task = tokio::spawn(running.serve(listener, self.app, http, shutdown));
        AgentHandle {
            addr,
            agent_id: self.agent_id,
            partitions: self.topology.partitions,
            task,
        }
    }
}

/// What the publishers share; [`Publishers::spawn`] starts one per outbox.
struct Publishers<'a> {
    tasks: &'a TaskTracker,
    /// With the acknowledgement timeout (`publish.ack_timeout_ms`).
    js: async_nats::jetstream::Context,
    client: &'a async_nats::Client,
    settings: &'a PublishConfig,
    metrics: &'a AgentMetrics,
    stop: &'a CancellationToken,
}

impl Publishers<'_> {
    fn spawn<O: Outbox>(&self, outbox: &Arc<O>, name: &'static str) -> JoinHandle<()> {
        let config = PipelineConfig {
            max_in_flight: self.settings.max_in_flight,
            backoff_max: Duration::from_millis(self.settings.retry_backoff_max_ms),
            name,
            failures: self.metrics.publish_failures(name),
        };
        self.tasks.spawn(pipeline::run(
            Arc::clone(outbox),
            self.js.clone(),
            self.client.clone(),
            config,
            self.stop.clone(),
        ))
    }
}

/// The agent's tasks while it runs, and what the shutdown sequence needs of them.
struct Running {
    client: async_nats::Client,
    outboxes: Outboxes,
    flusher: JoinHandle<Flusher>,
    publishers: Vec<JoinHandle<()>>,
    tasks: TaskTracker,
    tokens: Tokens,
    grace: Duration,
}

impl Running {
    /// Serves until `shutdown` is cancelled, then shuts down.
    async fn serve(
        self,
        listener: TcpListener,
        app: axum::Router,
        http: HttpServerConfig,
        shutdown: CancellationToken,
    ) -> Result<(), AgentError> {
        let intake = self.tokens.intake.clone();
        let server = rtdash_runtime::http::serve(
            listener,
            app,
            intake.clone(),
            &http,
            crate::metrics::server(),
        );
        let grace = self.grace;
        let served = tokio::select! {
            () = server => Ok(()),
            () = async {
                shutdown.cancelled().await;
                intake.cancel();
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!("requests still in progress after the grace period; closing");
                Ok(())
            }
        };
        intake.cancel();
        self.shutdown().await;
        served
    }

    /// Steps 2 to 5 of the shutdown sequence (see the module docs): intake has stopped.
    async fn shutdown(self) {
        let Running {
            client,
            outboxes,
            flusher,
            publishers,
            tasks,
            tokens,
            grace,
        } = self;
        tracing::info!("intake stopped; flushing");
        let deadline = tokio::time::Instant::now() + grace;
        tokens.flusher.cancel();
        let flusher = flusher.await.ok();
        if let Some(archive) = &outboxes.archive {
            archive.seal_all();
        }

        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (partials_done, dlq_done, archive_done) = tokio::join!(
            pipeline::wait_idle(outboxes.partials.as_ref(), remaining),
            pipeline::wait_idle(outboxes.dlq.as_ref(), remaining),
            async {
                match &outboxes.archive {
                    Some(archive) => pipeline::wait_idle(archive.as_ref(), remaining).await,
                    None => true,
                }
            }
        );

        tokens.publishers.cancel();
        for publisher in publishers {
            let _ = publisher.await;
        }
        match outboxes.partials.persist_all() {
            Ok(0) => {}
            Ok(written) => tracing::warn!(
                batches = written,
                "unacknowledged partial batches written to the disk spool; the next start publishes them"
            ),
            Err(err) => tracing::error!(error = %err, "cannot write the spool to disk; unacknowledged batches are lost"),
        }
        match outboxes.dlq.persist_all() {
            Ok(0) => {}
            Ok(written) => tracing::warn!(
                dead_letters = written,
                "unacknowledged dead letters written to the disk spool"
            ),
            Err(err) => tracing::error!(error = %err, "cannot write the dead-letter spool to disk"),
        }
        if let Some(archive) = &outboxes.archive {
            archive.abandon();
        }
        if let Some(mut flusher) = flusher {
            flusher.persist_seqs();
        }

        tokens.background.cancel();
        tokens.root.cancel();
        tasks.close();
        tasks.wait().await;
        // Bounded: with NATS unreachable a flush would wait for the reconnection.
        match tokio::time::timeout(Duration::from_secs(1), client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(error = %err, "final NATS flush failed"),
            Err(_) => tracing::debug!("final NATS flush timed out"),
        }
        tracing::info!(
            acknowledged = partials_done && dlq_done && archive_done,
            "edge agent stopped"
        );
    }
}

/// A started agent.
#[derive(Debug)]
pub struct AgentHandle {
    addr: SocketAddr,
    agent_id: String,
    partitions: u32,
    task: JoinHandle<Result<(), AgentError>>,
}

impl AgentHandle {
    /// The address the HTTP listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The agent id in use.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// The partition count batches are routed with.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Waits until the agent has shut down (after the shutdown token was cancelled).
    pub async fn wait(self) -> Result<(), AgentError> {
        self.task.await?
    }
}

/// Every flush interval: seal archive chunks and update the memory gauges.
async fn housekeeping(ingest: Arc<Ingest>, every: Duration, stop: CancellationToken) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {
                if let Some(archive) = &ingest.archive {
                    archive.seal_all();
                }
                let budget = &ingest.budget;
                ingest.metrics.record_memory(
                    budget.used(),
                    &budget.estimates().components(),
                    budget.allocator().map(|a| (a.allocated(), a.resident())),
                );
            }
        }
    }
}
