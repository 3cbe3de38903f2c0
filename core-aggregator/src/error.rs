//! Errors of the core aggregator, classified by what the caller can do about them. Each keeps
//! its cause as its `source()`, and its message ends with the cause's, so one line tells the
//! whole story.
//!
//! Stopping is not an error: a partition worker asked to stop or fenced returns
//! [`crate::lease::Stopped`], a checkpoint that finds another owner returns
//! [`crate::checkpoint::Saved::Fenced`], a side-stream publish cut short returns
//! [`crate::sink::late::Sent::Stopped`].

use crate::state::SegmentError;
use std::time::Duration;

/// Any error, boxed: the causes of JetStream and object store failures, whose types differ per
/// operation in `async_nats`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure of the aggregator or one of its subcommands.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// NATS is unreachable or JetStream refused a request at start (exit 1).
    #[error(transparent)]
    Nats(#[from] rtdash_runtime::nats::NatsError),
    /// QuestDB could not be reached, refused the table at start, or did not take a
    /// backfill's rows in time (exit 1).
    #[error("QuestDB at {addr}: {source}")]
    QuestDb {
        /// `host:port`.
        addr: String,
        /// What went wrong.
        #[source]
        source: QuestDbError,
    },
    /// A backfill job cannot go on (its metric changed or was deleted, its record was
    /// replaced).
    #[error("backfill job: {0}")]
    Backfill(String),
    /// The QuestDB writer thread has stopped: rows can no longer be queued.
    #[error("the QuestDB writer has stopped")]
    WriterStopped,
    /// The admin listener could not be bound (exit 1).
    #[error(transparent)]
    Bind(#[from] rtdash_runtime::net::BindError),
    /// A JetStream operation failed while running.
    #[error("JetStream {what}: {source}")]
    JetStream {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: BoxError,
    },
    /// A message could not be encoded (a value serde cannot represent).
    #[error("cannot encode the {what}: {source}")]
    Encode {
        /// What was encoded.
        what: &'static str,
        /// The error.
        #[source]
        source: rtdash_shared::wire::WireError,
    },
    /// A JetStream read delivered nothing for too long while messages were pending.
    #[error("JetStream {what}: stalled with {pending} messages pending")]
    Stalled {
        /// The reader.
        what: String,
        /// Messages it still expected.
        pending: u64,
    },
    /// A checkpoint could not be read back or written.
    #[error("checkpoint of partition {partition}: {source}")]
    Checkpoint {
        /// The partition.
        partition: u32,
        /// What is wrong.
        #[source]
        source: CheckpointError,
    },
    /// A command-line argument is invalid (exit 64).
    #[error("{0}")]
    Usage(String),
    /// A file named on the command line, or a setting, cannot be used (exit 64).
    #[error("{what}: {source}")]
    Invalid {
        /// What is invalid (`metrics file <path>`, a configuration section).
        what: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A backfill command was interrupted (SIGINT/SIGTERM) before it finished: the range is
    /// partly rewritten (exit 1; running it again completes it).
    #[error("{command} interrupted before it finished")]
    Interrupted {
        /// `replay` or `recompute`.
        command: &'static str,
    },
    /// A thread or runtime of the process could not be started (exit 1).
    #[error("cannot start the {what}: {source}")]
    Thread {
        /// Which thread or runtime.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The lease thread ended without reporting how (it panicked).
    #[error("the partition lease thread stopped unexpectedly")]
    LeaseThread,
}

impl Error {
    /// A [`Error::JetStream`] for `what`.
    pub fn js(
        what: impl Into<String>,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::JetStream {
            what: what.into(),
            source: Box::new(err),
        }
    }

    /// Whether the error is the user's to fix (a usage or configuration problem, exit 64)
    /// rather than a failure of the process or of what it depends on (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Usage(_) | Self::Invalid { .. })
    }

    /// The process exit code for this error: [`rtdash_runtime::EXIT_CONFIG`] (64) for usage
    /// and configuration problems, [`rtdash_runtime::EXIT_FAILURE`] (1) otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.is_usage() {
            rtdash_runtime::EXIT_CONFIG
        } else {
            rtdash_runtime::EXIT_FAILURE
        }
    }
}

/// What went wrong with QuestDB's REST endpoint or the writer.
#[derive(Debug, thiserror::Error)]
pub enum QuestDbError {
    /// `questdb.http` does not make a URL.
    #[error("invalid address: {0}")]
    Address(#[source] url::ParseError),
    /// No answer (connection refused, timeout...).
    #[error("request failed: {}", chain(.0))]
    Request(#[source] reqwest::Error),
    /// The answer is not JSON.
    #[error("answer ({status}) is not JSON: {}", chain(.source))]
    NotJson {
        /// HTTP status.
        status: reqwest::StatusCode,
        /// The decoding error.
        #[source]
        source: reqwest::Error,
    },
    /// QuestDB answered with an error (its own message).
    #[error("{0}")]
    Refused(String),
    /// The writer did not write the queued rows within the grace period.
    #[error("rows not written within {} s", .0.as_secs())]
    Backlog(Duration),
}

/// Why a checkpoint could not be read back or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The manifest does not decode.
    #[error("unreadable manifest: {0}")]
    Manifest(#[source] serde_json::Error),
    /// The manifest was written by a newer release.
    #[error("unknown manifest format {0}")]
    ManifestFormat(u32),
    /// A window-data object could not be read.
    #[error("object {name}: {source}")]
    ReadObject {
        /// Object name.
        name: String,
        /// The error.
        #[source]
        source: BoxError,
    },
    /// A window-data object does not decode.
    #[error("object {name}: {source}")]
    Segment {
        /// Object name.
        name: String,
        /// The error.
        #[source]
        source: SegmentError,
    },
    /// The manifest changed under the writer twice in a row (a takeover in progress).
    #[error("manifest changed twice while writing")]
    ManifestRace,
    /// The background task writing the checkpoint panicked.
    #[error("checkpoint task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// `err` and its causes, `: `-separated, for errors whose message leaves its cause out
/// (`reqwest`'s "error sending request for url (...)" hides the refused connection).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
