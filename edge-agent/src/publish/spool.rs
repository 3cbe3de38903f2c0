// Over 600 lines: one state machine under one lock (order, state, medium of each batch) + tests.

//! The spool: every partial batch from its creation until JetStream acknowledged it.
//!
//! One queue per partition, ordered by sequence number. A batch is kept in memory while the
//! in-memory spool is under its budget (`spool.memory_bytes`), otherwise it is appended to a
//! disk segment (see [`super::segment`]) under `<state_dir>/spool`. The publisher takes the
//! lowest unsent batch of each partition in turn (round robin over partitions), so batches
//! left on disk by the previous run (lower sequence numbers) go out before the new ones of
//! their partition. A batch stays in its queue until acknowledged; a failed publish makes it
//! unsent again, to be retried with the same sequence number and message id.
//!
//! `acked_below` for a new batch is the sequence number of the oldest unacknowledged batch
//! of its partition (or the new batch's own when every earlier one is acknowledged).
//!
//! Bounded: past `spool.max_bytes` (memory + disk) [`Spool::is_full`] turns ingest into `503`.
//! Batches are still accepted from the flusher then (the events behind them were already
//! acknowledged to producers), so the bound may be exceeded by one flush.
//!
//! At shutdown [`Spool::persist_all`] writes every unacknowledged batch to fresh disk
//! segments and deletes the older ones, so that the next start publishes exactly the
//! unacknowledged batches. If the process crashes instead, in-memory batches are lost with
//! the aggregation state, and disk segments may still hold some already acknowledged
//! batches: these are published again with their original message ids (dropped by JetStream
//! within its duplicate window, and skipped by the aggregator's per-agent sequence check).

use super::pipeline::{Outbox, Outgoing};
use super::segment::{RecordRef, Recovered, SegmentLog};
use crate::metrics::AgentMetrics;
use async_nats::jetstream::publish::PublishAck;
use bytes::Bytes;
use rtdash_runtime::trace_context::TraceParent;
use rtdash_shared::names;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// Spool sizes, readable without the lock.
#[derive(Debug, Default)]
pub struct SpoolStats {
    /// Bytes of batches held in memory.
    pub memory_bytes: AtomicU64,
    /// Bytes of disk segment files.
    pub disk_bytes: AtomicU64,
    /// Unacknowledged batches.
    pub batches: AtomicU64,
}

#[derive(Debug)]
enum Body {
    Memory(Bytes),
    Disk(RecordRef),
    /// Acknowledged: nothing kept.
    Gone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Unsent,
    InFlight,
    Acked,
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    len: u64,
    body: Body,
    state: State,
    /// The flush span's context, published as `traceparent` (kept in memory only: a batch
    /// recovered from disk after a restart goes out untraced).
    trace: Option<TraceParent>,
}

#[derive(Debug, Default)]
struct PartitionQueue {
    /// Ordered by seq.
    entries: VecDeque<Pending>,
    /// Seqs of unsent entries.
    unsent: BTreeSet<u64>,
}

impl PartitionQueue {
    fn find(&mut self, seq: u64) -> Option<&mut Pending> {
        let index = self
            .entries
            .binary_search_by_key(&seq, |entry| entry.seq)
            .ok()?;
        self.entries.get_mut(index)
    }
}

#[derive(Debug)]
struct Inner {
    log: SegmentLog,
    partitions: BTreeMap<u32, PartitionQueue>,
    /// Partition to look at first on the next `next()` (round robin).
    cursor: u32,
    memory_bytes: u64,
    batches: u64,
    in_flight: u64,
}

/// The partial-batch spool (see the module docs). Also the [`Outbox`] of the partials
/// publisher.
#[derive(Debug)]
pub struct Spool {
    inner: Mutex<Inner>,
    agent_id: String,
    /// Subjects are `<subject_prefix>.partials.<p>`.
    subject_prefix: String,
    memory_budget: u64,
    max_bytes: u64,
    stats: Arc<SpoolStats>,
    wake: Arc<Notify>,
    metrics: AgentMetrics,
}

/// A batch found in the disk spool at startup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leftover {
    /// Partition.
    pub partition: u32,
    /// Sequence number.
    pub seq: u64,
}

/// Token of a batch handed to the publisher.
#[derive(Debug)]
pub struct BatchToken {
    partition: u32,
    seq: u64,
}

