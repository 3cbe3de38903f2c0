//! The flusher: drains the shards into partial batches every flush interval (see
//! [the module docs](super)).

use super::durable::DurableAcks;
use super::in_flight::InFlightRequests;
use super::shards::Shards;
use crate::metrics::AgentMetrics;
use crate::publish::seq::SeqState;
use crate::publish::spool::Spool;
use bytes::Bytes;
use rtdash_runtime::trace_context;
use rtdash_shared::messages::{PartialBatch, PartialEntry};
use rtdash_shared::time::UnixMillis;
use rtdash_shared::wire::{self, Format};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Series-cap bookkeeping is kept for windows this much older than the widest window.
const ADMISSION_HORIZON_MS: i64 = 10 * 60 * 1000;

/// Flusher settings.
#[derive(Clone, Debug)]
pub struct FlushConfig {
    /// Agent id written into every batch.
    pub agent_id: String,
    /// Partition count to route with.
    pub partitions: u32,
    /// Target encoded batch size.
    pub max_batch_bytes: usize,
    /// Largest encoded batch: a bigger one is split even when the size estimate said it
    /// fits. Below the server's `max_payload`, or the publish could never succeed.
    pub hard_max_batch_bytes: usize,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Flush interval.
    pub interval: Duration,
    /// How often sequence numbers are persisted.
    pub persist_every: Duration,
}

/// What one flush did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Series entries published.
    pub entries: usize,
    /// Batches with data.
    pub batches: usize,
    /// Empty heartbeat batches.
    pub heartbeats: usize,
    /// The watermark the batches carry.
    pub watermark: UnixMillis,
}

/// Drains the shards into batches every flush interval (see the module docs).
#[derive(Debug)]
pub struct Flusher {
    config: FlushConfig,
    shards: Arc<Shards>,
    spool: Arc<Spool>,
    seqs: SeqState,
    in_flight: Arc<InFlightRequests>,
    metrics: AgentMetrics,
    last_sent: Vec<Option<Instant>>,
    watermark: UnixMillis,
    last_persist: Instant,
    /// With `ingest.durable_ack`: told which flushes are durable.
    durable: Option<Arc<DurableAcks>>,
    /// Batches of the flush in progress that the spool kept in memory (`(partition, seq)`).
    in_memory: Vec<(u32, u64)>,
}

impl Flusher {
    /// A flusher publishing through `spool`.
    pub fn new(
        config: FlushConfig,
        shards: Arc<Shards>,
        spool: Arc<Spool>,
        seqs: SeqState,
        in_flight: Arc<InFlightRequests>,
        metrics: AgentMetrics,
    ) -> Self {
        let partitions = config.partitions as usize;
        Self {
            config,
            shards,
            spool,
            seqs,
            in_flight,
            metrics,
            last_sent: vec![None; partitions],
            watermark: UnixMillis::MIN,
            last_persist: Instant::now(),
            durable: None,
            in_memory: Vec::new(),
        }
    }

    /// Reports every flush to `durable` (`ingest.durable_ack`; the spool's memory budget
    /// must be 0, see [`DurableAcks`]).
    pub fn with_durable_acks(mut self, durable: Arc<DurableAcks>) -> Self {
        self.durable = Some(durable);
        self
    }

