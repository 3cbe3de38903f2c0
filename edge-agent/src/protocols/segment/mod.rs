//! The Segment-compatible tracking API: what Segment's SDKs (analytics-python,
//! analytics-node, and every library speaking Segment's HTTP tracking API) send, pointed at
//! the agent as their host. `POST /v1/batch` (what the SDKs use) and the single calls
//! `POST /v1/track`, `/v1/identify`, `/v1/page`, `/v1/screen`, `/v1/group`, `/v1/alias`;
//! JSON bodies, optionally gzip; the write key as the HTTP Basic user (or `writeKey` in the
//! body).
//!
//! [`message`] maps each message onto an event; [`handler`] admits, authenticates, submits
//! and answers. Messages then go the way of `POST /v1/events` (validation, dead letters,
//! deduplication by `messageId`, aggregation, archive). Limits: `segment.max_message_bytes`
//! per message (32 KiB) and `segment.max_batch_bytes` per call (512 KiB), as Segment's API.

pub mod handler;
pub mod message;

use crate::config::SegmentConfig;
use crate::ingest::Ingest;
use crate::protocols::tenant::TenantResolver;
use axum::routing::post;
use axum::Router;
use message::Kind;
use std::sync::Arc;

/// The Segment entry point's state.
#[derive(Debug)]
pub struct Segment {
    /// Where the events go.
    pub ingest: Arc<Ingest>,
    /// Whose events they are.
    pub tenants: TenantResolver,
    /// Limits and source.
    pub config: SegmentConfig,
}

/// The routes.
pub fn router(segment: Arc<Segment>) -> Router {
    let single = |kind: Kind| {
        Router::new()
            .route(&format!("/v1/{}", kind.name()), post(handler::post_single))
            .with_state((Arc::clone(&segment), kind))
    };
    let mut router = Router::new()
        .route("/v1/batch", post(handler::post_batch))
        .with_state(Arc::clone(&segment));
    for kind in [
        Kind::Track,
        Kind::Identify,
        Kind::Page,
        Kind::Screen,
        Kind::Group,
        Kind::Alias,
    ] {
        router = router.merge(single(kind));
    }
    router
}
