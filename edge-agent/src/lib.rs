//! rtdash's edge agent: a sidecar beside a service that takes its events over HTTP,
//! validates them, pre-aggregates them into window sketches, and publishes the deltas to NATS
//! JetStream, without ever being the reason the service slows down and without losing data
//! silently.
//!
//! ```text
//! POST /v1/events ──> ingest ──> shards (N × Aggregator) ──flush──> spool ──> JetStream
//!                       │                                  every     (memory,   rtdash.partials.<p>
//!                       ├──> dead letters ──> rtdash.dlq.<tenant>    500 ms      then disk)
//!                       └──> archive (optional, NDJSON or zstd) ──> rtdash.events.<tenant>
//! ```
//!
//! Modules, in the order data flows: [`ingest`] (HTTP, bodies, validation, answers),
//! [`aggregate`] (shards and the flusher), [`publish`] (the outboxes: partials spool, dead
//! letters, archive; sequence numbers; the pipelined publisher), [`definitions`] (metric
//! definitions from a file and the config bucket), [`site`] (subjects and streams: direct or
//! at an edge site), [`memory`] (what the memory budget counts), [`metrics`] (what `/metrics`
//! shows), [`selfmetrics`] (the pipeline's own metrics, published as partials), [`config`],
//! [`state`] (the agent id).
//!
//! # Design decisions
//!
//! - **Identity.** The agent id comes from the configuration, else from
//!   `<state_dir>/agent-id` (generated once: `edge-<16 hex>`, `<site>-<16 hex>` at an edge
//!   site). Every partial batch is identified by `(agent, partition, seq)`, also its
//!   `Nats-Msg-Id` `<agent>.<partition>.<seq>`.
//! - **Edge sites.** With `site = "<id>"` the agent runs beside a leaf node with its own
//!   JetStream domain: it publishes under `rtdash.edge.<site>` instead of `rtdash`, creates no
//!   streams (the site's `RTDASH_EDGE_*`, made by `deploy/edge/up.sh`, must exist), routes with
//!   the partition count recorded on `RTDASH_EDGE_PARTIALS`, and reads metric definitions
//!   from the site's mirror of `rtdash_config`; the hub sources the site's streams (see
//!   [`site`]).
//! - **Sequence numbers** are monotonic per (agent, partition) across restarts: a start
//!   continues from `max(persisted last + 1, highest spooled + 1, clock in µs)` (see
//!   [`publish::seq`]). `acked_below` in a batch is the oldest unacknowledged seq of its
//!   partition when the batch was made: every lower one was acknowledged by JetStream.
//! - **Aggregation** uses the shared [`rtdash_shared::aggregate::Aggregator`] (the same code
//!   as recomputation), sharded over `N` mutexes; one request's events go to one shard, so
//!   a series can have several deltas in a batch, which the aggregator merges.
//! - **Flush and watermark.** Every `flush_interval_ms` (default 500, at most 1000) the
//!   shards are drained, entries grouped by `series.partition(P)` and cut into batches of
//!   about 1 MB (never above the server's `max_payload`); idle partitions get an empty heartbeat batch every `heartbeat_interval_ms`
//!   (default 1 s). The watermark is the agent's clock at drain time, held back to the
//!   receive time of any request still in progress. `P` is read from the partials stream's
//!   metadata (`streams.partitions` when absent).
//! - **Publishing** is pipelined: up to `publish.max_in_flight` publishes await their
//!   acknowledgements at once; a failure is retried with the same seq and message id, so
//!   JetStream deduplicates it within the stream's duplicate window (120 s by default) and
//!   the aggregator deduplicates by seq beyond it. Batches may arrive out of seq order after
//!   a retry; the aggregator tolerates that.
//! - **Spool.** Every batch stays in an ordered per-partition queue until acknowledged: in
//!   memory up to `spool.memory_bytes`, then in append-only segment files under
//!   `<state_dir>/spool`, bounded by `spool.max_bytes`; past that ingest answers `503`. With
//!   NATS down the agent keeps accepting and aggregating; on reconnect batches go out in
//!   order with their original ids; at startup leftover batches of a partition go out before
//!   its new ones (see [`publish::spool`]).
//! - **Bounded memory.** A series cap per metric, tenant and window (in the shared
//!   aggregator), and a global `memory_budget_bytes`: above it ingest answers `503` with
//!   `Retry-After`. The binary runs on jemalloc and the budget counts the bytes it has
//!   allocated (refreshed every 100 ms) plus bodies being read; without the `jemalloc`
//!   feature (or as a library under another allocator) it counts estimates of aggregation
//!   state, in-memory spool, dead-letter queue and request bodies (see [`memory`]). Every
//!   queue is bounded with a documented full policy.
//! - **Dead letters.** Every rejected item and every rejected body goes to
//!   `rtdash.dlq.<tenant>` (see [`publish::deadletter`]); they are never dropped silently.
//! - **Shutdown** (SIGINT/SIGTERM or the token passed to [`run`]): stop accepting (axum
//!   graceful shutdown; requests in progress finish), final drain and flush (heartbeats for
//!   every idle partition), wait up to `shutdown_grace_ms` for every acknowledgement, write
//!   whatever is unacknowledged to the disk spools, persist the sequence numbers, return.
//!
//! # Bounded queues and their full policies
//!
//! | queue | bound | when full |
//! |---|---|---|
//! | requests in progress | `ingest.max_concurrent_requests` | `429` + `Retry-After` |
//! | request body | `ingest.max_body_bytes`, `ingest.max_decompressed_bytes` | `413`, dead letter |
//! | batch items | `ingest.max_batch_items` | `413`, dead letter |
//! | the process's heap (jemalloc `stats.allocated`; else estimates of aggregation state + in-memory spool + dead-letter queue + bodies being read) | `memory_budget_bytes` | `503` + `Retry-After` |
//! | partial batches awaiting acknowledgement | `spool.memory_bytes` in memory, then disk up to `spool.max_bytes` | to disk; then `503` + `Retry-After` |
//! | publishes awaiting acknowledgement | `publish.max_in_flight` per outbox | wait for acknowledgements |
//! | dead letters | `dlq.queue_bytes` in memory, then disk up to `dlq.spool_max_bytes` | to disk; then dropped, counted (`rtdash_agent_dlq_dropped_total`) and logged |
//! | archive chunks | `archive.max_queue_bytes` | `drop` (counted, logged) or `backpressure` (`503`) |
//!
//! An all-rejected batch answers `400` with the per-item list (nothing was taken; the client
//! must not believe its data arrived), a partly accepted one `202` (see
//! [`ingest::response`]).
//!
//! Crash (SIGKILL) semantics: events accepted since the last flush and batches held only in
//! memory are lost with the process, as any in-memory aggregation state is; what reached the
//! disk spool is published by the next start.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aggregate;
pub mod config;
pub mod definitions;
mod fs;
pub mod ingest;
pub mod memory;
pub mod metrics;
pub mod publish;
pub mod selfmetrics;
pub mod site;
pub mod state;

