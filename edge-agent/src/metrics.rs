//! The agent's Prometheus metrics (rendered at `/metrics`): every name, [`describe`] for
//! their help text and units (called once at start), and [`AgentMetrics`], the handles created
//! once and handed to the code that records. A leaf: it imports nothing from the crate.
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `rtdash_agent_events_accepted_total` | counter | events accepted |
//! | `rtdash_agent_events_rejected_total{code}` | counter | rejected events and whole bodies, by reason code |
//! | `rtdash_agent_requests_throttled_total{reason}` | counter | requests answered 429/503 (`concurrency`, `memory`, `spool`, `shutting_down`, `definitions_not_loaded`, `keys_not_loaded`, `tenant_rate`: a tenant over its `events_per_second`) |
//! | `rtdash_agent_series_active` | gauge | series with a delta in the last flush |
//! | `rtdash_agent_series_overflowed_total` | counter | series updates folded into overflow series |
//! | `rtdash_agent_schema_dropped_total{what}` | counter | schema discovery: events whose `event_type`, `property` or `tenant` was not recorded (a cap was reached) |
//! | `rtdash_agent_schema_properties` | gauge | schema discovery: properties recorded (all tenants and types) |
//! | `rtdash_agent_partials_published_total` | counter | partial batches acknowledged by JetStream |
//! | `rtdash_agent_partials_duplicate_total` | counter | of those, acknowledged as duplicates (a retry of a stored batch) |
//! | `rtdash_agent_publish_failures_total{outbox}` | counter | failed publishes (retried), by outbox: `partials`, `dlq`, `archive` |
//! | `rtdash_agent_publish_latency_seconds` | histogram | publish to acknowledgement of a partial batch |
//! | `rtdash_agent_spool_bytes{medium}` | gauge | unacknowledged partial batches, `memory` and `disk` |
//! | `rtdash_agent_spool_batches` | gauge | unacknowledged partial batches |
//! | `rtdash_agent_memory_budget_used_bytes` | gauge | what counts against the memory budget |
//! | `rtdash_agent_memory_budget_bytes` | gauge | the memory budget |
//! | `rtdash_agent_memory_estimate_bytes{component}` | gauge | estimates: `aggregation`, `spool`, `dlq`, `archive`, `bodies` |
//! | `rtdash_agent_memory_allocated_bytes` | gauge | jemalloc `stats.allocated` (absent without the allocator) |
//! | `rtdash_agent_memory_resident_bytes` | gauge | jemalloc `stats.resident` (absent without the allocator) |
//! | `rtdash_agent_dlq_published_total` | counter | dead letters acknowledged by JetStream |
//! | `rtdash_agent_dlq_spooled_total` | counter | dead letters that overflowed to the disk spool |
//! | `rtdash_agent_dlq_dropped_total` | counter | dead letters lost because queue and spool were full |
//! | `rtdash_agent_archive_published_total` | counter | archive chunks acknowledged |
//! | `rtdash_agent_archive_dropped_events_total` | counter | events not archived because the archive queue was full |
//! | `rtdash_agent_definitions_invalid_total` | counter | metric definitions from KV that were rejected |
//! | `rtdash_agent_definitions_active` | gauge | metric definitions in force (built-in included) |
//! | `rtdash_agent_accept_errors_total` | counter | failed `accept` calls other than connections reset before they were accepted |
//! | `rtdash_agent_http_client_timeouts_total{phase}` | counter | requests cut because the client was too slow: `header` (connection closed), `body` (answered `408`) |
//! | `rtdash_agent_protocol_events_total{protocol,outcome}` | counter | events by entry point (`events`, `segment`, `otlp`, `statsd`) and outcome (`accepted`, `rejected`, `duplicate`) |
//! | `rtdash_agent_protocol_requests_total{protocol}` | counter | HTTP requests (UDP packets for `statsd`) by entry point |
//! | `rtdash_agent_statsd_lines_dropped_total{reason}` | counter | StatsD lines not turned into events, by reason ([`STATSD_DROP_REASONS`]) |
//! | `rtdash_agent_statsd_kernel_drops_total` | counter | datagrams the kernel dropped on the StatsD socket (receive buffer full), from `/proc/net/udp` |
//! | `rtdash_agent_statsd_receive_buffer_bytes` | gauge | the StatsD socket's receive buffer as granted by the kernel |
//! | `rtdash_agent_idempotency_duplicates_total` | counter | events not counted again: their id was seen within the horizon |
//! | `rtdash_agent_idempotency_early_rotations_total` | counter | id tables started before their quarter of the horizon because the last one was full (the horizon shrank) |
//! | `rtdash_agent_idempotency_horizon_seconds` | gauge | how far back ids are remembered now |
//! | `rtdash_agent_idempotency_bytes` | gauge | memory of the id tables |
//!
//! Every label's values are bounded: `code` by [`RejectCode`] and [`AGENT_CODES`] (anything
//! else counts as `other`), `reason` by [`THROTTLE_REASONS`], `outbox` by [`OUTBOXES`],
//! `component` by [`MEMORY_COMPONENTS`], `medium` by `memory` and `disk`.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Counter, Gauge, Histogram, Unit};
use rtdash_shared::event::RejectCode;
use std::collections::HashMap;

