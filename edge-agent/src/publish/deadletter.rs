//! The dead-letter queue: every rejected event and every rejected request body goes to
//! `rtdash.dlq.<tenant>` (stream `RTDASH_DLQ`; tenant `_unknown` when none could be read) as a
//! [`DeadLetter`] in the JSON envelope: reason code and message, the raw input cut to
//! `dlq.max_raw_bytes`, the item's index in its batch, the receive time, and the `source` and
//! `event_type` the item names (read from the whole input, before the cut).
//!
//! Full policy: dead letters wait in memory up to `dlq.queue_bytes` (counted in the memory
//! budget); past that they are appended to a disk spool under `<state_dir>/dlq`, up to
//! `dlq.spool_max_bytes`; past that they are dropped, counted in
//! `rtdash_agent_dlq_dropped_total` and logged at error level, the one way a dead letter can
//! be lost. A publish that fails is retried with the same `Nats-Msg-Id`
//! (`<agent>.dlq.<n>`), so JetStream drops a retry of a stored dead letter within its duplicate
//! window. At shutdown whatever is still queued is written to the disk spool and published by
//! the next start.

use super::pipeline::{Outbox, Outgoing};
use super::segment::{RecordRef, SegmentLog};
use crate::metrics::AgentMetrics;
use async_nats::jetstream::publish::PublishAck;
use bytes::Bytes;
use rtdash_shared::event::ItemHints;
use rtdash_shared::messages::DeadLetter;
use rtdash_shared::names;
use rtdash_shared::time::UnixMillis;
use rtdash_shared::wire::{self, Format};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug)]
struct Item {
    id: u64,
    subject: String,
    payload: Bytes,
    /// Where the item is on disk, if it came from the disk spool.
    disk: Option<RecordRef>,
}

#[derive(Debug)]
struct Inner {
    memory: VecDeque<Item>,
    memory_bytes: u64,
    disk: SegmentLog,
    disk_queue: VecDeque<(u64, RecordRef)>,
    in_flight: HashMap<u64, Item>,
    dropped_logged: u64,
}

/// Settings of the dead-letter queue.
#[derive(Clone, Debug)]
pub struct DlqSettings {
    /// Raw input kept per dead letter.
    pub max_raw_bytes: usize,
    /// In-memory queue bound, bytes.
    pub queue_bytes: u64,
    /// Disk spool bound, bytes.
    pub spool_max_bytes: u64,
}

/// The dead-letter queue (see the module docs); also the [`Outbox`] of its publisher.
#[derive(Debug)]
pub struct DeadLetters {
    inner: Mutex<Inner>,
    agent_id: String,
    /// Subjects are `<subject_prefix>.dlq.<tenant>`.
    subject_prefix: String,
    rejected_by: String,
    settings: DlqSettings,
    next_id: AtomicU64,
    memory_bytes: AtomicU64,
    wake: Arc<Notify>,
    metrics: AgentMetrics,
}

/// One rejection to record.
#[derive(Debug)]
pub struct Rejected<'a> {
    /// Tenant for routing, when known.
    pub tenant: Option<&'a str>,
    /// Reason code.
    pub code: &'a str,
    /// Human-readable reason.
    pub message: &'a str,
    /// The raw input (cut to the limit here).
    pub input: &'a [u8],
    /// Index in the batch, if it came in one.
    pub index: Option<usize>,
    /// Receive time.
    pub received_at: UnixMillis,
}

impl DeadLetters {
    /// Opens the queue, loading dead letters left in `<dir>` by a previous run.
    pub fn open(
        dir: &Path,
        agent_id: &str,
        settings: DlqSettings,
        metrics: AgentMetrics,
    ) -> io::Result<Self> {
        let (disk, recovered) = SegmentLog::open(dir, 16 * 1024 * 1024)?;
        let max_recovered = recovered.iter().map(|r| r.key_b).max().unwrap_or(0);
        if !recovered.is_empty() {
            tracing::info!(
                count = recovered.len(),
                "dead letters left by the previous run will be published"
            );
        }
        let disk_queue = recovered.into_iter().map(|r| (r.key_b, r.at)).collect();
        Ok(Self {
            inner: Mutex::new(Inner {
                memory: VecDeque::new(),
                memory_bytes: 0,
                disk,
                disk_queue,
                in_flight: HashMap::new(),
                dropped_logged: 0,
            }),
            agent_id: agent_id.to_owned(),
            subject_prefix: names::DEFAULT_SUBJECT_PREFIX.to_owned(),
            rejected_by: format!("edge-agent:{agent_id}"),
            settings,
            next_id: AtomicU64::new(super::seq::now_micros().max(max_recovered + 1)),
            memory_bytes: AtomicU64::new(0),
            wake: Arc::new(Notify::new()),
            metrics,
        })
    }

