//! Bounded reads of one subject of a side stream (`RTDASH_DLQ`, `RTDASH_LATE`): the newest
//! messages stored in a time range, at most [`ReadLimits::max_messages`] and
//! [`ReadLimits::max_bytes`], within [`ReadLimits::timeout`].
//!
//! Every consumer is a named, filtered, unacknowledged consumer (the gateway's NATS user may
//! only create consumers on these streams with a filter of one tenant's subject), deleted
//! after use and left to expire after a few seconds if the delete is lost. When the range
//! holds more messages than the limit, the start is moved forward by a binary search on the
//! stream sequence (each probe a consumer's pending count: exact, where times of messages
//! stored in the same millisecond are not) so the newest ones are read.

use async_nats::jetstream::{self, consumer, context::GetStreamErrorKind, stream::Stream};
use bytes::Bytes;
use futures::StreamExt;
use rtdash_shared::time::UnixMillis;
use std::time::Duration;
use tokio::time::Instant;

/// Most probes of the binary search for the start sequence (2^48 sequences).
const MAX_PROBES: u32 = 48;
/// Most messages asked for in one pull.
const MAX_BATCH: usize = 200;
/// How long an abandoned consumer lives on the server.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(5);

/// Bounds of one read.
#[derive(Clone, Copy, Debug)]
pub struct ReadLimits {
    /// Most messages read.
    pub max_messages: usize,
    /// Most payload bytes read.
    pub max_bytes: usize,
    /// Longest time the read takes before it returns what it has.
    pub timeout: Duration,
}

