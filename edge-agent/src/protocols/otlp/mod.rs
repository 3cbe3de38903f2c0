//! OTLP/HTTP logs: `POST /v1/logs` from an OpenTelemetry SDK's log exporter (or a collector),
//! pointed at the agent as its logs endpoint. A log record that names an event becomes an
//! rtdash event ([`mapping`]); [`handler`] decodes protobuf or JSON and answers as the OTLP
//! specification says, with `partial_success` for the records it rejected. The tenant is
//! `otlp.tenant`; an `Idempotency-Key` header makes a retried request count once.

pub mod handler;
pub mod mapping;

use crate::config::OtlpConfig;
use crate::ingest::Ingest;
use crate::protocols::tenant::TenantResolver;
use axum::routing::post;
use axum::Router;
use std::sync::Arc;

/// The OTLP entry point's state.
#[derive(Debug)]
pub struct Otlp {
    /// Where the events go.
    pub ingest: Arc<Ingest>,
    /// Whose events they are.
    pub tenants: TenantResolver,
    /// Default event type and source.
    pub config: OtlpConfig,
}

/// The route.
pub fn router(otlp: Arc<Otlp>) -> Router {
    Router::new()
        .route("/v1/logs", post(handler::post_logs))
        .with_state(otlp)
}
