//! The pipelined JetStream publisher shared by the partials spool, the dead-letter queue and
//! the raw-event archive.
//!
//! An [`Outbox`] hands out messages in the order they should go; the pipeline publishes up to
//! `max_in_flight` of them without waiting (each `publish` returns an acknowledgement future,
//! collected in a `FuturesUnordered`), and reports every acknowledgement or failure back to the
//! outbox. A failed message is handed out again by its outbox with the same `Nats-Msg-Id`,
//! so JetStream drops it if the first attempt was stored after all (within the stream's
//! duplicate window). While the client is disconnected nothing is published (messages would
//! only pile up in the client's buffer); after a failure the pipeline pauses with an
//! exponential backoff. When stopped it tells the outbox that whatever was in flight is
//! unacknowledged ([`Outbox::abandon_in_flight`]).

use async_nats::connection::State;
use async_nats::jetstream::context::{Context, PublishAckFuture};
use async_nats::jetstream::publish::PublishAck;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use metrics::Counter;
use rtdash_runtime::trace_context::TraceParent;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Level, Span};

/// One message to publish.
#[derive(Debug)]
pub struct Outgoing<T> {
    /// Subject.
    pub subject: String,
    /// `Nats-Msg-Id` header; the same on every attempt.
    pub msg_id: String,
    /// Payload.
    pub payload: Bytes,
    /// Trace context sent as the `traceparent` header (only while traces are exported).
    pub trace: Option<TraceParent>,
    /// `Content-Encoding` header, when the payload is compressed.
    pub content_encoding: Option<&'static str>,
    /// What the outbox needs to recognise the message when its outcome is reported.
    pub token: T,
}

/// A source of messages for the pipeline.
pub trait Outbox: Send + Sync + 'static {
    /// Identifies a message handed out.
    type Token: Send + 'static;

    /// The next message to publish, now marked as in flight; `None` when nothing waits.
    fn next(&self) -> Option<Outgoing<Self::Token>>;
    /// JetStream stored the message (`latency` from publish to acknowledgement).
    fn acked(&self, token: Self::Token, ack: &PublishAck, latency: Duration);
    /// The publish failed or was not acknowledged in time: hand the message out again.
    fn failed(&self, token: Self::Token);
    /// Every message in flight is to be treated as unacknowledged (the pipeline stopped).
    fn abandon_in_flight(&self);
    /// Nothing waits and nothing is in flight.
    fn is_idle(&self) -> bool;
    /// Notified by the outbox when it has something new to publish.
    fn wake(&self) -> &Arc<Notify>;
}

/// Pipeline settings.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Messages awaiting acknowledgement at once.
    pub max_in_flight: usize,
    /// Longest pause after failures.
    pub backoff_max: Duration,
    /// Name for logs.
    pub name: &'static str,
    /// Counts failed publishes (each is retried).
    pub failures: Counter,
}

type AckFuture<T> = Pin<
    Box<
        dyn Future<
                Output = (
                    T,
                    Instant,
                    Result<PublishAck, async_nats::jetstream::context::PublishError>,
                ),
            > + Send,
    >,
>;

/// Runs the pipeline until `stop` is cancelled. `js` should carry the acknowledgement timeout
/// (`Context::set_timeout`).
pub async fn run<O: Outbox>(
    outbox: Arc<O>,
    js: Context,
    client: async_nats::Client,
    config: PipelineConfig,
    stop: CancellationToken,
) {
    let wake = Arc::clone(outbox.wake());
    let failures = &config.failures;
    let mut in_flight: FuturesUnordered<AckFuture<O::Token>> = FuturesUnordered::new();
    let mut backoff = Duration::ZERO;
    let mut paused_until: Option<Instant> = None;
    let mut was_connected = true;
    loop {
        let connected = client.connection_state() == State::Connected;
        if connected != was_connected {
            if connected {
                tracing::info!(outbox = config.name, "NATS connected; publishing");
            } else {
                tracing::warn!(outbox = config.name, "NATS disconnected; holding messages");
            }
            was_connected = connected;
        }
        if paused_until.is_some_and(|until| Instant::now() >= until) {
            paused_until = None;
        }
        if connected && paused_until.is_none() {
            while in_flight.len() < config.max_in_flight {
                let Some(out) = outbox.next() else { break };
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Msg-Id", out.msg_id.as_str());
                if let Some(trace) = &out.trace {
                    trace.inject(&mut headers);
                }
                if let Some(encoding) = out.content_encoding {
                    headers.insert(rtdash_shared::archive::CONTENT_ENCODING, encoding);
                }
                let span = publish_span(config.name, &out);
                let started = Instant::now();
                match js
                    .publish_with_headers(out.subject, headers, out.payload)
                    .instrument(span.clone())
                    .await
                {
                    Ok(ack) => in_flight.push(ack_future(out.token, started, ack, span)),
                    Err(err) => {
                        failures.increment(1);
                        tracing::warn!(outbox = config.name, error = %err, "publish failed; will retry");
                        outbox.failed(out.token);
                        paused_until = Some(pause(&mut backoff, config.backoff_max));
                        break;
                    }
                }
            }
        }
        let poll = if paused_until.is_some() || !connected {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(250)
        };
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some((token, started, result)) = in_flight.next(), if !in_flight.is_empty() => {
                match result {
                    Ok(ack) => {
                        backoff = Duration::ZERO;
                        outbox.acked(token, &ack, started.elapsed());
                    }
                    Err(err) => {
                        failures.increment(1);
                        tracing::warn!(outbox = config.name, error = %err, "publish not acknowledged; will retry");
                        outbox.failed(token);
                        paused_until = Some(pause(&mut backoff, config.backoff_max));
                    }
                }
            }
            () = wake.notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
    drop(in_flight);
    outbox.abandon_in_flight();
}

/// The span of one publish, from the send to the acknowledgement: OpenTelemetry's messaging
/// producer attributes. A message that carries a trace context (a partial batch of a traced
/// flush) publishes in an `info` span continuing that trace, beside the aggregator's span of
/// the same batch; any other publish is a `debug` span.
fn publish_span<T>(outbox: &'static str, out: &Outgoing<T>) -> Span {
    macro_rules! span {
        ($level:expr) => {
            tracing::span!(
                $level,
                "edge.publish",
                otel.kind = "producer",
                messaging.system = "nats",
                messaging.operation.type = "send",
                messaging.destination.name = %out.subject,
                messaging.message.id = %out.msg_id,
                outbox,
            )
        };
    }
    match &out.trace {
        Some(trace) => {
            let span = span!(Level::INFO);
            trace.set_parent_of(&span);
            span
        }
        None => span!(Level::DEBUG),
    }
}

fn ack_future<T: Send + 'static>(
    token: T,
    started: Instant,
    ack: PublishAckFuture,
    span: Span,
) -> AckFuture<T> {
    Box::pin(async move { (token, started, ack.await) }.instrument(span))
}

fn pause(backoff: &mut Duration, max: Duration) -> Instant {
    *backoff = if backoff.is_zero() {
        Duration::from_millis(100)
    } else {
        (*backoff * 2).min(max)
    };
    Instant::now() + *backoff
}

/// Waits until `outbox` is idle, polling every 20 ms; returns false when `grace` passed first.
pub async fn wait_idle<O: Outbox>(outbox: &O, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    loop {
        if outbox.is_idle() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An acknowledgement as JetStream sends it, for the outboxes' tests.
#[cfg(test)]
pub(crate) fn test_ack() -> PublishAck {
    serde_json::from_str(r#"{"stream":"S","seq":1}"#).expect("ack")
}
