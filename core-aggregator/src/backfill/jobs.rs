//! Backfill jobs (`rtdash_shared::backfill`): requested by a gateway in the bucket
//! `rtdash_backfill`, claimed by one aggregator (compare-and-set on the key's revision) and run
//! here, with progress written back to the same key.
//!
//! A job rewrites the base windows of `[from, boundary)` of one (tenant, metric) from the
//! raw-event archive, and then the rollup tier windows that hold any of them. A window is only
//! rewritten once the live path can no longer touch it: every partition's watermark (their
//! `rtdash.status.<p>` reports) has passed its end plus the correction horizon (later data for
//! it goes to `rtdash.late`), and `backfill.settle_ms` more have passed for the live writer's
//! last rows to land. The archive holds every accepted event, so the rewritten window counts
//! each exactly once, whatever the live path had written for it. Rows carry a revision above
//! every row they replace.
//!
//! - Phase `past`: the windows already settled when the job starts.
//! - Phase `recent`: the rest up to the boundary, once settled.
//! - Phase `tiers`: each tier window overlapping `[from, boundary)`, once settled: the merge of
//!   its stored base windows, read back from QuestDB (the job's own rows inside the range,
//!   the live path's outside it), so a job waiting for its tier windows (up to a day for the
//!   `1d` tier) holds no memory. Only the phases' work takes one of the process's
//!   `backfill.max_running` slots, not their waits.
//!
//! A running job is owned by the process that claimed it; one whose heartbeat is a minute
//! old (its aggregator stopped) is marked failed by any aggregator.

use super::recompute::{
    fold_archive, load_definitions, rebuilt_output, RecomputeSummary, Selection,
};
use super::RowWriter;
use crate::config::Config;
use crate::error::{Error, QuestDbError};
use crate::sink::questdb::{exec, table_names};
use crate::state::tiers::fold_windows;
use crate::state::{TierSet, WindowKey};
use async_nats::jetstream::kv::{self, Store};
use futures::StreamExt;
use rtdash_shared::backfill::{BackfillJob, BackfillPhase, BackfillState};
use rtdash_shared::messages::PartitionStatus;
use rtdash_shared::names;
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::Sketch;
use rtdash_shared::time::{now_millis, UnixMillis};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A range of base windows a job rewrote, and the revision of its rows there.
#[derive(Clone, Copy, Debug)]
struct Rewritten {
    range: (UnixMillis, UnixMillis),
    revision: u32,
}

/// A running job not updated for this long is abandoned (its aggregator stopped).
const STALE_MS: i64 = 60_000;
/// Time between two progress writes of a job.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// How long a job waits for QuestDB to apply what it wrote.
const APPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// The watermark each partition owner reported last.
#[derive(Clone, Default)]
struct Watermarks(Arc<Mutex<HashMap<u32, UnixMillis>>>);

impl Watermarks {
    /// Follows `rtdash.status.*` until `stop`.
    async fn follow(client: async_nats::Client, stop: CancellationToken) -> Result<Self, Error> {
        let mut reports = client
            .subscribe(format!("{}.*", names::STATUS_PREFIX))
            .await
            .map_err(|e| Error::js("status subscription", e))?;
        let marks = Self::default();
        let shared = marks.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    () = stop.cancelled() => return,
                    message = reports.next() => message,
                };
                let Some(message) = message else { return };
                let Ok(status) = rtdash_shared::wire::decode::<PartitionStatus>(&message.payload)
                else {
                    continue;
                };
                // The latest report, not the highest: a new owner restored from a checkpoint
                // may be behind the previous one.
                if let Some(watermark) = status.watermark {
                    let mut marks = shared.0.lock().unwrap_or_else(|e| e.into_inner());
                    marks.insert(status.partition, watermark);
                }
            }
        });
        Ok(marks)
    }

    /// Every window ending at or before this is past the correction horizon on every one of
    /// `partitions` (`None` until each has reported).
    fn settled_through(&self, partitions: u32, horizon_ms: i64) -> Option<UnixMillis> {
        let marks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (0..partitions)
            .map(|p| marks.get(&p).copied())
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .min()
            .map(|watermark| watermark.saturating_sub(horizon_ms))
    }
}

