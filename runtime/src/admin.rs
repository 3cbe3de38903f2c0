//! `/healthz` (the process is up), `/readyz` (its dependencies are reachable) and `/metrics`
//! (Prometheus text format, [`crate::prometheus`]), as an axum router to merge into a component's own.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::sync::{Arc, RwLock};

type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Named readiness checks. Each check is a cheap synchronous function (read a connection
/// state or a flag kept fresh by a background task).
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<RwLock<Vec<(String, Check)>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness").finish_non_exhaustive()
    }
}

impl Readiness {
    /// No checks yet: ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check named `name`.
    pub fn add(
        &self,
        name: impl Into<String>,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) {
        if let Ok(mut checks) = self.checks.write() {
            checks.push((name.into(), Arc::new(check)));
        }
    }

    /// Adds a check that the NATS client is connected.
    pub fn add_nats(&self, client: async_nats::Client) {
        self.add("nats", move || match client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(format!("NATS connection is {state}")),
        });
    }

    /// Runs every check: (all ok, per-check results).
    pub fn evaluate(&self) -> (bool, Vec<CheckResult>) {
        let checks = self.checks.read().map(|c| c.clone()).unwrap_or_default();
        let results: Vec<CheckResult> = checks
            .iter()
            .map(|(name, check)| (name.clone(), check()))
            .collect();
        (results.iter().all(|(_, r)| r.is_ok()), results)
    }
}

/// One readiness check's name and outcome (the error says what is not ready).
pub type CheckResult = (String, Result<(), String>);

/// The admin routes.
pub fn routes(readiness: Readiness, metrics: PrometheusHandle) -> Router {
    health_routes(readiness).merge(metrics_routes(metrics))
}

/// `/healthz` and `/readyz` (open: they say nothing about tenants).
pub fn health_routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

/// `/metrics` alone, for a service that puts it behind its credential check.
pub fn metrics_routes(metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(metrics)
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let (ready, results) = readiness.evaluate();
    let checks: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|(name, result)| {
            let value = match result {
                Ok(()) => json!("ok"),
                Err(problem) => json!(problem),
            };
            (name, value)
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"status": if ready { "ready" } else { "not_ready" }, "checks": checks})),
    )
        .into_response()
}

async fn render_metrics(State(metrics): State<PrometheusHandle>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::prometheus::CONTENT_TYPE)],
        metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn metrics_are_served_as_prometheus_text_in_utf8() {
        let response = routes(Readiness::new(), crate::prometheus::handle())
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }
}