impl Spool {
    /// Opens the spool in `dir`, loading batches left on disk by a previous run.
    pub fn open(
        dir: &Path,
        agent_id: &str,
        memory_budget: u64,
        max_bytes: u64,
        segment_bytes: u64,
        metrics: AgentMetrics,
    ) -> io::Result<(Self, Vec<Leftover>)> {
        let (log, recovered) = SegmentLog::open(dir, segment_bytes)?;
        let mut partitions: BTreeMap<u32, PartitionQueue> = BTreeMap::new();
        let mut by_partition: BTreeMap<u32, BTreeMap<u64, Recovered>> = BTreeMap::new();
        let mut duplicates = Vec::new();
        for record in recovered {
            let slot = by_partition.entry(record.key_a).or_default();
            if let Some(previous) = slot.insert(record.key_b, record) {
                // A crash during shutdown compaction can leave a batch twice; keep one.
                duplicates.push(previous.at);
            }
        }
        let mut log = log;
        for at in duplicates {
            log.release(&at);
        }
        let mut leftovers = Vec::new();
        let mut batches = 0;
        for (partition, records) in by_partition {
            let queue = partitions.entry(partition).or_default();
            for (seq, record) in records {
                queue.entries.push_back(Pending {
                    seq,
                    len: u64::from(record.at.len),
                    body: Body::Disk(record.at),
                    state: State::Unsent,
                    trace: None,
                });
                queue.unsent.insert(seq);
                leftovers.push(Leftover { partition, seq });
                batches += 1;
            }
        }
        let stats = Arc::new(SpoolStats::default());
        stats.disk_bytes.store(log.total_bytes(), Ordering::Relaxed);
        stats.batches.store(batches, Ordering::Relaxed);
        let spool = Self {
            inner: Mutex::new(Inner {
                log,
                partitions,
                cursor: 0,
                memory_bytes: 0,
                batches,
                in_flight: 0,
            }),
            agent_id: agent_id.to_owned(),
            subject_prefix: names::DEFAULT_SUBJECT_PREFIX.to_owned(),
            memory_budget,
            max_bytes,
            stats,
            wake: Arc::new(Notify::new()),
            metrics,
        };
        spool.publish_stats(&spool.lock());
        Ok((spool, leftovers))
    }

