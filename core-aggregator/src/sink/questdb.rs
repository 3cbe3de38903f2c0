//! The QuestDB writer: a dedicated OS thread (questdb-rs' `Sender` is blocking) fed by a
//! bounded channel of rows, writing ILP over HTTP into the WAL table with
//! `DEDUP UPSERT KEYS(ts, tenant, metric, series)`, so every rewrite is an idempotent upsert.
//!
//! - **Batching**: a batch starts with the first row received and is sent once it holds
//!   `writer.batch_rows` rows or `writer.flush_ms` after its first row.
//! - **Full channel**: [`RowSender::send`] waits, so the partition consumers stop pulling from
//!   JetStream (backpressure). Nothing is dropped.
//! - **Errors**: a failed request is retried with the same rows, backing off from 100 ms to
//!   `writer.max_backoff_ms`, for as long as it takes. A batch QuestDB rejects as invalid
//!   three times in a row is retried row by row, and rows it rejects alone are logged and
//!   dropped (a schema problem must not stall every partition).
//! - **Fencing**: each row carries its partition's ownership epoch; rows of a partition this
//!   process no longer owns are dropped before every attempt, so a deposed owner does not
//!   overwrite its successor's rows with older versions.
//! - **Confirmations**: after a successful request the final rows are confirmed to their
//!   partition worker (closed windows are evicted only once their final row is confirmed).

use crate::config::Config;
use crate::error::Error;
use crate::metrics as m;
use crate::state::{StoreRoom, WindowId, WindowOutput};
use questdb::ingress::{Buffer, Sender, TimestampMicros};
use rtdash_runtime::trace_context::TraceParent;
use rtdash_shared::schema::create_table_sql_for;
#[cfg(test)]
use rtdash_shared::schema::{create_table_sql, METRICS_TABLE};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Epoch meaning "not fenced" (rows from `replay`).
pub const UNFENCED: u64 = 0;

/// One window version to write.
#[derive(Debug)]
pub struct Row {
    /// Partition the window belongs to.
    pub partition: u32,
    /// Ownership epoch the row was produced under ([`UNFENCED`] for replay).
    pub epoch: u64,
    /// Confirm the write to the partition worker.
    pub confirm: bool,
    /// The window version.
    pub output: WindowOutput,
    /// The trace the version was emitted in (only while traces are exported): the write
    /// span continues it.
    pub trace: Option<TraceParent>,
}

/// Which ownership epoch of each partition this process currently holds.
#[derive(Debug)]
pub struct Ownership {
    epochs: Vec<AtomicU64>,
}

