//! Where a batch of events came from: the entry point, for `/metrics`, and the request's
//! `Idempotency-Key`, for deduplication (see [`crate::protocols::idempotency`]).

/// The entry point and idempotency key of a batch of events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin<'a> {
    /// `events`, `segment`, `otlp` or `statsd` (the `protocol` label).
    pub protocol: &'static str,
    /// The request's `Idempotency-Key`: events without an id of their own are identified by
    /// it and their position in the request.
    pub idempotency_key: Option<&'a str>,
    /// The tenant the producer's credentials (or the entry point's configuration) allow:
    /// events without `tenant_id` are its, events naming another are rejected
    /// (`tenant_mismatch`). `None` (the operator key): events name their tenant.
    pub tenant: Option<&'a str>,
}

impl Origin<'static> {
    /// `POST /v1/events` without an idempotency key.
    pub const EVENTS: Origin<'static> = Origin {
        protocol: "events",
        idempotency_key: None,
        tenant: None,
    };
}
