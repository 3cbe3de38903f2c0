//! `/v1/dashboards`: dashboards with their widgets, one document per dashboard in the config
//! bucket (`dashboard.<tenant>.<id>`), revisions for optimistic concurrency.

use super::{
    check_revision, decode_stored, encode, expected_revision, versioned, ApiJson, ApiQuery,
    TenantQuery,
};
use crate::api::definitions::effective_definition;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::model::{
    is_valid_id, new_id, requested_tenant, Dashboard, DashboardInput, DashboardOut, Widget,
    WidgetInput,
};
use crate::quota;
use crate::state::AppState;
use crate::store::StoreError;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rtdash_shared::auth::Role;
use rtdash_shared::names::dashboard_config_key;
use rtdash_shared::time::{format_rfc3339, now_millis};
use serde::Serialize;
use utoipa::ToSchema;

/// Attempts at a widget change when another writer changes the dashboard in between.
const WIDGET_ATTEMPTS: usize = 5;

/// `{"dashboards": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardList {
    /// Sorted by name.
    pub dashboards: Vec<DashboardOut>,
}

/// The dashboard `id` of `tenant` from memory, or `404`.
pub fn load(state: &AppState, tenant: &str, id: &str) -> Result<(Dashboard, u64), ApiError> {
    if !is_valid_id(id) {
        return Err(ApiError::not_found("dashboard", id));
    }
    let key = dashboard_config_key(tenant, id);
    let stored = state
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found("dashboard", id))?;
    let dashboard: Dashboard = decode_stored(&key, &stored.value)?;
    if dashboard.tenant_id != tenant {
        return Err(ApiError::not_found("dashboard", id));
    }
    Ok((dashboard, stored.revision))
}

/// The dashboard `id` a caller may read: a key's tenant's (viewer or higher), or the one
/// dashboard of a link with the link's filters merged into every widget (they win over the
/// widget's own, so the link shows nothing outside them).
pub fn load_for(
    state: &AppState,
    caller: &Caller,
    requested: Option<&str>,
    id: &str,
) -> Result<(Dashboard, u64), ApiError> {
    let Some(scope) = caller.link(requested)? else {
        let tenant = caller.tenant(requested, Role::Viewer)?;
        return load(state, &tenant, id);
    };
    if scope.dashboard_id != id {
        return Err(ApiError::forbidden(
            "a dashboard link grants read access to its dashboard only",
        ));
    }
    let (mut dashboard, revision) = load(state, &scope.tenant, id)?;
    for widget in &mut dashboard.widgets {
        widget.dimensions.extend(scope.filters.clone());
    }
    Ok((dashboard, revision))
}

/// The dashboard from the bucket itself (for changes), or `404`.
async fn fetch(state: &AppState, tenant: &str, id: &str) -> Result<(Dashboard, u64), ApiError> {
    if !is_valid_id(id) {
        return Err(ApiError::not_found("dashboard", id));
    }
    let key = dashboard_config_key(tenant, id);
    let stored = state
        .store
        .fetch(&key)
        .await?
        .ok_or_else(|| ApiError::not_found("dashboard", id))?;
    let dashboard: Dashboard = decode_stored(&key, &stored.value)?;
    if dashboard.tenant_id != tenant {
        return Err(ApiError::not_found("dashboard", id));
    }
    Ok((dashboard, stored.revision))
}

/// Checks a widget against the tenant's metric definitions with the planner that will serve
/// it: the metric exists, has the stat and the dimensions, the window is servable for the
/// range (multiple of the metric's, retained), and the range holds at most 10,000 windows.
pub fn validate_widget(state: &AppState, tenant: &str, widget: &Widget) -> Result<(), ApiError> {
    widget.check_shape()?;
    let found =
        effective_definition(&state.store, tenant, &widget.metric_name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "metric `{}` does not exist for tenant `{tenant}`",
                widget.metric_name
            ))
        })?;
    widget.plan(
        &found.definition,
        tenant,
        state.db.tiers(),
        rtdash_shared::time::now_millis(),
    )?;
    Ok(())
}

fn build_widgets(
    state: &AppState,
    tenant: &str,
    inputs: Vec<WidgetInput>,
    keep_ids: bool,
) -> Result<Vec<Widget>, ApiError> {
    let mut widgets: Vec<Widget> = Vec::with_capacity(inputs.len());
    for input in inputs {
        if input.tenant_id.as_deref().is_some_and(|t| t != tenant) {
            return Err(ApiError::bad_request("a widget names another `tenant_id`"));
        }
        let id = match &input.widget_id {
            Some(id) if keep_ids && is_valid_id(id) => id.clone(),
            _ => new_id(),
        };
        if widgets.iter().any(|w| w.widget_id == id) {
            return Err(ApiError::bad_request(format!(
                "widget id `{id}` appears twice"
            )));
        }
        let widget = input.into_widget(id);
        validate_widget(state, tenant, &widget)?;
        widgets.push(widget);
    }
    Ok(widgets)
}

