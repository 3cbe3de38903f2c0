//! Sending due window versions to live subscribers and to the QuestDB writer, and the
//! partition's status report.

use super::{Step, Worker};
use crate::error::Error;
use crate::lease::Stopped;
use crate::sink::questdb::Row;
use crate::state::StoreRoom;
use rtdash_runtime::trace_context::TraceParent;
use rtdash_shared::messages::PartitionStatus;
use rtdash_shared::names;
use rtdash_shared::time::now_millis;
use rtdash_shared::wire::{self, Format};
use std::ops::ControlFlow::{Break, Continue};
use std::sync::Arc;
use std::time::Duration;

impl Worker {
    /// Sends due window versions to QuestDB and live subscribers.
    pub(super) async fn emit(&mut self) -> Result<Step, Error> {
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
            return Ok(Continue(()));
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
                &span,
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
                    () = self.fence.lost() => return Ok(Break(Stopped::Fenced)),
                    sent = ctx.rows.send(row) => sent?,
                }
            }
        }
        Ok(Continue(()))
    }

    /// A `core.emit` span continuing the newest traced batch applied since the last emit and
    /// linked to the others; `Span::none()` when there is none. A producer span: it covers the
    /// live publishes (and hands the rows to the writer, whose client span continues it).
    fn emit_span(&mut self, windows: usize) -> tracing::Span {
        let Some(parent) = self.traced.pop() else {
            return tracing::Span::none();
        };
        let span = tracing::info_span!(
            "core.emit",
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.operation.type = "send",
            messaging.destination.name = tracing::field::Empty,
            messaging.batch.message_count = tracing::field::Empty,
            partition = self.partition,
            windows
        );
        parent.set_parent_of(&span);
        for other in self.traced.drain(..) {
            other.link_from(&span);
        }
        span
    }

    pub(super) async fn report_status(&mut self) {
        if self.last_message_at.elapsed()
            > Duration::from_millis(self.ctx.config.live.status_interval_ms)
        {
            if let Ok(info) = self.consumer.info().await {
                self.lag = info.num_pending;
            }
        }
        self.metrics.consumer_lag.set(self.lag as f64);
        self.metrics
            .windows_in_memory
            .set(self.state.window_count() as f64);
        self.metrics
            .tier_windows_in_memory
            .set(self.state.tier_window_count() as f64);
        if let Some(watermark) = self.state.watermark() {
            self.metrics.set_watermark(watermark);
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
}
