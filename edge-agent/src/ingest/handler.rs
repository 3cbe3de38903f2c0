//! `POST /v1/events`: admission (shutdown, memory budget, spool, concurrency), body reading,
//! validation, dead letters, aggregation and the archive.

use super::admit::{admit, run_sized, Processed};
use super::auth::{IngestAuth, IngestScope};
use super::origin::Origin;
use super::response::{ItemError, Reply};
use super::tenant_rate::TenantRates;
use crate::aggregate::{DurableAcks, InFlightRequests, Shards};
use crate::config::IngestConfig;
use crate::memory::MemoryBudget;
use crate::metrics::AgentMetrics;
use crate::protocols::idempotency::{event_id_hash, request_key_hash, Idempotency};
use crate::publish::archive::Archive;
use crate::publish::deadletter::{DeadLetters, Rejected};
use crate::publish::spool::Spool;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rtdash_shared::event::{parse_batch_as, Event, EventLimits, RejectCode, Rejection};
use rtdash_shared::time::{now_millis, UnixMillis};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The route of the ingest API.
pub const ROUTE: &str = "/v1/events";

/// `Retry-After` of a request refused because the metric definitions are not loaded yet.
pub const DEFINITIONS_RETRY_AFTER_SECS: u64 = 1;

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
    /// Event ids seen within the idempotency horizon; `None`: no deduplication.
    pub idempotency: Option<Arc<Idempotency>>,
    /// Set once the metric definitions of the config bucket were read (the flag of
    /// [`crate::definitions::Definitions::ready_flag`]); until then ingest answers `503`.
    pub definitions_loaded: Arc<AtomicBool>,
    /// Events per second per tenant (the `events_per_second` quota).
    pub tenant_rates: TenantRates,
    /// Schema discovery's record of accepted events; `None`: off.
    pub schema: Option<Arc<crate::schema::Catalog>>,
}

impl Ingest {
    /// Whether the metric definitions of the config bucket were read (an empty or absent
    /// bucket counts as read). Events aggregated before would miss every bucket-defined
    /// metric.
    pub fn definitions_loaded(&self) -> bool {
        self.definitions_loaded.load(Ordering::Acquire)
    }

