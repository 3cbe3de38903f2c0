//! `GET /v1/event-types`: schema discovery, the event types, properties, kinds, examples and
//! distinct counts the edge agents saw of a tenant (see [`rtdash_shared::discovery`]).
//!
//! Read per request from the `rtdash_schema` bucket: the subjects of the tenant's keys
//! (one stream-info call with a subject filter), then each key's newest record. Bounded:
//! at most [`MAX_KEYS`] keys are read and [`MAX_EVENT_TYPES`] event types answered (the
//! rest count as dropped).

use super::{ApiQuery, TenantQuery};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use futures::StreamExt;
use rtdash_runtime::error_chain::ErrorChain;
use rtdash_shared::auth::Role;
use rtdash_shared::discovery::{self, EventTypes, OverflowRecord, TypeRecord};
use rtdash_shared::names;
use std::collections::BTreeSet;
use tracing::Instrument;

/// Most bucket keys read for one answer (agents × event types of a tenant).
pub const MAX_KEYS: usize = 20_000;
/// Most event types in one answer.
pub const MAX_EVENT_TYPES: usize = 1_000;

/// The event types seen of a tenant over the recent horizon (24 h by default), merged over
/// every edge agent.
#[utoipa::path(get, path = "/v1/event-types", operation_id = "list_event_types",
    tag = "metric-definitions", params(TenantQuery),
    responses((status = 200, body = EventTypes), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Json<EventTypes>, ApiError> {
    let tenant = caller.tenant(query.requested(), Role::Viewer)?;
    let span = tracing::debug_span!("event_types", tenant = %tenant);
    read(&state, &tenant).instrument(span).await.map(Json)
}

async fn read(state: &AppState, tenant: &str) -> Result<EventTypes, ApiError> {
    let unavailable = |what: &str, err: &(dyn std::error::Error + 'static)| {
        tracing::warn!(error = %ErrorChain(err), "schema discovery: {what}");
        ApiError::unavailable("schema discovery is unavailable; retry shortly")
    };
    // The bucket is made with the topology (every service's start), so its absence is an
    // outage like any other.
    let bucket = state
        .js
        .get_key_value(names::SCHEMA_BUCKET)
        .await
        .map_err(|e| unavailable("bucket", &e))?;
    let stream_name = format!("KV_{}", names::SCHEMA_BUCKET);
    let stream = state
        .js
        .get_stream(&stream_name)
        .await
        .map_err(|e| unavailable("stream", &e))?;
    let prefix = format!("$KV.{}.", names::SCHEMA_BUCKET);
    let mut subjects = stream
        .info_with_subjects(format!("{prefix}{tenant}.>"))
        .await
        .map_err(|e| unavailable("stream info", &e))?;
    let mut keys = Vec::new();
    while let Some(next) = subjects.next().await {
        let (subject, _) = next.map_err(|e| unavailable("stream info", &e))?;
        if let Some(key) = subject.strip_prefix(&prefix) {
            keys.push(key.to_owned());
        }
        if keys.len() >= MAX_KEYS {
            tracing::warn!(tenant, keys = MAX_KEYS, "schema discovery: key cap reached");
            break;
        }
    }
    keys.sort();
    let mut types = Vec::new();
    let mut overflows = Vec::new();
    let mut agents = BTreeSet::new();
    for key in keys {
        // <tenant>.<agent>.t.<event type> or <tenant>.<agent>.overflow
        let mut parts = key.splitn(4, '.');
        let (Some(_), Some(agent), Some(kind)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Some(value) = bucket
            .get(key.as_str())
            .await
            .map_err(|e| unavailable("read", &e))?
        else {
            continue;
        };
        let decoded = match kind {
            "t" => TypeRecord::decode(&value).map(|r| types.push(r)),
            "overflow" => OverflowRecord::decode(&value).map(|r| overflows.push(r)),
            _ => continue,
        };
        match decoded {
            Ok(()) => {
                agents.insert(agent.to_owned());
            }
            Err(err) => {
                tracing::warn!(key, error = %ErrorChain(&err), "schema discovery: unreadable record")
            }
        }
    }
    Ok(discovery::merge(
        tenant,
        types,
        overflows,
        agents.len(),
        MAX_EVENT_TYPES,
    ))
}
