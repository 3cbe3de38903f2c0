//! The optional raw-event archive (`archive_events = true`): every accepted event, as
//! seed-shaped JSON, batched per tenant into NDJSON chunks of about `archive.chunk_bytes`,
//! published to `rtdash.events.<tenant>` (stream `RTDASH_EVENTS`) for recomputation.
//!
//! Delivery is **at least once** while the agent runs: a chunk whose publish fails is retried
//! with the same `Nats-Msg-Id` (`<agent>.archive.<n>`), which JetStream deduplicates within
//! its duplicate window; a retry after a longer outage can store a chunk twice, so a
//! recomputation must tolerate duplicate events in the archive (or deduplicate by event id).
//! Chunks are sealed when full and at every flush interval.
//!
//! Compression (`archive.compression = "zstd"`): each sealed chunk becomes one zstd frame
//! with the header `Content-Encoding: zstd` (format and reader: `rtdash_shared::archive`),
//! compressed outside the archive's lock. JSON events shrink about tenfold, which is most of
//! what the archive costs NATS to carry and store.
//!
//! Full policy (`archive.when_full`): the queue of sealed chunks waiting for NATS is bounded
//! by `archive.max_queue_bytes`. With `drop` (default) a chunk that does not fit is dropped,
//! its events counted in `rtdash_agent_archive_dropped_events_total` and logged: ingest and
//! aggregation go on while NATS is down. With `backpressure` the chunk is kept and ingest
//! answers `503` until the queue drains. The archive has no disk spool: chunks still queued
//! when the shutdown grace period ends are counted as dropped and logged.

use super::pipeline::{Outbox, Outgoing};
use crate::config::{ArchiveCompression, ArchiveFullPolicy};
use crate::metrics::AgentMetrics;
use async_nats::jetstream::publish::PublishAck;
use bytes::Bytes;
use rtdash_shared::archive::{ChunkCompressor, ZSTD};
use rtdash_shared::event::Event;
use rtdash_shared::names;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// Room beyond `chunk_bytes` in a pre-sized chunk buffer for the event that fills it.
const CHUNK_SLACK: usize = 4096;

#[derive(Debug)]
struct Chunk {
    id: u64,
    subject: String,
    payload: Bytes,
    compressed: bool,
    events: u64,
}

#[derive(Debug, Default)]
struct Buffer {
    bytes: Vec<u8>,
    events: u64,
}

#[derive(Debug, Default)]
struct Inner {
    buffers: HashMap<String, Buffer, foldhash::fast::RandomState>,
    queue: VecDeque<Chunk>,
    in_flight: HashMap<u64, Chunk>,
    dropped_logged: u64,
}

/// The raw-event archive (see the module docs); also the [`Outbox`] of its publisher.
#[derive(Debug)]
pub struct Archive {
    inner: Mutex<Inner>,
    agent_id: String,
    /// Subjects are `<subject_prefix>.events.<tenant>`.
    subject_prefix: String,
    chunk_bytes: usize,
    max_queue_bytes: u64,
    policy: ArchiveFullPolicy,
    queued_bytes: AtomicU64,
    next_id: AtomicU64,
    wake: Arc<Notify>,
    metrics: AgentMetrics,
    /// With `compression = "zstd"`: idle zstd contexts, each reused (creating one costs more
    /// than compressing a chunk); a thread sealing while all are busy makes another, so no
    /// request waits for another's compression (there are at most as many as threads that
    /// ever sealed at the same time).
    compressors: Option<Mutex<Vec<ChunkCompressor>>>,
    zstd_level: i32,
}