/// What every job of this process shares.
struct Runner {
    config: Arc<Config>,
    instance: String,
    js: async_nats::jetstream::Context,
    kv: Store,
    marks: Watermarks,
    http: reqwest::Client,
    running: Arc<Semaphore>,
    shutdown: CancellationToken,
}

/// Claims and runs queued jobs until `shutdown` (a job cut short stays `running` and is
/// marked failed a minute later).
pub async fn run(
    config: Arc<Config>,
    instance: String,
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let kv = js
        .get_key_value(names::BACKFILL_BUCKET)
        .await
        .map_err(|e| Error::js(format!("bucket {}", names::BACKFILL_BUCKET), e))?;
    let marks = Watermarks::follow(client, shutdown.clone()).await?;
    let runner = Arc::new(Runner {
        running: Arc::new(Semaphore::new(config.backfill.max_running.max(1))),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::QuestDb {
                addr: config.questdb.http.clone(),
                source: QuestDbError::Request(e),
            })?,
        config,
        instance,
        js,
        kv,
        marks,
        shutdown,
    });
    let mut ticks = tokio::time::interval(Duration::from_millis(runner.config.backfill.poll_ms));
    loop {
        tokio::select! {
            () = runner.shutdown.cancelled() => return Ok(()),
            _ = ticks.tick() => {}
        }
        if let Err(err) = Arc::clone(&runner).poll().await {
            tracing::warn!(%err, "backfill jobs could not be looked at");
        }
    }
}

/// A job's record and the bucket revision it was last written at.
struct Record {
    key: String,
    revision: u64,
    job: BackfillJob,
}

