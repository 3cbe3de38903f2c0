//! `POST /v1/events`: admission (shutdown, memory budget, spool, concurrency), body reading,
//! validation, dead letters, aggregation and the archive.

use super::auth::{IngestAuth, IngestScope};
use super::body::{self, BodyError, BodyKind, Encoding, GunzipError};
use super::response::{ItemError, Reply};
use crate::aggregate::{DurableAcks, InFlightRequests, Shards};
use crate::config::IngestConfig;
use crate::memory::MemoryBudget;
use crate::metrics::AgentMetrics;
use crate::publish::archive::Archive;
use crate::publish::deadletter::{DeadLetters, Rejected};
use crate::publish::spool::Spool;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rtdash_shared::event::{parse_batch_as, EventLimits, RejectCode, Rejection};
use rtdash_shared::time::{now_millis, UnixMillis};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The route of the ingest API.
pub const ROUTE: &str = "/v1/events";

/// Everything the ingest handler needs.
#[derive(Debug)]
pub struct Ingest {
    /// Event validation bounds.
    pub limits: EventLimits,
    /// Request limits.
    pub config: IngestConfig,
    /// Aggregation shards.
    pub shards: Arc<Shards>,
    /// Dead-letter queue.
    pub dlq: Arc<DeadLetters>,
    /// Raw-event archive, when enabled.
    pub archive: Option<Arc<Archive>>,
    /// Partial-batch spool (for its fill level).
    pub spool: Arc<Spool>,
    /// Memory budget.
    pub budget: MemoryBudget,
    /// Requests in progress (for the watermark).
    pub in_flight: Arc<InFlightRequests>,
    /// Concurrency limit.
    pub concurrency: Arc<Semaphore>,
    /// Metric handles.
    pub metrics: AgentMetrics,
    /// Cancelled when shutdown begins; requests are refused with `503` from then on.
    pub shutdown: CancellationToken,
    /// Raw bytes kept per dead letter.
    pub max_raw_bytes: usize,
    /// Who may send, and of which tenant.
    pub auth: IngestAuth,
    /// With `ingest.durable_ack`: answers wait until their events are durable.
    pub durable: Option<Arc<DurableAcks>>,
}

impl Ingest {
    /// Refuses the request when the agent is shutting down or out of memory or spool.
    fn admission(&self) -> Option<Reply> {
        if self.shutdown.is_cancelled() {
            return Some(self.refuse(
                "shutting_down",
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the agent is shutting down",
            ));
        }
        if self.budget.exhausted() {
            return Some(self.refuse(
                "memory",
                StatusCode::SERVICE_UNAVAILABLE,
                "memory_budget_exceeded",
                format!(
                    "the agent's memory budget of {} bytes is in use; retry later",
                    self.budget.limit
                ),
            ));
        }
        if self.spool.is_full() {
            return Some(self.refuse(
                "spool",
                StatusCode::SERVICE_UNAVAILABLE,
                "spool_full",
                "the spool of unpublished data is full (NATS unreachable?); retry later",
            ));
        }
        if self.archive.as_ref().is_some_and(|a| a.is_full()) {
            return Some(self.refuse(
                "spool",
                StatusCode::SERVICE_UNAVAILABLE,
                "archive_full",
                "the raw-event archive queue is full (NATS unreachable?); retry later",
            ));
        }
        None
    }

