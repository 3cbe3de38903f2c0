//! Errors of the core aggregator, classified by what the caller can do about them.

/// A failure of the aggregator or one of its subcommands.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// NATS is unreachable or JetStream refused a request at start (exit 1).
    #[error(transparent)]
    Nats(#[from] rtdash_runtime::nats::NatsError),
    /// QuestDB could not be reached or refused the table at start (exit 1).
    #[error("cannot reach QuestDB at {addr}: {problem}")]
    QuestDb {
        /// `host:port`.
        addr: String,
        /// What went wrong.
        problem: String,
    },
    /// The admin listener could not be bound (exit 1).
    #[error(transparent)]
    Bind(#[from] rtdash_runtime::net::BindError),
    /// A JetStream operation failed while running.
    #[error("JetStream {what}: {problem}")]
    JetStream {
        /// What was being done.
        what: String,
        /// The error.
        problem: String,
    },
    /// Another aggregator owns the partition now (its checkpoint or lease changed under us).
    #[error("partition {partition} was taken over by another aggregator")]
    Fenced {
        /// The partition.
        partition: u32,
    },
    /// A checkpoint could not be read back.
    #[error("checkpoint of partition {partition} is unreadable: {problem}")]
    CorruptCheckpoint {
        /// The partition.
        partition: u32,
        /// What is wrong.
        problem: String,
    },
    /// A command-line argument is invalid (exit 64).
    #[error("{0}")]
    Usage(String),
    /// A thread or runtime of the process could not be started (exit 1).
    #[error("cannot start the {what}: {source}")]
    Thread {
        /// Which thread or runtime.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// Shutdown was requested while the operation ran.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// A [`Error::JetStream`] for `what`.
    pub fn js(what: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Self::JetStream {
            what: what.into(),
            problem: err.to_string(),
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
