//! The worker of one owned partition: restore, consume, merge, emit, checkpoint, acknowledge.
//!
//! 1. Claim the checkpoint (fencing a deposed owner) and restore the state from it; every
//!    window in it is rewritten to QuestDB (upserts are idempotent), so rows the previous owner
//!    queued but never wrote are not lost.
//! 2. Position the durable pull consumer `rtdash-agg-p<p>` (filter `rtdash.partials.<p>`,
//!    `AckPolicy::All`) at the checkpointed stream sequence + 1. The consumer is deleted and
//!    recreated for that: an existing durable would redeliver its unacknowledged messages only
//!    after `ack_wait`, *after* newer ones, and acknowledging a newer one with `AckAll` would
//!    then acknowledge messages never processed.
//! 3. Process every delivered message in delivery order: a stream sequence at or below the
//!    last applied one is a redelivery and is skipped; a gap in the consumer sequence (a
//!    message lost between server and client) repositions the consumer after the last applied
//!    message. Undecodable messages go to the dead-letter stream (awaited), late data to the
//!    late stream (awaited).
//! 4. Window versions due (see [`crate::state::PartitionState::poll_outputs_within`]) go to
//!    live subscribers and, as far as its channel has room, to the QuestDB writer; the rest
//!    wait in the state (provisional versions behind finals). Only when a whole channel's
//!    worth waits does the worker wait for the writer (backpressure).
//! 5. Every `checkpoint.interval_ms`: capture the state (serialised on the worker, a few
//!    milliseconds), write it from a background task while consuming goes on (one checkpoint
//!    in flight at a time), and once it is saved acknowledge the last message applied before
//!    the capture (which acknowledges all before it). A crash anywhere in between replays the
//!    messages after the last saved checkpoint, which the checkpointed per-agent sequence
//!    numbers and stream sequence make idempotent.
//!
//! Losing the lease stops the worker at once (its state is dropped, nothing more is written);
//! a graceful stop emits due windows, checkpoints and acknowledges first.

use crate::checkpoint::{CheckpointReport, CheckpointStore};
use crate::config::Config;
use crate::error::Error;
use crate::lease::{Assignment, Fence};
use crate::metrics as m;
use crate::sink::late::SidePublisher;
use crate::sink::live::LiveSink;
use crate::sink::questdb::{ConfirmRouter, Ownership, Row, RowSender};
use crate::state::{decode_batch, Capture, Effect, PartitionState, Settings, StoreRoom};
use async_nats::jetstream::{self, consumer, kv, object_store};
use futures::{FutureExt, StreamExt};
use rtdash_runtime::trace_context::TraceParent;
use rtdash_shared::messages::PartitionStatus;
use rtdash_shared::names;
use rtdash_shared::time::now_millis;
use rtdash_shared::wire::{self, Format};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How far an agent's watermark and clock may run ahead of this aggregator's clock before they
/// are clamped (see `handle`).
const AGENT_CLOCK_AHEAD_TOLERANCE_MS: i64 = 5_000;

/// Messages processed per wake-up before outputs are emitted.
const DRAIN_LIMIT: usize = 2_000;
/// Interval of state ticks (close on silence, output throttle, eviction).
const TICK: Duration = Duration::from_millis(50);
/// Most traced batches remembered for the next emit span (its parent and links).
const MAX_TRACED: usize = 32;

