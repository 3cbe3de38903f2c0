//! Backfill: rewriting the windows of a past time range, outside the live path.
//!
//! - [`replay`]: from the partials (`RTDASH_PARTIALS`), through the same state machine as the
//!   live path (same revisions, `final` flags and late counts).
//! - [`recompute`]: from the raw-event archive (`RTDASH_EVENTS`) with the current metric
//!   definitions.
//! - [`jobs`]: backfill jobs requested through the gateway (a new or changed metric computed
//!   over the archived past), recomputed with [`recompute`]'s code by one aggregator.
//!
//! Both read a stream over a range of storage time with an ordered consumer
//! (`RangeReader`) and upsert what they rebuilt through a QuestDB writer of their own
//! (`RowWriter`, rows not fenced); progress goes to stderr (`Progress`).

pub mod jobs;
pub mod recompute;
pub mod replay;

use crate::config::Config;
use crate::error::{Error, QuestDbError};
use crate::sink::questdb::UNFENCED;
use crate::sink::questdb::{ensure_table, ConfirmRouter, Ownership, QuestDbWriter, Row, RowSender};
use crate::state::WindowOutput;
use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::jetstream::{self, stream::Stream};
use futures::StreamExt;
use rtdash_shared::time::UnixMillis;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long the writer may take to write what a backfill queued once it is done reading.
const WRITE_GRACE: Duration = Duration::from_secs(600);
/// A range read fails when nothing arrives for this long while messages are pending.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Time between two progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Checks that `[from, to)` is not empty.
pub(crate) fn check_range(from: UnixMillis, to: UnixMillis) -> Result<(), Error> {
    if from >= to {
        return Err(Error::Usage("--from must be before --to".to_owned()));
    }
    Ok(())
}

/// A NATS connection for one backfill command.
pub(crate) struct Connection {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
}

impl Connection {
    /// Connects as `core-aggregator <command>`.
    pub async fn open(config: &Config, command: &str) -> Result<Self, Error> {
        let client =
            rtdash_runtime::nats::connect(&config.nats, &format!("core-aggregator {command}"))
                .await?;
        let js = rtdash_runtime::nats::jetstream(client.clone(), &config.nats);
        Ok(Self { client, js })
    }

    /// Flushes what is still buffered before the process exits.
    pub async fn close(self) {
        let _ = self.client.flush().await;
    }
}

/// The QuestDB writer of a backfill: rows are not fenced (their epoch is [`UNFENCED`]) and
/// not confirmed.
pub(crate) struct RowWriter {
    writer: QuestDbWriter,
    rows: RowSender,
    addr: String,
}

impl RowWriter {
    /// Creates the table if needed and starts the writer thread.
    pub async fn start(config: &Config, partitions: u32) -> Result<Self, Error> {
        ensure_table(
            config,
            Duration::from_millis(config.nats.connect_timeout_ms),
        )
        .await?;
        let writer = QuestDbWriter::spawn(
            config,
            Arc::new(Ownership::new(partitions)),
            Arc::new(ConfirmRouter::default()),
        )?;
        let rows = writer.sender();
        Ok(Self {
            writer,
            rows,
            addr: config.questdb.http.clone(),
        })
    }

    /// Queues `output` of `partition` (waits while the writer is behind).
    pub async fn write(&self, partition: u32, output: WindowOutput) -> Result<(), Error> {
        self.rows
            .send(Row {
                partition,
                epoch: UNFENCED,
                confirm: false,
                output,
                trace: None,
            })
            .await
    }

    /// Writes what is queued (at most [`WRITE_GRACE`]) and stops the writer.
    pub async fn finish(self) -> Result<(), Error> {
        let Self { writer, rows, addr } = self;
        drop(rows);
        if !writer.finish(WRITE_GRACE).await {
            return Err(Error::QuestDb {
                addr,
                source: QuestDbError::Backlog(WRITE_GRACE),
            });
        }
        Ok(())
    }
}

/// A message of an ordered read over a time range, with what its metadata says.
pub(crate) struct InRange {
    /// The message.
    pub message: jetstream::Message,
    /// Its stream sequence.
    pub stream_seq: u64,
}

/// Reads the messages of `stream` on a subject stored from a point in time on, up to the
/// first one stored after an end (or the end of the stream), with an ordered consumer.
pub(crate) struct RangeReader {
    messages: async_nats::jetstream::consumer::pull::Ordered,
    /// Messages left in the consumer after the last one read.
    pending: u64,
    end: UnixMillis,
    command: &'static str,
    what: String,
}

impl RangeReader {
    /// Opens an ordered consumer of `subject` (a filter) delivering from `start` (storage time)
    /// for `command` (in the consumer's description); `what` names the reader in errors.
    pub async fn open(
        stream: &Stream,
        subject: String,
        (start, end): (UnixMillis, UnixMillis),
        command: &'static str,
        what: String,
    ) -> Result<Self, Error> {
        let start_time =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(start) * 1_000_000)
                .map_err(|e| Error::Invalid {
                    what: "--from".to_owned(),
                    source: Box::new(e),
                })?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: subject,
                deliver_policy: DeliverPolicy::ByStartTime { start_time },
                description: Some(format!("rtdash {command}")),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::js(&what, e))?;
        let pending = consumer.cached_info().num_pending;
        let messages = consumer.messages().await.map_err(|e| Error::js(&what, e))?;
        Ok(Self {
            messages,
            pending,
            end,
            command,
            what,
        })
    }

    /// Messages left after the last one read.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Whether the last message read was the last of the stream (or there was none).
    pub fn reached_end(&self) -> bool {
        self.pending == 0
    }

    /// The next message; `None` at the end of the stream or at the first one stored after the
    /// end. Fails when `shutdown` interrupts the command, and when nothing arrives for 30 s
    /// while messages are pending.
    pub async fn next(&mut self, shutdown: &CancellationToken) -> Result<Option<InRange>, Error> {
        if self.pending == 0 {
            return Ok(None);
        }
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return Err(Error::Interrupted { command: self.command }),
                next = tokio::time::timeout(STALL_TIMEOUT, self.messages.next()) => next,
            };
            let message = match next {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(err))) => return Err(Error::js(&self.what, err)),
                Ok(None) | Err(_) => {
                    return Err(Error::Stalled {
                        what: self.what.clone(),
                        pending: self.pending,
                    })
                }
            };
            let Ok(info) = message.info() else { continue };
            let published = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
            if published > self.end {
                return Ok(None);
            }
            self.pending = info.pending;
            let stream_seq = info.stream_sequence;
            return Ok(Some(InRange {
                message,
                stream_seq,
            }));
        }
    }
}

/// Progress lines on stderr, at most one a second, each overwriting the previous one.
pub(crate) struct Progress {
    last: Instant,
}

impl Progress {
    /// Starts counting from now.
    pub fn new() -> Self {
        Self {
            last: Instant::now(),
        }
    }

    /// Prints `line()` if a second has passed since the previous line.
    pub fn tick(&mut self, line: impl FnOnce() -> String) {
        if self.last.elapsed() >= PROGRESS_EVERY {
            self.last = Instant::now();
            eprint!("\r{}", line());
            let _ = std::io::stderr().flush();
        }
    }
}
