//! The gateway's Prometheus metrics (rendered at `/metrics`): every name, its description
//! ([`describe`], registered once at start) and the handles of those recorded on the fan-out
//! path ([`FanoutMetrics`], created once and passed to the hub and the streams).
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `rtdash_gateway_http_request_duration_seconds{route,method,code}` | histogram | API and stream requests, by matched route (`other` when none), method and status code |
//! | `rtdash_gateway_http_shed_total` | counter | API requests answered `503` because the concurrency limit was reached |
//! | `rtdash_gateway_accept_errors_total` | counter | failed `accept` calls other than connections reset before they were accepted |
//! | `rtdash_gateway_http_client_timeouts_total{phase}` | counter | requests cut because the client was too slow: `header` (connection closed), `body` (answered `408`) |
//! | `rtdash_gateway_questdb_row_queries_total` | counter | row queries sent to QuestDB (metric queries, snapshots, repair reads) |
//! | `rtdash_gateway_snapshot_queries_total` | counter | widget snapshot queries sent to QuestDB |
//! | `rtdash_gateway_row_cache_hits_total` | counter | chunks of rows of windows that no longer change served from the row cache |
//! | `rtdash_gateway_row_cache_misses_total` | counter | such chunks not in the cache (read from QuestDB) |
//! | `rtdash_gateway_row_cache_evictions_total` | counter | chunks dropped from the row cache to stay within `query.row_cache_bytes` |
//! | `rtdash_gateway_row_cache_bytes` | gauge | bytes held by the row cache |
//! | `rtdash_gateway_state_decode_errors_total` | counter | stored or live window states that did not decode (ignored) |
//! | `rtdash_gateway_sse_clients` | gauge | open live streams |
//! | `rtdash_gateway_sse_events_sent_total` | counter | events sent on live streams (keep-alive comments not counted) |
//! | `rtdash_gateway_sse_resyncs_total` | counter | streams that fell out of a topic's ring and were sent the values in memory |
//! | `rtdash_gateway_sse_resnapshots_total` | counter | streams sent fresh snapshots after a NATS reconnection |
//! | `rtdash_gateway_upstream_subscriptions` | gauge | NATS subscriptions to live subjects, one per watched (tenant, metric) |
//! | `rtdash_gateway_live_updates_received_total` | counter | window versions received on live subjects |
//! | `rtdash_gateway_live_updates_too_old_total` | counter | of those, older than the memory horizon (ignored) |
//! | `rtdash_gateway_live_decode_errors_total` | counter | live messages that do not decode |
//! | `rtdash_gateway_live_resyncs_total` | counter | resynchronisations of every stream after a NATS reconnection |
//! | `rtdash_gateway_nats_disconnects_total` | counter | losses of the NATS connection |
//! | `rtdash_gateway_live_repair_reads_total` | counter | reads of windows whose final update may have been missed |
//! | `rtdash_gateway_live_repaired_total` | counter | series-windows those reads made final (or newer) |
//! | `rtdash_gateway_auth_failures_total{reason}` | counter | requests refused for their credential: `invalid` (a key or token that does not verify), `rate_limited` (too many failures from the address), `csrf` (a cookie-authenticated change from another site) |
//! | `rtdash_gateway_live_state_evictions_total` | counter | windows dropped from a topic's memory because its states reached `live.max_state_bytes` |
//! | `rtdash_gateway_quota_used{tenant,quota}` | gauge | a tenant's use of each quota (`dashboards`, `widgets_per_dashboard`, `alert_rules`, `metric_definitions`, `silences`, `open_streams` on this gateway, `max_series_per_window`), every 15 s |
//! | `rtdash_gateway_quota_limit{tenant,quota}` | gauge | the limit in force for each (the operator's setting or the `[quotas]` default) |
//! | `rtdash_gateway_heap_allocated_bytes` | gauge | bytes the program holds (jemalloc `stats.allocated`) |
//! | `rtdash_gateway_heap_resident_bytes` | gauge | pages the allocator keeps (jemalloc `stats.resident`) |

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics::{Counter, Gauge, Unit};