    /// Publishes to `<prefix>.partials.<p>` instead of `rtdash.partials.<p>` (an edge site's
    /// agent: `rtdash.edge.<site>`). Batches left on disk go out under the prefix in force.
    pub fn with_subject_prefix(mut self, prefix: &str) -> Self {
        self.subject_prefix = prefix.to_owned();
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sizes, readable without the lock.
    pub fn stats(&self) -> &Arc<SpoolStats> {
        &self.stats
    }

    /// Whether memory plus disk spool reached `spool.max_bytes`.
    pub fn is_full(&self) -> bool {
        self.stats.memory_bytes.load(Ordering::Relaxed)
            + self.stats.disk_bytes.load(Ordering::Relaxed)
            >= self.max_bytes
    }

    /// The `acked_below` for a new batch `seq` of `partition`.
    pub fn acked_below(&self, partition: u32, seq: u64) -> u64 {
        let inner = self.lock();
        inner
            .partitions
            .get(&partition)
            .and_then(|queue| queue.entries.iter().find(|e| e.state != State::Acked))
            .map_or(seq, |oldest| oldest.seq.min(seq))
    }

    /// Unacknowledged batches of `partition`.
    pub fn pending(&self, partition: u32) -> usize {
        let inner = self.lock();
        inner.partitions.get(&partition).map_or(0, |queue| {
            queue
                .entries
                .iter()
                .filter(|e| e.state != State::Acked)
                .count()
        })
    }

    /// Adds a new batch (its seq is higher than every seq of the partition so far); true
    /// when it was written to disk.
    pub fn push(&self, partition: u32, seq: u64, payload: Bytes) -> bool {
        self.push_traced(partition, seq, payload, None)
    }

    /// Whether batch `seq` of `partition` was acknowledged (or is not in the spool).
    pub fn is_acked(&self, partition: u32, seq: u64) -> bool {
        let mut inner = self.lock();
        inner
            .partitions
            .get_mut(&partition)
            .and_then(|queue| queue.find(seq))
            .is_none_or(|entry| entry.state == State::Acked)
    }

    /// [`Spool::push`] with the trace context the batch's publish carries; true when the
    /// batch was written to disk.
    pub fn push_traced(
        &self,
        partition: u32,
        seq: u64,
        payload: Bytes,
        trace: Option<TraceParent>,
    ) -> bool {
        let mut inner = self.lock();
        let len = payload.len() as u64;
        let body = if inner.memory_bytes + len <= self.memory_budget {
            inner.memory_bytes += len;
            Body::Memory(payload)
        } else {
            match inner.log.append(partition, seq, &payload) {
                Ok(at) => Body::Disk(at),
                Err(err) => {
                    // A full or broken disk must not lose the batch: keep it in memory (the
                    // memory budget then turns ingest into 503).
                    tracing::error!(error = %err, dir = %inner.log.dir().display(), "cannot write to the disk spool; keeping the batch in memory");
                    inner.memory_bytes += len;
                    Body::Memory(payload)
                }
            }
        };
        let on_disk = matches!(body, Body::Disk(_));
        let queue = inner.partitions.entry(partition).or_default();
        if queue.entries.back().is_some_and(|last| last.seq >= seq) {
            tracing::error!(
                partition,
                seq,
                "batch sequence numbers out of order; dropping it from the spool"
            );
            return false;
        }
        queue.entries.push_back(Pending {
            seq,
            len,
            body,
            state: State::Unsent,
            trace,
        });
        queue.unsent.insert(seq);
        inner.batches += 1;
        self.publish_stats(&inner);
        drop(inner);
        self.wake.notify_one();
        on_disk
    }

    fn publish_stats(&self, inner: &Inner) {
        self.stats
            .memory_bytes
            .store(inner.memory_bytes, Ordering::Relaxed);
        self.stats
            .disk_bytes
            .store(inner.log.total_bytes(), Ordering::Relaxed);
        self.stats.batches.store(inner.batches, Ordering::Relaxed);
        self.metrics
            .spool_memory_bytes
            .set(inner.memory_bytes as f64);
        self.metrics
            .spool_disk_bytes
            .set(inner.log.total_bytes() as f64);
        self.metrics.spool_batches.set(inner.batches as f64);
    }

    fn settle(&self, inner: &mut Inner, partition: u32, seq: u64, acked: bool) {
        let Inner {
            log,
            partitions,
            memory_bytes,
            batches,
            in_flight,
            ..
        } = inner;
        let Some(queue) = partitions.get_mut(&partition) else {
            return;
        };
        let Some(entry) = queue.find(seq) else {
            return;
        };
        if entry.state != State::InFlight {
            return;
        }
        *in_flight = in_flight.saturating_sub(1);
        if !acked {
            entry.state = State::Unsent;
            queue.unsent.insert(seq);
            return;
        }
        entry.state = State::Acked;
        match std::mem::replace(&mut entry.body, Body::Gone) {
            Body::Memory(_) => *memory_bytes = memory_bytes.saturating_sub(entry.len),
            Body::Disk(at) => log.release(&at),
            Body::Gone => {}
        }
        *batches = batches.saturating_sub(1);
        while queue
            .entries
            .front()
            .is_some_and(|e| e.state == State::Acked)
        {
            queue.entries.pop_front();
        }
    }

    /// Writes every unacknowledged batch to fresh disk segments, fsyncs them and deletes the
    /// older segments (see the module docs). Call after the publisher stopped.
    pub fn persist_all(&self) -> io::Result<usize> {
        let mut inner = self.lock();
        let Inner {
            log,
            partitions,
            memory_bytes,
            in_flight,
            ..
        } = &mut *inner;
        log.roll()?;
        let mut written = 0;
        for (&partition, queue) in partitions.iter_mut() {
            for entry in queue.entries.iter_mut() {
                if entry.state == State::Acked {
                    continue;
                }
                if entry.state == State::InFlight {
                    entry.state = State::Unsent;
                    queue.unsent.insert(entry.seq);
                }
                let payload = match &entry.body {
                    Body::Memory(bytes) => bytes.to_vec(),
                    Body::Disk(at) => log.read(at)?,
                    Body::Gone => continue,
                };
                let at = log.append(partition, entry.seq, &payload)?;
                match std::mem::replace(&mut entry.body, Body::Disk(at)) {
                    Body::Memory(_) => *memory_bytes = memory_bytes.saturating_sub(entry.len),
                    Body::Disk(old) => log.release(&old),
                    Body::Gone => {}
                }
                written += 1;
            }
        }
        *in_flight = 0;
        log.sync()?;
        self.publish_stats(&inner);
        Ok(written)
    }
}

impl Outbox for Spool {
    type Token = BatchToken;