/// What every partition worker of a process shares.
#[derive(Clone)]
pub struct WorkerContext {
    /// Configuration.
    pub config: Arc<Config>,
    /// This aggregator's id.
    pub instance: String,
    /// JetStream.
    pub js: jetstream::Context,
    /// Core NATS (status reports).
    pub client: async_nats::Client,
    /// KV `rtdash_checkpoints`.
    pub checkpoints: kv::Store,
    /// Object Store of checkpoint data.
    pub objects: object_store::ObjectStore,
    /// Rows to QuestDB.
    pub rows: RowSender,
    /// Live updates.
    pub live: LiveSink,
    /// Late and dead-letter streams.
    pub side: SidePublisher,
    /// Ownership epochs (row fencing).
    pub ownership: Arc<Ownership>,
    /// Write confirmations.
    pub confirmations: Arc<ConfirmRouter>,
    /// State machine settings.
    pub settings: Settings,
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// Runs the worker of `assignment` until it is stopped or loses the partition.
pub async fn run_partition(ctx: Arc<WorkerContext>, assignment: Assignment) -> Result<(), Error> {
    let span = tracing::info_span!(
        "partition",
        partition = assignment.partition,
        epoch = assignment.epoch
    );
    let partition = assignment.partition;
    let epoch = assignment.epoch;
    let result = async {
        let worker = Worker::start(Arc::clone(&ctx), assignment).await?;
        ctx.live.observer().partition_started(partition, epoch);
        worker.run().await
    }
    .instrument(span)
    .await;
    ctx.live.observer().partition_stopped(partition, epoch);
    ctx.ownership.clear(partition, epoch);
    ctx.confirmations.unregister(partition, epoch);
    metrics::gauge!(m::WINDOWS_IN_MEMORY, "partition" => partition.to_string()).set(0.0);
    result
}

/// A checkpoint written by a background task, so the partition keeps consuming meanwhile.
struct InFlight {
    join: tokio::task::JoinHandle<Saved>,
    /// The last message applied before the capture: acknowledged once it is saved.
    ack: Option<jetstream::Message>,
}

type Saved = (CheckpointStore, Capture, Result<CheckpointReport, Error>);

/// Resolves when the in-flight checkpoint (if any) is done; pends forever otherwise.
async fn checkpoint_done(
    in_flight: &mut Option<InFlight>,
) -> Result<Saved, tokio::task::JoinError> {
    match in_flight {
        Some(in_flight) => (&mut in_flight.join).await,
        None => std::future::pending().await,
    }
}

struct Worker {
    ctx: Arc<WorkerContext>,
    partition: u32,
    epoch: u64,
    stop: tokio_util::sync::CancellationToken,
    fence: Fence,
    /// `None` while a checkpoint is being written (the task holds it).
    store: Option<CheckpointStore>,
    /// The checkpoint being written in the background.
    in_flight: Option<InFlight>,
    /// Stream sequence covered by the last durable checkpoint.
    checkpointed_seq: u64,
    state: PartitionState,
    stream: jetstream::stream::Stream,
    consumer: consumer::PullConsumer,
    messages: consumer::pull::Stream,
    confirms: tokio::sync::mpsc::UnboundedReceiver<crate::sink::questdb::Confirmation>,
    /// Consumer sequence of the last delivery (gap detection).
    last_delivery: Option<u64>,
    /// The last applied message, acknowledged after the next checkpoint.
    to_ack: Option<jetstream::Message>,
    lag: u64,
    last_message_at: Instant,
    /// The state's counters as last reported to metrics.
    reported: crate::state::Counters,
    /// Apply spans of the traced batches since the last emit with output, oldest first (only
    /// while traces are exported): the next `core.emit` span continues the newest and links
    /// to the others.
    traced: Vec<TraceParent>,
}

impl Worker {
    async fn start(ctx: Arc<WorkerContext>, assignment: Assignment) -> Result<Self, Error> {
        let Assignment {
            partition,
            epoch,
            stop,
            fence,
        } = assignment;
        let started = Instant::now();
        let claim = CheckpointStore::claim(
            ctx.checkpoints.clone(),
            ctx.objects.clone(),
            partition,
            &ctx.instance,
            epoch,
            ctx.config.checkpoint.max_deltas,
            ctx.settings,
        );
        let (store, state) = tokio::select! {
            () = fence.lost() => return Err(Error::Fenced { partition }),
            claimed = claim => claimed?,
        };
        ctx.ownership.set(partition, epoch);
        let confirms = ctx.confirmations.register(partition, epoch);
        let stream = ctx
            .js
            .get_stream(names::PARTIALS_STREAM)
            .await
            .map_err(|e| Error::js(format!("stream {}", names::PARTIALS_STREAM), e))?;
        let consumer =
            position_consumer(&stream, partition, state.stream_seq() + 1, &ctx.config).await?;
        let messages = open_messages(&consumer, &ctx.config).await?;
        tracing::info!(
            stream_seq = state.stream_seq(),
            windows = state.window_count(),
            watermark = state.watermark(),
            restore_ms = started.elapsed().as_millis() as u64,
            "partition restored"
        );
        let reported = state.counters();
        let checkpointed_seq = store.stream_seq();
        Ok(Self {
            ctx,
            partition,
            epoch,
            stop,
            fence,
            store: Some(store),
            in_flight: None,
            checkpointed_seq,
            state,
            stream,
            consumer,
            messages,
            confirms,
            last_delivery: None,
            to_ack: None,
            lag: 0,
            last_message_at: Instant::now(),
            reported,
            traced: Vec::new(),
        })
    }