    /// Counts a request refused for `reason` (a label of `requests_throttled_total`) and
    /// builds its answer, with `Retry-After`.
    fn refuse(
        &self,
        reason: &'static str,
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> Reply {
        self.metrics.throttled(reason);
        Reply::overloaded(status, code, message, self.config.retry_after_secs)
    }

    /// The refusal of a request whose body no longer fits the memory budget.
    fn over_budget(&self) -> Reply {
        self.refuse(
            "memory",
            StatusCode::SERVICE_UNAVAILABLE,
            "memory_budget_exceeded",
            "the agent's memory budget is in use; retry later",
        )
    }

    /// Records a whole-body rejection (dead letter and metric) and builds its reply.
    fn reject_body(
        &self,
        status: StatusCode,
        code: &'static str,
        message: String,
        raw: &[u8],
        received_at: UnixMillis,
    ) -> Reply {
        self.metrics.rejected(code, 1);
        self.dlq.submit_all([Rejected {
            tenant: None,
            code,
            message: &message,
            input: raw,
            index: None,
            received_at,
        }]);
        tracing::debug!(code, %message, "request body rejected");
        Reply::error(status, code, message)
    }

    /// Validates, dead-letters, aggregates and archives the events of a decoded body sent
    /// with `scope`: events without `tenant_id` take the scope's tenant, events naming another
    /// are rejected (`tenant_mismatch`), and no rejection is filed under a tenant other than
    /// the scope's.
    pub fn process(
        &self,
        body: &[u8],
        ndjson: bool,
        received_at: UnixMillis,
        scope: &IngestScope,
    ) -> Reply {
        self.process_for_flush(body, ndjson, received_at, scope).0
    }

    /// [`Ingest::process`], and the flush that takes the accepted events out (`None` when
    /// nothing was accepted).
    pub fn process_for_flush(
        &self,
        body: &[u8],
        ndjson: bool,
        received_at: UnixMillis,
        scope: &IngestScope,
    ) -> (Reply, Option<u64>) {
        let own = scope.tenant.as_deref();
        let batch = match parse_batch_as(
            body,
            ndjson,
            self.config.max_batch_items,
            &self.limits,
            received_at,
            own,
        ) {
            Ok(batch) => batch,
            Err(rejection) => {
                let status = if rejection.code == RejectCode::BatchTooLarge {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                };
                let reply = self.reject_body(
                    status,
                    rejection.code.as_str(),
                    rejection.message,
                    body,
                    received_at,
                );
                return (reply, None);
            }
        };
        let single = batch.single;
        let mut flush = None;
        let mut items = batch.items;
        // Events stay where the parser put them (an `Event` is large: moving each into a second
        // list cost more than iterating over the items twice).
        let mut rejected: Vec<(usize, &[u8], Rejection)> = Vec::new();
        let mut accepted_count = 0usize;
        for (index, (raw, outcome)) in items.iter_mut().enumerate() {
            if let (Some(own), Ok(event)) = (own, &*outcome) {
                if event.tenant_id != own {
                    *outcome = Err(Rejection::new(
                        RejectCode::TenantMismatch,
                        format!(
                            "the event names tenant `{}`; this key sends events of tenant `{own}` only",
                            event.tenant_id
                        ),
                    ));
                }
            }
            match outcome {
                Ok(_) => accepted_count += 1,
                Err(rejection) => {
                    if rejection.tenant.is_none() {
                        rejection.tenant = tenant_hint(raw, self.limits.max_identifier_len);
                    }
                    // A producer's rejected input goes to its own tenant's dead letters,
                    // never to those of a tenant it names.
                    if let Some(own) = own {
                        if rejection.tenant.as_deref().is_some_and(|t| t != own)
                            || rejection.code == RejectCode::TenantMismatch
                        {
                            rejection.tenant = Some(own.to_owned());
                        }
                    }
                    rejected.push((index, *raw, rejection.clone()));
                }
            }
        }
        let accepted = || {
            items
                .iter()
                .filter_map(|(raw, outcome)| outcome.as_ref().ok().map(|event| (*raw, event)))
        };
        if !rejected.is_empty() {
            self.dlq
                .submit_all(rejected.iter().map(|(index, raw, rejection)| Rejected {
                    tenant: rejection.tenant.as_deref(),
                    code: rejection.code.as_str(),
                    message: &rejection.message,
                    input: raw,
                    index: (!single).then_some(*index),
                    received_at,
                }));
            count_rejections(&self.metrics, &rejected);
        }
        self.shards.pipeline().observe(
            accepted().map(|(_, event)| event),
            rejected
                .iter()
                .map(|(_, raw, r)| (r.tenant.as_deref(), *raw)),
            received_at,
        );
        if accepted_count > 0 {
            let totals = self.shards.add_all(accepted().map(|(_, event)| event));
            flush = Some(totals.flush);
            if totals.overflowed > 0 {
                self.metrics.series_overflowed.increment(totals.overflowed);
            }
            if let Some(archive) = &self.archive {
                archive.add_all(accepted());
            }
            self.metrics
                .events_accepted
                .increment(accepted_count as u64);
        }
        if single {
            let reply = match (items.pop(), rejected.pop()) {
                (Some((_, Ok(event))), _) => Reply::Accepted {
                    event_id: event
                        .id
                        .map(|id| id.into_owned())
                        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
                },
                (_, Some((_, _, rejection))) => Reply::error(
                    StatusCode::BAD_REQUEST,
                    rejection.code.as_str(),
                    rejection.message,
                ),
                (_, None) => Reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "no outcome for a single event",
                ),
            };
            return (reply, flush);
        }
        let reply = Reply::Batch {
            accepted: accepted_count,
            errors: rejected
                .into_iter()
                .map(|(index, _, rejection)| ItemError {
                    index,
                    code: rejection.code.as_str(),
                    message: rejection.message,
                })
                .collect(),
        };
        (reply, flush)
    }
}