    fn next(&self) -> Option<Outgoing<BatchToken>> {
        let mut inner = self.lock();
        let keys: Vec<u32> = inner.partitions.keys().copied().collect();
        if keys.is_empty() {
            return None;
        }
        let start = keys.partition_point(|p| *p < inner.cursor);
        for offset in 0..keys.len() {
            let partition = keys[(start + offset) % keys.len()];
            let Inner {
                log, partitions, ..
            } = &mut *inner;
            let Some(queue) = partitions.get_mut(&partition) else {
                continue;
            };
            let Some(&seq) = queue.unsent.iter().next() else {
                continue;
            };
            queue.unsent.remove(&seq);
            let Some(entry) = queue.find(seq) else {
                continue;
            };
            let payload = match &entry.body {
                Body::Memory(bytes) => bytes.clone(),
                Body::Disk(at) => match log.read(at) {
                    Ok(bytes) => Bytes::from(bytes),
                    Err(err) => {
                        // An unreadable record cannot be published, ever: report it loudly and
                        // let it go rather than blocking the partition forever.
                        tracing::error!(partition, seq, error = %err, "unreadable batch in the disk spool; it is lost");
                        entry.state = State::InFlight;
                        inner.in_flight += 1;
                        self.settle(&mut inner, partition, seq, true);
                        self.publish_stats(&inner);
                        continue;
                    }
                },
                Body::Gone => continue,
            };
            entry.state = State::InFlight;
            let trace = entry.trace.clone();
            inner.in_flight += 1;
            inner.cursor = partition.wrapping_add(1);
            return Some(Outgoing {
                subject: names::partials_subject_in(&self.subject_prefix, partition),
                msg_id: names::partial_msg_id(&self.agent_id, partition, seq),
                payload,
                trace,
                content_encoding: None,
                token: BatchToken { partition, seq },
            });
        }
        None
    }

    fn acked(&self, token: BatchToken, ack: &PublishAck, latency: Duration) {
        let mut inner = self.lock();
        self.settle(&mut inner, token.partition, token.seq, true);
        self.publish_stats(&inner);
        drop(inner);
        self.metrics.partials_published.increment(1);
        if ack.duplicate {
            self.metrics.partials_duplicate.increment(1);
        }
        self.metrics.publish_latency.record(latency.as_secs_f64());
    }

    fn failed(&self, token: BatchToken) {
        let mut inner = self.lock();
        self.settle(&mut inner, token.partition, token.seq, false);
    }

    fn abandon_in_flight(&self) {
        let mut inner = self.lock();
        for queue in inner.partitions.values_mut() {
            let PartitionQueue { entries, unsent } = queue;
            for entry in entries.iter_mut() {
                if entry.state == State::InFlight {
                    entry.state = State::Unsent;
                    unsent.insert(entry.seq);
                }
            }
        }
        inner.in_flight = 0;
    }

    fn is_idle(&self) -> bool {
        self.lock().batches == 0
    }