/// API and stream request durations; labels `route`, `method`, `code`.
pub const HTTP_REQUEST_DURATION: &str = "rtdash_gateway_http_request_duration_seconds";
/// API requests shed at the concurrency limit.
pub const HTTP_SHED: &str = "rtdash_gateway_http_shed_total";
/// Failed `accept` calls.
pub const ACCEPT_ERRORS: &str = "rtdash_gateway_accept_errors_total";
/// Requests cut for a slow client, label `phase` (`header`, `body`).
pub const HTTP_CLIENT_TIMEOUTS: &str = "rtdash_gateway_http_client_timeouts_total";
/// A tenant's use of a quota; labels `tenant`, `quota`.
pub const QUOTA_USED: &str = "rtdash_gateway_quota_used";
/// The limit in force of a tenant's quota; labels `tenant`, `quota`.
pub const QUOTA_LIMIT: &str = "rtdash_gateway_quota_limit";
/// Row queries sent to QuestDB.
pub const QUESTDB_ROW_QUERIES: &str = "rtdash_gateway_questdb_row_queries_total";
/// Widget snapshot queries sent to QuestDB.
pub const SNAPSHOT_QUERIES: &str = "rtdash_gateway_snapshot_queries_total";
/// Row-cache hits.
pub const ROW_CACHE_HITS: &str = "rtdash_gateway_row_cache_hits_total";
/// Row-cache misses.
pub const ROW_CACHE_MISSES: &str = "rtdash_gateway_row_cache_misses_total";
/// Row-cache evictions.
pub const ROW_CACHE_EVICTIONS: &str = "rtdash_gateway_row_cache_evictions_total";
/// Row-cache bytes.
pub const ROW_CACHE_BYTES: &str = "rtdash_gateway_row_cache_bytes";
/// States that did not decode.
pub const STATE_DECODE_ERRORS: &str = "rtdash_gateway_state_decode_errors_total";
/// Live memory windows dropped for the state budget.
pub const LIVE_STATE_EVICTIONS: &str = "rtdash_gateway_live_state_evictions_total";
/// Open live streams.
pub const SSE_CLIENTS: &str = "rtdash_gateway_sse_clients";
/// Events sent on live streams.
pub const SSE_EVENTS_SENT: &str = "rtdash_gateway_sse_events_sent_total";
/// Streams that fell out of a ring.
pub const SSE_RESYNCS: &str = "rtdash_gateway_sse_resyncs_total";
/// Streams re-snapshotted after a NATS reconnection.
pub const SSE_RESNAPSHOTS: &str = "rtdash_gateway_sse_resnapshots_total";
/// Upstream live subscriptions.
pub const UPSTREAM_SUBSCRIPTIONS: &str = "rtdash_gateway_upstream_subscriptions";
/// Window versions received live.
pub const LIVE_UPDATES_RECEIVED: &str = "rtdash_gateway_live_updates_received_total";
/// Window versions too old for memory.
pub const LIVE_UPDATES_TOO_OLD: &str = "rtdash_gateway_live_updates_too_old_total";
/// Undecodable live messages.
pub const LIVE_DECODE_ERRORS: &str = "rtdash_gateway_live_decode_errors_total";
/// Resynchronisations after NATS reconnections.
pub const LIVE_RESYNCS: &str = "rtdash_gateway_live_resyncs_total";
/// NATS connection losses.
pub const NATS_DISCONNECTS: &str = "rtdash_gateway_nats_disconnects_total";
/// Repair reads.
pub const LIVE_REPAIR_READS: &str = "rtdash_gateway_live_repair_reads_total";
/// Series-windows repaired.
pub const LIVE_REPAIRED: &str = "rtdash_gateway_live_repaired_total";
/// Requests refused for their credential; label `reason` (`invalid`, `rate_limited`, `csrf`).
pub const AUTH_FAILURES: &str = "rtdash_gateway_auth_failures_total";
/// jemalloc's allocated bytes (recorded by the binary).
pub const HEAP_ALLOCATED: &str = "rtdash_gateway_heap_allocated_bytes";
/// jemalloc's resident bytes (recorded by the binary).
pub const HEAP_RESIDENT: &str = "rtdash_gateway_heap_resident_bytes";

