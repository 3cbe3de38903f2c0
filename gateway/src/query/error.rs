//! Why a metric query could not be answered.

use std::sync::Arc;

/// Why a query could not be answered. `Clone` because one answer (or failure) of the
/// single-flight cache is shared by every request waiting for it; the causes are shared with
/// it (`Arc`).
#[derive(Clone, Debug, thiserror::Error)]
pub enum QueryError {
    /// The request asks for something that cannot be derived correctly (answered `400`).
    #[error("{0}")]
    Invalid(String),
    /// QuestDB is unreachable (answered `503`).
    #[error("QuestDB unavailable: {reason}")]
    Unavailable {
        /// What the gateway was doing.
        reason: String,
        /// The client's error, when there is one.
        #[source]
        source: Option<Arc<tokio_postgres::Error>>,
    },
    /// QuestDB rejected a statement or answered rows of another shape (a bug or a schema
    /// mismatch; answered `500`).
    #[error("{reason}")]
    Internal {
        /// What went wrong.
        reason: &'static str,
        /// QuestDB's error.
        #[source]
        source: Arc<tokio_postgres::Error>,
    },
    /// The query took longer than `questdb.query_timeout_ms`.
    #[error("QuestDB query timed out")]
    Timeout,
}

impl QueryError {
    /// QuestDB unreachable while doing `reason`, without an underlying client error.
    pub(crate) fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable {
            reason: reason.into(),
            source: None,
        }
    }

    /// A failed statement: QuestDB's own error is `Internal`, anything else (connection
    /// closed, I/O) means it is unavailable.
    pub(crate) fn from_statement(err: tokio_postgres::Error) -> Self {
        if err.as_db_error().is_some() {
            Self::Internal {
                reason: "QuestDB rejected the statement",
                source: Arc::new(err),
            }
        } else {
            Self::Unavailable {
                reason: "the connection failed".to_owned(),
                source: Some(Arc::new(err)),
            }
        }
    }

    /// An answer whose columns do not have the expected types.
    pub(crate) fn decode(err: tokio_postgres::Error) -> Self {
        Self::Internal {
            reason: "QuestDB's answer does not have the expected columns",
            source: Arc::new(err),
        }
    }
}