impl Ownership {
    /// No partition owned.
    pub fn new(partitions: u32) -> Self {
        Self {
            epochs: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Starts owning `partition` under `epoch`.
    pub fn set(&self, partition: u32, epoch: u64) {
        if let Some(slot) = self.epochs.get(partition as usize) {
            slot.store(epoch, Ordering::SeqCst);
        }
    }

    /// Stops owning `partition` if it is still owned under `epoch`.
    pub fn clear(&self, partition: u32, epoch: u64) {
        if let Some(slot) = self.epochs.get(partition as usize) {
            let _ = slot.compare_exchange(epoch, 0, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    /// Whether a row produced under `epoch` may still be written.
    pub fn is_current(&self, partition: u32, epoch: u64) -> bool {
        epoch == UNFENCED
            || self
                .epochs
                .get(partition as usize)
                .is_some_and(|slot| slot.load(Ordering::SeqCst) == epoch)
    }
}

/// Written window versions, per partition worker.
pub type Confirmation = Vec<(WindowId, u64)>;

/// Routes confirmations to the worker of each partition (registered per epoch).
#[derive(Debug, Default)]
pub struct ConfirmRouter {
    routes: Mutex<HashMap<u32, (u64, mpsc::UnboundedSender<Confirmation>)>>,
}

impl ConfirmRouter {
    /// Registers the worker of `partition` under `epoch`; returns its receiver.
    ///
    /// Unbounded, because the writer must never wait for a worker (the worker may itself be
    /// waiting for room in the row channel); it holds at most one entry per written batch
    /// while the worker is busy.
    pub fn register(&self, partition: u32, epoch: u64) -> mpsc::UnboundedReceiver<Confirmation> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut routes) = self.routes.lock() {
            routes.insert(partition, (epoch, tx));
        }
        rx
    }

    /// Removes the route of `partition` if it is still the one of `epoch`.
    pub fn unregister(&self, partition: u32, epoch: u64) {
        if let Ok(mut routes) = self.routes.lock() {
            if routes.get(&partition).is_some_and(|(e, _)| *e == epoch) {
                routes.remove(&partition);
            }
        }
    }

    fn send(&self, partition: u32, epoch: u64, confirmation: Confirmation) {
        if let Ok(routes) = self.routes.lock() {
            if let Some((e, tx)) = routes.get(&partition) {
                if *e == epoch {
                    let _ = tx.send(confirmation);
                }
            }
        }
    }
}

/// Handle for sending rows to the writer.
#[derive(Clone, Debug)]
pub struct RowSender {
    tx: mpsc::Sender<Row>,
}

impl RowSender {
    /// Queues a row, waiting while the channel is full (backpressure). Fails only when the
    /// writer has stopped.
    pub async fn send(&self, row: Row) -> Result<(), Error> {
        self.tx.send(row).await.map_err(|_| Error::QuestDb {
            addr: String::new(),
            problem: "the QuestDB writer has stopped".to_owned(),
        })
    }

    /// Rows waiting in the channel.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Room for more rows now: what the channel has free, and for provisional versions only
    /// up to a quarter of it filled, so that a writer falling behind gets the finals first
    /// and the optional rows wait.
    pub fn room(&self) -> StoreRoom {
        let capacity = self.tx.max_capacity();
        StoreRoom {
            rows: self.tx.capacity(),
            provisional: (capacity / 4).saturating_sub(self.queued()),
        }
    }

    /// The channel's size in rows.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Reserves up to `wanted` slots in the channel without waiting: as many as are free now,
    /// or none if another partition took them first. Slots not used are given back on drop.
    pub fn try_reserve(&self, wanted: usize) -> Reserved<'_> {
        let wanted = wanted.min(self.tx.capacity());
        let permits = if wanted == 0 {
            None
        } else {
            self.tx.try_reserve_many(wanted).ok()
        };
        Reserved { permits }
    }
}

/// Slots reserved in the row channel by [`RowSender::try_reserve`].
pub struct Reserved<'a> {
    permits: Option<mpsc::PermitIterator<'a, Row>>,
}

impl Reserved<'_> {
    /// Slots left.
    pub fn len(&self) -> usize {
        self.permits.as_ref().map_or(0, ExactSizeIterator::len)
    }

    /// Whether no slot is left.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `row` in a reserved slot; gives it back when none is left.
    pub fn send(&mut self, row: Row) -> Option<Row> {
        match self.permits.as_mut().and_then(Iterator::next) {
            Some(permit) => {
                permit.send(row);
                None
            }
            None => Some(row),
        }
    }
}

/// Most traces one span links to.
const MAX_LINKS: usize = 32;

/// The span of one batch write: `Span::none()` unless some row is traced.
fn write_span(batch: &[Row]) -> tracing::Span {
    let mut traces = batch.iter().filter_map(|row| row.trace.as_ref());
    let Some(parent) = traces.next() else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!(parent: None, "core.questdb_write", rows = batch.len());
    parent.set_parent_of(&span);
    let mut linked: Vec<&TraceParent> = Vec::new();
    for trace in traces {
        if linked.len() >= MAX_LINKS {
            break;
        }
        if trace != parent && !linked.contains(&trace) {
            trace.link_from(&span);
            linked.push(trace);
        }
    }
    span
}

/// The writer thread.
#[derive(Debug)]
pub struct QuestDbWriter {
    tx: Option<mpsc::Sender<Row>>,
    thread: Option<std::thread::JoinHandle<()>>,
    abandon: Arc<AtomicBool>,
    healthy: Arc<AtomicBool>,
}

#[derive(Clone, Debug)]
struct WriterSettings {
    conf: String,
    addr: String,
    table: String,
    batch_rows: usize,
    flush: Duration,
    max_backoff: Duration,
}