impl Archive {
    /// An empty archive.
    pub fn new(
        agent_id: &str,
        chunk_bytes: usize,
        max_queue_bytes: u64,
        policy: ArchiveFullPolicy,
        metrics: AgentMetrics,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            agent_id: agent_id.to_owned(),
            subject_prefix: names::DEFAULT_SUBJECT_PREFIX.to_owned(),
            chunk_bytes,
            max_queue_bytes,
            policy,
            queued_bytes: AtomicU64::new(0),
            next_id: AtomicU64::new(super::seq::now_micros()),
            wake: Arc::new(Notify::new()),
            metrics,
            compressors: None,
            zstd_level: 1,
        }
    }

    /// Stores chunks as `compression` says, zstd at `level`.
    pub fn with_compression(
        mut self,
        compression: ArchiveCompression,
        level: i32,
    ) -> std::io::Result<Self> {
        self.zstd_level = level;
        self.compressors = match compression {
            ArchiveCompression::None => None,
            // One context now: a level zstd refuses fails at startup, not at the first chunk.
            ArchiveCompression::Zstd => Some(Mutex::new(vec![ChunkCompressor::new(level)?])),
        };
        Ok(self)
    }

    /// Publishes to `<prefix>.events.<tenant>` instead of `rtdash.events.<tenant>`.
    pub fn with_subject_prefix(mut self, prefix: &str) -> Self {
        self.subject_prefix = prefix.to_owned();
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes buffered and queued (counted in the memory budget).
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes.load(Ordering::Relaxed)
    }

    /// Whether the queue counts in an estimate-based memory budget (the `backpressure`
    /// policy; with `drop` it is bounded on its own).
    pub fn counts_in_budget(&self) -> bool {
        self.policy == ArchiveFullPolicy::Backpressure
    }

    /// With the `backpressure` policy: whether the queue is full (ingest answers `503`).
    pub fn is_full(&self) -> bool {
        self.policy == ArchiveFullPolicy::Backpressure
            && self.queued_bytes() >= self.max_queue_bytes
    }

    /// Appends accepted events; `raw` is each event's JSON as received (used verbatim unless
    /// it spans several lines, then the event is re-serialised).
    pub fn add_all<'e, 'a: 'e>(&self, events: impl IntoIterator<Item = (&'e [u8], &'e Event<'a>)>) {
        let mut inner = self.lock();
        let mut full: Vec<(String, Buffer)> = Vec::new();
        for (raw, event) in events {
            let tenant = event.tenant_id.as_ref();
            let buffer = match inner.buffers.get_mut(tenant) {
                Some(buffer) => buffer,
                None => inner.buffers.entry(tenant.to_owned()).or_default(),
            };
            if memchr::memchr2(b'\n', b'\r', raw).is_some() {
                buffer.bytes.extend_from_slice(&event.to_json());
            } else {
                buffer.bytes.extend_from_slice(raw);
            }
            buffer.bytes.push(b'\n');
            buffer.events += 1;
            if buffer.bytes.len() >= self.chunk_bytes {
                // A tenant that filled a chunk is likely to fill the next: size it at once
                // instead of growing it by doubling (each step a copy). Freed at the next
                // `seal_all` if it stays empty.
                let next = Buffer {
                    bytes: Vec::with_capacity(self.chunk_bytes + CHUNK_SLACK),
                    events: 0,
                };
                full.push((tenant.to_owned(), std::mem::replace(buffer, next)));
            }
        }
        self.update_bytes(&inner);
        drop(inner);
        self.seal(full);
    }

    /// Turns full buffers into chunks (compressing them without holding the lock), queues
    /// them and wakes the publisher.
    fn seal(&self, buffers: Vec<(String, Buffer)>) {
        if buffers.is_empty() {
            return;
        }
        let chunks: Vec<(String, Chunk)> = buffers
            .into_iter()
            .filter(|(_, buffer)| buffer.events > 0)
            .map(|(tenant, buffer)| {
                let chunk = self.chunk(&tenant, buffer);
                (tenant, chunk)
            })
            .collect();
        let mut inner = self.lock();
        for (tenant, chunk) in chunks {
            self.enqueue(&mut inner, &tenant, chunk);
        }
        self.update_bytes(&inner);
        drop(inner);
        self.wake.notify_one();
    }

    /// A chunk of `buffer`'s events, compressed when configured and worth it.
    fn chunk(&self, tenant: &str, buffer: Buffer) -> Chunk {
        let mut compressed = None;
        if let Some(pool) = &self.compressors {
            let idle = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let result = match idle {
                Some(compressor) => Ok(compressor),
                None => ChunkCompressor::new(self.zstd_level),
            }
            .and_then(|mut compressor| {
                let frame = compressor.compress(&buffer.bytes);
                pool.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(compressor);
                frame
            });
            match result {
                Ok(frame) => compressed = frame,
                Err(err) => {
                    tracing::warn!(tenant, error = %err, "archive chunk not compressed; stored as NDJSON");
                }
            }
        }
        Chunk {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            subject: names::events_subject_in(&self.subject_prefix, tenant),
            compressed: compressed.is_some(),
            payload: Bytes::from(compressed.unwrap_or(buffer.bytes)),
            events: buffer.events,
        }
    }

    fn enqueue(&self, inner: &mut Inner, tenant: &str, chunk: Chunk) {
        let len = chunk.payload.len() as u64;
        if self.policy == ArchiveFullPolicy::Drop
            && self.queue_bytes(inner) + len > self.max_queue_bytes
        {
            self.metrics.archive_dropped.increment(chunk.events);
            inner.dropped_logged += 1;
            if inner.dropped_logged.is_power_of_two() {
                tracing::warn!(
                    tenant,
                    events = chunk.events,
                    chunks_dropped = inner.dropped_logged,
                    "archive queue full (NATS unreachable?); events not archived"
                );
            }
            return;
        }
        inner.queue.push_back(chunk);
    }

    fn queue_bytes(&self, inner: &Inner) -> u64 {
        inner
            .queue
            .iter()
            .chain(inner.in_flight.values())
            .map(|c| c.payload.len() as u64)
            .sum()
    }

    fn update_bytes(&self, inner: &Inner) {
        let buffered: u64 = inner.buffers.values().map(|b| b.bytes.len() as u64).sum();
        self.queued_bytes
            .store(buffered + self.queue_bytes(inner), Ordering::Relaxed);
    }

    /// Seals every non-empty buffer (at each flush interval and at shutdown).
    pub fn seal_all(&self) {
        let mut inner = self.lock();
        let buffers: Vec<(String, Buffer)> = inner
            .buffers
            .iter_mut()
            .filter(|(_, b)| b.events > 0)
            .map(|(tenant, b)| (tenant.clone(), std::mem::take(b)))
            .collect();
        // Forget tenants that went quiet, so the map does not grow without bound.
        inner.buffers.retain(|_, b| b.events > 0);
        self.update_bytes(&inner);
        drop(inner);
        self.seal(buffers);
    }

    /// Counts what is still queued as dropped (shutdown after the grace period).
    pub fn abandon(&self) {
        let mut inner = self.lock();
        let queued: u64 = inner.queue.drain(..).map(|c| c.events).sum();
        let in_flight: u64 = inner.in_flight.drain().map(|(_, c)| c.events).sum();
        let events = queued + in_flight;
        if events > 0 {
            self.metrics.archive_dropped.increment(events);
            tracing::warn!(
                events,
                "archive chunks not acknowledged before shutdown; not archived"
            );
        }
        self.update_bytes(&inner);
    }
}

