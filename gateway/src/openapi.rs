//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations and the
//! answer types' `ToSchema` derives (the shared crate's types through its `utoipa` feature).
//! Served at `/v1/openapi.json`; `cargo run -q -p gateway --example openapi` prints it without
//! a running stack, which is how `web/` generates its types (`npm run gen:api`).

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
                       live Server-Sent Event streams. Every call needs a credential: an API key \
                       (`Authorization: Bearer rtd_...`), the browser session cookie, or a \
                       dashboard-link token; the tenant is the key's (`tenant_id` may name it; \
                       another is `403`; the operator must name it). \
                       Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    modifiers(&Security),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "keys", description = "API keys of a tenant (admin keys and the operator)"),
        (name = "quotas", description = "Tenant quotas (set by the operator)"),
        (name = "session", description = "Browser sign-in with a key (session cookie)"),
        (name = "dashboards", description = "Dashboards and their widgets"),
        (name = "alerts", description = "Alert rules, their state, transitions and deliveries, and silences"),
        (name = "metric-definitions", description = "Metric definitions, and the event types seen (schema discovery) to define them from"),
        (name = "metrics", description = "Metric queries"),
        (name = "live", description = "Server-Sent Events"),
        (name = "status", description = "Pipeline freshness"),
    )
)]
pub struct ApiDoc;

/// The security schemes: bearer keys (or link tokens) and the session cookie.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("rtd_<key_id>_<secret> (API key) or rtl_<link_id>_<secret> (dashboard link)")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        );
    }
}

/// Every REST route (without the stream), with its OpenAPI description.
pub fn api_router() -> OpenApiRouter<AppState> {
    use crate::api::{
        alert_state, alert_test, alerts, backfill, capabilities, dashboards, definitions,
        event_types, keys, links, metrics, quality, quotas, session, silences, status,
    };
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::delete))
        .routes(routes!(quotas::get, quotas::put))
        .routes(routes!(session::create, session::get, session::delete))
        .routes(routes!(links::create, links::list))
        .routes(routes!(links::delete))
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
        .routes(routes!(alert_test::send))
        .routes(routes!(alert_state::rule_state))
        .routes(routes!(alert_state::rule_states))
        .routes(routes!(silences::create, silences::list))
        .routes(routes!(silences::get, silences::expire))
        .routes(routes!(definitions::create, definitions::list))
        .routes(routes!(
            definitions::get,
            definitions::put,
            definitions::delete
        ))
        .routes(routes!(backfill::get))
        .routes(routes!(event_types::list))
        .routes(routes!(metrics::list))
        .routes(routes!(metrics::query))
        .routes(routes!(metrics::series))
        .routes(routes!(quality::get))
        .routes(routes!(capabilities::capabilities))
        .routes(routes!(status::status))
}

/// The stream route, with its OpenAPI description.
pub fn stream_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(crate::live::sse::stream))
}

/// The whole document, as `GET /v1/openapi.json` serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    api_router().merge(stream_router()).into_openapi()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn document_json() -> serde_json::Value {
        serde_json::to_value(document()).expect("the document serializes")
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = document_json();
        let mut seen = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                let id = operation["operationId"].as_str().expect("operationId");
                assert!(seen.insert(id.to_owned()), "{method} {path}: {id} repeats");
            }
        }
    }

    /// Closed sets of strings are enums in the document, so clients can generate exhaustive
    /// types (web/src/api-types.ts).
    #[test]
    fn closed_string_sets_are_enums() {
        let doc = document_json();
        let schemas = &doc["components"]["schemas"];
        for (name, values) in [
            (
                "Stat",
                &[
                    "count", "sum", "min", "max", "avg", "p50", "p90", "p95", "p99", "unique",
                ][..],
            ),
            ("Condition", &["gt", "lt", "gte", "lte", "eq"]),
            ("EvaluateOn", &["final", "provisional"]),
            ("AlertState", &["ok", "pending", "firing", "resolved"]),
            (
                "VizType",
                &[
                    "line_chart",
                    "area_chart",
                    "bar_chart",
                    "counter",
                    "gauge",
                    "table",
                ],
            ),
        ] {
            assert_eq!(schemas[name]["enum"], serde_json::json!(values), "{name}");
        }
        for (schema, field, target) in [
            ("AlertInput", "stat", "Stat"),
            ("AlertInput", "condition", "Condition"),
            ("AlertInput", "evaluate_on", "EvaluateOn"),
            ("AlertOut", "evaluate_on", "EvaluateOn"),
            ("WidgetInput", "stat", "Stat"),
            ("MetricInfo", "definition", "MetricDefinition"),
        ] {
            assert_eq!(
                schemas[schema]["properties"][field]["$ref"],
                format!("#/components/schemas/{target}"),
                "{schema}.{field}"
            );
        }
        assert!(schemas["MetricDefinition"]["properties"]["window_secs"].is_object());
    }
}
