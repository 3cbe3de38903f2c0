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
//! [`protocols`] (Segment, OTLP logs, StatsD beside `POST /v1/events`; idempotent retries),
//! [`aggregate`] (shards and the flusher), [`publish`] (the outboxes: partials spool, dead
//! letters, archive; sequence numbers; the pipelined publisher), [`definitions`] (metric
//! definitions from a file and the config bucket), [`schema`] (schema discovery: event types and properties seen per tenant), [`site`] (subjects and streams: direct or
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
//!   [`site`]) and its schema discovery records go to the hub's bucket.
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
//!   whatever is unacknowledged to the disk spools, persist the sequence numbers, return
//!   (the sequence is written out in `agent.rs`, the composition root).
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

mod agent;
pub mod aggregate;
pub mod config;
pub mod definitions;
mod error;
mod fs;
pub mod ingest;
pub mod memory;
pub mod metrics;
pub mod protocols;
pub mod publish;
pub mod schema;
pub mod selfmetrics;
pub mod site;
pub mod state;
pub mod tenant_quota;

pub use agent::AgentHandle;
pub use config::AgentConfig;
pub use error::AgentError;

use crate::agent::Agent;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
    let addr = listener.local_addr().map_err(AgentError::Serve)?;
    let agent = Agent::build(config).await?;
    Ok(agent.spawn(listener, addr, shutdown))
}