    /// One flush at wall-clock `now_ms`. With `final_flush` every partition without data gets
    /// a heartbeat (the last word of this run).
    pub fn flush(&mut self, now_ms: UnixMillis, final_flush: bool) -> FlushReport {
        let now = Instant::now();
        let held_back = self
            .in_flight
            .oldest()
            .map_or(now_ms, |oldest| oldest.min(now_ms));
        self.watermark = self.watermark.max(held_back);
        let watermark = self.watermark;
        let forget_before = now_ms - self.shards.widest_window_ms() - ADMISSION_HORIZON_MS;
        let entries = self.shards.drain_all(forget_before);
        // While traces are exported, a flush with data is the root span of the trace its
        // batches carry (`traceparent`); a batch merges many ingest requests, so it starts a
        // trace of its own rather than continuing one of theirs (docs/architecture.md,
        // "Tracing"). Otherwise the usual debug span, and no trace context at all.
        // The flush makes the messages whose `traceparent` is its context: a producer
        // ("create") span in OpenTelemetry's messaging terms; each publish is an `edge.publish`
        // span of its own under it (see `publish::pipeline`).
        let span = if !entries.is_empty() && trace_context::enabled() {
            tracing::info_span!(
                parent: None,
                "edge.flush",
                otel.kind = "producer",
                messaging.system = "nats",
                messaging.operation.type = "create",
                watermark,
                entries = entries.len()
            )
        } else {
            tracing::debug_span!("flush", watermark)
        };
        let _enter = span.enter();
        self.metrics.series_active.set(entries.len() as f64);
        let mut report = FlushReport {
            entries: entries.len(),
            watermark,
            ..FlushReport::default()
        };
        let partitions = self.config.partitions;
        let mut by_partition: Vec<Vec<PartialEntry>> =
            (0..partitions).map(|_| Vec::new()).collect();
        for entry in entries {
            let partition = entry.series.partition(partitions) as usize;
            by_partition[partition].push(entry);
        }
        for (partition, entries) in by_partition.into_iter().enumerate() {
            let p = partition as u32;
            if entries.is_empty() {
                let due = final_flush
                    || self.last_sent[partition]
                        .is_none_or(|last| now.duration_since(last) >= self.config.heartbeat);
                if due && self.spool.pending(p) == 0 {
                    self.emit(p, Vec::new(), watermark, now_ms);
                    self.last_sent[partition] = Some(now);
                    report.heartbeats += 1;
                }
                continue;
            }
            for chunk in chunk_by_size(entries, self.config.max_batch_bytes) {
                report.batches += self.emit(p, chunk, watermark, now_ms);
            }
            self.last_sent[partition] = Some(now);
        }
        if let Some(durable) = &self.durable {
            let flush = self.shards.drains();
            durable.flushed(flush, std::mem::take(&mut self.in_memory), &self.spool);
        }
        if final_flush || now.duration_since(self.last_persist) >= self.config.persist_every {
            self.persist_seqs();
            self.last_persist = now;
        }
        if report.entries > 0 {
            tracing::debug!(
                entries = report.entries,
                batches = report.batches,
                heartbeats = report.heartbeats,
                "flushed"
            );
        }
        report
    }

    /// Encodes and spools one batch (splitting it when it encodes too large); returns the
    /// number of batches made.
    fn emit(
        &mut self,
        partition: u32,
        entries: Vec<PartialEntry>,
        watermark: UnixMillis,
        now_ms: UnixMillis,
    ) -> usize {
        let seq = self.seqs.next(partition);
        let batch = PartialBatch {
            agent_id: self.config.agent_id.clone(),
            partition,
            seq,
            acked_below: self.spool.acked_below(partition, seq),
            watermark,
            created_at: now_ms,
            entries,
        };
        self.encode_and_push(batch)
    }

    fn encode_and_push(&mut self, mut batch: PartialBatch) -> usize {
        match wire::encode(&batch, Format::Binary) {
            Ok(bytes)
                if bytes.len() <= self.config.hard_max_batch_bytes || batch.entries.len() <= 1 =>
            {
                let trace = if batch.entries.is_empty() {
                    None
                } else {
                    trace_context::TraceParent::current()
                };
                let on_disk =
                    self.spool
                        .push_traced(batch.partition, batch.seq, Bytes::from(bytes), trace);
                if !on_disk && self.durable.is_some() {
                    self.in_memory.push((batch.partition, batch.seq));
                }
                1
            }
            Ok(_) => {
                // The size estimate was off: split in halves; the first half keeps the seq,
                // the second gets the next one (pushed after, so the spool stays in order).
                let second_entries = batch.entries.split_off(batch.entries.len() / 2);
                let header = empty_like(&batch);
                let mut made = self.encode_and_push(batch);
                let seq = self.seqs.next(header.partition);
                let second = PartialBatch {
                    seq,
                    acked_below: self.spool.acked_below(header.partition, seq),
                    entries: second_entries,
                    ..header
                };
                made += self.encode_and_push(second);
                made
            }
            Err(err) => {
                tracing::error!(partition = batch.partition, error = %err, "cannot encode a partial batch; its deltas are lost");
                0
            }
        }
    }

    /// Writes the sequence numbers to the state directory (errors are logged).
    pub fn persist_seqs(&mut self) {
        if let Err(err) = self.seqs.persist() {
            tracing::error!(error = %err, "cannot persist batch sequence numbers");
        }
    }

    /// Flushes every interval until `stop` is cancelled, then a final flush; returns the
    /// flusher (for its sequence state).
    pub async fn run(mut self, stop: CancellationToken) -> Self {
        let mut interval = tokio::time::interval(self.config.interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = interval.tick() => {
                    // Draining and encoding many series takes a while: let the runtime move
                    // other tasks off this worker meanwhile.
                    let multi_thread = tokio::runtime::Handle::current().runtime_flavor()
                        == tokio::runtime::RuntimeFlavor::MultiThread;
                    if multi_thread {
                        tokio::task::block_in_place(|| {
                            self.flush(rtdash_shared::time::now_millis(), false)
                        });
                    } else {
                        self.flush(rtdash_shared::time::now_millis(), false);
                    }
                }
            }
        }
        self.flush(rtdash_shared::time::now_millis(), true);
        self
    }
}