pub use config::AgentConfig;

use crate::aggregate::{FlushConfig, Flusher, InFlightRequests, Shards};
use crate::definitions::{Definitions, DefinitionsFileError};
use crate::ingest::Ingest;
use crate::memory::{AllocatorStats, MemoryBudget};
use crate::metrics::AgentMetrics;
use crate::publish::archive::Archive;
use crate::publish::deadletter::{DeadLetters, DlqSettings};
use crate::publish::pipeline::{self, PipelineConfig};
use crate::publish::seq::{now_micros, SeqState};
use crate::publish::spool::Spool;
use rtdash_runtime::admin::{self, Readiness};
use rtdash_runtime::nats::{self as rtnats, NatsError};
use rtdash_runtime::net::BindError;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why the agent could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The listener could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// NATS was unreachable or refused to set up the streams.
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// The local metric definitions file is unusable (a configuration error).
    #[error(transparent)]
    Definitions(#[from] DefinitionsFileError),
    /// The state directory could not be used.
    #[error("state directory {path}: {problem}")]
    State {
        /// The path involved.
        path: String,
        /// What went wrong.
        problem: String,
    },
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Serve(String),
    /// The archive's zstd context could not be created.
    #[error("archive compressor: {0}")]
    Compressor(std::io::Error),
}

impl AgentError {
    /// The process exit code for this error: 64 for configuration problems, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            AgentError::Definitions(_) => rtdash_runtime::EXIT_CONFIG,
            _ => rtdash_runtime::EXIT_FAILURE,
        }
    }

    fn state(path: &Path, err: impl std::fmt::Display) -> Self {
        AgentError::State {
            path: path.display().to_string(),
            problem: err.to_string(),
        }
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
        match self.task.await {
            Ok(result) => result,
            Err(err) => Err(AgentError::Serve(format!("agent task failed: {err}"))),
        }
    }
}

/// Binds `config.listen`, starts the agent and runs it until `shutdown` is cancelled and the
/// shutdown sequence is complete.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    let listener = rtdash_runtime::net::bind(&config.listen).await?;
    start(config, listener, shutdown).await?.wait().await
}

