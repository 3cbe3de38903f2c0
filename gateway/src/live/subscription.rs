//! A topic's upstream subscription: reads the live subject of its (tenant, metric), decodes
//! the window versions, and applies them to the topic in batches (one `gateway.live_fanout`
//! span per batch when traces are exported).

use super::topic::Topic;
use super::update::{decode_live, LiveWindow};
use crate::metrics::FanoutMetrics;
use futures::{FutureExt, StreamExt};
use rtdash_runtime::trace_context::TraceParent;
use std::sync::Weak;
use tokio_util::sync::CancellationToken;

/// Most updates drained from the subscription and applied as one batch.
const MAX_BATCH: usize = 4096;
/// Most traces one fan-out span links to.
const MAX_TRACES: usize = 32;

/// Reads `subscriber` (on `subject`) until `cancel` (the topic was dropped, or shutdown),
/// the subscription ends or the topic is gone; then unsubscribes.
pub(super) async fn run(
    mut subscriber: async_nats::Subscriber,
    subject: String,
    topic: Weak<Topic>,
    cancel: CancellationToken,
    metrics: FanoutMetrics,
) {
    loop {
        let first = tokio::select! {
            () = cancel.cancelled() => break,
            message = subscriber.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        let mut batch = Vec::new();
        let mut traces: Vec<TraceParent> = Vec::new();
        let mut messages = 1;
        decode_into(&first.payload, &mut batch, &metrics);
        note_trace(&first, &mut traces);
        while batch.len() < MAX_BATCH {
            match subscriber.next().now_or_never() {
                Some(Some(message)) => {
                    messages += 1;
                    decode_into(&message.payload, &mut batch, &metrics);
                    note_trace(&message, &mut traces);
                }
                _ => break,
            }
        }
        metrics.updates_received.increment(batch.len() as u64);
        let Some(topic) = topic.upgrade() else {
            break;
        };
        let span = fanout_span(&topic, &subject, &traces, messages, batch.len());
        span.in_scope(|| topic.apply(batch));
    }
    let _ = subscriber.unsubscribe().await;
}

/// Keeps the trace context of a live update (only while traces are exported).
fn note_trace(message: &async_nats::Message, traces: &mut Vec<TraceParent>) {
    if let Some(trace) = TraceParent::from_headers(message.headers.as_ref()) {
        if traces.len() < MAX_TRACES && !traces.contains(&trace) {
            traces.push(trace);
        }
    }
}

/// The span in which a batch of live updates is applied and handed to the SSE streams
/// (`gateway.live_fanout`, a consumer span of the live subject): a child of the first traced
/// update's emit span in the aggregator, linked to the others; `Span::none()` when no update
/// is traced.
fn fanout_span(
    topic: &Topic,
    subject: &str,
    traces: &[TraceParent],
    messages: usize,
    updates: usize,
) -> tracing::Span {
    let Some((parent, others)) = traces.split_first() else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!(
        parent: None,
        "gateway.live_fanout",
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = %subject,
        messaging.operation.type = "process",
        messaging.batch.message_count = messages,
        tenant = %topic.tenant,
        metric = %topic.metric,
        updates
    );
    parent.set_parent_of(&span);
    for other in others {
        other.link_from(&span);
    }
    span
}

/// Appends the window versions of one live message to `batch`: a single version or a batch
/// of them (what the core aggregator publishes when a subject has several versions).
fn decode_into(payload: &[u8], batch: &mut Vec<LiveWindow>, metrics: &FanoutMetrics) {
    if let Err(err) = decode_live(payload, batch) {
        metrics.decode_errors.increment(1);
        tracing::debug!(error = %err, "undecodable live update");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::update;

    #[test]
    fn live_messages_decode_single_and_batched() {
        use rtdash_shared::messages::WindowUpdates;
        use rtdash_shared::wire::{encode, Format};
        let metrics = FanoutMetrics::noop();
        let mut batch = Vec::new();
        let single = encode(&update(0, &[("region", "eu")], 1, 10), Format::Json).unwrap();
        decode_into(&single, &mut batch, &metrics);
        let many = WindowUpdates(vec![
            update(60_000, &[("region", "eu")], 2, 20),
            update(60_000, &[("region", "us")], 3, 20),
        ]);
        decode_into(&encode(&many, Format::Json).unwrap(), &mut batch, &metrics);
        decode_into(b"not an envelope", &mut batch, &metrics);
        let counts: Vec<u64> = batch.iter().map(|u| u.stats.count).collect();
        assert_eq!(counts, vec![1, 2, 3]);
    }
}
