//! Shared by the core-aggregator integration tests: fake edge agents publishing real
//! `PartialBatch`es (real wire format, `Nats-Msg-Id`), a workload whose exact aggregates the
//! test computes independently, and QuestDB row checks.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use async_nats::jetstream::{self, publish::PublishAck};
use rtdash_shared::messages::{PartialBatch, PartialEntry};
use rtdash_shared::names;
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::{unique_hash, Sketch, SketchSpec};
use rtdash_shared::time::{now_millis, UnixMillis};
use rtdash_shared::wire::{self, Format};
use rtdash_tests::aggregator::{Aggregator, AggregatorOptions};
use rtdash_tests::{unique_name, NatsServer, QuestDb};
use serde_json::Value;

/// Tenant of every test series.
pub const TENANT: &str = "t1";
/// Metric of every test series.
pub const METRIC: &str = "latency";
/// Window size of the test metric.
pub const WINDOW_MS: i64 = 1_000;

/// A small deterministic PRNG (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Exact aggregates of one window, computed by the test.
#[derive(Clone, Debug, Default)]
pub struct Acc {
    pub values: Vec<f64>,
    pub uniques: BTreeSet<String>,
    pub late: u64,
}

impl Acc {
    pub fn count(&self) -> u64 {
        self.values.len() as u64
    }
    pub fn sum(&self) -> f64 {
        self.values.iter().sum()
    }
}

/// Expected windows by (series JSON, window start).
pub type Expected = BTreeMap<(String, UnixMillis), Acc>;

/// The test workload: `series` series of one metric, values that sum exactly in f64 (multiples
/// of 0.25 below 2^20), a unique key per event from a small user population.
#[derive(Clone, Debug)]
pub struct Workload {
    pub series: Vec<SeriesKey>,
    pub partitions: u32,
    pub rng: Rng,
    pub expected: Expected,
}

impl Workload {
    pub fn new(series: usize, partitions: u32, seed: u64) -> Self {
        let series = (0..series)
            .map(|i| {
                if i == 0 {
                    SeriesKey::new(TENANT, METRIC, [])
                } else {
                    SeriesKey::new(
                        TENANT,
                        METRIC,
                        [
                            ("region".to_owned(), Some(format!("r{}", i % 5))),
                            ("host".to_owned(), Some(format!("h{i}"))),
                        ],
                    )
                }
            })
            .collect();
        Self {
            series,
            partitions,
            rng: Rng::new(seed),
            expected: Expected::new(),
        }
    }

    /// Entries for window `start`, one flush of one agent, grouped by partition: each series
    /// is touched with probability 1/2, with 1 to 4 events.
    pub fn flush(&mut self, start: UnixMillis) -> BTreeMap<u32, Vec<PartialEntry>> {
        let mut out: BTreeMap<u32, Vec<PartialEntry>> = BTreeMap::new();
        for index in 0..self.series.len() {
            if self.rng.below(2) == 0 {
                continue;
            }
            let events = 1 + self.rng.below(4) as usize;
            let entry = self.entry(index, start, events, false);
            out.entry(entry.series.partition(self.partitions))
                .or_default()
                .push(entry);
        }
        out
    }

    /// One entry of `events` events for series `index` in window `start` (recorded in the
    /// expectation; `late` counts them as late too).
    pub fn entry(
        &mut self,
        index: usize,
        start: UnixMillis,
        events: usize,
        late: bool,
    ) -> PartialEntry {
        let series = self.series[index].clone();
        let mut sketch = Sketch::new(SketchSpec::ALL);
        let acc = self
            .expected
            .entry((series.dims_json(), start))
            .or_default();
        for _ in 0..events {
            let value = self.rng.below(4_000_000) as f64 * 0.25;
            let user = format!("u{}", self.rng.below(500));
            sketch.record(Some(value), Some(unique_hash(user.as_bytes())));
            acc.values.push(value);
            acc.uniques.insert(user);
            if late {
                acc.late += 1;
            }
        }
        PartialEntry {
            series,
            window_start: start,
            window_ms: WINDOW_MS,
            sketch,
        }
    }
}

/// A fake edge agent: allocates sequence numbers per partition, publishes real batches.
#[derive(Clone, Debug)]
pub struct FakeAgent {
    pub id: String,
    pub js: jetstream::Context,
    pub partitions: u32,
    next_seq: HashMap<u32, u64>,
}

impl FakeAgent {
    pub fn new(id: &str, js: jetstream::Context, partitions: u32) -> Self {
        Self {
            id: id.to_owned(),
            js,
            partitions,
            next_seq: HashMap::new(),
        }
    }

    /// The next batch of `partition` (not published). `acked_below` is the batch's own seq:
    /// this agent awaits every publish before the next.
    pub fn batch(
        &mut self,
        partition: u32,
        watermark: UnixMillis,
        entries: Vec<PartialEntry>,
    ) -> PartialBatch {
        let seq = self.next_seq.entry(partition).or_insert(1);
        let batch = PartialBatch {
            agent_id: self.id.clone(),
            partition,
            seq: *seq,
            acked_below: *seq,
            watermark,
            created_at: now_millis(),
            entries,
        };
        *seq += 1;
        batch
    }