/// The messages read, oldest first.
#[derive(Debug, Default)]
pub struct RangeRead {
    /// Stream time and payload of each message.
    pub messages: Vec<(UnixMillis, Bytes)>,
    /// Whether these are every message of the subject in the range.
    pub complete: bool,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum SideStreamError {
    /// A JetStream request failed (NATS unreachable, timed out, refused).
    #[error("reading stream {stream}: {what}")]
    JetStream {
        /// The stream.
        stream: String,
        /// The request.
        what: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Reads the newest messages of `subject` in `stream` stored in `[from, to)` (see the module
/// docs). A stream that does not exist reads as empty.
pub async fn newest_in_range(
    js: &jetstream::Context,
    stream_name: &str,
    subject: &str,
    from: UnixMillis,
    to: UnixMillis,
    limits: ReadLimits,
) -> Result<RangeRead, SideStreamError> {
    let deadline = Instant::now() + limits.timeout;
    let fail = |what: &'static str| {
        let stream = stream_name.to_owned();
        move |err: Box<dyn std::error::Error + Send + Sync>| SideStreamError::JetStream {
            stream,
            what,
            source: err,
        }
    };
    let stream = match js.get_stream(stream_name).await {
        Ok(stream) => stream,
        Err(err) if matches!(err.kind(), GetStreamErrorKind::JetStream(_)) => {
            return Ok(RangeRead {
                messages: Vec::new(),
                complete: true,
            });
        }
        Err(err) => return Err(fail("stream info")(err.into())),
    };
    let at_from = probe(&stream, subject, start_time(from))
        .await
        .map_err(fail("consumer"))?;
    if at_from.pending == 0 {
        return Ok(RangeRead {
            messages: Vec::new(),
            complete: true,
        });
    }
    let max = limits.max_messages as u64;
    let mut start = consumer::DeliverPolicy::ByStartTime {
        start_time: start_time(from),
    };
    let mut complete = true;
    if at_from.pending > max {
        let after = probe(&stream, subject, start_time(to))
            .await
            .map_err(fail("consumer"))?
            .pending;
        if at_from.pending - after > max {
            complete = false;
            // Invariant: from `low` the range holds more than `max` messages of the subject,
            // from `high` at most `max`.
            let last = stream.cached_info().state.last_sequence;
            let (mut low, mut high) = (at_from.start_seq, last + 1);
            for _ in 0..MAX_PROBES {
                if high - low <= 1 || Instant::now() >= deadline {
                    break;
                }
                let mid = low + (high - low) / 2;
                let in_range = probe(&stream, subject, mid)
                    .await
                    .map_err(fail("consumer"))?
                    .pending
                    .saturating_sub(after);
                if in_range > max {
                    low = mid;
                } else {
                    high = mid;
                }
            }
            start = consumer::DeliverPolicy::ByStartSequence {
                start_sequence: high,
            };
        }
    }
    let (messages, read_all) = read_from(&stream, subject, start, to, limits, deadline)
        .await
        .map_err(fail("messages"))?;
    Ok(RangeRead {
        messages,
        complete: complete && read_all,
    })
}

fn consumer_name() -> String {
    format!("rtdash_gateway_{}", uuid::Uuid::new_v4().simple())
}

fn start_time(at: UnixMillis) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Where a consumer would start.
#[derive(Clone, Copy, Debug)]
struct Probe {
    /// Messages of the subject from the start on.
    pending: u64,
    /// The stream sequence it starts at (a lower bound of the first message of the subject).
    start_seq: u64,
}

/// Where a consumer would start: at a time or a stream sequence.
trait Start {
    fn policy(self) -> consumer::DeliverPolicy;
}

impl Start for time::OffsetDateTime {
    fn policy(self) -> consumer::DeliverPolicy {
        consumer::DeliverPolicy::ByStartTime { start_time: self }
    }
}

impl Start for u64 {
    fn policy(self) -> consumer::DeliverPolicy {
        consumer::DeliverPolicy::ByStartSequence {
            start_sequence: self,
        }
    }
}

/// The messages of `subject` from `at` on, and the stream sequence `at` is.
async fn probe(
    stream: &Stream,
    subject: &str,
    at: impl Start,
) -> Result<Probe, Box<dyn std::error::Error + Send + Sync>> {
    let name = consumer_name();
    let probe = stream
        .create_consumer(consumer::pull::Config {
            name: Some(name.clone()),
            filter_subject: subject.to_owned(),
            deliver_policy: at.policy(),
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: INACTIVE_THRESHOLD,
            memory_storage: true,
            ..Default::default()
        })
        .await?;
    let info = probe.cached_info();
    let found = Probe {
        pending: info.num_pending,
        // A new consumer reports the sequence before its start as delivered.
        start_seq: info.delivered.stream_sequence + 1,
    };
    delete_quietly(stream, &name).await;
    Ok(found)
}

async fn delete_quietly(stream: &Stream, name: &str) {
    if let Err(err) = stream.delete_consumer(name).await {
        tracing::debug!(%err, consumer = name, "consumer not deleted; it expires by itself");
    }
}

/// Reads from `start` until `to`, the end of the subject, a limit or the deadline; the bool
/// says whether it reached `to` or the end.
async fn read_from(
    stream: &Stream,
    subject: &str,
    start: consumer::DeliverPolicy,
    to: UnixMillis,
    limits: ReadLimits,
    deadline: Instant,
) -> Result<(Vec<(UnixMillis, Bytes)>, bool), Box<dyn std::error::Error + Send + Sync>> {
    let name = consumer_name();
    let reader = stream
        .create_consumer(consumer::pull::Config {
            name: Some(name.clone()),
            filter_subject: subject.to_owned(),
            deliver_policy: start,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: INACTIVE_THRESHOLD,
            memory_storage: true,
            ..Default::default()
        })
        .await?;
    let mut remaining = reader.cached_info().num_pending;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut reached_end = remaining == 0;
    if !reached_end {
        let mut messages = reader
            .stream()
            .max_messages_per_batch(limits.max_messages.clamp(1, MAX_BATCH))
            .messages()
            .await?;
        while remaining > 0 && out.len() < limits.max_messages && bytes < limits.max_bytes {
            let Ok(next) = tokio::time::timeout_at(deadline, messages.next()).await else {
                break;
            };
            let Some(message) = next else { break };
            let message = message?;
            let info = message.info()?;
            remaining = info.pending;
            let at = (info.published.unix_timestamp_nanos() / 1_000_000) as UnixMillis;
            if at >= to {
                reached_end = true;
                break;
            }
            bytes += message.payload.len();
            out.push((at, message.payload.clone()));
        }
        reached_end |= remaining == 0;
    }
    delete_quietly(stream, &name).await;
    Ok((out, reached_end))
}