    async fn run(mut self) -> Result<(), Error> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut checkpoint = tokio::time::interval(Duration::from_millis(
            self.ctx.config.checkpoint.interval_ms,
        ));
        checkpoint.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        checkpoint.reset();
        let mut status = tokio::time::interval(Duration::from_millis(
            self.ctx.config.live.status_interval_ms,
        ));
        status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.emit().await?;
        // `biased`: timers come before deliveries, so a busy partition still checkpoints,
        // acknowledges, closes and reports on time.
        loop {
            tokio::select! {
                biased;
                () = self.fence.lost() => return Err(Error::Fenced { partition: self.partition }),
                () = self.stop.cancelled() => break,
                Some(confirmation) = self.confirms.recv() => {
                    for (window, version) in confirmation {
                        self.state.confirm_stored(window, version);
                    }
                }
                _ = tick.tick() => {
                    let silent = self.last_message_at.elapsed().as_millis() as i64;
                    let effects = self.state.tick(silent);
                    self.handle_effects(effects).await?;
                    self.emit().await?;
                }
                saved = checkpoint_done(&mut self.in_flight) => self.checkpoint_finished(saved).await?,
                _ = checkpoint.tick() => self.start_checkpoint()?,
                _ = status.tick() => self.report_status().await,
                next = self.messages.next() => {
                    self.on_delivery(next).await?;
                    // Take whatever else is ready before emitting.
                    let mut drained = 1;
                    while drained < DRAIN_LIMIT {
                        match self.messages.next().now_or_never() {
                            Some(next) => {
                                self.on_delivery(next).await?;
                                drained += 1;
                            }
                            None => break,
                        }
                    }
                    self.emit().await?;
                }
            }
        }
        // Graceful stop: what is due goes out, then the final checkpoint and ack.
        self.emit().await?;
        // Finish the checkpoint in flight, then write the last one (a few attempts: the lease
        // manager bounds the whole stop anyway).
        for _ in 0..4 {
            if self.in_flight.is_none() && !self.state.has_unsaved_changes() {
                break;
            }
            if self.in_flight.is_none() {
                self.start_checkpoint()?;
            }
            if self.in_flight.is_some() {
                let saved = checkpoint_done(&mut self.in_flight).await;
                self.checkpoint_finished(saved).await?;
            }
        }
        tracing::info!(stream_seq = self.state.stream_seq(), "partition stopped");
        Ok(())
    }