    /// Publishes `batch` with `msg_id` (the agent's id scheme by default) and awaits the ack.
    pub async fn publish_as(
        &self,
        batch: &PartialBatch,
        msg_id: &str,
    ) -> anyhow::Result<PublishAck> {
        let payload = wire::encode(batch, Format::Binary)?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        let mut backoff = Duration::from_millis(50);
        for attempt in 0.. {
            let result = async {
                self.js
                    .publish_with_headers(
                        names::partials_subject(batch.partition),
                        headers.clone(),
                        payload.clone().into(),
                    )
                    .await?
                    .await
                    .map_err(anyhow::Error::from)
            }
            .await;
            match result {
                Ok(ack) => return Ok(ack),
                Err(err) if attempt < 50 => {
                    let _ = err;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(err) => return Err(err),
            }
        }
        unreachable!()
    }

    /// Publishes `batch` under its own message id.
    pub async fn publish(&self, batch: &PartialBatch) -> anyhow::Result<PublishAck> {
        let id = names::partial_msg_id(&batch.agent_id, batch.partition, batch.seq);
        self.publish_as(batch, &id).await
    }

    /// Builds and publishes the next batch of `partition`.
    pub async fn send(
        &mut self,
        partition: u32,
        watermark: UnixMillis,
        entries: Vec<PartialEntry>,
    ) -> anyhow::Result<PartialBatch> {
        let batch = self.batch(partition, watermark, entries);
        self.publish(&batch).await?;
        Ok(batch)
    }

    /// An empty batch on every partition: the watermark moves.
    pub async fn heartbeat(&mut self, watermark: UnixMillis) -> anyhow::Result<()> {
        for partition in 0..self.partitions {
            self.send(partition, watermark, Vec::new()).await?;
        }
        Ok(())
    }
}

/// A window row read back from QuestDB.
#[derive(Clone, Debug, PartialEq)]
pub struct DbRow {
    pub count: u64,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub avg: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub uniq: Option<u64>,
    pub revision: i64,
    pub is_final: bool,
    pub late_count: i64,
    pub window_end: i64,
    pub dim_set: Option<String>,
}

/// Every row of `table`, by (series JSON, window start ms).
pub fn fetch_rows(db: &QuestDb, table: &str) -> anyhow::Result<BTreeMap<(String, i64), DbRow>> {
    fetch_rows_where(db, table, "true")
}

/// The rows of `table` matching the SQL condition `filter`, by (series JSON, window start ms).
pub fn fetch_rows_where(
    db: &QuestDb,
    table: &str,
    filter: &str,
) -> anyhow::Result<BTreeMap<(String, i64), DbRow>> {
    let answer = db.exec(&format!(
        "select series, cast(ts as long), count, sum, min, max, avg, p50, p90, p95, p99, uniq, \
         revision, final, late_count, cast(window_end as long), dim_set from '{table}' \
         where {filter}"
    ))?;
    let mut rows = BTreeMap::new();
    let Some(dataset) = answer["dataset"].as_array() else {
        bail!("no dataset in {answer}");
    };
    let f = |v: &Value| v.as_f64();
    for row in dataset {
        let key = (
            row[0].as_str().unwrap_or_default().to_owned(),
            row[1].as_i64().unwrap_or_default() / 1000,
        );
        let parsed = DbRow {
            count: row[2].as_u64().unwrap_or_default(),
            sum: f(&row[3]),
            min: f(&row[4]),
            max: f(&row[5]),
            avg: f(&row[6]),
            p50: f(&row[7]),
            p90: f(&row[8]),
            p95: f(&row[9]),
            p99: f(&row[10]),
            uniq: row[11].as_u64(),
            revision: row[12].as_i64().unwrap_or(-1),
            is_final: row[13].as_bool().unwrap_or(false),
            late_count: row[14].as_i64().unwrap_or(-1),
            window_end: row[15].as_i64().unwrap_or_default() / 1000,
            dim_set: row[16].as_str().map(str::to_owned),
        };
        if rows.insert(key.clone(), parsed).is_some() {
            bail!("duplicate row for {key:?} (DEDUP UPSERT KEYS not in effect?)");
        }
    }
    Ok(rows)
}

/// Why `rows` do not (yet) match `expected` exactly, or `None` when they do: the same windows,
/// every one final, count/sum/min/max exact, avg to rounding, unique within HLL error,
/// percentiles within t-digest rank error, late counts as expected.
pub fn mismatch(rows: &BTreeMap<(String, i64), DbRow>, expected: &Expected) -> Option<String> {
    let missing: Vec<_> = expected.keys().filter(|k| !rows.contains_key(*k)).collect();
    if !missing.is_empty() {
        return Some(format!(
            "{} of {} windows missing, e.g. {:?}",
            missing.len(),
            expected.len(),
            missing[0]
        ));
    }
    let extra: Vec<_> = rows.keys().filter(|k| !expected.contains_key(*k)).collect();
    if !extra.is_empty() {
        return Some(format!("unexpected rows, e.g. {:?}", extra[0]));
    }
    for (key, acc) in expected {
        let row = &rows[key];
        let mut values = acc.values.clone();
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let problem = if !row.is_final {
            Some("not final".to_owned())
        } else if row.count != acc.count() {
            Some(format!("count {} != {}", row.count, acc.count()))
        } else if row.sum != Some(acc.sum()) {
            Some(format!("sum {:?} != {}", row.sum, acc.sum()))
        } else if row.min != values.first().copied() || row.max != values.last().copied() {
            Some(format!(
                "min/max {:?}/{:?} != {:?}/{:?}",
                row.min,
                row.max,
                values.first(),
                values.last()
            ))
        } else if row
            .avg
            .is_none_or(|avg| (avg - acc.sum() / n as f64).abs() > 1e-9 * avg.abs().max(1.0))
        {
            Some(format!("avg {:?}", row.avg))
        } else if row.late_count != acc.late as i64 {
            Some(format!("late_count {} != {}", row.late_count, acc.late))
        } else if row.window_end != key.1 + WINDOW_MS {
            Some(format!("window_end {}", row.window_end))
        } else {
            let distinct = acc.uniques.len() as f64;
            let uniq = row.uniq.unwrap_or(0) as f64;
            if (uniq - distinct).abs() > (distinct * 0.03).max(2.0) {
                Some(format!("uniq {uniq} vs exact {distinct}"))
            } else {
                quantile_problem(&values, row)
            }
        };
        if let Some(problem) = problem {
            return Some(format!("window {key:?}: {problem} (row {row:?})"));
        }
    }
    None
}

/// Checks each percentile's rank against the exact values (t-digest error bound, generous for
/// the small windows the tests use).
fn quantile_problem(sorted: &[f64], row: &DbRow) -> Option<String> {
    let n = sorted.len() as f64;
    for (q, value) in [
        (0.5, row.p50),
        (0.9, row.p90),
        (0.95, row.p95),
        (0.99, row.p99),
    ] {
        let Some(value) = value else {
            return Some(format!("p{} missing", q * 100.0));
        };
        if value < sorted[0] || value > sorted[sorted.len() - 1] {
            return Some(format!("p{} = {value} outside the values", q * 100.0));
        }
        let below = sorted.iter().filter(|v| **v < value).count() as f64;
        let at_or_below = sorted.iter().filter(|v| **v <= value).count() as f64;
        let tolerance = 0.05 + 1.0 / n;
        if below / n > q + tolerance || at_or_below / n < q - tolerance {
            return Some(format!(
                "p{} = {value}: rank {below}..{at_or_below} of {n}",
                q * 100.0
            ));
        }
    }
    None
}

/// Waits until the rows of `table` match `expected` exactly (see [`mismatch`]).
pub async fn wait_exact(
    db: &QuestDb,
    table: &str,
    expected: &Expected,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<(String, i64), DbRow>> {
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = db
            .wait_wal_applied(table, Duration::from_secs(10))
            .and_then(|()| fetch_rows(db, table));
        let last = match attempt {
            Ok(rows) => match mismatch(&rows, expected) {
                None => return Ok(rows),
                Some(problem) => problem,
            },
            Err(err) => format!("{err:#}"),
        };
        if Instant::now() >= deadline {
            bail!("QuestDB rows never matched the expected aggregates: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A test environment: its own nats-server, a QuestDB (the shared one unless given), a fresh
/// table, a JetStream context.
pub struct Env {
    pub nats: NatsServer,
    pub table: String,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
}

impl Env {
    pub async fn start() -> anyhow::Result<Env> {
        let nats = NatsServer::start()?;
        let client = async_nats::connect(nats.url()).await?;
        let js = jetstream::new(client.clone());
        Ok(Env {
            nats,
            table: unique_name("agg"),
            client,
            js,
        })
    }

    /// Aggregator options for this environment.
    pub fn options(&self, instance: &str, db: &QuestDb) -> AggregatorOptions {
        AggregatorOptions::new(
            instance,
            &self.nats.url(),
            &db.http_addr().to_string(),
            &self.table,
        )
    }

    /// Starts an aggregator (blocking start on a thread, not to stall the runtime).
    pub async fn aggregator(&self, options: AggregatorOptions) -> anyhow::Result<Aggregator> {
        tokio::task::spawn_blocking(move || Aggregator::start(options))
            .await
            .map_err(|e| anyhow!("{e}"))?
            .context("start core-aggregator")
    }
}

/// Polls `probe` every 100 ms until it is true.
pub async fn until(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !probe() {
        if Instant::now() >= deadline {
            bail!("{what}: not within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A window start `minutes` ago (aligned), as the base of a test's event times.
pub fn base(minutes_ago: i64) -> UnixMillis {
    let t = now_millis() - minutes_ago * 60_000;
    t - t.rem_euclid(WINDOW_MS)
}