/// Accepted events.
pub const EVENTS_ACCEPTED: &str = "rtdash_agent_events_accepted_total";
/// Rejected events and bodies, label `code`.
pub const EVENTS_REJECTED: &str = "rtdash_agent_events_rejected_total";
/// Requests refused for overload, label `reason`.
pub const REQUESTS_THROTTLED: &str = "rtdash_agent_requests_throttled_total";
/// Series with a delta in the last flush.
pub const SERIES_ACTIVE: &str = "rtdash_agent_series_active";
/// Series updates folded into overflow series.
pub const SERIES_OVERFLOWED: &str = "rtdash_agent_series_overflowed_total";
/// Schema discovery: events not recorded, label `what` ([`SCHEMA_DROPPED_WHAT`]).
pub const SCHEMA_DROPPED: &str = "rtdash_agent_schema_dropped_total";
/// Values of the `what` label of [`SCHEMA_DROPPED`].
pub const SCHEMA_DROPPED_WHAT: [&str; 3] = ["tenant", "event_type", "property"];
/// Schema discovery: properties recorded.
pub const SCHEMA_PROPERTIES: &str = "rtdash_agent_schema_properties";
/// Partial batches acknowledged.
pub const PARTIALS_PUBLISHED: &str = "rtdash_agent_partials_published_total";
/// Partial batches acknowledged as duplicates.
pub const PARTIALS_DUPLICATE: &str = "rtdash_agent_partials_duplicate_total";
/// Failed publishes, label `outbox`.
pub const PUBLISH_FAILURES: &str = "rtdash_agent_publish_failures_total";
/// Publish-to-ack latency of partial batches.
pub const PUBLISH_LATENCY: &str = "rtdash_agent_publish_latency_seconds";
/// Spool bytes, label `medium`.
pub const SPOOL_BYTES: &str = "rtdash_agent_spool_bytes";
/// Spool batches.
pub const SPOOL_BATCHES: &str = "rtdash_agent_spool_batches";
/// Memory budget use.
pub const MEMORY_USED: &str = "rtdash_agent_memory_budget_used_bytes";
/// Memory budget.
pub const MEMORY_BUDGET: &str = "rtdash_agent_memory_budget_bytes";
/// Per-component memory estimates.
pub const MEMORY_ESTIMATE: &str = "rtdash_agent_memory_estimate_bytes";
/// The allocator's allocated bytes.
pub const MEMORY_ALLOCATED: &str = "rtdash_agent_memory_allocated_bytes";
/// The allocator's resident bytes.
pub const MEMORY_RESIDENT: &str = "rtdash_agent_memory_resident_bytes";
/// Dead letters acknowledged.
pub const DLQ_PUBLISHED: &str = "rtdash_agent_dlq_published_total";
/// Dead letters that went to the disk spool.
pub const DLQ_SPOOLED: &str = "rtdash_agent_dlq_spooled_total";
/// Dead letters dropped.
pub const DLQ_DROPPED: &str = "rtdash_agent_dlq_dropped_total";
/// Archive chunks acknowledged.
pub const ARCHIVE_PUBLISHED: &str = "rtdash_agent_archive_published_total";
/// Events not archived.
pub const ARCHIVE_DROPPED: &str = "rtdash_agent_archive_dropped_events_total";
/// Rejected metric definitions.
pub const DEFINITIONS_INVALID: &str = "rtdash_agent_definitions_invalid_total";
/// Metric definitions in force.
pub const DEFINITIONS_ACTIVE: &str = "rtdash_agent_definitions_active";
/// Failed `accept` calls.
pub const ACCEPT_ERRORS: &str = "rtdash_agent_accept_errors_total";
/// Requests cut for a slow client, label `phase` (`header`, `body`).
pub const HTTP_CLIENT_TIMEOUTS: &str = "rtdash_agent_http_client_timeouts_total";

