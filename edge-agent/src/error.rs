//! [`AgentError`]: why the agent could not start or stopped with an error.

use crate::definitions::DefinitionsFileError;
use crate::site::TopologyError;
use rtdash_runtime::nats::NatsError;
use rtdash_runtime::net::BindError;
use std::path::{Path, PathBuf};

/// Why the agent could not start or stopped with an error. Each message names what failed
/// and includes its cause (also available through `source()`).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The listener could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// NATS was unreachable or refused to set up the streams.
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// The streams the agent publishes to are missing or could not be looked up.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The local metric definitions file is unusable (a configuration error).
    #[error(transparent)]
    Definitions(#[from] DefinitionsFileError),
    /// Producers cannot be authenticated as configured.
    #[error(transparent)]
    Auth(#[from] crate::ingest::auth::AuthSetupError),
    /// The state directory could not be used.
    #[error("state directory {}: {source}", path.display())]
    State {
        /// The path involved.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Serve(#[source] std::io::Error),
    /// The archive's zstd context could not be created.
    #[error("archive compressor: {0}")]
    Compressor(#[source] std::io::Error),
    /// The StatsD socket could not be bound.
    #[error(transparent)]
    Statsd(#[from] crate::protocols::statsd::BindError),
    /// The event id store under the state directory could not be read.
    #[error(transparent)]
    Idempotency(#[from] crate::protocols::idempotency::StoreError),
    /// The agent's task panicked or was aborted.
    #[error("agent task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl AgentError {
    /// The process exit code for this error: 64 for configuration problems, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            AgentError::Definitions(_) => rtdash_runtime::EXIT_CONFIG,
            _ => rtdash_runtime::EXIT_FAILURE,
        }
    }

    pub(crate) fn state(path: &Path, source: std::io::Error) -> Self {
        AgentError::State {
            path: path.to_owned(),
            source,
        }
    }
}
