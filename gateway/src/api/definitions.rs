//! `/v1/metric-definitions`: metric definitions in the config bucket
//! (`metric.<tenant>.<name>`), which edge agents and aggregators watch.

use super::backfill::BackfillRequest;
use super::{
    check_revision, decode_stored, encode, expected_revision, versioned, ApiBytes, ApiQuery,
    TenantQuery,
};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::store::ConfigStore;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rtdash_shared::auth::Role;
use rtdash_shared::metric::{MetricDefinition, BUILTIN_EVENTS_METRIC};
use rtdash_shared::names::metric_config_key;
use serde::Serialize;
use utoipa::ToSchema;

/// Where a definition comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The tenant's own.
    Tenant,
    /// Applies to every tenant (`metric._all.<name>`), managed by operators.
    Global,
    /// Built into rtdash (`events`).
    Builtin,
}

/// A definition in force for a tenant.
#[derive(Clone, Debug)]
pub struct Found {
    /// The definition.
    pub definition: MetricDefinition,
    /// Its origin.
    pub scope: Scope,
    /// Store revision (none for built-ins).
    pub revision: Option<u64>,
}

/// The definition of `name` in force for `tenant`: built-in, the tenant's own, or global.
pub fn effective_definition(store: &ConfigStore, tenant: &str, name: &str) -> Option<Found> {
    if name == BUILTIN_EVENTS_METRIC {
        return Some(Found {
            definition: MetricDefinition::builtin_events(),
            scope: Scope::Builtin,
            revision: None,
        });
    }
    for (scope, key) in [
        (Scope::Tenant, metric_config_key(Some(tenant), name)),
        (Scope::Global, metric_config_key(None, name)),
    ] {
        if let Some(stored) = store.get(&key) {
            if let Ok(definition) = serde_json::from_slice::<MetricDefinition>(&stored.value) {
                return Some(Found {
                    definition,
                    scope,
                    revision: Some(stored.revision),
                });
            }
        }
    }
    None
}

/// Every definition in force for `tenant`, by name.
pub fn tenant_definitions(store: &ConfigStore, tenant: &str) -> Vec<Found> {
    let mut found: std::collections::BTreeMap<String, Found> = std::collections::BTreeMap::new();
    for (scope, prefix) in [
        (Scope::Global, metric_config_key(None, "")),
        (Scope::Tenant, metric_config_key(Some(tenant), "")),
    ] {
        for (_, stored) in store.list(&prefix) {
            if let Ok(definition) = serde_json::from_slice::<MetricDefinition>(&stored.value) {
                if definition.name == BUILTIN_EVENTS_METRIC {
                    continue;
                }
                found.insert(
                    definition.name.clone(),
                    Found {
                        definition,
                        scope,
                        revision: Some(stored.revision),
                    },
                );
            }
        }
    }
    found.insert(
        BUILTIN_EVENTS_METRIC.to_owned(),
        Found {
            definition: MetricDefinition::builtin_events(),
            scope: Scope::Builtin,
            revision: None,
        },
    );
    found.into_values().collect()
}

/// A definition as answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct DefinitionOut {
    /// The definition.
    #[serde(flatten)]
    pub definition: MetricDefinition,
    /// Origin.
    pub scope: Scope,
    /// Whether it can be changed through this API by the tenant.
    pub read_only: bool,
    /// Store revision (absent for built-ins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Dimension sets kept (full set first, each sorted).
    pub dimension_sets: Vec<Vec<String>>,
    /// The metric's newest backfill job (kept 7 days), with its progress: the one the request
    /// started in answers to a request with `backfill`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<rtdash_shared::backfill::BackfillJob>,
}

impl From<Found> for DefinitionOut {
    fn from(found: Found) -> Self {
        Self {
            dimension_sets: found.definition.dimension_sets(),
            read_only: found.scope != Scope::Tenant,
            scope: found.scope,
            revision: found.revision,
            definition: found.definition,
            backfill: None,
        }
    }
}

/// A definition as answered, with its newest backfill job if the tenant's own.
fn with_backfill(state: &AppState, tenant: &str, found: Found) -> DefinitionOut {
    let mut out = DefinitionOut::from(found);
    if out.scope == Scope::Tenant {
        out.backfill = state.backfills.get(tenant, &out.definition.name);
    }
    out
}

/// `{"definitions": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DefinitionList {
    /// The definitions.
    pub definitions: Vec<DefinitionOut>,
}

/// A definition's body, parsed.
struct Body {
    definition: MetricDefinition,
    /// The `revision` it carried.
    revision: Option<u64>,
    /// Its `backfill` request.
    backfill: Option<BackfillRequest>,
}

