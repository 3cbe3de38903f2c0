//! The writer thread: batches rows from the channel, drops fenced ones, writes them over ILP
//! (retrying as long as it takes) and confirms the final rows written.

use super::ilp::append_row;
use super::rows::{ConfirmRouter, Confirmation, Ownership, Row, RowSender};
use crate::config::Config;
use crate::error::Error;
use crate::metrics::WriterMetrics;
use questdb::ingress::{Sender, SenderBuilder};
use rtdash_runtime::secret::Secret;
use rtdash_runtime::trace_context::TraceParent;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most traces one span links to.
const MAX_LINKS: usize = 32;

/// The (client) span of one batch write into `table`: `Span::none()` unless some row is
/// traced.
fn write_span(batch: &[Row], table: &str) -> tracing::Span {
    let mut traces = batch.iter().filter_map(|row| row.trace.as_ref());
    let Some(parent) = traces.next() else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!(
        parent: None,
        "core.questdb_write",
        otel.kind = "client",
        db.system.name = "questdb",
        db.operation.name = "ILP write",
        db.collection.name = table,
        rows = batch.len()
    );
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
    /// Cancelled when the grace period is over: queued rows are abandoned.
    abandon: CancellationToken,
    healthy: Arc<AtomicBool>,
}

#[derive(Clone, Debug)]
struct WriterSettings {
    /// The sender's configuration string, without credentials (this struct may be logged).
    conf: String,
    /// QuestDB's HTTP user and password, given to the sender builder.
    credentials: Option<(String, Secret)>,
    addr: String,
    /// The base table: what spans name.
    table: String,
    /// Every table by tier: the base table, then one per tier (see
    /// [`super::table_names`]).
    tables: Vec<String>,
    batch_rows: usize,
    batch_bytes: usize,
    flush: Duration,
    max_backoff: Duration,
}

impl WriterSettings {
    /// A sender for ILP over HTTP, with basic auth when credentials are configured.
    fn connect(&self) -> questdb::Result<Sender> {
        let mut builder = SenderBuilder::from_conf(&self.conf)?;
        if let Some((user, password)) = &self.credentials {
            builder = builder.username(user)?.password(password.expose())?;
        }
        builder.build()
    }
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
            credentials: config
                .questdb
                .credentials()
                .map(|(user, password)| (user.to_owned(), Secret::new(password))),
            addr: config.questdb.http.clone(),
            table: config.questdb.table.clone(),
            tables: super::table_names(&config.questdb.table, &config.rollups),
            batch_rows: config.writer.batch_rows,
            batch_bytes: config.writer.batch_bytes,
            flush: Duration::from_millis(config.writer.flush_ms),
            max_backoff: Duration::from_millis(config.writer.max_backoff_ms.max(100)),
        };
        let abandon = CancellationToken::new();
        let healthy = Arc::new(AtomicBool::new(true));
        let metrics = WriterMetrics::new();
        let thread = {
            let abandon = abandon.clone();
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
                        metrics,
                    }
                    .run()
                })
                .map_err(|source| Error::Thread {
                    what: "QuestDB writer thread",
                    source,
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
        RowSender::new(self.tx.clone().expect("sender taken only by finish"))
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
        let abandon = self.abandon.clone();
        tokio::pin!(join);
        tokio::select! {
            _ = &mut join => true,
            () = tokio::time::sleep(grace) => {
                tracing::warn!("QuestDB writer did not drain within the grace period; abandoning queued rows");
                abandon.cancel();
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
    /// Cancelled when the grace period is over: queued rows are abandoned.
    abandon: CancellationToken,
    healthy: Arc<AtomicBool>,
    sender: Option<Sender>,
    metrics: WriterMetrics,
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
            let mut bytes = first.estimated_bytes();
            batch.push(first);
            let deadline = Instant::now() + self.settings.flush;
            while batch.len() < self.settings.batch_rows && bytes < self.settings.batch_bytes {
                match self.rx.try_recv() {
                    Ok(row) => {
                        bytes += row.estimated_bytes();
                        batch.push(row);
                    }
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
            if self.abandon.is_cancelled() {
                break;
            }
        }
        self.metrics.backlog.set(0.0);
    }

    fn backlog(&self, batch: usize) {
        self.metrics.backlog.set((self.rx.len() + batch) as f64);
    }

    /// Writes `batch` (retrying as long as needed). While traces are exported, a batch with
    /// traced rows is written in a `core.questdb_write` span: a child of the first traced
    /// row's emit span, linked to the others (a batch serves many traces).
    fn write(&mut self, batch: &mut Vec<Row>) {
        let span = write_span(batch, &self.settings.table);
        let _enter = span.enter();
        let mut backoff = Duration::from_millis(100);
        let mut rejections = 0;
        loop {
            self.drop_fenced(batch);
            if batch.is_empty() {
                return;
            }
            self.backlog(batch.len());
            if self.abandon.is_cancelled() {
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
                if single.is_empty() || self.abandon.is_cancelled() {
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
                        self.metrics.rejected_rows.increment(1);
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
            self.metrics.fenced_rows.increment(dropped as u64);
        }
    }

    fn attempt(&mut self, batch: &[Row]) -> Attempt {
        let sender = match self.sender.as_mut() {
            Some(sender) => sender,
            None => match self.settings.connect() {
                Ok(sender) => self.sender.insert(sender),
                Err(err) => {
                    self.healthy.store(false, Ordering::SeqCst);
                    self.metrics.errors.increment(1);
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
            let table = match row.output.tier {
                None => &self.settings.table,
                Some(tier) => match self.settings.tables.get(usize::from(tier) + 1) {
                    Some(table) => table,
                    None => {
                        // Never the base table: a tier row there would replace a base row.
                        rejected = Some(format!("no table for tier {tier}"));
                        break;
                    }
                },
            };
            if let Err(err) = append_row(&mut buffer, table, &row.output) {
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
                self.metrics
                    .write_seconds
                    .record(started.elapsed().as_secs_f64());
                self.metrics.rows.increment(batch.len() as u64);
                self.healthy.store(true, Ordering::SeqCst);
                Attempt::Written
            }
            Err(err) => {
                self.healthy.store(false, Ordering::SeqCst);
                self.metrics.errors.increment(1);
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