/// Registers every metric's description and unit with the installed recorder (once at
/// start; repeating it is harmless).
pub fn describe() {
    describe_gauge!(
        QUOTA_USED,
        "a tenant's use of a quota (recomputed every 15 s)"
    );
    describe_gauge!(QUOTA_LIMIT, "the limit in force of a tenant's quota");
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "API and stream requests by matched route, method and status code"
    );
    describe_counter!(
        HTTP_SHED,
        "API requests answered 503 at the concurrency limit"
    );
    describe_counter!(
        AUTH_FAILURES,
        "Requests refused for their credential, by reason (invalid, rate_limited, csrf)"
    );
    describe_counter!(ACCEPT_ERRORS, "Failed accept calls");
    describe_counter!(
        HTTP_CLIENT_TIMEOUTS,
        "Requests cut because the client sent its head (header) or body (body) too slowly"
    );
    describe_counter!(
        QUESTDB_ROW_QUERIES,
        "Row queries sent to QuestDB (metric queries, snapshots, repair reads)"
    );
    describe_counter!(SNAPSHOT_QUERIES, "Widget snapshot queries sent to QuestDB");
    describe_counter!(
        ROW_CACHE_HITS,
        "Chunks of rows of windows that no longer change served from the row cache"
    );
    describe_counter!(
        ROW_CACHE_MISSES,
        "Chunks of rows of windows that no longer change read from QuestDB"
    );
    describe_counter!(
        ROW_CACHE_EVICTIONS,
        "Chunks dropped from the row cache to stay within its byte budget"
    );
    describe_gauge!(ROW_CACHE_BYTES, Unit::Bytes, "Bytes held by the row cache");
    describe_counter!(
        STATE_DECODE_ERRORS,
        "Stored or live window states that did not decode (ignored)"
    );
    describe_counter!(
        LIVE_STATE_EVICTIONS,
        "Windows dropped from a topic's memory because its states reached the byte budget"
    );
    describe_gauge!(SSE_CLIENTS, "Open live streams");
    describe_counter!(
        SSE_EVENTS_SENT,
        "Events sent on live streams (keep-alive comments not counted)"
    );
    describe_counter!(
        SSE_RESYNCS,
        "Streams that fell out of a topic's ring and were sent the values in memory"
    );
    describe_counter!(
        SSE_RESNAPSHOTS,
        "Streams sent fresh snapshots after a NATS reconnection"
    );
    describe_gauge!(
        UPSTREAM_SUBSCRIPTIONS,
        "NATS subscriptions to live subjects, one per watched (tenant, metric)"
    );
    describe_counter!(
        LIVE_UPDATES_RECEIVED,
        "Window versions received on live subjects"
    );
    describe_counter!(
        LIVE_UPDATES_TOO_OLD,
        "Window versions older than the memory horizon (ignored)"
    );
    describe_counter!(LIVE_DECODE_ERRORS, "Live messages that do not decode");
    describe_counter!(
        LIVE_RESYNCS,
        "Resynchronisations of every stream after a NATS reconnection"
    );
    describe_counter!(NATS_DISCONNECTS, "Losses of the NATS connection");
    describe_counter!(
        LIVE_REPAIR_READS,
        "Reads of windows whose final update may have been missed"
    );
    describe_counter!(
        LIVE_REPAIRED,
        "Series-windows made final (or newer) by repair reads"
    );
    describe_gauge!(
        HEAP_ALLOCATED,
        Unit::Bytes,
        "Bytes the program holds (jemalloc stats.allocated)"
    );
    describe_gauge!(
        HEAP_RESIDENT,
        Unit::Bytes,
        "Pages the allocator keeps (jemalloc stats.resident)"
    );
}

/// Handles of the metrics recorded per live update or per stream event, created once.
#[derive(Clone, Debug)]
pub struct FanoutMetrics {
    /// [`LIVE_UPDATES_RECEIVED`].
    pub updates_received: Counter,
    /// [`LIVE_UPDATES_TOO_OLD`].
    pub updates_too_old: Counter,
    /// [`LIVE_DECODE_ERRORS`].
    pub decode_errors: Counter,
    /// [`UPSTREAM_SUBSCRIPTIONS`].
    pub upstream_subscriptions: Gauge,
    /// [`SSE_CLIENTS`].
    pub sse_clients: Gauge,
    /// [`SSE_EVENTS_SENT`].
    pub sse_events_sent: Counter,
    /// [`SSE_RESYNCS`].
    pub sse_resyncs: Counter,
    /// [`SSE_RESNAPSHOTS`].
    pub sse_resnapshots: Counter,
}

impl FanoutMetrics {
    /// Handles on the installed recorder.
    pub fn new() -> Self {
        Self {
            updates_received: counter!(LIVE_UPDATES_RECEIVED),
            updates_too_old: counter!(LIVE_UPDATES_TOO_OLD),
            decode_errors: counter!(LIVE_DECODE_ERRORS),
            upstream_subscriptions: gauge!(UPSTREAM_SUBSCRIPTIONS),
            sse_clients: gauge!(SSE_CLIENTS),
            sse_events_sent: counter!(SSE_EVENTS_SENT),
            sse_resyncs: counter!(SSE_RESYNCS),
            sse_resnapshots: counter!(SSE_RESNAPSHOTS),
        }
    }

    /// Handles that record nothing (unit tests).
    pub fn noop() -> Self {
        Self {
            updates_received: Counter::noop(),
            updates_too_old: Counter::noop(),
            decode_errors: Counter::noop(),
            upstream_subscriptions: Gauge::noop(),
            sse_clients: Gauge::noop(),
            sse_events_sent: Counter::noop(),
            sse_resyncs: Counter::noop(),
            sse_resnapshots: Counter::noop(),
        }
    }
}

impl Default for FanoutMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The handles of the HTTP server loop.
pub fn server() -> rtdash_runtime::http::ServerMetrics {
    rtdash_runtime::http::ServerMetrics {
        accept_errors: counter!(ACCEPT_ERRORS),
        header_timeouts: counter!(HTTP_CLIENT_TIMEOUTS, "phase" => "header"),
        body_timeouts: counter!(HTTP_CLIENT_TIMEOUTS, "phase" => "body"),
    }
}