/// Events by entry point and outcome.
pub const PROTOCOL_EVENTS: &str = "rtdash_agent_protocol_events_total";
/// Requests (packets) by entry point.
pub const PROTOCOL_REQUESTS: &str = "rtdash_agent_protocol_requests_total";
/// StatsD lines dropped, label `reason`.
pub const STATSD_LINES_DROPPED: &str = "rtdash_agent_statsd_lines_dropped_total";
/// Datagrams dropped by the kernel on the StatsD socket.
pub const STATSD_KERNEL_DROPS: &str = "rtdash_agent_statsd_kernel_drops_total";
/// The StatsD socket's receive buffer.
pub const STATSD_RECEIVE_BUFFER: &str = "rtdash_agent_statsd_receive_buffer_bytes";
/// Events not counted again.
pub const IDEMPOTENCY_DUPLICATES: &str = "rtdash_agent_idempotency_duplicates_total";
/// Early starts of an id table.
pub const IDEMPOTENCY_EARLY_ROTATIONS: &str = "rtdash_agent_idempotency_early_rotations_total";
/// How far back ids are remembered.
pub const IDEMPOTENCY_HORIZON: &str = "rtdash_agent_idempotency_horizon_seconds";
/// Memory of the id tables.
pub const IDEMPOTENCY_BYTES: &str = "rtdash_agent_idempotency_bytes";

/// Values of the `protocol` label of [`PROTOCOL_EVENTS`] and [`PROTOCOL_REQUESTS`].
pub const PROTOCOLS: [&str; 4] = ["events", "segment", "otlp", "statsd"];
/// Values of the `outcome` label of [`PROTOCOL_EVENTS`].
pub const OUTCOMES: [&str; 3] = ["accepted", "rejected", "duplicate"];
/// Values of the `reason` label of [`STATSD_LINES_DROPPED`]: a line that does not parse
/// (`malformed`), an unknown type, a relative gauge, a sample rate outside (0, 1], a
/// DogStatsD event or service check (not mapped), a line rejected by event validation
/// (`rejected`: dead-lettered like any rejected event), and whole packets dropped while the
/// agent refuses input (`overload`: memory, spool, shutdown; `definitions_not_loaded`: the
/// metric definitions of the config bucket not read yet, moments after a start).
pub const STATSD_DROP_REASONS: [&str; 9] = [
    "malformed",
    "unknown_type",
    "relative_gauge",
    "invalid_sample_rate",
    "event",
    "service_check",
    "rejected",
    "overload",
    "definitions_not_loaded",
];

/// Values of the `component` label of [`MEMORY_ESTIMATE`].
pub const MEMORY_COMPONENTS: [&str; 5] = ["aggregation", "spool", "dlq", "archive", "bodies"];
/// Values of the `outbox` label of [`PUBLISH_FAILURES`]: the publishers' names.
pub const OUTBOXES: [&str; 3] = ["partials", "dlq", "archive"];
/// Values of the `reason` label of [`REQUESTS_THROTTLED`].
pub const THROTTLE_REASONS: [&str; 7] = [
    "concurrency",
    "memory",
    "spool",
    "shutting_down",
    "definitions_not_loaded",
    "tenant_rate",
    "keys_not_loaded",
];