/// Parses a body: the shared definition, tolerating the answer-only fields (so a client can
/// send back what it read), with the `revision` and the `backfill` request it carried.
fn parse_body(bytes: &[u8]) -> Result<Body, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|err| ApiError::bad_request(format!("body is not valid JSON: {err}")))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("body must be a JSON object"))?;
    let revision = match object.remove("revision") {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .ok_or_else(|| ApiError::bad_request("`revision` must be a number"))?,
        ),
    };
    let backfill = super::backfill::take_request(object)?;
    for answer_only in ["scope", "read_only", "dimension_sets"] {
        object.remove(answer_only);
    }
    let bytes = serde_json::to_vec(&value).map_err(|err| ApiError::internal(err.to_string()))?;
    let definition = MetricDefinition::from_json(&bytes)
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    Ok(Body {
        definition,
        revision,
        backfill,
    })
}

/// The tenant a definition call acts on (`_all`, the global definitions, for the operator).
fn body_tenant(
    caller: &Caller,
    definition: &MetricDefinition,
    query: Option<&str>,
) -> Result<String, ApiError> {
    let requested = crate::model::requested_tenant(query, definition.tenant_id.as_deref())?;
    caller.tenant_or_global(requested, Role::Editor)
}

/// The tenant's limits on definitions: `max_series_per_window` at most its ceiling (`400`
/// naming it), and, for a new definition, one more within `metric_definitions` (`429`).
/// Global definitions (`_all`, the operator's) are not any tenant's.
fn check_quota(
    state: &AppState,
    tenant: &str,
    definition: &MetricDefinition,
    new: bool,
) -> Result<(), ApiError> {
    if tenant == rtdash_shared::names::ALL_TENANTS {
        return Ok(());
    }
    let limits = crate::quota::limits(&state.auth.keys, &state.config.quotas, tenant);
    if u64::from(definition.max_series_per_window) > limits.max_series_per_window {
        return Err(ApiError::bad_request(format!(
            "`max_series_per_window` is {}, above tenant `{tenant}`'s ceiling of {} \
             (quota `max_series_per_window`)",
            definition.max_series_per_window, limits.max_series_per_window
        )));
    }
    if new {
        crate::quota::check(
            "metric_definitions",
            crate::quota::metric_definitions(&state.store, tenant),
            1,
            limits.metric_definitions,
        )?;
    }
    Ok(())
}

/// Plans the backfill a body asked for (checked before the definition is stored). Global
/// definitions (`_all`) have no backfill.
async fn planned_backfill(
    state: &AppState,
    tenant: &str,
    definition: &MetricDefinition,
    request: Option<BackfillRequest>,
) -> Result<Option<super::backfill::Planned>, ApiError> {
    let Some(request) = request else {
        return Ok(None);
    };
    if tenant == rtdash_shared::names::ALL_TENANTS {
        return Err(ApiError::bad_request(
            "`backfill` is for a tenant's own definitions, not global ones",
        ));
    }
    super::backfill::plan(state, tenant, definition, request)
        .await
        .map(Some)
}

/// Creates a definition.
#[utoipa::path(post, path = "/v1/metric-definitions", operation_id = "create_metric_definition",
    tag = "metric-definitions",
    request_body(content = MetricDefinition, description = "The definition, with `tenant_id`. \
        May also carry `revision` (ignored on create), `backfill` (`{\"hours\": N}`: also \
        compute the metric over the last N hours of the raw-event archive; the answer's \
        `backfill` is the job) and the answer-only fields \
        (`scope`, `read_only`, `dimension_sets`, ignored), so an answer can be sent back."),
    responses((status = 201, body = DefinitionOut), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let Body {
        mut definition,
        backfill,
        ..
    } = parse_body(&body)?;
    let tenant = body_tenant(&caller, &definition, None)?;
    definition.tenant_id = Some(tenant.clone());
    if definition.name == BUILTIN_EVENTS_METRIC {
        return Err(ApiError::conflict(
            "`events` is the built-in metric and cannot be redefined",
        ));
    }
    let key = metric_config_key(Some(&tenant), &definition.name);
    let exists = state.store.get(&key).is_some();
    check_quota(&state, &tenant, &definition, !exists)?;
    let backfill = planned_backfill(&state, &tenant, &definition, backfill).await?;
    let revision = state
        .store
        .create(
            &key,
            crate::quota::within_config_bytes(&state, &tenant, &key, encode(&definition)?)?,
        )
        .await
        .map_err(|err| match err {
            crate::store::StoreError::Conflict(_) => ApiError::conflict(format!(
                "metric `{}` already exists for tenant `{tenant}`",
                definition.name
            )),
            other => other.into(),
        })?;
    tracing::info!(tenant = %tenant, metric = %definition.name, "metric definition created");
    let mut out = DefinitionOut::from(Found {
        definition,
        scope: Scope::Tenant,
        revision: Some(revision),
    });
    if let Some(planned) = backfill {
        out.backfill = Some(super::backfill::submit(&state, planned).await?);
    }
    Ok(versioned(StatusCode::CREATED, revision, &out))
}

