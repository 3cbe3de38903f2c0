//! rtdash gateway: what ops people and their tools talk to.
//!
//! - [`api`]: the REST API (dashboards and widgets, alert rules, metric definitions, metric
//!   queries, pipeline status), one module per resource, errors as [`error::ApiError`];
//! - [`store`]: configuration in the JetStream key-value bucket `rtdash_config`, cached in
//!   memory by a watcher, written with optimistic concurrency;
//! - [`query`]: metric windows from QuestDB (PostgreSQL wire), and how served values are
//!   derived from them (exact rollups, combining, or a `400` that says why not);
//! - [`live`]: Server-Sent Events: shared upstream subscriptions per (tenant, metric), the
//!   snapshot cache, pipeline freshness;
//! - [`openapi`]: the OpenAPI document generated from the handlers.
//!
//! [`app`] builds the router from an [`AppState`] (tests drive it with `oneshot`);
//! [`start`] connects, binds and serves ([`serve`]: one shared route table for every
//! connection); [`run`] serves until the shutdown token is cancelled.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod error;
pub mod live;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod query;
pub mod serve;
pub mod store;
mod web;

use crate::config::GatewayConfig;
use crate::error::ApiError;
use crate::live::hub::Hub;
use crate::live::snapshot::SnapshotCache;
use crate::live::status::StatusTracker;
use crate::query::QuestDb;
use crate::store::ConfigStore;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{BoxError, Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use rtdash_runtime::admin::Readiness;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Settings.
    pub config: Arc<GatewayConfig>,
    /// Configuration store.
    pub store: ConfigStore,
    /// JetStream (the alert log).
    pub js: async_nats::jetstream::Context,
    /// QuestDB reader.
    pub db: Arc<QuestDb>,
    /// Live hub.
    pub hub: Arc<Hub>,
    /// Snapshot cache.
    pub snapshots: Arc<SnapshotCache>,
    /// Pipeline freshness.
    pub status: StatusTracker,
    /// Stream permits (`live.max_streams`).
    pub streams: Arc<Semaphore>,
    /// Cancelled on shutdown; ends every stream.
    pub shutdown: CancellationToken,
    /// Readiness checks for `/readyz`.
    pub readiness: Readiness,
    /// Prometheus handle for `/metrics`.
    pub metrics: PrometheusHandle,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("listen", &self.config.listen)
            .finish_non_exhaustive()
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// NATS unreachable or the topology could not be created.
    #[error(transparent)]
    Nats(#[from] rtdash_runtime::nats::NatsError),
    /// The config bucket is missing.
    #[error("config bucket {bucket}: {problem}")]
    Bucket {
        /// Bucket name.
        bucket: String,
        /// What went wrong.
        problem: String,
    },
    /// The listen address could not be bound.
    #[error(transparent)]
    Bind(#[from] rtdash_runtime::net::BindError),
    /// Serving failed.
    #[error("serving failed: {0}")]
    Serve(String),
}

impl AppState {
    /// Connects to NATS, loads the config bucket, prepares QuestDB and the hub.
    pub async fn connect(
        config: GatewayConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        // The recorder first, then the descriptions.
        let prometheus = rtdash_runtime::telemetry::metrics_handle();
        metrics::describe();
        let client = rtdash_runtime::nats::connect(&config.nats, "rtdash-gateway").await?;
        let js = rtdash_runtime::nats::jetstream(client.clone(), &config.nats);
        if config.ensure_topology {
            rtdash_runtime::nats::ensure_topology(
                &js,
                &config.streams,
                rtdash_runtime::nats::Ensure::CreateMissing,
            )
            .await?;
        }
        let bucket = rtdash_shared::names::CONFIG_BUCKET;
        let kv = js
            .get_key_value(bucket)
            .await
            .map_err(|err| StartError::Bucket {
                bucket: bucket.to_owned(),
                problem: err.to_string(),
            })?;
        let store = ConfigStore::start(kv, shutdown.clone());
        if !store.wait_loaded(Duration::from_secs(10)).await {
            tracing::warn!("config bucket not loaded yet; answering from what arrived");
        }
        let db = Arc::new(QuestDb::new(config.questdb.clone()));
        if config.questdb.create_table {
            if let Err(err) = db.ensure_table().await {
                tracing::warn!(error = %err, table = db.table(), "could not create the metrics table");
            }
        }
        let status = StatusTracker::new(config.live.clone());
        status.learn_partitions(js.clone(), shutdown.clone());
        if let Err(err) = status.start(&client, shutdown.clone()).await {
            tracing::warn!(error = %err, "could not subscribe to pipeline status");
        }
        let hub = Arc::new(Hub::new(
            client.clone(),
            config.live.clone(),
            shutdown.clone(),
        ));
        hub.spawn_link_monitor();
        status.follow_link(hub.link(), shutdown.clone());
        live::repair::spawn(
            hub.clone(),
            db.clone(),
            status.clone(),
            Duration::from_millis(config.live.repair_interval_ms),
            shutdown.clone(),
        );
        let snapshots = Arc::new(SnapshotCache::new(
            db.clone(),
            Duration::from_millis(config.live.snapshot_ttl_ms),
        ));
        let readiness = Readiness::new();
        readiness.add_nats(client);
        let loaded = store.clone();
        readiness.add("config", move || {
            if loaded.is_loaded() {
                Ok(())
            } else {
                Err("config bucket not loaded".to_owned())
            }
        });
        let healthy = db.clone();
        readiness.add("questdb", move || {
            if healthy.is_healthy() {
                Ok(())
            } else {
                Err("QuestDB does not answer".to_owned())
            }
        });
        spawn_questdb_probe(db.clone(), shutdown.clone());
        Ok(Self {
            js,
            streams: Arc::new(Semaphore::new(config.live.max_streams)),
            config: Arc::new(config),
            store,
            db,
            hub,
            snapshots,
            status,
            shutdown,
            readiness,
            metrics: prometheus,
        })
    }
}

fn spawn_questdb_probe(db: Arc<QuestDb>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            db.ping().await;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    });
}

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
    let admin = rtdash_runtime::admin::routes(state.readiness.clone(), state.metrics.clone());
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
        .layer(axum::middleware::from_fn(track_http))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
        .merge(admin)
        .fallback_service(web::router(&config.web_root))
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
        ::metrics::counter!(metrics::HTTP_SHED).increment(1);
        ApiError::unavailable("gateway overloaded; retry shortly").into_response()
    } else {
        ApiError::internal(err.to_string()).into_response()
    }
}