/// Reason codes of whole-body problems that [`RejectCode`] does not have.
pub const AGENT_CODES: [&str; 9] = [
    "unsupported_encoding",
    "invalid_encoding",
    "body_read_error",
    "body_timeout",
    // The protocols' own (see `crate::protocols`).
    "unsupported_message",
    "message_too_large",
    "missing_event_name",
    "statsd_malformed",
    "invalid_message",
];

/// Metric handles, created once at startup (the names above are registered with help text).
#[derive(Clone)]
pub struct AgentMetrics {
    /// `rtdash_agent_events_accepted_total`.
    pub events_accepted: Counter,
    rejected: HashMap<&'static str, Counter>,
    throttled: HashMap<&'static str, Counter>,
    /// `rtdash_agent_series_active`.
    pub series_active: Gauge,
    /// `rtdash_agent_series_overflowed_total`.
    pub series_overflowed: Counter,
    /// `rtdash_agent_partials_published_total`.
    pub partials_published: Counter,
    /// `rtdash_agent_partials_duplicate_total`.
    pub partials_duplicate: Counter,
    /// `rtdash_agent_publish_latency_seconds`.
    pub publish_latency: Histogram,
    /// `rtdash_agent_spool_bytes{medium="memory"}`.
    pub spool_memory_bytes: Gauge,
    /// `rtdash_agent_spool_bytes{medium="disk"}`.
    pub spool_disk_bytes: Gauge,
    /// `rtdash_agent_spool_batches`.
    pub spool_batches: Gauge,
    /// `rtdash_agent_memory_budget_used_bytes`.
    pub memory_used: Gauge,
    /// `rtdash_agent_memory_budget_bytes`.
    pub memory_budget: Gauge,
    memory_estimates: Vec<(&'static str, Gauge)>,
    publish_failures: Vec<(&'static str, Counter)>,
    /// `rtdash_agent_dlq_published_total`.
    pub dlq_published: Counter,
    /// `rtdash_agent_dlq_spooled_total`.
    pub dlq_spooled: Counter,
    /// `rtdash_agent_dlq_dropped_total`.
    pub dlq_dropped: Counter,
    /// `rtdash_agent_archive_published_total`.
    pub archive_published: Counter,
    /// `rtdash_agent_archive_dropped_events_total`.
    pub archive_dropped: Counter,
    /// `rtdash_agent_definitions_invalid_total`.
    pub definitions_invalid: Counter,
    /// `rtdash_agent_definitions_active`.
    pub definitions_active: Gauge,
    /// `(protocol, [accepted, rejected, duplicate])`.
    protocol_events: Vec<(&'static str, [Counter; 3])>,
    protocol_requests: Vec<(&'static str, Counter)>,
    statsd_dropped: Vec<(&'static str, Counter)>,
    /// `rtdash_agent_statsd_kernel_drops_total`.
    pub statsd_kernel_drops: Counter,
    /// `rtdash_agent_statsd_receive_buffer_bytes`.
    pub statsd_receive_buffer: Gauge,
    /// `rtdash_agent_idempotency_duplicates_total`.
    pub idempotency_duplicates: Counter,
    /// `rtdash_agent_idempotency_early_rotations_total`.
    pub idempotency_early_rotations: Counter,
    /// `rtdash_agent_idempotency_horizon_seconds`.
    pub idempotency_horizon: Gauge,
    /// `rtdash_agent_idempotency_bytes`.
    pub idempotency_bytes: Gauge,
}

impl std::fmt::Debug for AgentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentMetrics").finish_non_exhaustive()
    }
}

impl AgentMetrics {
    /// Creates the handles with the recorder installed now (`rtdash_runtime::telemetry`
    /// installs the Prometheus one; handles made before it record nowhere).
    pub fn new() -> Self {
        let mut rejected = HashMap::new();
        for code in RejectCode::ALL {
            rejected.insert(
                code.as_str(),
                counter!(EVENTS_REJECTED, "code" => code.as_str()),
            );
        }
        for code in AGENT_CODES {
            rejected.insert(code, counter!(EVENTS_REJECTED, "code" => code));
        }
        let mut throttled = HashMap::new();
        for reason in THROTTLE_REASONS {
            throttled.insert(reason, counter!(REQUESTS_THROTTLED, "reason" => reason));
        }
        Self {
            events_accepted: counter!(EVENTS_ACCEPTED),
            rejected,
            throttled,
            series_active: gauge!(SERIES_ACTIVE),
            series_overflowed: counter!(SERIES_OVERFLOWED),
            partials_published: counter!(PARTIALS_PUBLISHED),
            partials_duplicate: counter!(PARTIALS_DUPLICATE),
            publish_latency: histogram!(PUBLISH_LATENCY),
            spool_memory_bytes: gauge!(SPOOL_BYTES, "medium" => "memory"),
            spool_disk_bytes: gauge!(SPOOL_BYTES, "medium" => "disk"),
            spool_batches: gauge!(SPOOL_BATCHES),
            memory_used: gauge!(MEMORY_USED),
            memory_budget: gauge!(MEMORY_BUDGET),
            memory_estimates: MEMORY_COMPONENTS
                .iter()
                .map(|component| {
                    (
                        *component,
                        gauge!(MEMORY_ESTIMATE, "component" => *component),
                    )
                })
                .collect(),
            publish_failures: OUTBOXES
                .iter()
                .map(|outbox| (*outbox, counter!(PUBLISH_FAILURES, "outbox" => *outbox)))
                .collect(),
            dlq_published: counter!(DLQ_PUBLISHED),
            dlq_spooled: counter!(DLQ_SPOOLED),
            dlq_dropped: counter!(DLQ_DROPPED),
            archive_published: counter!(ARCHIVE_PUBLISHED),
            archive_dropped: counter!(ARCHIVE_DROPPED),
            definitions_invalid: counter!(DEFINITIONS_INVALID),
            definitions_active: gauge!(DEFINITIONS_ACTIVE),
            protocol_events: PROTOCOLS
                .iter()
                .map(|p| {
                    let [a, r, d] = OUTCOMES;
                    (
                        *p,
                        [
                            counter!(PROTOCOL_EVENTS, "protocol" => *p, "outcome" => a),
                            counter!(PROTOCOL_EVENTS, "protocol" => *p, "outcome" => r),
                            counter!(PROTOCOL_EVENTS, "protocol" => *p, "outcome" => d),
                        ],
                    )
                })
                .collect(),
            protocol_requests: PROTOCOLS
                .iter()
                .map(|p| (*p, counter!(PROTOCOL_REQUESTS, "protocol" => *p)))
                .collect(),
            statsd_dropped: STATSD_DROP_REASONS
                .iter()
                .map(|r| (*r, counter!(STATSD_LINES_DROPPED, "reason" => *r)))
                .collect(),
            statsd_kernel_drops: counter!(STATSD_KERNEL_DROPS),
            statsd_receive_buffer: gauge!(STATSD_RECEIVE_BUFFER),
            idempotency_duplicates: counter!(IDEMPOTENCY_DUPLICATES),
            idempotency_early_rotations: counter!(IDEMPOTENCY_EARLY_ROTATIONS),
            idempotency_horizon: gauge!(IDEMPOTENCY_HORIZON),
            idempotency_bytes: gauge!(IDEMPOTENCY_BYTES),
        }
    }

    /// Counts the events of one request of `protocol` (one of [`PROTOCOLS`]) by outcome.
    pub fn protocol_events(&self, protocol: &str, accepted: u64, rejected: u64, duplicate: u64) {
        if let Some((_, [a, r, d])) = self.protocol_events.iter().find(|(p, _)| *p == protocol) {
            a.increment(accepted);
            r.increment(rejected);
            d.increment(duplicate);
        }
    }

    /// Counts one request (or StatsD packet) of `protocol`.
    pub fn protocol_request(&self, protocol: &str) {
        if let Some((_, counter)) = self.protocol_requests.iter().find(|(p, _)| *p == protocol) {
            counter.increment(1);
        }
    }

    /// Counts `n` StatsD lines dropped for `reason` (one of [`STATSD_DROP_REASONS`]).
    pub fn statsd_dropped(&self, reason: &str, n: u64) {
        if let Some((_, counter)) = self.statsd_dropped.iter().find(|(r, _)| *r == reason) {
            counter.increment(n);
        }
    }

    /// Counts `n` rejections with reason `code` (an unknown code counts as `other`).
    pub fn rejected(&self, code: &str, n: u64) {
        match self.rejected.get(code) {
            Some(counter) => counter.increment(n),
            None => counter!(EVENTS_REJECTED, "code" => "other").increment(n),
        }
    }

    /// Counts one request refused for `reason`.
    pub fn throttled(&self, reason: &'static str) {
        match self.throttled.get(reason) {
            Some(counter) => counter.increment(1),
            None => counter!(REQUESTS_THROTTLED, "reason" => reason).increment(1),
        }
    }

    /// Sets the memory gauges (every flush interval): the bytes counted against the budget,
    /// the per-component estimates as `(component, bytes)` with components of
    /// [`MEMORY_COMPONENTS`], and the allocator's `(allocated, resident)` bytes when it
    /// reports them (the allocator's gauges stay absent otherwise).
    pub fn record_memory(
        &self,
        used: u64,
        estimates: &[(&'static str, u64)],
        allocator: Option<(u64, u64)>,
    ) {
        self.memory_used.set(used as f64);
        for (component, bytes) in estimates {
            match self.memory_estimates.iter().find(|(c, _)| c == component) {
                Some((_, gauge)) => gauge.set(*bytes as f64),
                None => gauge!(MEMORY_ESTIMATE, "component" => *component).set(*bytes as f64),
            }
        }
        if let Some((allocated, resident)) = allocator {
            gauge!(MEMORY_ALLOCATED).set(allocated as f64);
            gauge!(MEMORY_RESIDENT).set(resident as f64);
        }
    }

    /// The failed-publish counter of the publisher `outbox` (one of [`OUTBOXES`]).
    pub fn publish_failures(&self, outbox: &'static str) -> Counter {
        match self.publish_failures.iter().find(|(o, _)| *o == outbox) {
            Some((_, counter)) => counter.clone(),
            None => counter!(PUBLISH_FAILURES, "outbox" => outbox),
        }
    }
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers the description and unit of every metric above (once, at start; again is
/// harmless).
pub fn describe() {
    describe_counter!(EVENTS_ACCEPTED, Unit::Count, "Events accepted");
    describe_counter!(
        EVENTS_REJECTED,
        Unit::Count,
        "Rejected events and whole request bodies, by reason code"
    );
    describe_counter!(
        REQUESTS_THROTTLED,
        Unit::Count,
        "Requests refused with 429/503, by reason"
    );
    describe_gauge!(SERIES_ACTIVE, "Series with a delta in the last flush");
    describe_counter!(
        SERIES_OVERFLOWED,
        Unit::Count,
        "Series updates folded into overflow series (series cap)"
    );
    describe_counter!(
        SCHEMA_DROPPED,
        Unit::Count,
        "Schema discovery: events whose tenant, event type or property was not recorded (a cap was reached)"
    );
    describe_gauge!(
        SCHEMA_PROPERTIES,
        "Schema discovery: properties recorded, all tenants and event types"
    );
    describe_counter!(
        PARTIALS_PUBLISHED,
        Unit::Count,
        "Partial batches acknowledged by JetStream"
    );
    describe_counter!(
        PARTIALS_DUPLICATE,
        Unit::Count,
        "Partial batches acknowledged as duplicates of a stored message"
    );
    describe_counter!(
        PUBLISH_FAILURES,
        Unit::Count,
        "Failed publishes (each is retried), by outbox"
    );
    describe_histogram!(
        PUBLISH_LATENCY,
        Unit::Seconds,
        "Time from publishing a partial batch to its acknowledgement"
    );
    describe_gauge!(
        SPOOL_BYTES,
        Unit::Bytes,
        "Unacknowledged partial batches, by medium"
    );
    describe_gauge!(SPOOL_BATCHES, "Unacknowledged partial batches");
    describe_gauge!(
        MEMORY_USED,
        Unit::Bytes,
        "Bytes counted against the memory budget"
    );
    describe_gauge!(MEMORY_BUDGET, Unit::Bytes, "The memory budget");
    describe_gauge!(
        MEMORY_ESTIMATE,
        Unit::Bytes,
        "Estimated bytes held, by component (aggregation, spool, dlq, archive, bodies)"
    );
    describe_gauge!(
        MEMORY_ALLOCATED,
        Unit::Bytes,
        "Bytes in live allocations (jemalloc stats.allocated); what the memory budget counts"
    );
    describe_gauge!(
        MEMORY_RESIDENT,
        Unit::Bytes,
        "Bytes in pages the allocator holds resident (jemalloc stats.resident)"
    );
    describe_counter!(
        DLQ_PUBLISHED,
        Unit::Count,
        "Dead letters acknowledged by JetStream"
    );
    describe_counter!(
        DLQ_SPOOLED,
        Unit::Count,
        "Dead letters written to the disk spool because the queue was full"
    );
    describe_counter!(
        DLQ_DROPPED,
        Unit::Count,
        "Dead letters lost because queue and disk spool were full"
    );
    describe_counter!(
        ARCHIVE_PUBLISHED,
        Unit::Count,
        "Raw-event archive chunks acknowledged"
    );
    describe_counter!(
        ARCHIVE_DROPPED,
        Unit::Count,
        "Accepted events not archived because the archive queue was full"
    );
    describe_counter!(
        DEFINITIONS_INVALID,
        Unit::Count,
        "Metric definitions from the config bucket that were rejected"
    );
    describe_gauge!(
        DEFINITIONS_ACTIVE,
        "Metric definitions in force (the built-in one included)"
    );
    describe_counter!(
        PROTOCOL_EVENTS,
        Unit::Count,
        "Events by entry point (events, segment, otlp, statsd) and outcome (accepted, rejected, duplicate)"
    );
    describe_counter!(
        PROTOCOL_REQUESTS,
        Unit::Count,
        "HTTP requests (StatsD: UDP packets) by entry point"
    );
    describe_counter!(
        STATSD_LINES_DROPPED,
        Unit::Count,
        "StatsD lines not turned into events, by reason"
    );
    describe_counter!(
        STATSD_KERNEL_DROPS,
        Unit::Count,
        "Datagrams the kernel dropped on the StatsD socket because its receive buffer was full"
    );
    describe_gauge!(
        STATSD_RECEIVE_BUFFER,
        Unit::Bytes,
        "The StatsD socket's receive buffer as granted by the kernel"
    );
    describe_counter!(
        IDEMPOTENCY_DUPLICATES,
        Unit::Count,
        "Events not counted again because their id was seen within the idempotency horizon"
    );
    describe_counter!(
        IDEMPOTENCY_EARLY_ROTATIONS,
        Unit::Count,
        "Id tables started early because the newest was full (the horizon shrank)"
    );
    describe_gauge!(
        IDEMPOTENCY_HORIZON,
        Unit::Seconds,
        "How far back event ids are remembered now"
    );
    describe_gauge!(
        IDEMPOTENCY_BYTES,
        Unit::Bytes,
        "Memory of the event id tables"
    );
    describe_counter!(ACCEPT_ERRORS, Unit::Count, "Failed accept calls");
    describe_counter!(
        HTTP_CLIENT_TIMEOUTS,
        Unit::Count,
        "Requests cut because the client sent its head (header) or body (body) too slowly"
    );
}

/// The handles of the HTTP server loop.
pub fn server() -> rtdash_runtime::http::ServerMetrics {
    rtdash_runtime::http::ServerMetrics {
        accept_errors: counter!(ACCEPT_ERRORS),
        header_timeouts: counter!(HTTP_CLIENT_TIMEOUTS, "phase" => "header"),
        body_timeouts: counter!(HTTP_CLIENT_TIMEOUTS, "phase" => "body"),
    }
}