/// Lists the definitions in force for a tenant.
#[utoipa::path(get, path = "/v1/metric-definitions", operation_id = "list_metric_definitions",
    tag = "metric-definitions", params(TenantQuery),
    responses((status = 200, body = DefinitionList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Json<DefinitionList>, ApiError> {
    let tenant = caller.tenant_or_global(query.requested(), Role::Viewer)?;
    let definitions = tenant_definitions(&state.store, &tenant)
        .into_iter()
        .map(|found| with_backfill(&state, &tenant, found))
        .collect();
    Ok(Json(DefinitionList { definitions }))
}

/// The definition in force for a tenant.
#[utoipa::path(get, path = "/v1/metric-definitions/{name}", operation_id = "get_metric_definition",
    tag = "metric-definitions",
    params(("name" = String, Path, description = "Metric name"), TenantQuery),
    responses((status = 200, body = DefinitionOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant_or_global(query.requested(), Role::Viewer)?;
    let found = effective_definition(&state.store, &tenant, &name)
        .ok_or_else(|| ApiError::not_found("metric", &name))?;
    let revision = found.revision.unwrap_or(0);
    Ok(versioned(
        StatusCode::OK,
        revision,
        &with_backfill(&state, &tenant, found),
    ))
}

/// Creates or replaces the tenant's definition.
#[utoipa::path(put, path = "/v1/metric-definitions/{name}", operation_id = "put_metric_definition",
    tag = "metric-definitions",
    params(("name" = String, Path, description = "Metric name"), TenantQuery),
    request_body(content = MetricDefinition, description = "The definition; `tenant_id` may \
        instead be the query parameter. May also carry `revision` (the expected one, like \
        `If-Match`), `backfill` (`{\"hours\": N}`, as on create) and the answer-only fields \
        (`scope`, `read_only`, `dimension_sets`, ignored)."),
    responses((status = 200, body = DefinitionOut), (status = 201, body = DefinitionOut),
              (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let Body {
        mut definition,
        revision: body_revision,
        backfill,
    } = parse_body(&body)?;
    let tenant = body_tenant(&caller, &definition, query.requested())?;
    definition.tenant_id = Some(tenant.clone());
    if definition.name != name {
        return Err(ApiError::bad_request(format!(
            "body names metric `{}`, the path `{name}`",
            definition.name
        )));
    }
    if name == BUILTIN_EVENTS_METRIC {
        return Err(ApiError::conflict(
            "`events` is the built-in metric and cannot be redefined",
        ));
    }
    let expected = expected_revision(&headers, body_revision)?;
    let key = metric_config_key(Some(&tenant), &name);
    let value = crate::quota::within_config_bytes(&state, &tenant, &key, encode(&definition)?)?;
    let current = state.store.fetch(&key).await?;
    check_quota(&state, &tenant, &definition, current.is_none())?;
    let backfill = planned_backfill(&state, &tenant, &definition, backfill).await?;
    let (status, revision) = match current {
        None => {
            if expected.is_some_and(|rev| rev != 0) {
                return Err(ApiError::not_found("metric", &name));
            }
            (StatusCode::CREATED, state.store.create(&key, value).await?)
        }
        Some(current) => {
            check_revision(expected, current.revision)?;
            (
                StatusCode::OK,
                state.store.update(&key, value, current.revision).await?,
            )
        }
    };
    let mut out = DefinitionOut::from(Found {
        definition,
        scope: Scope::Tenant,
        revision: Some(revision),
    });
    if let Some(planned) = backfill {
        out.backfill = Some(super::backfill::submit(&state, planned).await?);
    }
    Ok(versioned(status, revision, &out))
}

/// Deletes the tenant's definition.
#[utoipa::path(delete, path = "/v1/metric-definitions/{name}",
    operation_id = "delete_metric_definition",
    tag = "metric-definitions",
    params(("name" = String, Path, description = "Metric name"), TenantQuery),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant_or_global(query.requested(), Role::Editor)?;
    if !crate::model::is_valid_id(&name) {
        return Err(ApiError::not_found("metric", &name));
    }
    let key = metric_config_key(Some(&tenant), &name);
    let Some(current) = state.store.fetch(&key).await? else {
        return match effective_definition(&state.store, &tenant, &name) {
            Some(found) if found.scope != Scope::Tenant => Err(ApiError::conflict(format!(
                "metric `{name}` is {} and read-only",
                if found.scope == Scope::Builtin {
                    "built in"
                } else {
                    "global"
                }
            ))),
            _ => Err(ApiError::not_found("metric", &name)),
        };
    };
    let _: MetricDefinition = decode_stored(&key, &current.value)?;
    check_revision(super::if_match(&headers)?, current.revision)?;
    state.store.delete(&key, current.revision).await?;
    tracing::info!(tenant = %tenant, metric = %name, "metric definition deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