async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "other".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    ::metrics::histogram!(
        metrics::HTTP_REQUEST_DURATION,
        "route" => route,
        "method" => method,
        "code" => response.status().as_u16().to_string(),
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// A running gateway.
#[derive(Debug)]
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// Its state (for tests and embedding).
    pub state: AppState,
    server: tokio::task::JoinHandle<Result<(), String>>,
}

impl Running {
    /// Waits until the server stops (after the shutdown token is cancelled and open
    /// connections end, at most `shutdown_grace_ms` later).
    pub async fn wait(self) -> Result<(), StartError> {
        let grace = Duration::from_millis(self.state.config.shutdown_grace_ms);
        let shutdown = self.state.shutdown.clone();
        let mut server = self.server;
        tokio::select! {
            result = &mut server => return flatten(result),
            () = shutdown.cancelled() => {}
        }
        match tokio::time::timeout(grace, &mut server).await {
            Ok(result) => flatten(result),
            Err(_) => {
                tracing::warn!("shutdown grace period expired; closing remaining connections");
                server.abort();
                Ok(())
            }
        }
    }
}

fn flatten(result: Result<Result<(), String>, tokio::task::JoinError>) -> Result<(), StartError> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(StartError::Serve(err)),
        Err(err) => Err(StartError::Serve(err.to_string())),
    }
}

/// Connects, binds `config.listen` and serves in the background until `shutdown`.
pub async fn start(
    config: GatewayConfig,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    let listener = rtdash_runtime::net::bind(&config.listen).await?;
    let addr = listener
        .local_addr()
        .map_err(|err| StartError::Serve(err.to_string()))?;
    let state = AppState::connect(config, shutdown.clone()).await?;
    let router = app(state.clone());
    let server = tokio::spawn(async move {
        serve::serve(listener, router, shutdown).await;
        Ok(())
    });
    tracing::info!(%addr, "gateway listening");
    Ok(Running {
        addr,
        state,
        server,
    })
}

/// Serves until `shutdown` is cancelled, then drains within the grace period.
pub async fn run(config: GatewayConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    start(config, shutdown).await?.wait().await
}
