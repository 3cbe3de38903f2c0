//! Applying what the consumer delivers: redeliveries and delivery gaps, the agent-clock clamp,
//! decoding and applying each batch, and publishing what the state routes to the late and
//! dead-letter streams (awaited before the message can be acknowledged).

use super::{Step, Worker};
use crate::error::Error;
use crate::lease::Stopped;
use crate::sink::late::Sent;
use crate::state::{decode_batch, Effect};
use async_nats::jetstream::{self, consumer};
use rtdash_runtime::trace_context::TraceParent;
use rtdash_shared::time::now_millis;
use std::ops::ControlFlow::{Break, Continue};
use std::time::Instant;
use tracing::Instrument;

/// How far an agent's watermark and clock may run ahead of this aggregator's clock before they
/// are clamped (see `on_delivery`).
const AGENT_CLOCK_AHEAD_TOLERANCE_MS: i64 = 5_000;

/// Most traced batches remembered for the next emit span (its parent and links).
const MAX_TRACED: usize = 32;

/// A side-stream publish cut short by the fence token: the partition is lost.
fn step(sent: Sent) -> Step {
    match sent {
        Sent::Stored => Continue(()),
        Sent::Stopped => Break(Stopped::Fenced),
    }
}

impl Worker {
    /// Applies one delivery (see the module docs).
    pub(super) async fn on_delivery(
        &mut self,
        next: Option<Result<jetstream::Message, consumer::pull::MessagesError>>,
    ) -> Result<Step, Error> {
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                tracing::warn!(%err, "consumer error; repositioning");
                return Ok(self.reposition().await);
            }
            None => {
                tracing::warn!("consumer stream ended; repositioning");
                return Ok(self.reposition().await);
            }
        };
        let (stream_seq, delivery, pending) = match message.info() {
            Ok(info) => (info.stream_sequence, info.consumer_sequence, info.pending),
            Err(err) => {
                tracing::warn!(%err, "message without JetStream metadata; ignored");
                return Ok(Continue(()));
            }
        };
        if let Some(previous) = self.last_delivery {
            if delivery != previous + 1 {
                tracing::warn!(
                    previous,
                    delivery,
                    "gap in deliveries; repositioning after the last applied message"
                );
                return Ok(self.reposition().await);
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
            return Ok(Continue(()));
        }
        // While traces are exported, a batch carrying a `traceparent` is applied in a
        // `core.apply_batch` (consumer) span continuing the edge agent's flush span.
        let span = match TraceParent::from_headers(message.headers.as_ref()) {
            Some(parent) => {
                let span = tracing::info_span!(
                    "core.apply_batch",
                    otel.kind = "consumer",
                    messaging.system = "nats",
                    messaging.operation.type = "process",
                    messaging.destination.name = message.subject.as_str(),
                    partition = self.partition,
                    stream_seq
                );
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
                    self.metrics.agent_clock_ahead.increment(1);
                    batch.watermark = batch.watermark.min(limit);
                    batch.created_at = batch.created_at.min(limit);
                }
                let effects = span.in_scope(|| self.state.apply_borrowed(batch, stream_seq));
                let handled = self
                    .handle_effects(effects)
                    .instrument(span.clone())
                    .await?;
                if let Break(stopped) = handled {
                    return Ok(Break(stopped));
                }
                if let Some(trace) = TraceParent::of(&span) {
                    if self.traced.len() >= MAX_TRACED {
                        self.traced.remove(0);
                    }
                    self.traced.push(trace);
                }
            }
            Err(err) => {
                tracing::warn!(stream_seq, %err, "undecodable message; sending it to the dead-letter stream");
                let sent = self
                    .ctx
                    .side
                    .undecodable(
                        self.partition,
                        stream_seq,
                        &message.payload,
                        &err.to_string(),
                        self.fence.token(),
                    )
                    .await?;
                if let Break(stopped) = step(sent) {
                    return Ok(Break(stopped));
                }
                self.metrics.dead_letters.increment(1);
                self.state.skip(stream_seq);
            }
        }
        self.to_ack = Some(message);
        Ok(Continue(()))
    }

    /// Publishes what `effects` route to the late and dead-letter streams (awaited), and
    /// reports the state's counters.
    pub(super) async fn handle_effects(&mut self, effects: Vec<Effect>) -> Result<Step, Error> {
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
                    let sent = self
                        .ctx
                        .side
                        .late(self.partition, &record, late_index, self.fence.token())
                        .await?;
                    if let Break(stopped) = step(sent) {
                        return Ok(Break(stopped));
                    }
                    late_index += 1;
                }
                Effect::Invalid {
                    agent_id,
                    seq,
                    entry,
                    reason,
                } => {
                    tracing::warn!(agent = %agent_id, seq, reason, "invalid partial entry");
                    let sent = self
                        .ctx
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
                        .await?;
                    if let Break(stopped) = step(sent) {
                        return Ok(Break(stopped));
                    }
                    invalid_index += 1;
                }
                Effect::Duplicate { .. } | Effect::Closed(_) | Effect::Corrected { .. } => {}
            }
        }
        let counters = self.state.counters();
        self.metrics.record_counters(&self.reported, &counters);
        self.reported = counters;
        Ok(Continue(()))
    }
}
