//! Backfill: a metric definition created or replaced with `"backfill": {"hours": N}` is also
//! computed over the last `N` hours of the raw-event archive by an aggregator
//! (`rtdash_shared::backfill`); `GET /v1/metric-definitions/{name}/backfill` follows the job.

use super::{ApiQuery, TenantQuery};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use rtdash_shared::auth::Role;
use rtdash_shared::backfill::{align_up, BackfillJob};
use rtdash_shared::metric::MetricDefinition;
use rtdash_shared::names::backfill_key;
use rtdash_shared::time::now_millis;
use serde::Deserialize;
use utoipa::ToSchema;

const HOUR_MS: i64 = 3_600_000;

/// `backfill` of a definition's body: compute the metric over the archived past.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// Hours before now to compute (1 up to the archive's retention in hours).
    pub hours: i64,
}

/// Takes `backfill` out of a definition's body (`null` or absent: none).
pub fn take_request(
    object: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Option<BackfillRequest>, ApiError> {
    match object.remove("backfill") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value).map(Some).map_err(|err| {
            ApiError::bad_request(format!(
                "`backfill` must be {{\"hours\": <whole hours>}}: {err}"
            ))
        }),
    }
}

/// The job bucket (`503` while it cannot be opened).
async fn bucket(state: &AppState) -> Result<async_nats::jetstream::kv::Store, ApiError> {
    state.backfills.bucket(&state.js).await.map_err(|err| {
        ApiError::unavailable(format!(
            "backfill jobs are not available: bucket {}: {err}",
            rtdash_shared::names::BACKFILL_BUCKET
        ))
    })
}

/// A job ready to be stored, with the revision of the job it replaces.
#[derive(Debug)]
pub struct Planned {
    job: BackfillJob,
    replaces: Option<u64>,
}

/// Checks a request against the archive's retention and the tenant's limits (one job at a
/// time per metric, `backfill.max_active_per_tenant` per tenant) and plans its job: the base
/// windows from `hours` ago up to the first one every edge agent counts live (now plus
/// `backfill.activation_margin_ms`).
pub async fn plan(
    state: &AppState,
    tenant: &str,
    definition: &MetricDefinition,
    request: BackfillRequest,
) -> Result<Planned, ApiError> {
    let max_hours = (state.config.streams.events_max_age_secs / 3_600) as i64;
    if request.hours < 1 || request.hours > max_hours {
        return Err(ApiError::bad_request(format!(
            "`backfill.hours` is {}: it must be 1 to {max_hours} (the raw-event archive keeps \
             {max_hours} hours, `streams.events_max_age_secs`)",
            request.hours
        )));
    }
    let store = bucket(state).await?;
    let key = backfill_key(tenant, &definition.name);
    let current = store
        .entry(key.as_str())
        .await
        .map_err(|err| ApiError::unavailable(format!("backfill jobs: {err}")))?
        .filter(|entry| entry.operation == async_nats::jetstream::kv::Operation::Put);
    if let Some(entry) = &current {
        if let Ok(job) = serde_json::from_slice::<BackfillJob>(&entry.value) {
            if job.is_computing() {
                return Err(ApiError::conflict(format!(
                    "a backfill of metric `{}` is already {} (job {}); wait until it ends",
                    definition.name,
                    serde_json::to_value(job.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    job.id
                )));
            }
        }
    }
    crate::quota::check(
        "backfill_jobs",
        state.backfills.active(tenant),
        1,
        state.config.backfill.max_active_per_tenant,
    )?;
    let window_ms = definition.window_ms();
    let now = now_millis();
    let from = (now - request.hours * HOUR_MS).div_euclid(window_ms) * window_ms;
    let boundary = align_up(now + state.config.backfill.activation_margin_ms, window_ms);
    let job = BackfillJob::queued(
        uuid::Uuid::new_v4().simple().to_string(),
        (tenant, &definition.name),
        window_ms,
        (from, boundary),
        now,
        now,
    );
    Ok(Planned {
        job,
        replaces: current.map(|entry| entry.revision),
    })
}

/// Stores a planned job for the aggregators (`409` when another request got there first).
pub async fn submit(state: &AppState, planned: Planned) -> Result<BackfillJob, ApiError> {
    let store = bucket(state).await?;
    let Planned { job, replaces } = planned;
    let key = backfill_key(&job.tenant, &job.metric);
    let value = serde_json::to_vec(&job).map_err(|err| ApiError::internal(err.to_string()))?;
    let stored = match replaces {
        None => store.create(key.as_str(), value.into()).await.is_ok(),
        Some(revision) => store
            .update(key.as_str(), value.into(), revision)
            .await
            .is_ok(),
    };
    if !stored {
        return Err(ApiError::conflict(format!(
            "the definition of `{}` is stored, but another backfill of it started at the same \
             time; follow it at /v1/metric-definitions/{}/backfill",
            job.metric, job.metric
        )));
    }
    tracing::info!(tenant = %job.tenant, metric = %job.metric, job = %job.id,
        from = job.from, boundary = job.boundary, "backfill requested");
    Ok(job)
}

/// The newest backfill job of a metric and its progress.
#[utoipa::path(get, path = "/v1/metric-definitions/{name}/backfill",
    operation_id = "get_metric_backfill", tag = "metric-definitions",
    params(("name" = String, Path, description = "Metric name"), TenantQuery),
    responses((status = 200, body = BackfillJob), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Json<BackfillJob>, ApiError> {
    let tenant = caller.tenant_or_global(query.requested(), Role::Viewer)?;
    if !crate::model::is_valid_id(&name) {
        return Err(ApiError::not_found("backfill of metric", &name));
    }
    let store = bucket(&state).await?;
    let entry = store
        .entry(backfill_key(&tenant, &name).as_str())
        .await
        .map_err(|err| ApiError::unavailable(format!("backfill jobs: {err}")))?
        .filter(|entry| entry.operation == async_nats::jetstream::kv::Operation::Put)
        .ok_or_else(|| ApiError::not_found("backfill of metric", &name))?;
    let job: BackfillJob = serde_json::from_slice(&entry.value)
        .map_err(|err| ApiError::internal(format!("stored backfill job: {err}")))?;
    Ok(Json(job))
}