    /// Publishes to `<prefix>.dlq.<tenant>` instead of `rtdash.dlq.<tenant>`. Dead letters
    /// left on disk by a run with another prefix go out under this one.
    pub fn with_subject_prefix(mut self, prefix: &str) -> Self {
        self.subject_prefix = prefix.to_owned();
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes of dead letters held in memory (part of the memory budget).
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes.load(Ordering::Relaxed)
    }

    /// Queues dead letters for `rejections` (one lock for all of them).
    pub fn submit_all<'a>(&self, rejections: impl IntoIterator<Item = Rejected<'a>>) {
        let mut items = Vec::new();
        for rejected in rejections {
            let letter = DeadLetter::from_input(
                rejected.code,
                rejected.message,
                rejected.input,
                self.settings.max_raw_bytes,
                rejected.index,
                &self.rejected_by,
                rejected.received_at,
            );
            let hints = ItemHints::read(rejected.input, ItemHints::DEFAULT_MAX_LEN);
            let letter = letter.with_origin(hints.source, hints.event_type);
            let tenant = rejected.tenant.unwrap_or(names::UNKNOWN_TENANT);
            match wire::encode(&letter, Format::Json) {
                Ok(payload) => items.push(Item {
                    id: self.next_id.fetch_add(1, Ordering::Relaxed),
                    subject: names::dlq_subject_in(&self.subject_prefix, tenant),
                    payload: Bytes::from(payload),
                    disk: None,
                }),
                Err(err) => {
                    self.metrics.dlq_dropped.increment(1);
                    tracing::error!(error = %err, code = rejected.code, "cannot encode a dead letter; it is lost");
                }
            }
        }
        if items.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for item in items {
            self.enqueue(&mut inner, item);
        }
        self.memory_bytes
            .store(inner.memory_bytes, Ordering::Relaxed);
        drop(inner);
        self.wake.notify_one();
    }

    fn enqueue(&self, inner: &mut Inner, item: Item) {
        let len = item.payload.len() as u64;
        if inner.memory_bytes + len <= self.settings.queue_bytes {
            inner.memory_bytes += len;
            inner.memory.push_back(item);
            return;
        }
        if inner.disk.total_bytes() + len <= self.settings.spool_max_bytes {
            let record = disk_record(&item.subject, &item.payload);
            match inner.disk.append(0, item.id, &record) {
                Ok(at) => {
                    inner.disk_queue.push_back((item.id, at));
                    self.metrics.dlq_spooled.increment(1);
                    return;
                }
                Err(err) => {
                    tracing::error!(error = %err, "cannot write to the dead-letter disk spool");
                }
            }
        }
        self.metrics.dlq_dropped.increment(1);
        inner.dropped_logged += 1;
        if inner.dropped_logged.is_power_of_two() {
            tracing::error!(
                subject = %item.subject,
                dropped = inner.dropped_logged,
                "dead-letter queue and spool are full; dead letter dropped"
            );
        }
    }

    /// Writes every queued or in-flight dead letter to the disk spool and fsyncs it. Call
    /// after the publisher stopped.
    pub fn persist_all(&self) -> io::Result<usize> {
        let mut inner = self.lock();
        let mut written = 0;
        let in_flight: Vec<Item> = inner.in_flight.drain().map(|(_, item)| item).collect();
        let memory: Vec<Item> = inner.memory.drain(..).collect();
        for item in in_flight.into_iter().chain(memory) {
            match item.disk {
                Some(at) => inner.disk_queue.push_back((item.id, at)),
                None => {
                    let record = disk_record(&item.subject, &item.payload);
                    inner.disk.append(0, item.id, &record)?;
                    written += 1;
                }
            }
        }
        inner.memory_bytes = 0;
        self.memory_bytes.store(0, Ordering::Relaxed);
        inner.disk.sync()?;
        Ok(written)
    }
}

fn disk_record(subject: &str, payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(2 + subject.len() + payload.len());
    record.extend_from_slice(&(subject.len() as u16).to_le_bytes());
    record.extend_from_slice(subject.as_bytes());
    record.extend_from_slice(payload);
    record
}

fn parse_disk_record(record: Vec<u8>) -> Option<(String, Bytes)> {
    let len = u16::from_le_bytes([*record.first()?, *record.get(1)?]) as usize;
    let subject = std::str::from_utf8(record.get(2..2 + len)?)
        .ok()?
        .to_owned();
    let payload = Bytes::from(record).slice(2 + len..);
    Some((subject, payload))
}

impl Outbox for DeadLetters {
    type Token = u64;