impl Outbox for Archive {
    type Token = u64;

    fn next(&self) -> Option<Outgoing<u64>> {
        let mut inner = self.lock();
        let chunk = inner.queue.pop_front()?;
        let out = Outgoing {
            subject: chunk.subject.clone(),
            msg_id: format!("{}.archive.{}", self.agent_id, chunk.id),
            payload: chunk.payload.clone(),
            trace: None,
            content_encoding: chunk.compressed.then_some(ZSTD),
            token: chunk.id,
        };
        inner.in_flight.insert(chunk.id, chunk);
        Some(out)
    }

    fn acked(&self, token: u64, _ack: &PublishAck, _latency: Duration) {
        let mut inner = self.lock();
        if inner.in_flight.remove(&token).is_some() {
            self.metrics.archive_published.increment(1);
        }
        self.update_bytes(&inner);
    }

    fn failed(&self, token: u64) {
        let mut inner = self.lock();
        if let Some(chunk) = inner.in_flight.remove(&token) {
            inner.queue.push_front(chunk);
        }
    }

    fn abandon_in_flight(&self) {
        let mut inner = self.lock();
        let chunks: Vec<Chunk> = inner.in_flight.drain().map(|(_, c)| c).collect();
        for chunk in chunks {
            inner.queue.push_front(chunk);
        }
    }