impl Runner {
    /// Claims what is queued (while this process has room) and fails what was abandoned.
    async fn poll(self: Arc<Self>) -> Result<(), Error> {
        let what = || format!("bucket {}", names::BACKFILL_BUCKET);
        let mut keys = self.kv.keys().await.map_err(|e| Error::js(what(), e))?;
        let mut all = Vec::new();
        while let Some(key) = keys.next().await {
            all.push(key.map_err(|e| Error::js(what(), e))?);
        }
        let now = now_millis();
        for key in all {
            let Ok(Some(entry)) = self.kv.entry(key.as_str()).await else {
                continue;
            };
            if entry.operation != kv::Operation::Put {
                continue;
            }
            let Ok(job) = serde_json::from_slice::<BackfillJob>(&entry.value) else {
                tracing::warn!(%key, "invalid backfill job record; skipped");
                continue;
            };
            let mut record = Record {
                key,
                revision: entry.revision,
                job,
            };
            match record.job.state {
                BackfillState::Queued => {
                    // Claimed with a free slot, kept for its first phase's work; each later
                    // phase takes one again for its work, not for the waits before it.
                    let Ok(slot) = Arc::clone(&self.running).try_acquire_owned() else {
                        continue;
                    };
                    record.job.state = BackfillState::Running;
                    record.job.claimed_by = Some(self.instance.clone());
                    if self.save(&mut record).await.is_err() {
                        continue; // another aggregator claimed it first
                    }
                    let runner = Arc::clone(&self);
                    let span = tracing::info_span!("backfill", tenant = %record.job.tenant,
                        metric = %record.job.metric, job = %record.job.id);
                    tokio::spawn(
                        async move { runner.run_job(record, slot).await }.instrument(span),
                    );
                }
                BackfillState::Running
                    if record
                        .job
                        .heartbeat_at
                        .is_some_and(|at| now - at > STALE_MS) =>
                {
                    record.job.state = BackfillState::Failed;
                    record.job.finished_at = Some(now);
                    record.job.error = Some(format!(
                        "abandoned: aggregator {} stopped while running it (request it again)",
                        record.job.claimed_by.as_deref().unwrap_or("?")
                    ));
                    let _ = self.save(&mut record).await;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Writes `record` over the revision it was read or last written at.
    async fn save(&self, record: &mut Record) -> Result<(), Error> {
        record.job.heartbeat_at = Some(now_millis());
        let value = serde_json::to_vec(&record.job)
            .map_err(|e| Error::Backfill(format!("cannot encode the job record: {e}")))?;
        record.revision = self
            .kv
            .update(record.key.as_str(), value.into(), record.revision)
            .await
            .map_err(|err| {
                Error::Backfill(format!(
                    "its record was replaced or marked failed elsewhere: {err}"
                ))
            })?;
        Ok(())
    }

    /// Runs a claimed job to its end and records how it ended.
    async fn run_job(&self, mut record: Record, slot: OwnedSemaphorePermit) {
        tracing::info!("backfill job started");
        let outcome = self.work(&mut record, slot).await;
        let now = now_millis();
        match outcome {
            Ok(()) => {
                record.job.state = BackfillState::Done;
                tracing::info!(rows = record.job.rows, "backfill job done");
            }
            Err(Error::Interrupted { .. }) => return,
            Err(err) => {
                tracing::warn!(%err, "backfill job failed");
                record.job.state = BackfillState::Failed;
                record.job.error = Some(err.to_string());
            }
        }
        record.job.finished_at = Some(now);
        if let Err(err) = self.save(&mut record).await {
            tracing::warn!(%err, "backfill job's end not recorded");
        }
    }

    /// The phases of a job.
    async fn work(&self, record: &mut Record, slot: OwnedSemaphorePermit) -> Result<(), Error> {
        let config = &self.config;
        let (tenant, metric) = (record.job.tenant.clone(), record.job.metric.clone());
        let defs = load_definitions(&self.js, None).await?;
        let def = defs
            .iter()
            .find(|d| d.name == metric && d.tenant_id.as_deref() == Some(tenant.as_str()))
            .or_else(|| {
                defs.iter()
                    .find(|d| d.name == metric && d.tenant_id.is_none())
            })
            .ok_or_else(|| Error::Backfill(format!("metric `{metric}` is no longer defined")))?;
        if def.window_ms() != record.job.window_ms {
            return Err(Error::Backfill(format!(
                "metric `{metric}` now has {} ms windows, the job {} ms (request it again)",
                def.window_ms(),
                record.job.window_ms
            )));
        }
        let window_ms = record.job.window_ms;
        let (from, boundary) = (record.job.from, record.job.boundary);
        let settle = config.backfill.settle_ms as i64;
        let horizon = config.windows.correction_horizon_ms;
        record.job.recent_complete_at = Some(boundary + horizon + settle);
        let tiers = TierSet::from_config(&config.rollups);
        let tier_windows = tier_windows(&tiers, window_ms, (from, boundary));
        record.job.tiers_complete_at = tier_windows
            .iter()
            .map(|(_, start, ms)| start + ms + horizon + settle)
            .max();
        record.job.phase = Some(BackfillPhase::Past);
        self.save(record).await?;

        // The ranges this job rewrote and the revision of its rows in each (a stored row of
        // a lower revision there is one the rewrite did not replace: not the job's).
        let mut rewritten: Vec<Rewritten> = Vec::new();
        let settled = self.settled_point(record).await?;
        let past_end = (settled.div_euclid(window_ms) * window_ms).clamp(from, boundary);
        if past_end > from {
            rewritten.push(self.recompute(record, (from, past_end)).await?);
        }
        drop(slot);
        if past_end < boundary {
            record.job.phase = Some(BackfillPhase::Recent);
            self.save(record).await?;
            self.wait_settled(record, boundary).await?;
            let _slot = self.slot().await?;
            rewritten.push(self.recompute(record, (past_end, boundary)).await?);
        }
        record.job.phase = Some(BackfillPhase::Tiers);
        self.save(record).await?;
        // Every tier window settled by then in one batch, earliest end first.
        let mut pending = tier_windows.as_slice();
        while let Some(&(_, start, ms)) = pending.first() {
            let settled = self.wait_settled(record, start + ms).await?;
            let ready = pending
                .iter()
                .take_while(|(_, start, ms)| start + ms <= settled)
                .count()
                .max(1);
            let _slot = self.slot().await?;
            self.rebuild_tiers(record, &pending[..ready], &rewritten)
                .await?;
            pending = &pending[ready..];
        }
        Ok(())
    }

    /// The settled point once every partition has reported (waits for the reports).
    async fn settled_point(&self, record: &mut Record) -> Result<UnixMillis, Error> {
        let partitions = self.config.streams.partitions;
        let horizon = self.config.windows.correction_horizon_ms;
        let mut last_beat = tokio::time::Instant::now();
        loop {
            if let Some(settled) = self.marks.settled_through(partitions, horizon) {
                // The live writer's last rows of what just settled land first.
                return Ok(settled - self.config.backfill.settle_ms as i64);
            }
            self.pause(record, &mut last_beat).await?;
        }
    }

    /// Waits until windows ending at or before `end` are settled, then `settle_ms` more;
    /// returns the settled point it saw (at least `end`).
    async fn wait_settled(
        &self,
        record: &mut Record,
        end: UnixMillis,
    ) -> Result<UnixMillis, Error> {
        let partitions = self.config.streams.partitions;
        let horizon = self.config.windows.correction_horizon_ms;
        let mut last_beat = tokio::time::Instant::now();
        let settled = loop {
            match self.marks.settled_through(partitions, horizon) {
                Some(settled) if settled >= end => break settled,
                _ => self.pause(record, &mut last_beat).await?,
            }
        };
        tokio::select! {
            () = self.shutdown.cancelled() => Err(Error::Interrupted { command: "backfill" }),
            () = tokio::time::sleep(Duration::from_millis(self.config.backfill.settle_ms)) => Ok(settled),
        }
    }

    /// Sleeps a poll interval, writing the heartbeat when it is due.
    async fn pause(
        &self,
        record: &mut Record,
        last_beat: &mut tokio::time::Instant,
    ) -> Result<(), Error> {
        tokio::select! {
            () = self.shutdown.cancelled() => return Err(Error::Interrupted { command: "backfill" }),
            () = tokio::time::sleep(Duration::from_millis(self.config.backfill.poll_ms)) => {}
        }
        if last_beat.elapsed() >= HEARTBEAT {
            *last_beat = tokio::time::Instant::now();
            self.save(record).await?;
        }
        Ok(())
    }

    /// Recomputes the base windows of `range` from the archive, writes them and counts them.
    async fn recompute(
        &self,
        record: &mut Record,
        (from, to): (UnixMillis, UnixMillis),
    ) -> Result<Rewritten, Error> {
        let config = &self.config;
        let (tenant, metric) = (record.job.tenant.clone(), record.job.metric.clone());
        let defs = load_definitions(&self.js, None).await?;
        let mut summary = RecomputeSummary::default();
        // Events folded so far, for the heartbeats written while the archive is read.
        let folded = AtomicU64::new(0);
        let events_before = record.job.events;
        let mut count = |summary: &RecomputeSummary, _: u64| {
            folded.store(summary.events, Ordering::Relaxed);
        };
        let windows = {
            let fold = fold_archive(
                config,
                &self.js,
                &defs,
                Selection {
                    from,
                    to,
                    tenant: Some(&tenant),
                    metric: Some(&metric),
                },
                &self.shutdown,
                &mut summary,
                &mut count,
            );
            tokio::pin!(fold);
            let mut beats = tokio::time::interval(HEARTBEAT);
            beats.tick().await;
            loop {
                tokio::select! {
                    windows = &mut fold => break windows?,
                    _ = beats.tick() => {
                        record.job.events = events_before + folded.load(Ordering::Relaxed);
                        self.save(record).await?;
                    }
                }
            }
        };
        record.job.events = events_before;
        let table = &config.questdb.table;
        let revision = self.next_revision(table, &record.job, (from, to)).await?;
        let writer = RowWriter::start(config, config.streams.partitions).await?;
        let now = now_millis();
        let mut rows = 0u64;
        for (key, sketch) in &windows {
            let output = rebuilt_output(config, key.clone(), None, sketch, revision, now);
            writer
                .write(key.series.partition(config.streams.partitions), output)
                .await?;
            rows += 1;
        }
        writer.finish().await?;
        self.wait_applied(table).await?;
        let done = Rewritten {
            range: (from, to),
            revision,
        };
        record.job.events += summary.events;
        record.job.rows += rows;
        record.job.windows_done +=
            rtdash_shared::backfill::windows_between(from, to, record.job.window_ms);
        tracing::info!(
            events = summary.events,
            rows,
            revision,
            "backfill windows rewritten"
        );
        self.save(record).await?;
        Ok(done)
    }

    /// One of the process's `backfill.max_running` slots, for one phase's work (waits for it,
    /// writing no heartbeat: the phases that hold slots write theirs).
    async fn slot(&self) -> Result<OwnedSemaphorePermit, Error> {
        tokio::select! {
            () = self.shutdown.cancelled() => Err(Error::Interrupted { command: "backfill" }),
            slot = Arc::clone(&self.running).acquire_owned() => {
                slot.map_err(|_| Error::Interrupted { command: "backfill" })
            }
        }
    }

    /// Rebuilds tier windows `(tier, start, length)` of the job's metric: each the merge of
    /// its stored base windows, the job's own rows (`rewritten`) inside the job's range and the
    /// live path's outside it.
    async fn rebuild_tiers(
        &self,
        record: &mut Record,
        batch: &[(u8, UnixMillis, i64)],
        rewritten: &[Rewritten],
    ) -> Result<(), Error> {
        let config = &self.config;
        let job = &record.job;
        let start = batch.iter().map(|(_, start, _)| *start).min().unwrap_or(0);
        let end = batch.iter().map(|(_, s, ms)| s + ms).max().unwrap_or(0);
        let mut base: HashMap<WindowKey, Sketch> = HashMap::new();
        for part in [(start, job.from.min(end)), (job.boundary.max(start), end)] {
            if part.0 < part.1 {
                base.extend(self.stored_windows(job, part, 0).await?);
            }
        }
        for done in rewritten {
            let part = (done.range.0.max(start), done.range.1.min(end));
            if part.0 < part.1 {
                base.extend(self.stored_windows(job, part, done.revision).await?);
            }
        }
        let tiers = TierSet::from_config(&config.rollups);
        let wanted: HashSet<(u8, UnixMillis)> = batch
            .iter()
            .map(|(tier, start, _)| (*tier, *start))
            .collect();
        let mut by_tier: BTreeMap<u8, Vec<(WindowKey, Sketch)>> = BTreeMap::new();
        for (key, tier, sketch) in fold_windows(
            &base,
            tiers,
            config.rollups.max_tier_series,
            config.streams.partitions,
            (start, end),
        ) {
            if wanted.contains(&(tier, key.start)) {
                by_tier.entry(tier).or_default().push((key, sketch));
            }
        }
        let tables = table_names(&config.questdb.table, &config.rollups);
        let mut rows = 0u64;
        for (tier, windows) in by_tier {
            let table = &tables[usize::from(tier) + 1];
            let revision = self.next_revision(table, job, (start, end)).await?;
            let writer = RowWriter::start(config, config.streams.partitions).await?;
            let now = now_millis();
            for (key, sketch) in windows {
                let partition = key.series.partition(config.streams.partitions);
                let output = rebuilt_output(config, key, Some(tier), &sketch, revision, now);
                writer.write(partition, output).await?;
                rows += 1;
            }
            writer.finish().await?;
            self.wait_applied(table).await?;
        }
        record.job.rows += rows;
        tracing::info!(
            start,
            end,
            windows = batch.len(),
            rows,
            "backfill tier windows rebuilt"
        );
        self.save(record).await
    }

    /// The base windows of the job's metric stored in `[from, to)` with a revision of at
    /// least `min_revision`, with their state.
    async fn stored_windows(
        &self,
        job: &BackfillJob,
        (from, to): (UnixMillis, UnixMillis),
        min_revision: u32,
    ) -> Result<Vec<(WindowKey, Sketch)>, Error> {
        let sql = format!(
            "select cast(ts as long), series, state from {} where {} and revision >= {min_revision}",
            self.config.questdb.table,
            scope_sql(job, (from, to))
        );
        let answer = self.exec(&sql).await?;
        let mut windows = Vec::new();
        for row in answer["dataset"].as_array().into_iter().flatten() {
            let (Some(ts_us), Some(series), Some(state)) =
                (row[0].as_i64(), row[1].as_str(), row[2].as_str())
            else {
                return Err(Error::Backfill(format!(
                    "a stored window of `{}` has no state to rebuild its tier windows from",
                    job.metric
                )));
            };
            let dims: BTreeMap<String, Option<String>> = serde_json::from_str(series)
                .map_err(|e| Error::Backfill(format!("stored series `{series}`: {e}")))?;
            let sketch = Sketch::from_state(state)
                .map_err(|e| Error::Backfill(format!("stored state of `{series}`: {e}")))?;
            let key = WindowKey {
                series: SeriesKey::new(job.tenant.as_str(), job.metric.as_str(), dims),
                start: ts_us / 1_000,
                size_ms: job.window_ms,
            };
            windows.push((key, sketch));
        }
        Ok(windows)
    }

    /// One above the highest revision stored for the job's metric in `[from, to)` of
    /// `table`.
    async fn next_revision(
        &self,
        table: &str,
        job: &BackfillJob,
        range: (UnixMillis, UnixMillis),
    ) -> Result<u32, Error> {
        let sql = format!(
            "select max(revision) from {table} where {}",
            scope_sql(job, range)
        );
        let answer = self.exec(&sql).await?;
        let highest = answer["dataset"][0][0].as_u64().unwrap_or(0);
        Ok(u32::try_from(highest).unwrap_or(u32::MAX - 1) + 1)
    }

    /// Waits until QuestDB has applied every transaction written to `table`, so readers (and
    /// the gateways' row caches, dropped when the job record changes) see the new rows.
    async fn wait_applied(&self, table: &str) -> Result<(), Error> {
        let sql =
            format!("select writerTxn, sequencerTxn from wal_tables() where name = '{table}'");
        let deadline = tokio::time::Instant::now() + APPLY_TIMEOUT;
        loop {
            let answer = self.exec(&sql).await?;
            let row = &answer["dataset"][0];
            if row[0] == row[1] {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Backfill(format!(
                    "QuestDB did not apply the rows written to {table} within {} s",
                    APPLY_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn exec(&self, sql: &str) -> Result<serde_json::Value, Error> {
        exec(&self.http, &self.config.questdb, sql)
            .await
            .map_err(|source| Error::QuestDb {
                addr: self.config.questdb.http.clone(),
                source,
            })
    }
}

/// `WHERE` conditions of the job's (tenant, metric) rows starting in `[from, to)` (tenant and
/// metric names are identifiers, checked by the gateway and the definitions' parser).
fn scope_sql(job: &BackfillJob, (from, to): (UnixMillis, UnixMillis)) -> String {
    format!(
        "tenant = '{}' and metric = '{}' and ts >= cast({} as timestamp) and ts < cast({} as timestamp)",
        job.tenant.replace('\'', "''"),
        job.metric.replace('\'', "''"),
        from * 1_000,
        to * 1_000
    )
}

/// The tier windows (tier, start, length) overlapping `[from, to)` that base windows of
/// `window_ms` feed, earliest end first.
fn tier_windows(
    tiers: &TierSet,
    window_ms: i64,
    (from, to): (UnixMillis, UnixMillis),
) -> Vec<(u8, UnixMillis, i64)> {
    let mut all = Vec::new();
    if from >= to {
        return all;
    }
    for tier in tiers.fed_by(window_ms) {
        let ms = tiers.ms(tier);
        let mut start = from.div_euclid(ms) * ms;
        while start < to {
            all.push((tier, start, ms));
            start += ms;
        }
    }
    all.sort_by_key(|(tier, start, ms)| (start + ms, *tier));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_windows_overlapping_a_range_come_earliest_end_first() {
        let tiers = TierSet::new([10_000, 60_000]);
        let windows = tier_windows(&tiers, 1_000, (55_000, 72_000));
        assert_eq!(
            windows,
            vec![
                (0, 50_000, 10_000),
                (1, 0, 60_000),
                (0, 60_000, 10_000),
                (0, 70_000, 10_000),
                (1, 60_000, 60_000)
            ]
        );
        assert!(tier_windows(&tiers, 7_000, (0, 70_000)).is_empty());
        assert!(tier_windows(&tiers, 1_000, (5, 5)).is_empty());
    }
}
