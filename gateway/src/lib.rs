//! rtdash gateway: what ops people and their tools talk to.
//!
//! - [`api`]: the REST API (dashboards and widgets, alert rules, metric definitions, metric
//!   queries, pipeline status), one module per resource, errors as [`error::ApiError`];
//! - [`store`]: configuration in the JetStream key-value bucket `rtdash_config`, cached in
//!   memory by a watcher, written with optimistic concurrency;
//! - [`query`]: metric windows from QuestDB (PostgreSQL wire), and how served values are
//!   derived from them (exact rollups, combining, or a `400` that says why not);
//! - [`side_stream`]: bounded reads of a tenant's dead letters and late records (the
//!   data-quality page's samples);
//! - [`live`]: Server-Sent Events: shared upstream subscriptions per (tenant, metric), the
//!   snapshot cache, pipeline freshness;
//! - [`auth`]: credentials (API keys, browser sessions, dashboard links), tenants and roles on
//!   every route;
//! - [`quota`]: tenant quotas (defaults from `[quotas]`, the operator's settings in the keys
//!   bucket), checked where things are created and streams opened;
//! - [`openapi`]: the OpenAPI document generated from the handlers.
//!
//! [`AppState`] ([`state`]) connects and starts the background tasks; [`app`] ([`router`])
//! builds the HTTP application from it (tests drive it with `oneshot`); [`start`] binds and
//! serves (`rtdash_runtime::http::serve`: one shared route table for every connection, the
//! slow-client limits of `[http]`); [`run`] serves until the
//! shutdown token is cancelled, then waits for the connections and the background tasks
//! ([`tasks`]). Every metric is named in [`metrics`](mod@metrics).
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod backfill;
pub mod config;
pub mod embed;
pub mod error;
pub mod http;
pub mod live;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod query;
pub mod quota;
pub mod router;
pub mod side_stream;
pub mod state;
pub mod store;
pub mod tasks;
mod web;

#[cfg(test)]
mod fixtures;

pub use crate::router::app;
pub use crate::state::{AppState, ConnectError};

use crate::config::GatewayConfig;
use crate::tasks::Tasks;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why the gateway could not start, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// NATS, the config bucket or the topology.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The listen address could not be bound.
    #[error(transparent)]
    Bind(#[from] rtdash_runtime::net::BindError),
    /// The bound socket has no local address.
    #[error("the listening socket has no address")]
    LocalAddr(#[source] std::io::Error),
    /// The server task panicked.
    #[error("the server failed")]
    Server(#[source] tokio::task::JoinError),
}

/// A running gateway.
#[derive(Debug)]
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// Its state (for tests and embedding).
    pub state: AppState,
    server: tokio::task::JoinHandle<()>,
    tasks: Tasks,
}

impl Running {
    /// Waits until the gateway stops: after the shutdown token is cancelled, open connections
    /// end (streams end at once), then the background tasks, all within `shutdown_grace_ms`;
    /// what is left then is abandoned with a warning.
    pub async fn wait(self) -> Result<(), StartError> {
        let grace = Duration::from_millis(self.state.config.shutdown_grace_ms);
        let shutdown = self.state.shutdown.clone();
        let mut server = self.server;
        let served = tokio::select! {
            result = &mut server => Some(result),
            () = shutdown.cancelled() => None,
        };
        let deadline = tokio::time::Instant::now() + grace;
        let served = match served {
            Some(result) => result,
            None => match tokio::time::timeout_at(deadline, &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!("shutdown grace period expired; closing remaining connections");
                    server.abort();
                    Ok(())
                }
            },
        };
        // The server ended by itself only if it failed: stop the rest too.
        shutdown.cancel();
        self.state.db.close();
        if let Err(running) = self.tasks.wait_until(deadline).await {
            tracing::warn!(
                ?running,
                "background tasks still running after the grace period"
            );
        }
        served.map_err(StartError::Server)
    }
}

/// Connects, binds `config.listen` and serves in the background until `shutdown`.
pub async fn start(
    config: GatewayConfig,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    let listener = rtdash_runtime::net::bind(&config.listen).await?;
    let addr = listener.local_addr().map_err(StartError::LocalAddr)?;
    // Tasks under a child token: if connecting fails, the ones already started are stopped
    // without cancelling the caller's token.
    let tasks = Tasks::new(shutdown.child_token());
    let state = match AppState::connect(config, &tasks).await {
        Ok(state) => state,
        Err(err) => {
            tasks.shutdown().cancel();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            let _ = tasks.wait_until(deadline).await;
            return Err(err.into());
        }
    };
    tasks.spawn(
        "quota report",
        quota::report::run(state.clone(), tasks.shutdown().clone()),
    );
    let router = app(state.clone());
    let server = tokio::spawn({
        let shutdown = tasks.shutdown().clone();
        let http = state.config.http.clone();
        async move {
            rtdash_runtime::http::serve(listener, router, shutdown, &http, metrics::server()).await;
        }
    });
    tracing::info!(%addr, "gateway listening");
    Ok(Running {
        addr,
        state,
        server,
        tasks,
    })
}

/// Serves until `shutdown` is cancelled, then drains within the grace period.
pub async fn run(config: GatewayConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    start(config, shutdown).await?.wait().await
}