    fn is_idle(&self) -> bool {
        let inner = self.lock();
        inner.queue.is_empty()
            && inner.in_flight.is_empty()
            && inner.buffers.values().all(|b| b.events == 0)
    }

    fn wake(&self) -> &Arc<Notify> {
        &self.wake
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::event::{parse_event, EventLimits};

    const NOW: i64 = 1_705_327_532_000;

    #[test]
    fn events_are_chunked_per_tenant_as_ndjson() {
        let archive = Archive::new(
            "edge-t",
            1024,
            1 << 20,
            ArchiveFullPolicy::Drop,
            AgentMetrics::new(),
        );
        let one = br#"{"tenant_id":"a","source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z"}"#;
        let multi = b"{\"tenant_id\":\"b\",\n\"source\":\"s\",\"event_type\":\"e\",\"occurred_at\":\"2024-01-15T14:05:30Z\"}";
        let e1 = parse_event(one, &EventLimits::default(), NOW).expect("valid");
        let e2 = parse_event(multi, &EventLimits::default(), NOW).expect("valid");
        archive.add_all([(&one[..], &e1), (&multi[..], &e2), (&one[..], &e1)]);
        assert!(archive.next().is_none(), "nothing sealed yet");
        archive.seal_all();
        let mut chunks = Vec::new();
        while let Some(out) = archive.next() {
            chunks.push((out.subject.clone(), out.payload.clone()));
        }
        chunks.sort();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].0, "rtdash.events.a");
        let lines: Vec<&[u8]> = chunks[0].1.split(|b| *b == b'\n').collect();
        assert_eq!(lines.len(), 3, "two lines and a trailing newline");
        assert_eq!(lines[0], &one[..]);
        let b = std::str::from_utf8(&chunks[1].1).expect("utf8");
        assert_eq!(b.lines().count(), 1, "a multi-line event is re-serialised");
    }

    #[test]
    fn compressed_chunks_carry_the_header_and_decode_to_the_ndjson() {
        let archive = Archive::new(
            "edge-t",
            64 * 1024,
            1 << 20,
            ArchiveFullPolicy::Drop,
            AgentMetrics::new(),
        )
        .with_compression(ArchiveCompression::Zstd, 1)
        .expect("context");
        let raw = br#"{"tenant_id":"a","source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z"}"#;
        let event = parse_event(raw, &EventLimits::default(), NOW).expect("valid");
        for _ in 0..1000 {
            archive.add_all([(&raw[..], &event)]);
        }
        archive.seal_all();
        let mut lines = 0;
        while let Some(out) = archive.next() {
            assert_eq!(out.content_encoding, Some("zstd"));
            assert!(out.payload.len() < 8 * 1024, "{}", out.payload.len());
            let ndjson = rtdash_shared::archive::decode_chunk(
                &out.payload,
                rtdash_shared::archive::MAX_DECODED_BYTES,
            )
            .expect("decodes");
            for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                assert_eq!(line, &raw[..]);
                lines += 1;
            }
        }
        assert_eq!(lines, 1000);
    }

    #[test]
    fn a_full_queue_drops_and_counts_with_the_drop_policy() {
        let archive = Archive::new(
            "edge-t",
            1024,
            2048,
            ArchiveFullPolicy::Drop,
            AgentMetrics::new(),
        );
        let raw = br#"{"tenant_id":"a","source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z"}"#;
        let event = parse_event(raw, &EventLimits::default(), NOW).expect("valid");
        for _ in 0..100 {
            archive.add_all([(&raw[..], &event)]);
        }
        archive.seal_all();
        assert!(archive.queued_bytes() <= 2048);
        assert!(!archive.is_full(), "the drop policy never blocks ingest");
    }
}