    fn wake(&self) -> &Arc<Notify> {
        &self.wake
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::pipeline::test_ack as ack;

    fn open(dir: &Path, memory: u64) -> (Spool, Vec<Leftover>) {
        Spool::open(dir, "edge-t", memory, 1 << 30, 1 << 20, AgentMetrics::new()).expect("open")
    }

    fn drain(spool: &Spool) -> Vec<(u32, u64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(item) = spool.next() {
            out.push((item.token.partition, item.token.seq, item.payload.to_vec()));
            spool.acked(item.token, &ack(), Duration::ZERO);
        }
        out
    }

    #[test]
    fn batches_go_out_in_order_per_partition_and_round_robin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (spool, leftovers) = open(dir.path(), 1 << 20);
        assert!(leftovers.is_empty());
        spool.push(0, 10, Bytes::from_static(b"a"));
        spool.push(0, 11, Bytes::from_static(b"b"));
        spool.push(1, 5, Bytes::from_static(b"c"));
        assert_eq!(spool.acked_below(0, 12), 10);
        let first = spool.next().expect("first");
        let second = spool.next().expect("second");
        assert_eq!((first.token.partition, first.token.seq), (0, 10));
        assert_eq!((second.token.partition, second.token.seq), (1, 5));
        // 10 failed, 11 goes next... no: the lowest unsent of partition 0 is 11 while 10 is
        // in flight; after the failure 10 is unsent again and goes before anything newer.
        spool.failed(first.token);
        let retry = spool.next().expect("retry");
        assert_eq!((retry.token.partition, retry.token.seq), (0, 10));
        assert_eq!(retry.msg_id, "edge-t.0.10");
        assert_eq!(retry.subject, "rtdash.partials.0");
        spool.acked(retry.token, &ack(), Duration::ZERO);
        assert_eq!(spool.acked_below(0, 12), 11);
        spool.acked(second.token, &ack(), Duration::ZERO);
        let rest = drain(&spool);
        assert_eq!(rest, vec![(0, 11, b"b".to_vec())]);
        assert!(spool.is_idle());
        assert_eq!(spool.acked_below(0, 12), 12);
    }

    #[test]
    fn out_of_order_acks_keep_acked_below_at_the_oldest_unacked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (spool, _) = open(dir.path(), 1 << 20);
        for seq in 1..=3 {
            spool.push(0, seq, Bytes::from_static(b"x"));
        }
        let one = spool.next().expect("1");
        let two = spool.next().expect("2");
        spool.acked(two.token, &ack(), Duration::ZERO);
        assert_eq!(spool.acked_below(0, 4), 1);
        assert_eq!(spool.pending(0), 2);
        spool.acked(one.token, &ack(), Duration::ZERO);
        assert_eq!(spool.acked_below(0, 4), 3);
    }

    #[test]
    fn over_the_memory_budget_batches_go_to_disk_and_come_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (spool, _) = open(dir.path(), 10);
        spool.push(0, 1, Bytes::from_static(b"in memory"));
        spool.push(0, 2, Bytes::from_static(b"on disk 1"));
        spool.push(0, 3, Bytes::from_static(b"on disk 2"));
        assert_eq!(spool.stats().memory_bytes.load(Ordering::Relaxed), 9);
        assert!(spool.stats().disk_bytes.load(Ordering::Relaxed) > 0);
        let out = drain(&spool);
        assert_eq!(
            out,
            vec![
                (0, 1, b"in memory".to_vec()),
                (0, 2, b"on disk 1".to_vec()),
                (0, 3, b"on disk 2".to_vec()),
            ]
        );
        assert_eq!(spool.stats().batches.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn unacked_batches_survive_a_restart_and_go_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (spool, _) = open(dir.path(), 1 << 20);
            spool.push(0, 1, Bytes::from_static(b"acked"));
            spool.push(0, 2, Bytes::from_static(b"in flight"));
            spool.push(1, 7, Bytes::from_static(b"never sent"));
            let first = spool.next().expect("1");
            spool.acked(first.token, &ack(), Duration::ZERO);
            let _in_flight = spool.next().expect("2");
            spool.abandon_in_flight();
            assert_eq!(spool.persist_all().expect("persist"), 2);
        }
        let (spool, leftovers) = open(dir.path(), 1 << 20);
        assert_eq!(
            leftovers,
            vec![
                Leftover {
                    partition: 0,
                    seq: 2
                },
                Leftover {
                    partition: 1,
                    seq: 7
                }
            ]
        );
        spool.push(0, 100, Bytes::from_static(b"new"));
        assert_eq!(spool.acked_below(0, 100), 2);
        let out = drain(&spool);
        assert_eq!(
            out,
            vec![
                (0, 2, b"in flight".to_vec()),
                (1, 7, b"never sent".to_vec()),
                (0, 100, b"new".to_vec()),
            ]
        );
        // Everything acknowledged: a clean shutdown leaves nothing to publish again.
        spool.persist_all().expect("persist");
        drop(spool);
        let (_, leftovers) = open(dir.path(), 1 << 20);
        assert!(leftovers.is_empty());
    }
}
