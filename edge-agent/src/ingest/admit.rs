//! What every HTTP entry point does before it looks at a body: admission (shutdown, memory
//! budget, spool, archive queue, concurrency), then reading the body within its limit and
//! the memory budget, then gzip. The entry points (`POST /v1/events` and the producers'
//! protocols of [`crate::protocols`]) share it, so the same limits answer the same way.

use super::body::{self, BodyError, BodyKind, Encoding, GunzipError};
use super::handler::Ingest;
use super::response::Reply;
use crate::aggregate::InFlightGuard;
use crate::memory::BodyCharge;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use rtdash_shared::event::RejectCode;
use rtdash_shared::time::UnixMillis;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// An admitted request: its decoded body, and what it holds while it is processed (a
/// concurrency permit, its place in the watermark, its bytes in the memory budget).
pub struct Admitted<'a> {
    /// The body, decompressed.
    pub body: Bytes,
    /// Content type and encoding.
    pub kind: BodyKind,
    _permit: OwnedSemaphorePermit,
    _in_flight: InFlightGuard<'a>,
    charge: BodyCharge<'a>,
}

impl Admitted<'_> {
    /// Counts `bytes` more against the memory budget (a copy made while processing); false
    /// when the budget is exhausted.
    pub fn charge(&mut self, bytes: u64) -> bool {
        self.charge.add(bytes)
    }
}

/// Admits the request and reads its body (at most `limit` bytes as sent, and
/// `ingest.max_decompressed_bytes` after gzip), or the answer that refuses it. Refused bodies
/// are dead-lettered like those of `POST /v1/events`.
pub async fn admit<'a>(
    ingest: &'a Arc<Ingest>,
    headers: &HeaderMap,
    body: Body,
    received_at: UnixMillis,
    limit: u64,
) -> Result<Admitted<'a>, Reply> {
    if let Some(refusal) = ingest.admission() {
        return Err(refusal);
    }
    let Ok(permit) = Arc::clone(&ingest.concurrency).try_acquire_owned() else {
        return Err(ingest.refuse(
            "concurrency",
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!(
                "more than {} requests in progress; retry later",
                ingest.config.max_concurrent_requests
            ),
        ));
    };
    let in_flight = ingest.in_flight.enter(received_at);
    let kind = BodyKind::from_headers(headers);
    let mut charge = ingest.budget.charge();
    let read = body::read_limited(
        body,
        &kind,
        limit,
        // One byte more than a dead letter keeps, so it is marked as cut.
        ingest.max_raw_bytes + 1,
        |len| charge.add(len as u64),
    )
    .await;
    let raw = match read {
        Ok(raw) => raw,
        Err(BodyError::TooLarge { limit, prefix }) => {
            return Err(ingest.reject_body(
                StatusCode::PAYLOAD_TOO_LARGE,
                RejectCode::BodyTooLarge.as_str(),
                format!("the request body exceeds the limit of {limit} bytes"),
                &prefix,
                received_at,
            ))
        }
        Err(BodyError::OverBudget) => return Err(ingest.over_budget()),
        Err(BodyError::Read(problem)) if rtdash_runtime::http::is_body_timeout(&problem) => {
            // A slow client (`http.body_read_timeout_ms`): its slot is freed for others.
            ingest.metrics.rejected("body_timeout", 1);
            tracing::debug!(%problem, "request body not sent in time");
            return Err(Reply::error(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                problem.to_string(),
            ));
        }
        Err(BodyError::Read(problem)) => {
            // The client went away or sent a broken stream: nobody reads this answer and there
            // is no input to keep; counted and logged.
            ingest.metrics.rejected("body_read_error", 1);
            tracing::debug!(%problem, "request body could not be read");
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                "body_read_error",
                problem.to_string(),
            ));
        }
    };
    let decoded = match &kind.encoding {
        Encoding::Identity => raw,
        Encoding::Gzip => match body::gunzip(&raw, ingest.config.max_decompressed_bytes) {
            Ok(bytes) => {
                if !charge.add(bytes.len() as u64) {
                    return Err(ingest.over_budget());
                }
                Bytes::from(bytes)
            }
            Err(GunzipError::TooLarge(limit)) => {
                return Err(ingest.reject_body(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    RejectCode::BodyTooLarge.as_str(),
                    format!("the decompressed request body exceeds the limit of {limit} bytes"),
                    &raw,
                    received_at,
                ))
            }
            Err(GunzipError::Invalid(problem)) => {
                return Err(ingest.reject_body(
                    StatusCode::BAD_REQUEST,
                    "invalid_encoding",
                    format!("the request body is not valid gzip: {problem}"),
                    &raw,
                    received_at,
                ))
            }
        },
        Encoding::Unsupported(name) => {
            return Err(ingest.reject_body(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("Content-Encoding `{name}` is not supported; send identity or gzip"),
                &raw,
                received_at,
            ))
        }
    };
    Ok(Admitted {
        body: decoded,
        kind,
        _permit: permit,
        _in_flight: in_flight,
        charge,
    })
}

/// What processing a body gave: the answer, and the flush that takes its accepted events out
/// (with `ingest.durable_ack` the answer waits for it).
#[derive(Debug)]
pub struct Processed {
    /// The answer.
    pub reply: Reply,
    /// The flush holding the accepted events, if any were.
    pub flush: Option<u64>,
}

impl From<Reply> for Processed {
    fn from(reply: Reply) -> Self {
        Self { reply, flush: None }
    }
}

/// Runs `work` on the blocking pool when the body is at least `ingest.blocking_threshold_bytes`
/// (a huge batch must not stall the async workers), inline otherwise.
pub async fn run_sized<T, F>(ingest: &Arc<Ingest>, size: usize, work: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: From<Reply> + Send + 'static,
{
    if (size as u64) < ingest.config.blocking_threshold_bytes {
        return work();
    }
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _enter = span.enter();
        work()
    })
    .await
    .unwrap_or_else(|err| {
        tracing::error!(error = %err, "ingest worker failed");
        T::from(Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request could not be processed",
        ))
    })
}
