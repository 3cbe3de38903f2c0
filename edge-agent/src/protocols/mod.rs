//! The producers' own protocols, beside rtdash's `POST /v1/events`: a service keeps its SDK
//! and changes the address it sends to (`docs/producers.md` shows the two lines for each).
//!
//! - [`segment`]: Segment's HTTP tracking API (`/v1/batch`, `/v1/track`, ...);
//! - [`otlp`]: OTLP/HTTP logs (`POST /v1/logs`, protobuf or JSON);
//! - [`statsd`]: DogStatsD/StatsD over UDP;
//! - [`idempotency`]: retried events counted once, for every entry point;
//! - [`tenant`]: the one hook that says whose events a request carries.
//!
//! Every protocol maps its input onto events in the seed's shape and hands them to
//! [`Ingest::process_as`](crate::ingest::Ingest::process_as), so validation, dead letters,
//! deduplication, aggregation, the archive and the per-protocol counts
//! (`rtdash_agent_protocol_events_total{protocol}`) are those of `POST /v1/events`; the HTTP
//! ones are admitted by [`crate::ingest::admit`] under the same limits (`429`/`503` with
//! `Retry-After`). What a protocol cannot map (a Segment call without `event`, a log record
//! without an event name, a malformed StatsD line) is dead-lettered and counted too.

pub mod idempotency;
pub mod otlp;
pub mod segment;
pub mod statsd;
pub mod tenant;

use crate::config::AgentConfig;
use crate::ingest::Ingest;
use axum::Router;
use std::sync::Arc;
use tenant::TenantResolver;

/// The HTTP routes of the Segment and OTLP entry points (merged beside `/v1/events`).
pub fn router(ingest: &Arc<Ingest>, config: &AgentConfig) -> Router {
    let segment = Arc::new(segment::Segment {
        ingest: Arc::clone(ingest),
        tenants: TenantResolver::configured("segment", config.segment.tenant.clone(), true)
            .with_keys(config.segment.write_keys.clone()),
        config: config.segment.clone(),
    });
    let otlp = Arc::new(otlp::Otlp {
        ingest: Arc::clone(ingest),
        tenants: TenantResolver::configured("otlp", config.otlp.tenant.clone(), false),
        config: config.otlp.clone(),
    });
    segment::router(segment).merge(otlp::router(otlp))
}