/// The tenant of a rejected event when the shared parser could not attach it (it stops at
/// the first problem, e.g. an unknown field, before it has looked at `tenant_id`): a second,
/// lenient parse that reads only `tenant_id`. Only runs for rejected items.
fn tenant_hint(raw: &[u8], max_len: usize) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct TenantOnly<'a> {
        #[serde(borrow, default)]
        tenant_id: Option<std::borrow::Cow<'a, str>>,
    }
    let parsed: TenantOnly<'_> = serde_json::from_slice(raw).ok()?;
    let tenant = parsed.tenant_id?;
    rtdash_shared::event::is_identifier(&tenant, max_len).then(|| tenant.into_owned())
}

fn count_rejections(metrics: &AgentMetrics, rejected: &[(usize, &[u8], Rejection)]) {
    let mut counts: Vec<(RejectCode, u64)> = Vec::new();
    for (_, _, rejection) in rejected {
        match counts.iter_mut().find(|(code, _)| *code == rejection.code) {
            Some((_, n)) => *n += 1,
            None => counts.push((rejection.code, 1)),
        }
    }
    for (code, n) in counts {
        metrics.rejected(code.as_str(), n);
    }
}

/// The `POST /v1/events` handler, in a span with OpenTelemetry's HTTP server attributes
/// (debug level: exported only when the log level includes it).
pub async fn post_events(
    State(ingest): State<Arc<Ingest>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The client's address (axum's connect info; unspecified without a socket, in tests).
    let ip = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(
            std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            |info| info.0.ip(),
        );
    let received_at = now_millis();
    let span = tracing::debug_span!(
        "ingest",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = ROUTE,
        http.response.status_code = tracing::field::Empty,
        received_at,
    );
    let reply = receive(&ingest, &headers, ip, body, received_at)
        .instrument(span.clone())
        .await;
    span.record("http.response.status_code", reply.status().as_u16());
    let unauthorized = reply.status() == StatusCode::UNAUTHORIZED;
    let mut response = reply.into_response();
    if unauthorized {
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"rtdash\""),
        );
    }
    response
}