/// Starts the agent on an already bound `listener` (tests bind `127.0.0.1:0`). Returns once
/// the agent serves; the shutdown sequence runs when `shutdown` is cancelled.
pub async fn start(
    config: AgentConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<AgentHandle, AgentError> {
    let addr = listener
        .local_addr()
        .map_err(|err| AgentError::Serve(err.to_string()))?;
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
    let partitions = topology.partitions;
    let prefix = topology.prefix.as_str();

    let spool_dir = state_dir.join("spool");
    let (spool, leftovers) = Spool::open(
        &spool_dir,
        &agent_id,
        config.spool.memory_bytes,
        config.spool.max_bytes,
        config.spool.segment_bytes,
        metrics.clone(),
    )
    .map_err(|err| AgentError::state(&spool_dir, err))?;
    let spool = Arc::new(spool.with_subject_prefix(prefix));
    let mut seqs = SeqState::load(&state_dir, &agent_id, now_micros())
        .map_err(|err| AgentError::state(&state_dir, err))?;
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
            &agent_id,
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
    let shards = Arc::new(Shards::new(
        config.shard_count(),
        Definitions::initial_set(&file_definitions),
    ));
    let definitions = Definitions::new(file_definitions, Arc::clone(&shards), metrics.clone());
    let definitions_ready = definitions.ready_flag();
    // Every message must fit the server's max_payload (1 MiB by default), headers included.
    let max_payload = client.server_info().max_payload;
    let hard_max_batch_bytes = max_payload.saturating_sub(4096).max(64 * 1024);
    // A chunk is sealed once it reaches its size, so it may exceed it by one event.
    let archive_chunk_bytes = config
        .archive
        .effective_chunk_bytes()
        .min(hard_max_batch_bytes.saturating_sub(config.limits.max_event_bytes))
        .max(1024);
    let archive = if config.archive_events {
        let archive = Archive::new(
            &agent_id,
            archive_chunk_bytes,
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
    let in_flight = Arc::new(InFlightRequests::default());
    let shutting_down = Arc::new(AtomicBool::new(false));
    let stop_memory = CancellationToken::new();
    let allocator = AllocatorStats::start(stop_memory.clone());
    match &allocator {
        Some(stats) => tracing::info!(
            allocated = stats.allocated(),
            "memory budget counts the allocator's figure (jemalloc stats.allocated)"
        ),
        None => tracing::info!(
            "memory budget counts per-component estimates (jemalloc is not the global allocator)"
        ),
    }
    let ingest = Arc::new(Ingest {
        limits: config.limits.clone(),
        config: config.ingest.clone(),
        shards: Arc::clone(&shards),
        dlq: Arc::clone(&dlq),
        archive: archive.clone(),
        spool: Arc::clone(&spool),
        budget: MemoryBudget::new(
            config.memory_budget_bytes,
            Arc::clone(&shards),
            Arc::clone(&spool),
            Arc::clone(&dlq),
            archive.clone(),
        )
        .with_allocator(allocator),
        in_flight: Arc::clone(&in_flight),
        concurrency: Arc::new(Semaphore::new(config.ingest.max_concurrent_requests)),
        metrics: metrics.clone(),
        shutting_down: Arc::clone(&shutting_down),
        max_raw_bytes: config.dlq.max_raw_bytes,
    });
    metrics.memory_budget.set(config.memory_budget_bytes as f64);

    let readiness = Readiness::new();
    readiness.add_nats(client.clone());
    {
        let ready = Arc::clone(&definitions_ready);
        readiness.add("definitions", move || {
            if ready.load(Ordering::Acquire) {
                Ok(())
            } else {
                Err("metric definitions not loaded yet".to_owned())
            }
        });
        let stopping = Arc::clone(&shutting_down);
        readiness.add("shutdown", move || {
            if stopping.load(Ordering::Relaxed) {
                Err("shutting down".to_owned())
            } else {
                Ok(())
            }
        });
    }

    // Background tasks.
    let stop_flusher = CancellationToken::new();
    let stop_publishers = CancellationToken::new();
    let stop_background = CancellationToken::new();
    let definitions_task = tokio::spawn(definitions.watch(js.clone(), stop_background.clone()));
    let flusher = Flusher::new(
        FlushConfig {
            agent_id: agent_id.clone(),
            partitions,
            max_batch_bytes: (config.publish.max_batch_bytes as usize).min(hard_max_batch_bytes),
            hard_max_batch_bytes,
            heartbeat: Duration::from_millis(config.heartbeat_interval_ms),
            interval: Duration::from_millis(config.flush_interval_ms),
            persist_every: Duration::from_millis(config.spool.seq_persist_interval_ms),
        },
        Arc::clone(&shards),
        Arc::clone(&spool),
        seqs,
        Arc::clone(&in_flight),
        metrics.clone(),
    );
    let flusher_task = tokio::spawn(flusher.run(stop_flusher.clone()));
    let mut publish_js = async_nats::jetstream::new(client.clone());
    publish_js.set_timeout(Duration::from_millis(config.publish.ack_timeout_ms));
    let pipeline_config = |name: &'static str| PipelineConfig {
        max_in_flight: config.publish.max_in_flight,
        backoff_max: Duration::from_millis(config.publish.retry_backoff_max_ms),
        name,
        failures: metrics.publish_failures(name),
    };
    let mut publishers = vec![
        tokio::spawn(pipeline::run(
            Arc::clone(&spool),
            publish_js.clone(),
            client.clone(),
            Arc::clone(spool.wake()),
            pipeline_config("partials"),
            stop_publishers.clone(),
        )),
        tokio::spawn(pipeline::run(
            Arc::clone(&dlq),
            publish_js.clone(),
            client.clone(),
            Arc::clone(dlq.wake()),
            pipeline_config("dlq"),
            stop_publishers.clone(),
        )),
    ];
    if let Some(archive) = &archive {
        publishers.push(tokio::spawn(pipeline::run(
            Arc::clone(archive),
            publish_js.clone(),
            client.clone(),
            Arc::clone(archive.wake()),
            pipeline_config("archive"),
            stop_publishers.clone(),
        )));
    }
    let housekeeping_task = tokio::spawn(housekeeping(
        Arc::clone(&ingest),
        Duration::from_millis(config.flush_interval_ms),
        stop_background.clone(),
    ));
    {
        let shutdown = shutdown.clone();
        let shutting_down = Arc::clone(&shutting_down);
        tokio::spawn(async move {
            shutdown.cancelled().await;
            shutting_down.store(true, Ordering::Relaxed);
        });
    }

    let app = ingest::router(Arc::clone(&ingest)).merge(admin::routes(readiness, prometheus));
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    tracing::info!(
        %addr,
        agent_id = %agent_id,
        partitions,
        site = config.site.as_deref().unwrap_or("-"),
        subject_prefix = %topology.prefix,
        partials_stream = %topology.partials_stream,
        nats = %config.nats.url,
        state_dir = %state_dir.display(),
        "edge agent listening"
    );
    let task = tokio::spawn(async move {
        let server =
            axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let served = tokio::select! {
            result = server => result.map_err(|err| AgentError::Serve(err.to_string())),
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("requests still in progress after the grace period; closing");
                Ok(())
            }
        };
        tracing::info!("intake stopped; flushing");
        let deadline = tokio::time::Instant::now() + grace;
        stop_flusher.cancel();
        let flusher = flusher_task.await.ok();
        if let Some(archive) = &archive {
            archive.seal_all();
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (partials_done, dlq_done, archive_done) = tokio::join!(
            pipeline::wait_idle(spool.as_ref(), remaining),
            pipeline::wait_idle(dlq.as_ref(), remaining),
            async {
                match &archive {
                    Some(archive) => pipeline::wait_idle(archive.as_ref(), remaining).await,
                    None => true,
                }
            }
        );
        stop_publishers.cancel();
        for publisher in publishers {
            let _ = publisher.await;
        }
        match spool.persist_all() {
            Ok(0) => {}
            Ok(written) => tracing::warn!(
                batches = written,
                "unacknowledged partial batches written to the disk spool; the next start publishes them"
            ),
            Err(err) => tracing::error!(error = %err, "cannot write the spool to disk; unacknowledged batches are lost"),
        }
        match dlq.persist_all() {
            Ok(0) => {}
            Ok(written) => tracing::warn!(
                dead_letters = written,
                "unacknowledged dead letters written to the disk spool"
            ),
            Err(err) => tracing::error!(error = %err, "cannot write the dead-letter spool to disk"),
        }
        if let Some(archive) = &archive {
            archive.abandon();
        }
        if let Some(mut flusher) = flusher {
            flusher.persist_seqs();
        }
        stop_background.cancel();
        stop_memory.cancel();
        let _ = definitions_task.await;
        let _ = housekeeping_task.await;
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
        served
    });
    Ok(AgentHandle {
        addr,
        agent_id,
        partitions,
        task,
    })
}

/// Every flush interval: seal archive chunks and update the memory gauge.
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