fn empty_like(batch: &PartialBatch) -> PartialBatch {
    PartialBatch {
        agent_id: batch.agent_id.clone(),
        partition: batch.partition,
        seq: batch.seq,
        acked_below: batch.acked_below,
        watermark: batch.watermark,
        created_at: batch.created_at,
        entries: Vec::new(),
    }
}

/// Rough encoded size of an entry (postcard: strings plus the sketch).
fn estimate_entry_bytes(entry: &PartialEntry) -> usize {
    let series = &entry.series;
    let dims: usize = series
        .dims
        .iter()
        .map(|(name, value)| name.len() + value.as_ref().map_or(0, String::len) + 3)
        .sum();
    series.tenant.len() + series.metric.len() + dims + 40 + entry.sketch.heap_bytes()
}

/// Cuts `entries` into chunks whose estimated encoded size stays under `max_bytes`.
pub fn chunk_by_size(entries: Vec<PartialEntry>, max_bytes: usize) -> Vec<Vec<PartialEntry>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for entry in entries {
        let bytes = estimate_entry_bytes(&entry);
        if !current.is_empty() && size + bytes > max_bytes {
            chunks.push(std::mem::take(&mut current));
            size = 0;
        }
        size += bytes;
        current.push(entry);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::pipeline::test_ack as ack;
    use crate::publish::pipeline::Outbox;
    use rtdash_shared::event::{parse_event, Event, EventLimits};
    use rtdash_shared::metric::{MetricDefinition, MetricSet};
    use rtdash_shared::time::format_rfc3339;

    const NOW: UnixMillis = 1_705_327_532_000;

    struct Rig {
        _dir: tempfile::TempDir,
        shards: Arc<Shards>,
        spool: Arc<Spool>,
        in_flight: Arc<InFlightRequests>,
        flusher: Flusher,
    }

    fn rig(partitions: u32, max_batch_bytes: usize) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = AgentMetrics::new();
        let def = MetricDefinition::from_json(
            br#"{"name":"amount","event_type":"pay","field":"usd","unique":"user","dimensions":["region"]}"#,
        )
        .expect("valid");
        let shards = Arc::new(Shards::new(2, Arc::new(MetricSet::new([def]))));
        let (spool, _) = Spool::open(
            &dir.path().join("spool"),
            "edge-t",
            1 << 30,
            1 << 30,
            1 << 20,
            metrics.clone(),
        )
        .expect("spool");
        let spool = Arc::new(spool);
        let seqs = SeqState::load(dir.path(), "edge-t", 100).expect("seqs");
        let in_flight = Arc::new(InFlightRequests::default());
        let flusher = Flusher::new(
            FlushConfig {
                agent_id: "edge-t".into(),
                partitions,
                max_batch_bytes,
                hard_max_batch_bytes: max_batch_bytes * 2,
                heartbeat: Duration::from_secs(1),
                interval: Duration::from_millis(500),
                persist_every: Duration::from_secs(5),
            },
            Arc::clone(&shards),
            Arc::clone(&spool),
            seqs,
            Arc::clone(&in_flight),
            metrics,
        );
        Rig {
            _dir: dir,
            shards,
            spool,
            in_flight,
            flusher,
        }
    }

    /// Publishes (acknowledges) everything spooled and returns the decoded batches.
    fn publish_all(spool: &Spool) -> Vec<PartialBatch> {
        let mut out = Vec::new();
        while let Some(item) = spool.next() {
            out.push(wire::decode::<PartialBatch>(&item.payload).expect("batch"));
            spool.acked(item.token, &ack(), Duration::ZERO);
        }
        out
    }

    fn add_events(shards: &Shards, count: usize) {
        let json: Vec<String> = (0..count)
            .map(|i| {
                format!(
                    r#"{{"tenant_id":"t","source":"s","event_type":"pay","properties":{{"region":"r{}","usd":{i},"user":{i}}},"occurred_at":"{}"}}"#,
                    i % 7,
                    format_rfc3339(NOW - 1000)
                )
            })
            .collect();
        let events: Vec<Event<'_>> = json
            .iter()
            .map(|j| parse_event(j.as_bytes(), &EventLimits::default(), NOW).expect("valid"))
            .collect();
        shards.add_all(events.iter());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_partitions_get_heartbeats_every_heartbeat_interval() {
        let mut rig = rig(4, 1 << 20);
        let report = rig.flusher.flush(NOW, false);
        assert_eq!(report.heartbeats, 4, "first flush: every partition");
        let batches = publish_all(&rig.spool);
        assert!(batches
            .iter()
            .all(|b| b.entries.is_empty() && b.watermark == NOW));
        assert!(batches.iter().all(|b| b.seq == 100 && b.acked_below == 100));

        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(rig.flusher.flush(NOW + 500, false).heartbeats, 0);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(rig.flusher.flush(NOW + 1000, false).heartbeats, 4);
        let batches = publish_all(&rig.spool);
        assert!(batches
            .iter()
            .all(|b| b.seq == 101 && b.watermark == NOW + 1000));

        // A partition with a batch waiting in the spool gets no heartbeat on top.
        tokio::time::advance(Duration::from_secs(1)).await;
        rig.flusher.flush(NOW + 2000, false);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(rig.flusher.flush(NOW + 3000, false).heartbeats, 0);
        assert_eq!(publish_all(&rig.spool).len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn data_is_grouped_by_partition_and_merges_to_the_events() {
        let mut rig = rig(4, 1 << 20);
        add_events(&rig.shards, 100);
        add_events(&rig.shards, 50);
        let report = rig.flusher.flush(NOW, false);
        assert!(report.batches >= 1);
        let batches = publish_all(&rig.spool);
        let mut total = rtdash_shared::sketch::Sketch::new(rtdash_shared::sketch::SketchSpec::ALL);
        for batch in &batches {
            for entry in &batch.entries {
                assert_eq!(entry.series.partition(4), batch.partition);
                if entry.series.metric == "amount" && entry.series.dims.is_empty() {
                    total.merge(&entry.sketch);
                }
            }
        }
        let stats = total.stats();
        assert_eq!(stats.count, 150);
        assert_eq!(
            stats.sum,
            Some((0..100).sum::<i32>() as f64 + (0..50).sum::<i32>() as f64)
        );
        assert_eq!(stats.min, Some(0.0));
        assert_eq!(stats.max, Some(99.0));
        assert_eq!(stats.unique, Some(100));
        assert_eq!(rig.shards.approx_bytes(), rig.shards.approx_bytes());
    }

    #[tokio::test(start_paused = true)]
    async fn batches_are_cut_to_size_with_consecutive_seqs() {
        let mut rig = rig(1, 4096);
        add_events(&rig.shards, 2000);
        let report = rig.flusher.flush(NOW, false);
        assert!(report.batches > 1, "{report:?}");
        let batches = publish_all(&rig.spool);
        let seqs: Vec<u64> = batches.iter().map(|b| b.seq).collect();
        let expected: Vec<u64> = (100..100 + batches.len() as u64).collect();
        assert_eq!(seqs, expected);
        assert_eq!(batches[0].acked_below, 100);
        assert_eq!(
            batches[1].acked_below, 100,
            "batch 100 was not acknowledged yet"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_progress_hold_the_watermark_back() {
        let mut rig = rig(1, 1 << 20);
        let guard = rig.in_flight.enter(NOW - 300);
        assert_eq!(rig.flusher.flush(NOW, false).watermark, NOW - 300);
        drop(guard);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(rig.flusher.flush(NOW + 1000, false).watermark, NOW + 1000);
        // The watermark never goes back, even if the clock does.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(rig.flusher.flush(NOW, false).watermark, NOW + 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn the_run_loop_flushes_every_interval_and_once_more_at_the_end() {
        let rig = rig(2, 1 << 20);
        let stop = CancellationToken::new();
        let task = tokio::spawn(rig.flusher.run(stop.clone()));
        add_events(&rig.shards, 10);
        tokio::time::sleep(Duration::from_millis(600)).await;
        let first = publish_all(&rig.spool);
        assert!(
            first.iter().any(|b| !b.entries.is_empty()),
            "data flushed within one interval"
        );
        add_events(&rig.shards, 5);
        stop.cancel();
        let _flusher = task.await.expect("flusher");
        let last = publish_all(&rig.spool);
        let events: u64 = last
            .iter()
            .flat_map(|b| &b.entries)
            .filter(|e| e.series.metric == "amount" && e.series.dims.is_empty())
            .map(|e| e.sketch.count())
            .sum();
        assert_eq!(events, 5, "the final flush publishes what is left");
        let mut partitions: Vec<u32> = last.iter().map(|b| b.partition).collect();
        partitions.dedup();
        assert_eq!(
            partitions,
            vec![0, 1],
            "every partition hears from the final flush"
        );
    }
}
