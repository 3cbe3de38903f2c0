//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations and the
//! answer types' `ToSchema` derives. Served at `/v1/openapi.json`.

use crate::AppState;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Document-level information; the paths come from [`api_router`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "rtdash gateway",
        description = "Dashboards, widgets, alert rules, metric definitions, metric queries and \
                       live Server-Sent Event streams. Every call is scoped by `tenant_id`. \
                       Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    tags(
        (name = "dashboards", description = "Dashboards and their widgets"),
        (name = "alerts", description = "Alert rules and their transitions and deliveries"),
        (name = "metric-definitions", description = "Metric definitions"),
        (name = "metrics", description = "Metric queries"),
        (name = "live", description = "Server-Sent Events"),
        (name = "status", description = "Pipeline freshness"),
    )
)]
pub struct ApiDoc;

/// Every REST route (without the stream), with its OpenAPI description.
pub fn api_router() -> OpenApiRouter<AppState> {
    use crate::api::{alerts, dashboards, definitions, metrics, status};
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(dashboards::create, dashboards::list))
        .routes(routes!(
            dashboards::get,
            dashboards::put,
            dashboards::delete
        ))
        .routes(routes!(dashboards::add_widget))
        .routes(routes!(dashboards::put_widget, dashboards::delete_widget))
        .routes(routes!(alerts::create, alerts::list))
        .routes(routes!(alerts::get, alerts::put, alerts::delete))
        .routes(routes!(alerts::events))
        .routes(routes!(definitions::create, definitions::list))
        .routes(routes!(
            definitions::get,
            definitions::put,
            definitions::delete
        ))
        .routes(routes!(metrics::list))
        .routes(routes!(metrics::query))
        .routes(routes!(metrics::series))
        .routes(routes!(status::status))
}

/// The stream route, with its OpenAPI description.
pub fn stream_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(crate::live::sse::stream))
}
