//! `GET /v1/dashboards/{id}/stream`: Server-Sent Events for one dashboard, one
//! [`viewer::Viewer`] per stream.
//!
//! Cost per viewer and event (what bounds a fan-out to thousands of viewers on 2 cores): the
//! stream writes finished SSE frames (`Bytes`, [`frame`]) straight into the response body (no
//! per-viewer `Event` building); update data is serialized once per (ring entry, widget) and
//! `status` data once per published summary; the viewer's wake-ups (shutdown, dashboard
//! changes, pipeline status, NATS link, topic appends) stay registered across events, so an
//! event only re-arms the source that fired ([`wake`]); the keep-alive is one interval per
//! viewer that is never reset (a comment goes out after a whole interval without any event).

mod frame;
mod viewer;
mod wake;

use crate::api::ApiQuery;
use crate::api::TenantQuery;
use crate::auth::layer::ClientIp;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::quota::streams::StreamGuard;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use rtdash_runtime::keys::KeyStore;
use rtdash_shared::auth::Principal;
use std::convert::Infallible;
use std::net::IpAddr;
use viewer::Viewer;

/// Opens the stream.
#[utoipa::path(
    get,
    path = "/v1/dashboards/{id}/stream",
    tag = "live",
    params(("id" = String, Path, description = "Dashboard id"), TenantQuery,
           ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses(
        (status = 200, description = "text/event-stream of snapshot, update, status and reload events", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such dashboard", body = crate::error::ErrorBody),
        (status = 429, description = "The tenant's `open_streams` quota is reached (`quota_exceeded`), or this client address has `live.max_streams_per_client` streams open (`too_many_streams`)", body = crate::error::ErrorBody),
        (status = 503, description = "Too many streams or NATS unavailable", body = crate::error::ErrorBody),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    ClientIp(client): ClientIp,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (dashboard, revision) =
        crate::api::dashboards::load_for(&state, &caller, query.requested(), &id)?;
    let limit = crate::quota::limits(&state.auth.keys, &state.config.quotas, &dashboard.tenant_id)
        .open_streams;
    let tenant_stream = state
        .tenant_streams
        .open(dashboard.tenant_id.clone(), limit)
        .map_err(|_| ApiError::quota_exceeded("open_streams", limit))?;
    let client_stream = open_client_stream(&state, client)?;
    let permit = state
        .streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::unavailable("too many live streams on this gateway"))?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let viewer = Viewer::open(state.clone(), dashboard, revision, last_event_id, permit).await?;
    // The stream stays counted for its tenant and client while the body is held (dropped
    // with it).
    let open = (tenant_stream, client_stream);
    let frames = futures::stream::unfold((viewer, open), |(mut viewer, open)| async move {
        let frame = viewer.next_frame().await?;
        Some((Ok::<Bytes, Infallible>(frame), (viewer, open)))
    })
    // A revoked key or link ends its open streams too.
    .take_until(Box::pin(revoked(state.auth.keys.clone(), caller.principal)));
    let mut response = Response::new(Body::from_stream(frames));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Ask reverse proxies (nginx) not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Counts a stream of `client` against `live.max_streams_per_client` (`None`: no limit).
fn open_client_stream(
    state: &AppState,
    client: IpAddr,
) -> Result<Option<StreamGuard<IpAddr>>, ApiError> {
    let limit = state.config.live.max_streams_per_client;
    if limit == 0 {
        return Ok(None);
    }
    state
        .client_streams
        .open(client, limit)
        .map(Some)
        .map_err(|_| {
            ApiError::TooManyStreams(format!(
                "live.max_streams_per_client is {limit}: this client address has {limit} live \
                 streams open on this gateway; close one first"
            ))
        })
}

/// Resolves once `principal`'s key or link no longer exists (never for the operator).
async fn revoked(keys: KeyStore, principal: Principal) {
    let still_there = |keys: &KeyStore| match &principal {
        Principal::Operator => true,
        Principal::Tenant { key_id, .. } => keys.key(key_id).is_some(),
        Principal::Link { link_id, .. } => keys.link(link_id).is_some(),
    };
    let mut revocations = keys.revocations();
    loop {
        if !still_there(&keys) {
            return;
        }
        if revocations.changed().await.is_err() {
            // The store is gone (shutdown): the stream ends with the gateway anyway.
            return std::future::pending().await;
        }
    }
}