    async fn on_delivery(
        &mut self,
        next: Option<Result<jetstream::Message, consumer::pull::MessagesError>>,
    ) -> Result<(), Error> {
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                tracing::warn!(%err, "consumer error; repositioning");
                return self.reposition().await;
            }
            None => {
                tracing::warn!("consumer stream ended; repositioning");
                return self.reposition().await;
            }
        };
        let (stream_seq, delivery, pending) = match message.info() {
            Ok(info) => (info.stream_sequence, info.consumer_sequence, info.pending),
            Err(err) => {
                tracing::warn!(%err, "message without JetStream metadata; ignored");
                return Ok(());
            }
        };
        if let Some(previous) = self.last_delivery {
            if delivery != previous + 1 {
                tracing::warn!(
                    previous,
                    delivery,
                    "gap in deliveries; repositioning after the last applied message"
                );
                return self.reposition().await;
            }
        }
        self.last_delivery = Some(delivery);
        self.lag = pending;
        self.last_message_at = Instant::now();
        if stream_seq <= self.state.stream_seq() {
            // A redelivery of something applied. Already checkpointed: acknowledge it again
            // (its first acknowledgement was lost), or it comes back every `ack_wait`.
            if stream_seq <= self.checkpointed_seq {
                let _ = message.ack().await;
            }
            return Ok(());
        }
        // While traces are exported, a batch carrying a `traceparent` is applied in a
        // `core.apply_batch` span continuing the edge agent's flush span.
        let span = match TraceParent::from_headers(message.headers.as_ref()) {
            Some(parent) => {
                let span =
                    tracing::info_span!("core.apply_batch", partition = self.partition, stream_seq);
                parent.set_parent_of(&span);
                span
            }
            None => tracing::Span::none(),
        };
        match decode_batch(&message.payload) {
            Ok(mut batch) => {
                // An agent whose clock runs ahead must not close windows early: its watermark
                // and clock count for no more than this aggregator's clock plus a tolerance.
                let limit = now_millis().saturating_add(AGENT_CLOCK_AHEAD_TOLERANCE_MS);
                if batch.watermark > limit || batch.created_at > limit {
                    m::agent_clock_ahead();
                    batch.watermark = batch.watermark.min(limit);
                    batch.created_at = batch.created_at.min(limit);
                }
                let effects = span.in_scope(|| self.state.apply_borrowed(batch, stream_seq));
                self.handle_effects(effects)
                    .instrument(span.clone())
                    .await?;
                if let Some(trace) = TraceParent::of(&span) {
                    if self.traced.len() >= MAX_TRACED {
                        self.traced.remove(0);
                    }
                    self.traced.push(trace);
                }
            }
            Err(err) => {
                tracing::warn!(stream_seq, %err, "undecodable message; sending it to the dead-letter stream");
                self.ctx
                    .side
                    .undecodable(
                        self.partition,
                        stream_seq,
                        &message.payload,
                        &err.to_string(),
                        self.fence.token(),
                    )
                    .await
                    .map_err(|e| self.fenced_or(e))?;
                metrics::counter!(m::DEAD_LETTERS).increment(1);
                self.state.skip(stream_seq);
            }
        }
        self.to_ack = Some(message);
        Ok(())
    }

    fn fenced_or(&self, err: Error) -> Error {
        match err {
            Error::Cancelled => Error::Fenced {
                partition: self.partition,
            },
            other => other,
        }
    }

    async fn handle_effects(&mut self, effects: Vec<Effect>) -> Result<(), Error> {
        let mut late_index = 0;
        let mut invalid_index = 0;
        for effect in effects {
            match effect {
                Effect::Late(mut record) => {
                    record.received_at = now_millis();
                    tracing::debug!(
                        agent = %record.agent_id,
                        seq = record.seq,
                        window_start = record.entry.window_start,
                        "data beyond the correction horizon"
                    );
                    self.ctx
                        .side
                        .late(self.partition, &record, late_index, self.fence.token())
                        .await
                        .map_err(|e| self.fenced_or(e))?;
                    late_index += 1;
                }
                Effect::Invalid {
                    agent_id,
                    seq,
                    entry,
                    reason,
                } => {
                    tracing::warn!(agent = %agent_id, seq, reason, "invalid partial entry");
                    self.ctx
                        .side
                        .invalid_entry(
                            self.partition,
                            &agent_id,
                            seq,
                            invalid_index,
                            &entry,
                            reason,
                            self.fence.token(),
                        )
                        .await
                        .map_err(|e| self.fenced_or(e))?;
                    invalid_index += 1;
                }
                Effect::Duplicate { .. } | Effect::Closed(_) | Effect::Corrected { .. } => {}
            }
        }
        let counters = self.state.counters();
        m::record_counters(&self.reported, &counters);
        self.reported = counters;
        Ok(())
    }

    /// Sends due window versions to QuestDB and live subscribers.
    async fn emit(&mut self) -> Result<(), Error> {
        // Store outputs take the room the writer's channel has, reserved up front so that no
        // send waits; what does not fit waits in the state, so a slow QuestDB holds up neither
        // consuming nor live updates. Only once a whole channel's worth waits here does the
        // worker wait for the writer (backpressure).
        let ctx = Arc::clone(&self.ctx);
        let room = ctx.rows.room();
        let mut permits = ctx.rows.try_reserve(room.rows);
        let room = StoreRoom {
            rows: if self.state.store_backlog() >= ctx.rows.capacity() {
                usize::MAX
            } else {
                permits.len()
            },
            provisional: room.provisional,
        };
        let outputs = self.state.poll_outputs_within(now_millis(), room);
        if outputs.is_empty() {
            return Ok(());
        }
        // The span lives until the versions are handed over; its context travels with them
        // (the QuestDB write span and the live update's `traceparent` continue it).
        let span = self.emit_span(outputs.len());
        let trace = TraceParent::of(&span);
        // Live versions first, grouped by subject (one message per subject, not per window).
        ctx.live
            .publish_all(
                self.partition,
                outputs.iter().filter(|output| output.live),
                trace.as_ref(),
            )
            .await;
        for output in outputs {
            if output.store {
                let row = Row {
                    partition: self.partition,
                    epoch: self.epoch,
                    confirm: output.is_final,
                    output,
                    trace: trace.clone(),
                };
                let Some(row) = permits.send(row) else {
                    continue;
                };
                tokio::select! {
                    biased;
                    () = self.fence.lost() => return Err(Error::Fenced { partition: self.partition }),
                    sent = ctx.rows.send(row) => sent?,
                }
            }
        }
        Ok(())
    }

    /// A `core.emit` span continuing the newest traced batch applied since the last emit and
    /// linked to the others; `Span::none()` when there is none.
    fn emit_span(&mut self, windows: usize) -> tracing::Span {
        let Some(parent) = self.traced.pop() else {
            return tracing::Span::none();
        };
        let span = tracing::info_span!("core.emit", partition = self.partition, windows);
        parent.set_parent_of(&span);
        for other in self.traced.drain(..) {
            other.link_from(&span);
        }
        span
    }

    /// Captures the state and writes it in the background (unless a checkpoint is already
    /// being written or nothing changed).
    fn start_checkpoint(&mut self) -> Result<(), Error> {
        if self.in_flight.is_some() || !self.state.has_unsaved_changes() {
            return Ok(());
        }
        if !self.fence.is_valid() {
            return Err(Error::Fenced {
                partition: self.partition,
            });
        }
        let Some(mut store) = self.store.take() else {
            return Ok(());
        };
        let capture = self.state.capture(store.wants_full());
        let ack = self.to_ack.take();
        let join = tokio::spawn(async move {
            let result = store.save(&capture).await;
            (store, capture, result)
        });
        self.in_flight = Some(InFlight { join, ack });
        Ok(())
    }

    async fn checkpoint_finished(
        &mut self,
        saved: Result<Saved, tokio::task::JoinError>,
    ) -> Result<(), Error> {
        let ack = self.in_flight.take().and_then(|in_flight| in_flight.ack);
        let (store, capture, result) = saved.map_err(|err| Error::CorruptCheckpoint {
            partition: self.partition,
            problem: format!("checkpoint task failed: {err}"),
        })?;
        self.store = Some(store);
        match result {
            Ok(report) => {
                let seq = capture.meta.stream_seq;
                self.state.capture_saved(capture);
                self.checkpointed_seq = seq;
                let bytes = report.data_bytes + report.manifest_bytes;
                metrics::histogram!(m::CHECKPOINT_SECONDS).record(report.duration.as_secs_f64());
                metrics::histogram!(m::CHECKPOINT_BYTES).record(bytes as f64);
                tracing::debug!(
                    bytes,
                    windows = report.windows,
                    full = report.full,
                    ms = report.duration.as_millis() as u64,
                    stream_seq = seq,
                    "checkpoint"
                );
                if let Some(message) = ack {
                    if let Err(err) = message.ack().await {
                        tracing::debug!(%err, "ack not sent (it is repeated after the next checkpoint)");
                    }
                }
                // Evictions may have waited for this checkpoint.
                let counters = self.state.counters();
                m::record_counters(&self.reported, &counters);
                self.reported = counters;
                Ok(())
            }
            Err(Error::Fenced { partition }) => Err(Error::Fenced { partition }),
            Err(err) => {
                self.state.capture_failed(capture);
                if self.to_ack.is_none() {
                    self.to_ack = ack;
                }
                metrics::counter!(m::CHECKPOINT_ERRORS).increment(1);
                tracing::warn!(%err, "checkpoint failed; retrying at the next interval");
                Ok(())
            }
        }
    }

    async fn report_status(&mut self) {
        let label = self.partition.to_string();
        if self.last_message_at.elapsed()
            > Duration::from_millis(self.ctx.config.live.status_interval_ms)
        {
            if let Ok(info) = self.consumer.info().await {
                self.lag = info.num_pending;
            }
        }
        metrics::gauge!(m::CONSUMER_LAG, "partition" => label.clone()).set(self.lag as f64);
        metrics::gauge!(m::WINDOWS_IN_MEMORY, "partition" => label.clone())
            .set(self.state.window_count() as f64);
        if let Some(watermark) = self.state.watermark() {
            metrics::gauge!(m::WATERMARK, "partition" => label).set(watermark as f64);
        }
        let status = PartitionStatus {
            partition: self.partition,
            owner: self.ctx.instance.clone(),
            watermark: self.state.watermark(),
            lag_messages: self.lag,
            reported_at: now_millis(),
            closed_through: self.state.watermark().map(|watermark| {
                watermark.saturating_sub(self.ctx.config.windows.allowed_lateness_ms)
            }),
        };
        if let Ok(payload) = wire::encode(&status, Format::Json) {
            let _ = self
                .ctx
                .client
                .publish(names::status_subject(self.partition), payload.into())
                .await;
        }
    }

    /// Recreates the consumer after the last applied message.
    async fn reposition(&mut self) -> Result<(), Error> {
        metrics::counter!(m::CONSUMER_RESETS).increment(1);
        let mut backoff = Duration::from_millis(200);
        loop {
            if !self.fence.is_valid() {
                return Err(Error::Fenced {
                    partition: self.partition,
                });
            }
            let attempt = async {
                let consumer = position_consumer(
                    &self.stream,
                    self.partition,
                    self.state.stream_seq() + 1,
                    &self.ctx.config,
                )
                .await?;
                let messages = open_messages(&consumer, &self.ctx.config).await?;
                Ok::<_, Error>((consumer, messages))
            };
            match attempt.await {
                Ok((consumer, messages)) => {
                    self.consumer = consumer;
                    self.messages = messages;
                    self.last_delivery = None;
                    // Acknowledgements on the old consumer are moot.
                    self.to_ack = None;
                    return Ok(());
                }
                Err(err) => tracing::warn!(%err, "cannot reposition the consumer; retrying"),
            }
            tokio::select! {
                () = self.fence.lost() => return Err(Error::Fenced { partition: self.partition }),
                () = self.stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// Deletes and recreates the partition's durable consumer so it delivers from `start_seq`.
pub async fn position_consumer(
    stream: &jetstream::stream::Stream,
    partition: u32,
    start_seq: u64,
    config: &Config,
) -> Result<consumer::PullConsumer, Error> {
    let name = names::partition_consumer(partition);
    let _ = stream.delete_consumer(&name).await;
    let deliver_policy = if start_seq <= 1 {
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence {
            start_sequence: start_seq,
        }
    };
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.clone()),
            description: Some(format!(
                "rtdash core aggregator, partition {partition} (positioned by its owner)"
            )),
            filter_subject: names::partials_subject(partition),
            ack_policy: consumer::AckPolicy::All,
            ack_wait: Duration::from_millis(config.consumer.ack_wait_ms),
            max_ack_pending: config.consumer.max_ack_pending,
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::js(format!("consumer {name}"), e))
}

async fn open_messages(
    consumer: &consumer::PullConsumer,
    config: &Config,
) -> Result<consumer::pull::Stream, Error> {
    consumer
        .stream()
        .max_messages_per_batch(config.consumer.pull_batch)
        .max_bytes_per_batch(config.consumer.pull_max_bytes)
        .expires(Duration::from_secs(10))
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| Error::js("consumer messages", e))
}
