//! Answers of the ingest API.
//!
//! | case | status | body |
//! |---|---|---|
//! | one valid event | `202` | `{"event_id": "...", "status": "accepted"}` (`"duplicate"` when its id was seen within the idempotency horizon: not counted again) |
//! | one invalid event | `400` | `{"error": {"code", "message"}}` |
//! | batch (array or NDJSON), some accepted | `202` | `{"accepted": n, "duplicates": d, "rejected": m, "errors": [{"index", "code", "message"}]}` (`duplicates`: events seen within the idempotency horizon, not counted again) |
//! | batch, every item rejected | `400` | the same per-item body, plus `"error": {"code": "all_rejected", ...}` |
//! | empty, malformed array, not UTF-8 | `400` | `{"error": {...}}` |
//! | body or batch too large | `413` | `{"error": {...}}` (`body_too_large`, `batch_too_large`) |
//! | unknown `Content-Encoding` | `415` | `{"error": {...}}` (`unsupported_encoding`) |
//! | body not sent within `http.body_read_timeout_ms` | `408`, connection closed | `{"error": {"code": "body_timeout"}}` |
//! | too many requests at once | `429` + `Retry-After` | `{"error": {"code": "too_many_requests"}}` |
//! | memory budget or spool full, shutting down | `503` + `Retry-After` | `{"error": {"code": "memory_budget_exceeded" \| "spool_full" \| "archive_full" \| "shutting_down"}}` |
//! | metric definitions of the config bucket not read yet (moments after a start) | `503` + `Retry-After: 1` | `{"error": {"code": "definitions_not_loaded"}}` |
//! | a key presented before the key store has read the keys bucket (moments after a start) | `503` + `Retry-After: 1` | `{"error": {"code": "keys_not_loaded"}}` |
//!
//! An all-rejected batch answers `400` because nothing of it was taken: a client that only
//! looks at the status must not believe its data arrived, and must not retry it unchanged;
//! the per-item list says why each item failed. A partly accepted batch answers `202`:
//! retrying it would duplicate the accepted items.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// A rejected item of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemError {
    /// Position in the batch (0-based; NDJSON: among the non-blank lines).
    pub index: usize,
    /// Reason code.
    pub code: &'static str,
    /// Human-readable reason.
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct BatchBody<'a> {
    accepted: usize,
    duplicates: usize,
    rejected: usize,
    errors: &'a [ItemError],
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody<'a>>,
}

#[derive(Serialize)]
struct AcceptedBody<'a> {
    event_id: &'a str,
    status: &'static str,
}

/// The outcome of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// One event accepted.
    Accepted {
        /// The producer's id or a generated UUIDv7.
        event_id: String,
        /// Seen within the idempotency horizon: acknowledged, not counted again.
        duplicate: bool,
    },
    /// A batch processed.
    Batch {
        /// Items accepted (duplicates not included).
        accepted: usize,
        /// Items seen within the idempotency horizon: acknowledged, not counted again.
        duplicates: usize,
        /// Items rejected, in order.
        errors: Vec<ItemError>,
    },
    /// The request as a whole was refused.
    Error {
        /// HTTP status.
        status: StatusCode,
        /// Reason code.
        code: &'static str,
        /// Human-readable reason.
        message: String,
        /// `Retry-After` in seconds, for overload answers.
        retry_after: Option<u64>,
    },
}

impl Reply {
    /// A whole-request error without `Retry-After`.
    pub fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Reply::Error {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// An overload answer with `Retry-After`.
    pub fn overloaded(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        retry_after: u64,
    ) -> Self {
        Reply::Error {
            status,
            code,
            message: message.into(),
            retry_after: Some(retry_after),
        }
    }

    /// The HTTP status of this reply.
    pub fn status(&self) -> StatusCode {
        match self {
            Reply::Accepted { .. } => StatusCode::ACCEPTED,
            Reply::Batch {
                accepted: 0,
                duplicates: 0,
                ..
            } => StatusCode::BAD_REQUEST,
            Reply::Batch { .. } => StatusCode::ACCEPTED,
            Reply::Error { status, .. } => *status,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            Reply::Accepted {
                event_id,
                duplicate,
            } => (
                status,
                Json(AcceptedBody {
                    event_id: &event_id,
                    status: if duplicate { "duplicate" } else { "accepted" },
                }),
            )
                .into_response(),
            Reply::Batch {
                accepted,
                duplicates,
                errors,
            } => {
                let error = (accepted == 0 && duplicates == 0).then_some(ErrorBody {
                    code: "all_rejected",
                    message: "every item of the batch was rejected; see `errors`",
                });
                (
                    status,
                    Json(BatchBody {
                        accepted,
                        duplicates,
                        rejected: errors.len(),
                        errors: &errors,
                        error,
                    }),
                )
                    .into_response()
            }
            Reply::Error {
                code,
                message,
                retry_after,
                ..
            } => {
                let mut response = (
                    status,
                    Json(ErrorEnvelope {
                        error: ErrorBody {
                            code,
                            message: &message,
                        },
                    }),
                )
                    .into_response();
                if let Some(secs) = retry_after {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                response
            }
        }
    }
}
