//! The REST API: one module per resource, plus the extractors and helpers they share.

pub mod alert_state;
pub mod alert_test;
pub mod alerts;
pub mod backfill;
pub mod capabilities;
pub mod dashboards;
pub mod definitions;
pub mod event_types;
pub mod keys;
pub mod links;
pub mod metric_answer;
pub mod metrics;
pub mod quality;
pub mod quotas;
pub mod session;
pub mod silences;
pub mod status;
pub mod webhook;

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

/// `?tenant_id=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    /// Tenant: the key's own when absent (a different one is `403`); the operator must name
    /// it.
    pub tenant_id: Option<String>,
}

impl TenantQuery {
    /// The tenant named, if any.
    pub fn requested(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }
}

/// A JSON body whose rejections are API errors (`400`, `413`).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge("request body is too large".to_owned())
                }
                StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                    ApiError::bad_request("expected `Content-Type: application/json`")
                }
                _ => ApiError::bad_request(rejection.body_text()),
            }),
        }
    }
}

/// The raw body (for bodies parsed by a shared-crate parser), with API-error rejections.
#[derive(Debug)]
pub struct ApiBytes(pub bytes::Bytes);

impl<S> FromRequest<S> for ApiBytes
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match bytes::Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(
                ApiError::PayloadTooLarge("request body is too large".to_owned()),
            ),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// Query parameters whose rejections are `400`s.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// The revision an `If-Match` header asks for (`"12"`, `W/"12"`, `12`); `None` without one
/// or for `*`.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("`If-Match` is not text"))?
        .trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request("`If-Match` must be a revision such as \"12\""))
}

/// The expected revision from `If-Match` or a body field; both must agree.
pub fn expected_revision(headers: &HeaderMap, body: Option<u64>) -> Result<Option<u64>, ApiError> {
    match (if_match(headers)?, body) {
        (Some(a), Some(b)) if a != b => Err(ApiError::bad_request(
            "`If-Match` and the body's `revision` differ",
        )),
        (Some(a), _) => Ok(Some(a)),
        (None, b) => Ok(b),
    }
}

/// Fails with `409` when `expected` is given and differs from `current`.
pub fn check_revision(expected: Option<u64>, current: u64) -> Result<(), ApiError> {
    match expected {
        Some(expected) if expected != current => Err(ApiError::conflict(format!(
            "revision {expected} is not current (current: {current})"
        ))),
        _ => Ok(()),
    }
}

/// A JSON answer with a status and an `ETag` of `revision`.
pub fn versioned<T: Serialize>(status: StatusCode, revision: u64, body: &T) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("\"{revision}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Parses a stored JSON document.
pub fn decode_stored<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::internal(format!("stored value {key} does not decode: {err}")))
}

/// Encodes a document for storage.
pub fn encode<T: Serialize>(value: &T) -> Result<bytes::Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(bytes::Bytes::from)
        .map_err(|err| ApiError::internal(format!("cannot encode: {err}")))
}