impl QuestDbWriter {
    /// Starts the writer thread.
    pub fn spawn(
        config: &Config,
        ownership: Arc<Ownership>,
        confirmations: Arc<ConfirmRouter>,
    ) -> Result<Self, Error> {
        let (tx, rx) = mpsc::channel(config.writer.channel_rows);
        let settings = WriterSettings {
            conf: format!(
                "http::addr={};protocol_version=2;retry_timeout=0;request_timeout={};",
                config.questdb.http, config.writer.request_timeout_ms
            ),
            addr: config.questdb.http.clone(),
            table: config.questdb.table.clone(),
            batch_rows: config.writer.batch_rows,
            flush: Duration::from_millis(config.writer.flush_ms),
            max_backoff: Duration::from_millis(config.writer.max_backoff_ms.max(100)),
        };
        let abandon = Arc::new(AtomicBool::new(false));
        let healthy = Arc::new(AtomicBool::new(true));
        let thread = {
            let abandon = Arc::clone(&abandon);
            let healthy = Arc::clone(&healthy);
            std::thread::Builder::new()
                .name("questdb-writer".to_owned())
                .spawn(move || {
                    WriterLoop {
                        settings,
                        rx,
                        ownership,
                        confirmations,
                        abandon,
                        healthy,
                        sender: None,
                    }
                    .run()
                })
                .map_err(|err| Error::QuestDb {
                    addr: config.questdb.http.clone(),
                    problem: format!("cannot start the writer thread: {err}"),
                })?
        };
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            abandon,
            healthy,
        })
    }

    /// A handle to send rows.
    pub fn sender(&self) -> RowSender {
        RowSender {
            tx: self.tx.clone().expect("sender taken only by finish"),
        }
    }

    /// Whether the last write attempt succeeded.
    pub fn healthy(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.healthy)
    }

    /// Stops accepting rows, writes what is queued (once every other [`RowSender`] is
    /// dropped), and waits at most `grace` for that; after it, queued rows are abandoned
    /// (they are rewritten from the checkpoint at the next start).
    /// Returns whether everything queued was written.
    pub async fn finish(mut self, grace: Duration) -> bool {
        self.tx.take();
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let join = tokio::task::spawn_blocking(move || thread.join());
        let abandon = Arc::clone(&self.abandon);
        tokio::pin!(join);
        tokio::select! {
            _ = &mut join => true,
            () = tokio::time::sleep(grace) => {
                tracing::warn!("QuestDB writer did not drain within the grace period; abandoning queued rows");
                abandon.store(true, Ordering::SeqCst);
                let _ = join.await;
                false
            }
        }
    }
}

struct WriterLoop {
    settings: WriterSettings,
    rx: mpsc::Receiver<Row>,
    ownership: Arc<Ownership>,
    confirmations: Arc<ConfirmRouter>,
    abandon: Arc<AtomicBool>,
    healthy: Arc<AtomicBool>,
    sender: Option<Sender>,
}

/// Outcome of one request.
enum Attempt {
    Written,
    /// QuestDB rejected the data itself (retrying the same rows will not help).
    Rejected(String),
    /// Transport or server trouble: retry.
    Failed(String),
}