    fn next(&self) -> Option<Outgoing<u64>> {
        let mut inner = self.lock();
        let item = if let Some(item) = inner.memory.pop_front() {
            item
        } else {
            loop {
                let (id, at) = inner.disk_queue.pop_front()?;
                match inner.disk.read(&at).ok().and_then(parse_disk_record) {
                    Some((subject, payload)) => {
                        // The tenant is the last token (tenants have no dots); the prefix is
                        // the one in force now (it may have changed since it was written).
                        let tenant = subject.rsplit('.').next().unwrap_or(names::UNKNOWN_TENANT);
                        break Item {
                            id,
                            subject: names::dlq_subject_in(&self.subject_prefix, tenant),
                            payload,
                            disk: Some(at),
                        };
                    }
                    None => {
                        tracing::error!(id, "unreadable dead letter in the disk spool; it is lost");
                        self.metrics.dlq_dropped.increment(1);
                        inner.disk.release(&at);
                    }
                }
            }
        };
        let out = Outgoing {
            subject: item.subject.clone(),
            msg_id: format!("{}.dlq.{}", self.agent_id, item.id),
            payload: item.payload.clone(),
            trace: None,
            content_encoding: None,
            token: item.id,
        };
        inner.in_flight.insert(item.id, item);
        Some(out)
    }

    fn acked(&self, token: u64, _ack: &PublishAck, _latency: Duration) {
        let mut inner = self.lock();
        if let Some(item) = inner.in_flight.remove(&token) {
            match item.disk {
                Some(at) => inner.disk.release(&at),
                None => {
                    inner.memory_bytes =
                        inner.memory_bytes.saturating_sub(item.payload.len() as u64)
                }
            }
            self.memory_bytes
                .store(inner.memory_bytes, Ordering::Relaxed);
            self.metrics.dlq_published.increment(1);
        }
    }

    fn failed(&self, token: u64) {
        let mut inner = self.lock();
        if let Some(item) = inner.in_flight.remove(&token) {
            match item.disk {
                Some(at) => inner.disk_queue.push_front((item.id, at)),
                None => inner.memory.push_front(item),
            }
        }
    }

    fn abandon_in_flight(&self) {
        let mut inner = self.lock();
        let items: Vec<Item> = inner.in_flight.drain().map(|(_, item)| item).collect();
        for item in items {
            match item.disk {
                Some(at) => inner.disk_queue.push_front((item.id, at)),
                None => inner.memory.push_front(item),
            }
        }
    }

    fn is_idle(&self) -> bool {
        let inner = self.lock();
        inner.memory.is_empty() && inner.disk_queue.is_empty() && inner.in_flight.is_empty()
    }

    fn wake(&self) -> &Arc<Notify> {
        &self.wake
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::pipeline::test_ack as ack;

    fn rejected(input: &[u8]) -> Rejected<'_> {
        Rejected {
            tenant: None,
            code: "malformed_json",
            message: "bad",
            input,
            index: Some(3),
            received_at: 1,
        }
    }

    #[test]
    fn overflow_goes_to_disk_and_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = DlqSettings {
            max_raw_bytes: 8,
            queue_bytes: 300,
            spool_max_bytes: 1 << 20,
        };
        {
            let dlq =
                DeadLetters::open(dir.path(), "edge-t", settings.clone(), AgentMetrics::new())
                    .expect("open");
            dlq.submit_all((0..10).map(|_| rejected(b"{\"tenant_id\": \"x\" and much more")));
            assert!(dlq.memory_bytes() <= 300);
            let first = dlq.next().expect("first");
            assert_eq!(first.subject, "rtdash.dlq._unknown");
            let letter: DeadLetter = wire::decode(&first.payload).expect("decode");
            assert_eq!(letter.raw, "{\"tenant");
            assert!(letter.truncated);
            assert_eq!(letter.index, Some(3));
            assert_eq!(letter.rejected_by, "edge-agent:edge-t");
            dlq.acked(first.token, &ack(), Duration::ZERO);
            dlq.persist_all().expect("persist");
        }
        // Reopened at an edge site: what the previous run left goes out under the new prefix.
        let dlq = DeadLetters::open(dir.path(), "edge-t", settings, AgentMetrics::new())
            .expect("reopen")
            .with_subject_prefix("rtdash.edge.s1");
        let mut count = 0;
        while let Some(item) = dlq.next() {
            assert_eq!(item.subject, "rtdash.edge.s1.dlq._unknown");
            let letter: DeadLetter = wire::decode(&item.payload).expect("decode");
            assert_eq!(letter.code, "malformed_json");
            dlq.acked(item.token, &ack(), Duration::ZERO);
            count += 1;
        }
        assert_eq!(count, 9);
        assert!(dlq.is_idle());
    }

    #[test]
    fn failed_publishes_are_retried_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = DlqSettings {
            max_raw_bytes: 64,
            queue_bytes: 1 << 20,
            spool_max_bytes: 1 << 20,
        };
        let dlq =
            DeadLetters::open(dir.path(), "edge-t", settings, AgentMetrics::new()).expect("open");
        dlq.submit_all([rejected(b"a"), rejected(b"b")]);
        let a = dlq.next().expect("a");
        let id = a.msg_id.clone();
        dlq.failed(a.token);
        let again = dlq.next().expect("again");
        assert_eq!(again.msg_id, id, "a retry keeps its message id");
    }
}