/// Creates a dashboard.
#[utoipa::path(post, path = "/v1/dashboards", operation_id = "create_dashboard",
    tag = "dashboards", request_body = DashboardInput,
    responses((status = 201, body = DashboardOut), (status = 400, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<DashboardInput>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(input.tenant_id.as_deref(), Role::Editor)?;
    input.check_shape()?;
    let limits = quota::limits(&state.auth.keys, &state.config.quotas, &tenant);
    quota::check(
        "dashboards",
        quota::dashboards(&state.store, &tenant),
        1,
        limits.dashboards,
    )?;
    let inputs = input.widgets.unwrap_or_default();
    quota::check(
        "widgets_per_dashboard",
        inputs.len(),
        0,
        limits.widgets_per_dashboard,
    )?;
    let widgets = build_widgets(&state, &tenant, inputs, false)?;
    let now = format_rfc3339(now_millis());
    let dashboard = Dashboard {
        dashboard_id: new_id(),
        tenant_id: tenant.clone(),
        name: input.name.trim().to_owned(),
        description: input.description,
        widgets,
        created_at: now.clone(),
        updated_at: now,
    };
    let key = dashboard_config_key(&tenant, &dashboard.dashboard_id);
    let value = crate::quota::within_config_bytes(&state, &tenant, &key, encode(&dashboard)?)?;
    let revision = state.store.create(&key, value).await?;
    tracing::info!(tenant = %tenant, dashboard = %dashboard.dashboard_id, "dashboard created");
    Ok(versioned(
        StatusCode::CREATED,
        revision,
        &DashboardOut {
            dashboard,
            revision,
        },
    ))
}

/// Lists a tenant's dashboards.
#[utoipa::path(get, path = "/v1/dashboards", operation_id = "list_dashboards",
    tag = "dashboards", params(TenantQuery),
    responses((status = 200, body = DashboardList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Json<DashboardList>, ApiError> {
    let tenant = caller.tenant(query.requested(), Role::Viewer)?;
    let prefix = dashboard_config_key(&tenant, "");
    let mut dashboards = Vec::new();
    for (key, stored) in state.store.list(&prefix) {
        match serde_json::from_slice::<Dashboard>(&stored.value) {
            Ok(dashboard) if dashboard.tenant_id == tenant => dashboards.push(DashboardOut {
                dashboard,
                revision: stored.revision,
            }),
            Ok(_) => {}
            Err(err) => tracing::warn!(%key, error = %err, "stored dashboard does not decode"),
        }
    }
    dashboards.sort_by(|a, b| {
        (&a.dashboard.name, &a.dashboard.dashboard_id)
            .cmp(&(&b.dashboard.name, &b.dashboard.dashboard_id))
    });
    Ok(Json(DashboardList { dashboards }))
}

/// One dashboard.
#[utoipa::path(get, path = "/v1/dashboards/{id}", operation_id = "get_dashboard",
    tag = "dashboards",
    params(("id" = String, Path, description = "Dashboard id"), TenantQuery),
    responses((status = 200, body = DashboardOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Response, ApiError> {
    let (dashboard, revision) = load_for(&state, &caller, query.requested(), &id)?;
    Ok(versioned(
        StatusCode::OK,
        revision,
        &DashboardOut {
            dashboard,
            revision,
        },
    ))
}

/// Replaces a dashboard's name and description, and its widgets when given.
#[utoipa::path(put, path = "/v1/dashboards/{id}", operation_id = "put_dashboard",
    tag = "dashboards", request_body = DashboardInput,
    params(("id" = String, Path, description = "Dashboard id"), TenantQuery,
           ("If-Match" = Option<String>, Header, description = "Expected revision")),
    responses((status = 200, body = DashboardOut), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<DashboardInput>,
) -> Result<Response, ApiError> {
    let requested = requested_tenant(query.requested(), input.tenant_id.as_deref())?;
    let tenant = caller.tenant(requested, Role::Editor)?;
    input.check_shape()?;
    let expected = expected_revision(&headers, input.revision)?;
    let (mut dashboard, current) = fetch(&state, &tenant, &id).await?;
    check_revision(expected, current)?;
    if let Some(widgets) = input.widgets {
        let limits = quota::limits(&state.auth.keys, &state.config.quotas, &tenant);
        quota::check(
            "widgets_per_dashboard",
            widgets.len(),
            0,
            limits.widgets_per_dashboard,
        )?;
        dashboard.widgets = build_widgets(&state, &tenant, widgets, true)?;
    }
    dashboard.name = input.name.trim().to_owned();
    dashboard.description = input.description;
    dashboard.updated_at = format_rfc3339(now_millis());
    let key = dashboard_config_key(&tenant, &id);
    let value = crate::quota::within_config_bytes(&state, &tenant, &key, encode(&dashboard)?)?;
    let revision = state.store.update(&key, value, current).await?;
    Ok(versioned(
        StatusCode::OK,
        revision,
        &DashboardOut {
            dashboard,
            revision,
        },
    ))
}

/// Deletes a dashboard.
#[utoipa::path(delete, path = "/v1/dashboards/{id}", operation_id = "delete_dashboard",
    tag = "dashboards",
    params(("id" = String, Path, description = "Dashboard id"), TenantQuery,
           ("If-Match" = Option<String>, Header, description = "Expected revision")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(query.requested(), Role::Editor)?;
    let (_, current) = fetch(&state, &tenant, &id).await?;
    check_revision(super::if_match(&headers)?, current)?;
    state
        .store
        .delete(&dashboard_config_key(&tenant, &id), current)
        .await?;
    tracing::info!(tenant = %tenant, dashboard = %id, "dashboard deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Applies `change` to the stored dashboard, retrying on concurrent writes unless the
/// client gave an expected revision.
async fn change_widgets<T>(
    state: &AppState,
    tenant: &str,
    id: &str,
    expected: Option<u64>,
    mut change: impl FnMut(&mut Dashboard) -> Result<T, ApiError>,
) -> Result<(T, u64), ApiError> {
    let key = dashboard_config_key(tenant, id);
    for _ in 0..WIDGET_ATTEMPTS {
        let (mut dashboard, current) = fetch(state, tenant, id).await?;
        check_revision(expected, current)?;
        let out = change(&mut dashboard)?;
        dashboard.updated_at = format_rfc3339(now_millis());
        let value = crate::quota::within_config_bytes(state, tenant, &key, encode(&dashboard)?)?;
        match state.store.update(&key, value, current).await {
            Ok(revision) => return Ok((out, revision)),
            Err(StoreError::Conflict(_)) if expected.is_none() => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(ApiError::conflict(
        "the dashboard kept changing concurrently; try again",
    ))
}

/// Adds a widget.
#[utoipa::path(post, path = "/v1/dashboards/{id}/widgets", operation_id = "add_widget",
    tag = "dashboards", request_body = WidgetInput,
    params(("id" = String, Path, description = "Dashboard id"), TenantQuery),
    responses((status = 201, body = Widget), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn add_widget(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<WidgetInput>,
) -> Result<Response, ApiError> {
    let requested = requested_tenant(query.requested(), input.tenant_id.as_deref())?;
    let tenant = caller.tenant(requested, Role::Editor)?;
    let widget = input.into_widget(new_id());
    // 404 before 400: another tenant's dashboard id must not be probed through validation.
    load(&state, &tenant, &id)?;
    validate_widget(&state, &tenant, &widget)?;
    let expected = super::if_match(&headers)?;
    let limit =
        quota::limits(&state.auth.keys, &state.config.quotas, &tenant).widgets_per_dashboard;
    let (widget, revision) = change_widgets(&state, &tenant, &id, expected, |dashboard| {
        quota::check("widgets_per_dashboard", dashboard.widgets.len(), 1, limit)?;
        dashboard.widgets.push(widget.clone());
        Ok(widget.clone())
    })
    .await?;
    Ok(versioned(StatusCode::CREATED, revision, &widget))
}

/// Replaces a widget.
#[utoipa::path(put, path = "/v1/dashboards/{id}/widgets/{widget_id}", operation_id = "put_widget",
    tag = "dashboards", request_body = WidgetInput,
    params(("id" = String, Path, description = "Dashboard id"),
           ("widget_id" = String, Path, description = "Widget id"), TenantQuery),
    responses((status = 200, body = Widget), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn put_widget(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, widget_id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<TenantQuery>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<WidgetInput>,
) -> Result<Response, ApiError> {
    let requested = requested_tenant(query.requested(), input.tenant_id.as_deref())?;
    let tenant = caller.tenant(requested, Role::Editor)?;
    if input.widget_id.as_deref().is_some_and(|w| w != widget_id) {
        return Err(ApiError::bad_request(
            "`widget_id` in the body differs from the path",
        ));
    }
    let widget = input.into_widget(widget_id.clone());
    let (dashboard, _) = load(&state, &tenant, &id)?;
    if !dashboard.widgets.iter().any(|w| w.widget_id == widget_id) {
        return Err(ApiError::not_found("widget", &widget_id));
    }
    validate_widget(&state, &tenant, &widget)?;
    let expected = super::if_match(&headers)?;
    let (widget, revision) = change_widgets(&state, &tenant, &id, expected, |dashboard| {
        let slot = dashboard
            .widgets
            .iter_mut()
            .find(|w| w.widget_id == widget_id)
            .ok_or_else(|| ApiError::not_found("widget", &widget_id))?;
        *slot = widget.clone();
        Ok(widget.clone())
    })
    .await?;
    Ok(versioned(StatusCode::OK, revision, &widget))
}

/// Removes a widget.
#[utoipa::path(delete, path = "/v1/dashboards/{id}/widgets/{widget_id}",
    operation_id = "delete_widget",
    tag = "dashboards",
    params(("id" = String, Path, description = "Dashboard id"),
           ("widget_id" = String, Path, description = "Widget id"), TenantQuery),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_widget(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, widget_id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<TenantQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(query.requested(), Role::Editor)?;
    let expected = super::if_match(&headers)?;
    change_widgets(&state, &tenant, &id, expected, |dashboard| {
        let before = dashboard.widgets.len();
        dashboard.widgets.retain(|w| w.widget_id != widget_id);
        if dashboard.widgets.len() == before {
            return Err(ApiError::not_found("widget", &widget_id));
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