/// Admits, reads, decodes and processes one request body.
async fn receive(
    ingest: &Arc<Ingest>,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    body: Body,
    received_at: UnixMillis,
) -> Reply {
    let scope = match ingest.auth.authorize(headers, ip) {
        Ok(scope) => scope,
        Err(refusal) => return refusal,
    };
    if let Some(refusal) = ingest.admission() {
        return refusal;
    }
    let Ok(permit) = Arc::clone(&ingest.concurrency).try_acquire_owned() else {
        return ingest.refuse(
            "concurrency",
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!(
                "more than {} requests in progress; retry later",
                ingest.config.max_concurrent_requests
            ),
        );
    };
    let in_flight = ingest.in_flight.enter(received_at);
    let kind = BodyKind::from_headers(headers);
    let mut charge = ingest.budget.charge();
    let read = body::read_limited(
        body,
        &kind,
        ingest.config.max_body_bytes,
        // One byte more than a dead letter keeps, so it is marked as cut.
        ingest.max_raw_bytes + 1,
        |len| charge.add(len as u64),
    )
    .await;
    let raw = match read {
        Ok(raw) => raw,
        Err(BodyError::TooLarge { limit, prefix }) => {
            return ingest.reject_body(
                StatusCode::PAYLOAD_TOO_LARGE,
                RejectCode::BodyTooLarge.as_str(),
                format!("the request body exceeds the limit of {limit} bytes"),
                &prefix,
                received_at,
            )
        }
        Err(BodyError::OverBudget) => return ingest.over_budget(),
        Err(BodyError::Read(problem)) if rtdash_runtime::http::is_body_timeout(&problem) => {
            // A slow client (`http.body_read_timeout_ms`): its slot is freed for others.
            ingest.metrics.rejected("body_timeout", 1);
            tracing::debug!(%problem, "request body not sent in time");
            return Reply::error(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                problem.to_string(),
            );
        }
        Err(BodyError::Read(problem)) => {
            // The client went away or sent a broken stream: nobody reads this answer and there
            // is no input to keep; counted and logged.
            ingest.metrics.rejected("body_read_error", 1);
            tracing::debug!(%problem, "request body could not be read");
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "body_read_error",
                problem.to_string(),
            );
        }
    };
    let decoded = match &kind.encoding {
        Encoding::Identity => raw,
        Encoding::Gzip => match body::gunzip(&raw, ingest.config.max_decompressed_bytes) {
            Ok(bytes) => {
                if !charge.add(bytes.len() as u64) {
                    return ingest.over_budget();
                }
                Bytes::from(bytes)
            }
            Err(GunzipError::TooLarge(limit)) => {
                return ingest.reject_body(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    RejectCode::BodyTooLarge.as_str(),
                    format!("the decompressed request body exceeds the limit of {limit} bytes"),
                    &raw,
                    received_at,
                )
            }
            Err(GunzipError::Invalid(problem)) => {
                return ingest.reject_body(
                    StatusCode::BAD_REQUEST,
                    "invalid_encoding",
                    format!("the request body is not valid gzip: {problem}"),
                    &raw,
                    received_at,
                )
            }
        },
        Encoding::Unsupported(name) => {
            return ingest.reject_body(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("Content-Encoding `{name}` is not supported; send identity or gzip"),
                &raw,
                received_at,
            )
        }
    };
    let (reply, flush) = if decoded.len() as u64 >= ingest.config.blocking_threshold_bytes {
        let worker = Arc::clone(ingest);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            worker.process_for_flush(&decoded, kind.ndjson, received_at, &scope)
        })
        .await
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, "ingest worker failed");
            let reply = Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request could not be processed",
            );
            (reply, None)
        })
    } else {
        ingest.process_for_flush(&decoded, kind.ndjson, received_at, &scope)
    };
    drop(charge);
    if let (Some(durable), Some(flush)) = (&ingest.durable, flush) {
        // The events are in a shard: neither the concurrency permit nor the watermark
        // hold-back is needed while the answer waits for their flush to be durable.
        drop(permit);
        drop(in_flight);
        durable.wait(flush).await;
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::tenant_hint;

    #[test]
    fn the_tenant_of_a_rejected_event_is_recovered_when_it_is_valid() {
        assert_eq!(
            tenant_hint(br#"{"tenant_id":"acme","occured_at":"x"}"#, 128).as_deref(),
            Some("acme")
        );
        assert_eq!(tenant_hint(br#"{"tenant_id":"a b"}"#, 128), None);
        assert_eq!(tenant_hint(br#"{"tenant_id":7}"#, 128), None);
        assert_eq!(tenant_hint(b"{oops", 128), None);
        assert_eq!(tenant_hint(br#"{"source":"s"}"#, 128), None);
    }
}