impl WriterLoop {
    fn run(mut self) {
        let mut batch: Vec<Row> = Vec::with_capacity(self.settings.batch_rows);
        while let Some(first) = self.rx.blocking_recv() {
            batch.push(first);
            let deadline = Instant::now() + self.settings.flush;
            while batch.len() < self.settings.batch_rows {
                match self.rx.try_recv() {
                    Ok(row) => batch.push(row),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            }
            self.write(&mut batch);
            batch.clear();
            if self.abandon.load(Ordering::SeqCst) {
                break;
            }
        }
        metrics::gauge!(m::QUESTDB_BACKLOG).set(0.0);
    }

    fn backlog(&self, batch: usize) {
        metrics::gauge!(m::QUESTDB_BACKLOG).set((self.rx.len() + batch) as f64);
    }

    /// Writes `batch` (retrying as long as needed). While traces are exported, a batch with
    /// traced rows is written in a `core.questdb_write` span: a child of the first traced
    /// row's emit span, linked to the others (a batch serves many traces).
    fn write(&mut self, batch: &mut Vec<Row>) {
        let span = write_span(batch);
        let _enter = span.enter();
        let mut backoff = Duration::from_millis(100);
        let mut rejections = 0;
        loop {
            self.drop_fenced(batch);
            if batch.is_empty() {
                return;
            }
            self.backlog(batch.len());
            if self.abandon.load(Ordering::SeqCst) {
                return;
            }
            match self.attempt(batch) {
                Attempt::Written => {
                    self.confirm(batch);
                    return;
                }
                Attempt::Rejected(problem) => {
                    rejections += 1;
                    tracing::error!(rows = batch.len(), %problem, "QuestDB rejected a batch");
                    if rejections >= 3 {
                        self.write_one_by_one(batch);
                        return;
                    }
                }
                Attempt::Failed(problem) => {
                    tracing::warn!(
                        rows = batch.len(),
                        retry_in_ms = backoff.as_millis() as u64,
                        %problem,
                        "QuestDB write failed; holding the rows and retrying"
                    );
                }
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(self.settings.max_backoff);
        }
    }

    fn write_one_by_one(&mut self, batch: &mut Vec<Row>) {
        for row in batch.drain(..) {
            let mut single = vec![row];
            let mut backoff = Duration::from_millis(100);
            loop {
                self.drop_fenced(&mut single);
                if single.is_empty() || self.abandon.load(Ordering::SeqCst) {
                    break;
                }
                match self.attempt(&single) {
                    Attempt::Written => {
                        self.confirm(&single);
                        break;
                    }
                    Attempt::Rejected(problem) => {
                        let o = &single[0].output;
                        tracing::error!(
                            tenant = %o.key.series.tenant,
                            metric = %o.key.series.metric,
                            series = %o.key.series.dims_json(),
                            window_start = o.key.start,
                            %problem,
                            "QuestDB rejects this row; dropping it"
                        );
                        metrics::counter!(m::DEAD_LETTERS).increment(1);
                        break;
                    }
                    Attempt::Failed(_) => {
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(self.settings.max_backoff);
                    }
                }
            }
        }
    }

    fn drop_fenced(&self, batch: &mut Vec<Row>) {
        let before = batch.len();
        batch.retain(|row| self.ownership.is_current(row.partition, row.epoch));
        let dropped = before - batch.len();
        if dropped > 0 {
            metrics::counter!(m::QUESTDB_FENCED_ROWS).increment(dropped as u64);
        }
    }

    fn attempt(&mut self, batch: &[Row]) -> Attempt {
        let sender = match self.sender.as_mut() {
            Some(sender) => sender,
            None => match Sender::from_conf(&self.settings.conf) {
                Ok(sender) => self.sender.insert(sender),
                Err(err) => {
                    self.healthy.store(false, Ordering::SeqCst);
                    metrics::counter!(m::QUESTDB_ERRORS).increment(1);
                    return Attempt::Failed(format!(
                        "cannot connect to QuestDB at {}: {err}",
                        self.settings.addr
                    ));
                }
            },
        };
        let mut buffer = sender.new_buffer();
        let mut rejected = None;
        for row in batch {
            if let Err(err) = append_row(&mut buffer, &self.settings.table, &row.output) {
                rejected = Some(err.to_string());
                break;
            }
        }
        if let Some(problem) = rejected {
            return Attempt::Rejected(problem);
        }
        let started = Instant::now();
        match sender.flush_and_keep(&buffer) {
            Ok(()) => {
                metrics::histogram!(m::QUESTDB_WRITE_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!(m::QUESTDB_ROWS).increment(batch.len() as u64);
                self.healthy.store(true, Ordering::SeqCst);
                Attempt::Written
            }
            Err(err) => {
                self.healthy.store(false, Ordering::SeqCst);
                metrics::counter!(m::QUESTDB_ERRORS).increment(1);
                let message = err.msg().to_owned();
                let data_problem = matches!(
                    err.code(),
                    questdb::ErrorCode::ServerFlushError
                        | questdb::ErrorCode::InvalidName
                        | questdb::ErrorCode::InvalidTimestamp
                ) && message.contains("line:");
                if !data_problem {
                    // Start over with a fresh connection.
                    self.sender = None;
                    Attempt::Failed(message)
                } else {
                    Attempt::Rejected(message)
                }
            }
        }
    }

    fn confirm(&self, batch: &[Row]) {
        let mut per_partition: HashMap<(u32, u64), Confirmation> = HashMap::new();
        for row in batch.iter().filter(|row| row.confirm) {
            per_partition
                .entry((row.partition, row.epoch))
                .or_default()
                .push((row.output.id, row.output.version));
        }
        for ((partition, epoch), confirmation) in per_partition {
            self.confirmations.send(partition, epoch, confirmation);
        }
    }
}

/// Appends one window row in the table's column layout (see [`rtdash_shared::schema`]).
pub fn append_row(buffer: &mut Buffer, table: &str, output: &WindowOutput) -> questdb::Result<()> {
    let series = &output.key.series;
    let stats = &output.stats;
    let dim_set = series.dim_set();
    buffer
        .table(table)?
        .symbol("tenant", series.tenant.as_str())?
        .symbol("metric", series.metric.as_str())?
        .symbol_opt("dim_set", (!dim_set.is_empty()).then_some(dim_set.as_str()))?
        .column_str("series", series.dims_json().as_str())?
        .column_ts(
            "window_end",
            TimestampMicros::new(output.key.end().saturating_mul(1000)),
        )?
        .column_i64("count", i64::try_from(stats.count).unwrap_or(i64::MAX))?
        .column_f64_opt("sum", stats.sum)?
        .column_f64_opt("min", stats.min)?
        .column_f64_opt("max", stats.max)?
        .column_f64_opt("avg", stats.avg)?
        .column_f64_opt("p50", stats.p50)?
        .column_f64_opt("p90", stats.p90)?
        .column_f64_opt("p95", stats.p95)?
        .column_f64_opt("p99", stats.p99)?
        .column_i64_opt(
            "uniq",
            stats.unique.map(|u| i64::try_from(u).unwrap_or(i64::MAX)),
        )?
        .column_i64("revision", i64::from(output.revision))?
        .column_bool("final", output.is_final)?
        .column_i64(
            "late_count",
            i64::try_from(output.late_count).unwrap_or(i64::MAX),
        )?
        .column_ts(
            "updated_at",
            TimestampMicros::new(output.updated_at.saturating_mul(1000)),
        )?
        .at(TimestampMicros::new(output.key.start.saturating_mul(1000)))
}

/// The `CREATE TABLE` statement for `table` (the shared schema).
pub fn create_table_statement(table: &str) -> String {
    create_table_sql_for(table)
}

/// Runs `sql` through QuestDB's `/exec`, returning its JSON answer; an `error` in it is an
/// error.
pub async fn exec(
    http: &reqwest::Client,
    addr: &str,
    sql: &str,
) -> Result<serde_json::Value, String> {
    let url = reqwest::Url::parse_with_params(&format!("http://{addr}/exec"), [("query", sql)])
        .map_err(|err| err.to_string())?;
    let response = http.get(url).send().await.map_err(|err| err.to_string())?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|err| format!("answer ({status}) is not JSON: {err}"))?;
    if let Some(error) = body.get("error") {
        return Err(format!("{error}"));
    }
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    Ok(body)
}

/// Creates the windows table if it does not exist, retrying for up to `patience`.
pub async fn ensure_table(config: &Config, patience: Duration) -> Result<(), Error> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|err| Error::QuestDb {
            addr: config.questdb.http.clone(),
            problem: err.to_string(),
        })?;
    let sql = create_table_statement(&config.questdb.table);
    let deadline = Instant::now() + patience;
    loop {
        match exec(&http, &config.questdb.http, &sql).await {
            Ok(_) => return Ok(()),
            Err(problem) if Instant::now() >= deadline => {
                return Err(Error::QuestDb {
                    addr: config.questdb.http.clone(),
                    problem,
                })
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Keeps `flag` telling whether QuestDB answers `select 1` (checked every `every`), for
/// `/readyz`.
pub fn spawn_probe(
    addr: String,
    flag: Arc<AtomicBool>,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        let Ok(http) = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
        else {
            return;
        };
        loop {
            let ok = exec(&http, &addr, "select 1").await.is_ok();
            flag.store(ok, Ordering::SeqCst);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_statement_uses_the_configured_table() {
        let sql = create_table_statement("t_42");
        assert!(
            sql.starts_with("CREATE TABLE IF NOT EXISTS t_42 ("),
            "{sql}"
        );
        assert!(sql.contains("DEDUP UPSERT KEYS(ts, tenant, metric, series)"));
        assert_eq!(create_table_statement(METRICS_TABLE), create_table_sql());
    }

    #[test]
    fn ownership_fences_old_epochs() {
        let own = Ownership::new(4);
        assert!(own.is_current(1, UNFENCED));
        assert!(!own.is_current(1, 7));
        own.set(1, 7);
        assert!(own.is_current(1, 7));
        own.clear(1, 6);
        assert!(own.is_current(1, 7));
        own.clear(1, 7);
        assert!(!own.is_current(1, 7));
        assert!(!own.is_current(9, 7));
    }
}