    /// Refuses the request when the agent is shutting down, has not read its metric
    /// definitions yet, or is out of memory or spool.
    pub(crate) fn admission(&self) -> Option<Reply> {
        if self.shutdown.is_cancelled() {
            return Some(self.refuse(
                "shutting_down",
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the agent is shutting down",
            ));
        }
        if !self.definitions_loaded() {
            // Moments after a start: the watch of the config bucket reads it within a
            // round trip or two, so a short, fixed `Retry-After`.
            self.metrics.throttled("definitions_not_loaded");
            return Some(Reply::overloaded(
                StatusCode::SERVICE_UNAVAILABLE,
                "definitions_not_loaded",
                "the agent has not read its metric definitions yet; retry in a moment",
                DEFINITIONS_RETRY_AFTER_SECS,
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
    pub(crate) fn refuse(
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
    pub(crate) fn over_budget(&self) -> Reply {
        self.refuse(
            "memory",
            StatusCode::SERVICE_UNAVAILABLE,
            "memory_budget_exceeded",
            "the agent's memory budget is in use; retry later",
        )
    }

    /// Records a whole-body rejection (dead letter and metric) and builds its reply.
    pub(crate) fn reject_body(
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

    /// Validates, dead-letters, aggregates and archives the events of a decoded body of
    /// `POST /v1/events` sent with `scope`, without an idempotency key.
    pub fn process(
        &self,
        body: &[u8],
        ndjson: bool,
        received_at: UnixMillis,
        scope: &IngestScope,
    ) -> Reply {
        let origin = Origin {
            tenant: scope.tenant.as_deref(),
            ..Origin::EVENTS
        };
        self.process_as(body, ndjson, received_at, &origin)
    }

    /// For each item, whether it is an accepted event seen before (its id, or the request's
    /// idempotency key and its position, within the horizon); remembers the new ones.
    fn seen_before(
        &self,
        items: &[(&[u8], Result<Event<'_>, Rejection>)],
        origin: &Origin<'_>,
        received_at: UnixMillis,
    ) -> Vec<bool> {
        let mut seen = vec![false; items.len()];
        let Some(idempotency) = &self.idempotency else {
            return seen;
        };
        let mut positions = Vec::new();
        let mut hashes = Vec::new();
        for (index, (_, outcome)) in items.iter().enumerate() {
            let Ok(event) = outcome else { continue };
            let hash = match (&event.id, origin.idempotency_key) {
                (Some(id), _) => event_id_hash(&event.tenant_id, id),
                (None, Some(key)) => request_key_hash(&event.tenant_id, key, index),
                (None, None) => continue,
            };
            positions.push(index);
            hashes.push(hash);
        }
        for (index, was) in positions
            .into_iter()
            .zip(idempotency.seen_before(&hashes, received_at))
        {
            seen[index] = was;
        }
        seen
    }

    /// Validates, dead-letters, deduplicates, aggregates and archives the events of a decoded
    /// body (one object, an array or NDJSON of events in the seed's shape) received through
    /// `origin`: events without `tenant_id` take the origin's tenant, events naming another
    /// are rejected (`tenant_mismatch`), and no rejection is filed under a tenant other than
    /// the origin's.
    pub fn process_as(
        &self,
        body: &[u8],
        ndjson: bool,
        received_at: UnixMillis,
        origin: &Origin<'_>,
    ) -> Reply {
        self.process_for_flush(body, ndjson, received_at, origin).0
    }

    /// [`Ingest::process_as`], and the flush that takes the accepted events out (`None` when
    /// nothing was accepted): with `ingest.durable_ack` the answer waits for it.
    pub fn process_for_flush(
        &self,
        body: &[u8],
        ndjson: bool,
        received_at: UnixMillis,
        origin: &Origin<'_>,
    ) -> (Reply, Option<u64>) {
        let own = origin.tenant;
        if let Some(tenant) = own {
            if let Err(over) = self.tenant_rates.check(tenant) {
                self.metrics.throttled("tenant_rate");
                let reply = Reply::overloaded(
                    StatusCode::TOO_MANY_REQUESTS,
                    "quota_exceeded",
                    format!(
                        "events_per_second is {} for tenant `{tenant}` at this agent",
                        over.limit
                    ),
                    over.retry_after_secs,
                );
                return (reply, None);
            }
        }
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
        let duplicate = self.seen_before(&items, origin, received_at);
        let duplicates = duplicate.iter().filter(|d| **d).count();
        accepted_count -= duplicates;
        self.metrics.protocol_events(
            origin.protocol,
            accepted_count as u64,
            rejected.len() as u64,
            duplicates as u64,
        );
        let accepted = || {
            items
                .iter()
                .zip(&duplicate)
                .filter(|(_, duplicate)| !**duplicate)
                .filter_map(|((raw, outcome), _)| outcome.as_ref().ok().map(|event| (*raw, event)))
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
                .map(|(_, raw, r)| (r.tenant.as_deref(), r.code, *raw)),
            received_at,
        );
        if let Some(tenant) = own {
            self.tenant_rates.charge(tenant, accepted_count as u64);
        }
        if accepted_count > 0 {
            let totals = self.shards.add_all(accepted().map(|(_, event)| event));
            flush = Some(totals.flush);
            if totals.overflowed > 0 {
                self.metrics.series_overflowed.increment(totals.overflowed);
            }
            if let Some(archive) = &self.archive {
                archive.add_all(accepted());
            }
            if let Some(schema) = &self.schema {
                schema.observe(accepted().map(|(_, event)| event), received_at);
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
                    duplicate: duplicates > 0,
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
            duplicates,
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
    let ip = crate::protocols::tenant::client_ip(&extensions);
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
    let admitted = match admit(
        ingest,
        headers,
        body,
        received_at,
        ingest.config.max_body_bytes,
    )
    .await
    {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal,
    };
    let key = match idempotency_key(headers) {
        Ok(key) => key,
        Err(reply) => return reply,
    };
    let worker = Arc::clone(ingest);
    let body = admitted.body.clone();
    let ndjson = admitted.kind.ndjson;
    let processed = run_sized(ingest, body.len(), move || {
        let origin = Origin {
            protocol: "events",
            idempotency_key: key.as_deref(),
            tenant: scope.tenant.as_deref(),
        };
        let (reply, flush) = worker.process_for_flush(&body, ndjson, received_at, &origin);
        Processed { reply, flush }
    })
    .await;
    if let (Some(durable), Some(flush)) = (&ingest.durable, processed.flush) {
        // The events are in a shard: neither the concurrency permit nor the watermark
        // hold-back is needed while the answer waits for their flush to be durable.
        drop(admitted);
        durable.wait(flush).await;
    }
    processed.reply
}

/// The request's `Idempotency-Key` header: 1 to 256 visible ASCII characters, or none.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Reply> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= 256 => Ok(Some(key.to_owned())),
        _ => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "`Idempotency-Key` must be 1 to 256 visible ASCII characters",
        )),
    }
}

/// The header naming a request whose retries count once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

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
