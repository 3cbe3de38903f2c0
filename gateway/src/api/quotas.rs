//! `/v1/tenants/{tenant}/quotas`: a tenant's limits and its use against them (issue #16).
//! The operator reads and sets any tenant's; a tenant's `admin` key reads its own.

use super::ApiJson;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::model::Dashboard;
use crate::quota::{self, Limits, QuotaSettings};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use rtdash_shared::auth::{Principal, Role};
use rtdash_shared::metric::MetricDefinition;
use rtdash_shared::names::{dashboard_config_key, metric_config_key};
use serde::Serialize;
use utoipa::ToSchema;

/// A tenant's quotas.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotasOut {
    /// Tenant.
    pub tenant_id: String,
    /// The limits in force: the operator's settings over the gateway's `[quotas]` defaults.
    pub limits: Limits,
    /// Use now: counts, the most widgets on one dashboard, streams open on this gateway, the
    /// highest `max_series_per_window` of the tenant's definitions.
    pub used: Limits,
    /// What the operator set (the rest are defaults).
    pub settings: QuotaSettings,
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The quotas of `tenant` with its use, from this gateway's memory.
pub(crate) fn answer(state: &AppState, tenant: &str) -> QuotasOut {
    let settings = quota::settings(&state.auth.keys, tenant);
    let limits = settings.over(state.config.quotas);
    let widgets = state
        .store
        .list(&dashboard_config_key(tenant, ""))
        .into_iter()
        .filter_map(|(_, stored)| serde_json::from_slice::<Dashboard>(&stored.value).ok())
        .map(|dashboard| dashboard.widgets.len())
        .max()
        .unwrap_or(0);
    let series = state
        .store
        .list(&metric_config_key(Some(tenant), ""))
        .into_iter()
        .filter_map(|(_, stored)| MetricDefinition::from_json(&stored.value).ok())
        .map(|definition| u64::from(definition.max_series_per_window))
        .max()
        .unwrap_or(0);
    let used = Limits {
        dashboards: to_u64(quota::dashboards(&state.store, tenant)),
        widgets_per_dashboard: to_u64(widgets),
        alert_rules: to_u64(quota::alert_rules(&state.store, tenant)),
        metric_definitions: to_u64(quota::metric_definitions(&state.store, tenant)),
        silences: to_u64(quota::silences(&state.store, tenant)),
        open_streams: state.tenant_streams.count(tenant),
        max_series_per_window: series,
        config_bytes: to_u64(quota::config_bytes(&state.store, tenant)),
    };
    QuotasOut {
        tenant_id: tenant.to_owned(),
        limits,
        used,
        settings,
    }
}

/// A tenant's limits and use.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/quotas", operation_id = "get_quotas",
    tag = "quotas", params(("tenant" = String, Path, description = "Tenant")),
    responses((status = 200, body = QuotasOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Json<QuotasOut>, ApiError> {
    let tenant = caller.tenant(Some(&tenant), Role::Admin)?;
    Ok(Json(answer(&state, &tenant)))
}

/// Sets a tenant's limits (the operator only): the body replaces the tenant's settings; a
/// limit left out is the default.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/quotas", operation_id = "put_quotas",
    tag = "quotas", params(("tenant" = String, Path, description = "Tenant")),
    request_body = QuotaSettings,
    responses((status = 200, body = QuotasOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    ApiJson(settings): ApiJson<QuotaSettings>,
) -> Result<Json<QuotasOut>, ApiError> {
    if !matches!(caller.principal, Principal::Operator) {
        return Err(ApiError::forbidden("tenant quotas are set by the operator"));
    }
    let tenant = caller.tenant(Some(&tenant), Role::Admin)?;
    if let Some((name, why)) = settings.over(state.config.quotas).invalid() {
        return Err(ApiError::bad_request(format!("`{name}` {why}")));
    }
    let value = serde_json::to_vec(&settings)
        .map_err(|err| ApiError::internal(format!("cannot encode quota settings: {err}")))?;
    state.auth.keys.put_quota(&tenant, value).await?;
    tracing::info!(%tenant, ?settings, by = %caller.actor(), "tenant quotas set");
    Ok(Json(answer(&state, &tenant)))
}
