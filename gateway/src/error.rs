//! The API's error type: every handler returns `Result<_, ApiError>`, answered as
//! `{"error": {"code", "message"}}` with the matching status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rtdash_runtime::error_chain::ErrorChain;
use serde::Serialize;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or asks for something that cannot be answered correctly.
    #[error("{0}")]
    BadRequest(String),
    /// No credential, or one that does not verify (answered with `WWW-Authenticate`).
    #[error("{0}")]
    Unauthorized(String),
    /// The credential is good but may not do this: another tenant, or a role too low.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource for this tenant (also: another tenant's resource).
    #[error("{0}")]
    NotFound(String),
    /// Revision mismatch, already exists, or read-only.
    #[error("{0}")]
    Conflict(String),
    /// Body over the limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Wrong method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A dependency is down, or the gateway is at a limit.
    #[error("{0}")]
    Unavailable(String),
    /// The request took too long.
    #[error("{0}")]
    Timeout(String),
    /// Too many failed authentications from this client; retry after this many seconds.
    #[error("{message}")]
    TooManyRequests {
        /// What happened.
        message: String,
        /// `Retry-After`, seconds.
        retry_after_secs: u64,
    },
    /// A tenant quota would be exceeded: the message is `<limit name> is <limit>`.
    #[error("{0}")]
    QuotaExceeded(String),
    /// This client address has `live.max_streams_per_client` live streams open.
    #[error("{0}")]
    TooManyStreams(String),
    /// A bug or an unexpected failure; the message is logged, not answered.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and human-readable message.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`invalid_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `payload_too_large`, `method_not_allowed`,
    /// `too_many_requests`, `quota_exceeded`, `too_many_streams`, `unavailable`, `timeout`,
    /// `internal`).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// `400` with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    /// `404` naming the resource kind and id.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::NotFound(format!("{what} `{id}` not found"))
    }

    /// `409` with `message`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(message.into())
    }

    /// `401` with `message`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(message.into())
    }

    /// `403` with `message`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    /// `503` with `message`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }

    /// `429 quota_exceeded`: the tenant's limit `name` is `limit`.
    pub fn quota_exceeded(name: &str, limit: u64) -> Self {
        Self::QuotaExceeded(format!("{name} is {limit}"))
    }

    /// `500`; `message` goes to the log only.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::TooManyRequests { .. }
            | ApiError::QuotaExceeded(_)
            | ApiError::TooManyStreams(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Timeout(_) => "timeout",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::QuotaExceeded(_) => "quota_exceeded",
            ApiError::TooManyStreams(_) => "too_many_streams",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The body answered for this error.
    pub fn body(&self) -> ErrorBody {
        let message = match self {
            ApiError::Internal(_) => "internal error; see the gateway log".to_owned(),
            other => other.to_string(),
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(message) = &self {
            tracing::error!(error = %message, "internal error");
        }
        let status = self.status();
        let mut response = (status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(crate::auth::WWW_AUTHENTICATE),
                );
            }
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match err {
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::Unavailable(_) => ApiError::Unavailable(ErrorChain(&err).to_string()),
        }
    }
}

impl From<crate::query::QueryError> for ApiError {
    fn from(err: crate::query::QueryError) -> Self {
        use crate::query::QueryError;
        match err {
            QueryError::Invalid(message) => ApiError::BadRequest(message),
            QueryError::Unavailable { .. } => ApiError::Unavailable(ErrorChain(&err).to_string()),
            QueryError::Internal { .. } => ApiError::Internal(ErrorChain(&err).to_string()),
            QueryError::Timeout => ApiError::Timeout(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_answers_name_the_cause() {
        let err = crate::query::QueryError::unavailable("connecting to x timed out");
        assert_eq!(
            ApiError::from(err).to_string(),
            "QuestDB unavailable: connecting to x timed out"
        );
    }
}
