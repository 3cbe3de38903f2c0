//! The HTTP application: the REST API behind load shedding, a concurrency limit, a timeout
//! and a body limit, the stream, the OpenAPI document, admin endpoints and the web UI; every
//! request in a server span and the request-duration histogram.

use crate::error::ApiError;
use crate::metrics as names;
use crate::state::AppState;
use crate::{auth, embed, http, openapi, web};
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{BoxError, Json, Router};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceBuilder;
use tower_http::trace::{DefaultOnResponse, OnResponse, TraceLayer};
use tracing::Span;

/// The whole HTTP application: REST API (with load shedding, a concurrency limit, a timeout
/// and a body limit), the stream, the OpenAPI document, admin endpoints and the web UI.
pub fn app(state: AppState) -> Router {
    let config = state.config.clone();
    let (api, mut openapi) = openapi::api_router().split_for_parts();
    let (stream, stream_doc) = openapi::stream_router().split_for_parts();
    openapi.merge(stream_doc);
    let openapi = Arc::new(openapi);
    let api = api.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(middleware_error))
            .load_shed()
            .concurrency_limit(config.max_concurrent_requests)
            .timeout(Duration::from_millis(config.request_timeout_ms)),
    );
    let health = rtdash_runtime::admin::health_routes(state.readiness.clone());
    let metrics = rtdash_runtime::admin::metrics_routes(state.prometheus.clone()).route_layer(
        axum::middleware::from_fn_with_state(state.clone(), auth::layer::metrics_access),
    );
    let embed = Router::new()
        .route("/embed/{token}", get(embed::page))
        .with_state(state.clone());
    let authenticate =
        axum::middleware::from_fn_with_state(state.clone(), auth::layer::authenticate);
    Router::new()
        .merge(api)
        .merge(stream)
        .route(
            "/v1/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { Json(openapi.as_ref().clone()) }
            }),
        )
        .route("/v1", get(api_not_found))
        .route(
            "/v1/{*rest}",
            get(api_not_found)
                .post(api_not_found)
                .put(api_not_found)
                .delete(api_not_found),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
        .merge(metrics)
        // Every route above: a presented credential is verified before the handler runs.
        .layer(authenticate)
        .layer(axum::middleware::from_fn(track_http))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(server_span)
                .on_response(record_status),
        )
        .merge(health)
        .merge(embed)
        .fallback_service(web::router(&config.web_root))
        .layer(axum::middleware::from_fn(http::headers::security_headers))
        .layer(axum::middleware::from_fn_with_state(
            http::host::AllowedHosts::new(&config.allowed_hosts, &config.listen),
            http::host::check_host,
        ))
}

async fn api_not_found() -> ApiError {
    ApiError::NotFound("no such API route".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("method not allowed on this route".to_owned())
}

async fn middleware_error(err: BoxError) -> Response {
    if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout("request timed out".to_owned()).into_response()
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        metrics::counter!(names::HTTP_SHED).increment(1);
        ApiError::unavailable("gateway overloaded; retry shortly").into_response()
    } else {
        ApiError::internal(err.to_string()).into_response()
    }
}

/// The matched route of a request (`other` when none matched: the label stays bounded).
fn route_of(request: &Request) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", MatchedPath::as_str)
}

async fn track_http(request: Request, next: Next) -> Response {
    let route = route_of(&request).to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(
        names::HTTP_REQUEST_DURATION,
        "route" => route,
        "method" => method,
        "code" => response.status().as_u16().to_string(),
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// The server span of a request (OpenTelemetry HTTP conventions), at `DEBUG` like
/// tower-http's default; it covers a stream's whole body.
fn server_span(request: &Request) -> Span {
    let route = route_of(request);
    let method = request.method().as_str();
    tracing::debug_span!(
        "request",
        otel.kind = "server",
        otel.name = %format!("{method} {route}"),
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        enduser.id = tracing::field::Empty,
    )
}

/// Records the status code on the server span, then logs like tower-http's default.
fn record_status(response: &Response, latency: Duration, span: &Span) {
    span.record("http.response.status_code", response.status().as_u16());
    DefaultOnResponse::default().on_response(response, latency, span);
}
