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
//! a graceful stop emits due windows, checkpoints and acknowledges first. Either way the worker
//! returns how it stopped ([`Stopped`]); only failures are errors.

mod checkpointing;
mod deliveries;
mod emit;
mod position;

use crate::checkpoint::{CheckpointStore, Saved};
use crate::config::Config;
use crate::error::Error;
use crate::lease::{Assignment, Fence, Stopped};
use crate::metrics as m;
use crate::sink::late::SidePublisher;
use crate::sink::live::LiveSink;
use crate::sink::questdb::{ConfirmRouter, Ownership, RowSender};
use crate::state::{Capture, PartitionState, Settings};
use async_nats::jetstream::{self, consumer, kv, object_store};
use futures::{FutureExt, StreamExt};
use rtdash_runtime::trace_context::TraceParent;
use rtdash_shared::names;
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// What one step of the worker leads to: go on, or stop as the outcome says (the partition
/// was lost). Failures are the `Err` around it.
type Step = ControlFlow<Stopped>;

/// Messages processed per wake-up before outputs are emitted.
const DRAIN_LIMIT: usize = 2_000;
/// Interval of state ticks (close on silence, output throttle, eviction).
const TICK: Duration = Duration::from_millis(50);

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
pub async fn run_partition(
    ctx: Arc<WorkerContext>,
    assignment: Assignment,
) -> Result<Stopped, Error> {
    let span = tracing::info_span!(
        "partition",
        partition = assignment.partition,
        epoch = assignment.epoch
    );
    let partition = assignment.partition;
    let epoch = assignment.epoch;
    let metrics = m::PartitionMetrics::new(partition);
    let result = async {
        let Some(worker) = Worker::start(Arc::clone(&ctx), assignment, metrics.clone()).await?
        else {
            return Ok(Stopped::Fenced);
        };
        ctx.live.observer().partition_started(partition, epoch);
        worker.run().await
    }
    .instrument(span)
    .await;
    ctx.live.observer().partition_stopped(partition, epoch);
    ctx.ownership.clear(partition, epoch);
    ctx.confirmations.unregister(partition, epoch);
    metrics.windows_in_memory.set(0.0);
    metrics.tier_windows_in_memory.set(0.0);
    result
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
    metrics: m::PartitionMetrics,
    /// Apply spans of the traced batches since the last emit with output, oldest first (only
    /// while traces are exported): the next `core.emit` span continues the newest and links
    /// to the others.
    traced: Vec<TraceParent>,
}

impl Worker {
    /// Claims the checkpoint and restores the state from it, then positions the consumer;
    /// `None` when the partition is lost meanwhile.
    async fn start(
        ctx: Arc<WorkerContext>,
        assignment: Assignment,
        metrics: m::PartitionMetrics,
    ) -> Result<Option<Self>, Error> {
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
            () = fence.lost() => return Ok(None),
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
        Ok(Some(Self {
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
            metrics,
            traced: Vec::new(),
        }))
    }

    async fn run(mut self) -> Result<Stopped, Error> {
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
        if let Break(stopped) = self.emit().await? {
            return Ok(stopped);
        }
        // `biased`: timers come before deliveries, so a busy partition still checkpoints,
        // acknowledges, closes and reports on time.
        loop {
            let step = tokio::select! {
                biased;
                () = self.fence.lost() => Break(Stopped::Fenced),
                () = self.stop.cancelled() => break,
                Some(confirmation) = self.confirms.recv() => {
                    for (window, version) in confirmation {
                        self.state.confirm_stored(window, version);
                    }
                    Continue(())
                }
                _ = tick.tick() => self.on_tick().await?,
                saved = checkpoint_done(&mut self.in_flight) => self.checkpoint_finished(saved).await?,
                _ = checkpoint.tick() => self.start_checkpoint(),
                _ = status.tick() => {
                    self.report_status().await;
                    Continue(())
                }
                next = self.messages.next() => self.on_deliveries(next).await?,
            };
            if let Break(stopped) = step {
                return Ok(stopped);
            }
        }
        // Graceful stop: what is due goes out, then the final checkpoint and ack.
        if let Break(stopped) = self.emit().await? {
            return Ok(stopped);
        }
        // Finish the checkpoint in flight, then write the last one (a few attempts: the lease
        // manager bounds the whole stop anyway).
        for _ in 0..4 {
            if self.in_flight.is_none() && !self.state.has_unsaved_changes() {
                break;
            }
            if self.in_flight.is_none() {
                if let Break(stopped) = self.start_checkpoint() {
                    return Ok(stopped);
                }
            }
            if self.in_flight.is_some() {
                let saved = checkpoint_done(&mut self.in_flight).await;
                if let Break(stopped) = self.checkpoint_finished(saved).await? {
                    return Ok(stopped);
                }
            }
        }
        tracing::info!(stream_seq = self.state.stream_seq(), "partition stopped");
        Ok(Stopped::Cancelled)
    }

    /// A state tick: what it closes or evicts, then the due outputs.
    async fn on_tick(&mut self) -> Result<Step, Error> {
        let silent = self.last_message_at.elapsed().as_millis() as i64;
        let effects = self.state.tick(silent);
        if let Break(stopped) = self.handle_effects(effects).await? {
            return Ok(Break(stopped));
        }
        self.emit().await
    }

    /// A delivery and whatever else is ready (up to [`DRAIN_LIMIT`]), then the due outputs.
    async fn on_deliveries(
        &mut self,
        next: Option<Result<jetstream::Message, consumer::pull::MessagesError>>,
    ) -> Result<Step, Error> {
        if let Break(stopped) = self.on_delivery(next).await? {
            return Ok(Break(stopped));
        }
        // Take whatever else is ready before emitting.
        let mut drained = 1;
        while drained < DRAIN_LIMIT {
            match self.messages.next().now_or_never() {
                Some(next) => {
                    if let Break(stopped) = self.on_delivery(next).await? {
                        return Ok(Break(stopped));
                    }
                    drained += 1;
                }
                None => break,
            }
        }
        self.emit().await
    }
}

/// A checkpoint written by a background task, so the partition keeps consuming meanwhile.
struct InFlight {
    join: tokio::task::JoinHandle<Finished>,
    /// The last message applied before the capture: acknowledged once it is saved.
    ack: Option<jetstream::Message>,
}

/// The store back from the task, the capture it saved, and how saving it went.
type Finished = (CheckpointStore, Capture, Result<Saved, Error>);

/// Resolves when the in-flight checkpoint (if any) is done; pends forever otherwise.
async fn checkpoint_done(
    in_flight: &mut Option<InFlight>,
) -> Result<Finished, tokio::task::JoinError> {
    match in_flight {
        Some(in_flight) => (&mut in_flight.join).await,
        None => std::future::pending().await,
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
