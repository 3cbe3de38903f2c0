//! `/v1/metrics`: the tenant's metrics, metric window queries (any window, `auto`, grouped;
//! the answer's shape is in [`super::metric_answer`]) and distinct series.

use super::metric_answer::{derive_answer, MetricWindows};
use super::{ApiQuery, TenantQuery};
use crate::api::definitions::{effective_definition, tenant_definitions, Scope};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::query::plan::DEFAULT_GROUP_LIMIT;
use crate::query::{self, format_duration, parse_duration, Ask, SeriesScope, WindowAsk};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use rtdash_shared::auth::Role;
use rtdash_shared::stat::Stat;
use rtdash_shared::time::{now_millis, parse_rfc3339, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::{IntoParams, ToSchema};

pub use crate::query::resolution::MAX_WINDOWS;
/// Default `limit` of the series listing.
const DEFAULT_SERIES_LIMIT: usize = 1_000;
/// Largest `limit` of the series listing.
const MAX_SERIES_LIMIT: usize = 10_000;

/// A metric of the tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricInfo {
    /// Name.
    pub name: String,
    /// Origin.
    pub scope: Scope,
    /// Window, seconds.
    pub window_secs: u32,
    /// Dimensions.
    pub dimensions: Vec<String>,
    /// Dimension sets kept.
    pub dimension_sets: Vec<Vec<String>>,
    /// Stats the metric has.
    pub stats: Vec<Stat>,
    /// The full definition.
    pub definition: rtdash_shared::metric::MetricDefinition,
}

/// `{"metrics": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricList {
    /// By name.
    pub metrics: Vec<MetricInfo>,
}

/// Lists the tenant's metrics.
#[utoipa::path(get, path = "/v1/metrics", operation_id = "list_metrics",
    tag = "metrics", params(TenantQuery),
    responses((status = 200, body = MetricList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Json<MetricList>, ApiError> {
    let tenant = caller.tenant(query.requested(), Role::Viewer)?;
    let metrics = tenant_definitions(&state.store, &tenant)
        .into_iter()
        .map(|found| MetricInfo {
            name: found.definition.name.clone(),
            scope: found.scope,
            window_secs: found.definition.window_secs,
            dimensions: found.definition.dimensions.clone(),
            dimension_sets: found.definition.dimension_sets(),
            stats: query::available_stats(&found.definition),
            definition: found.definition,
        })
        .collect();
    Ok(Json(MetricList { metrics }))
}

/// Parameters of a metric query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricQuery {
    /// Tenant.
    pub tenant_id: Option<String>,
    /// JSON object of dimension name -> value.
    pub dimensions: Option<String>,
    /// RFC 3339, inclusive (default: `to` - 1 h).
    pub from: Option<String>,
    /// RFC 3339, exclusive (default: now).
    pub to: Option<String>,
    /// `1m`, `5m`, `1h`... a multiple of the metric's window, or `auto` (the finest that
    /// keeps the answer at or under about 500 windows). Default: the metric's window.
    pub window: Option<String>,
    /// Statistic (default `count`).
    #[param(value_type = Option<Stat>)]
    pub stat: Option<String>,
    /// One series per value of these dimensions, comma-separated (`region` or
    /// `region,plan`).
    pub group_by: Option<String>,
    /// Series of a grouped answer besides `other` (default 10, at most 100).
    pub limit: Option<usize>,
}

/// Parses the `dimensions` parameter.
pub fn parse_dimensions(text: Option<&str>) -> Result<BTreeMap<String, String>, ApiError> {
    match text.map(str::trim) {
        None | Some("") => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str(text).map_err(|_| {
            ApiError::bad_request(
                "`dimensions` must be a JSON object of strings, e.g. {\"region\":\"us-east\"}",
            )
        }),
    }
}

/// Parses a `window` parameter or field: absent -> `default`, `auto`, or a duration.
pub fn parse_window(text: Option<&str>, default: WindowAsk) -> Result<WindowAsk, ApiError> {
    match text.map(str::trim) {
        None | Some("") => Ok(default),
        Some("auto") => Ok(WindowAsk::Auto),
        Some(text) => parse_duration(text).map(WindowAsk::Fixed).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`window` {text:?} must look like 1m, 5m or 1h, or be `auto`"
            ))
        }),
    }
}

/// Parses `group_by`: comma-separated dimension names.
pub fn parse_group_by(text: Option<&str>) -> Vec<String> {
    text.map(|text| {
        text.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// Parses an optional RFC 3339 time parameter named `name`.
pub(crate) fn parse_time(name: &str, text: Option<&str>) -> Result<Option<UnixMillis>, ApiError> {
    text.map(|t| {
        parse_rfc3339(t).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`{name}` must be an RFC 3339 time such as 2024-01-15T13:00:00Z"
            ))
        })
    })
    .transpose()
}

/// Windows of one metric.
#[utoipa::path(get, path = "/v1/metrics/{name}", operation_id = "query_metric",
    tag = "metrics",
    params(("name" = String, Path, description = "Metric name"), MetricQuery),
    responses((status = 200, body = MetricWindows), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn query(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<MetricQuery>,
) -> Result<Response, ApiError> {
    let mut dimensions = parse_dimensions(params.dimensions.as_deref())?;
    let tenant = match caller.link(params.tenant_id.as_deref())? {
        // A link reads only the metrics its dashboard's widgets show, within its filters.
        Some(scope) => {
            let (dashboard, _) =
                crate::api::dashboards::load(&state, &scope.tenant, &scope.dashboard_id)?;
            if !dashboard.widgets.iter().any(|w| w.metric_name == name) {
                return Err(ApiError::forbidden(
                    "a dashboard link reads only the metrics of its dashboard's widgets",
                ));
            }
            dimensions.extend(scope.filters);
            scope.tenant
        }
        None => caller.tenant(params.tenant_id.as_deref(), Role::Viewer)?,
    };
    let stat: Stat =
        params.stat.as_deref().unwrap_or("count").parse().map_err(
            |err: rtdash_shared::stat::UnknownStat| ApiError::bad_request(err.to_string()),
        )?;
    let window = parse_window(params.window.as_deref(), WindowAsk::Base)?;
    let group_by = parse_group_by(params.group_by.as_deref());
    let found = effective_definition(&state.store, &tenant, &name)
        .ok_or_else(|| ApiError::not_found("metric", &name))?;
    let now = now_millis();
    let to = parse_time("to", params.to.as_deref())?.unwrap_or(now);
    let from = parse_time("from", params.from.as_deref())?.unwrap_or(to - 3_600_000);
    if from >= to {
        return Err(ApiError::bad_request("`from` must be before `to`"));
    }
    let ask = Ask {
        filter: &dimensions,
        stat,
        window,
        group_by: &group_by,
        limit: params.limit.unwrap_or(DEFAULT_GROUP_LIMIT),
        from,
        to,
        now,
    };
    let plan = query::plan(&found.definition, &tenant, state.db.tiers(), &ask)?;
    let (from, to) = plan.align(from, to);
    if (to - from) / plan.window_ms > MAX_WINDOWS {
        return Err(ApiError::bad_request(format!(
            "the range holds more than {MAX_WINDOWS} windows of {}; narrow it or use a coarser window (or window=auto)",
            format_duration(plan.window_ms)
        )));
    }
    // Identical queries within `questdb.query_cache_ms` share the answer; rows of windows
    // that no longer change come from the row cache.
    let closed_through = state.status.closed_through();
    let immutable = query::immutable_before(
        now,
        closed_through,
        state.config.query.correction_horizon_ms,
    );
    let auto = window == WindowAsk::Auto;
    let key = (plan.clone(), from, to, auto);
    let body = state
        .db
        .shared_answer(key, || async {
            let rows = state.db.rows(&plan, from, to, immutable).await?;
            let merged = rows.merged(&plan, state.db.row_cache(), from);
            let derived = derive_answer(&plan, merged, now, closed_through);
            let answer = MetricWindows::new(&plan, dimensions.clone(), auto, &derived);
            Ok(serde_json::to_vec(&answer)
                .map(Bytes::from)
                .unwrap_or_default())
        })
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// Parameters of the series listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// Tenant.
    pub tenant_id: Option<String>,
    /// RFC 3339 (default: `to` - 1 h).
    pub from: Option<String>,
    /// RFC 3339 (default: now).
    pub to: Option<String>,
    /// Most series answered (default 1000, at most 10000).
    pub limit: Option<usize>,
}

/// Distinct dimension values of a metric.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesList {
    /// Metric.
    pub metric_name: String,
    /// Per dimension, the distinct values seen.
    pub dimensions: BTreeMap<String, Vec<String>>,
    /// The series (dimension name -> value, null where the events lacked it).
    pub series: Vec<BTreeMap<String, Option<String>>>,
    /// Whether `limit` cut the list.
    pub truncated: bool,
}

/// Distinct series of a metric in a range.
#[utoipa::path(get, path = "/v1/metrics/{name}/series", operation_id = "list_metric_series",
    tag = "metrics",
    params(("name" = String, Path, description = "Metric name"), SeriesQuery),
    responses((status = 200, body = SeriesList), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn series(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<SeriesQuery>,
) -> Result<Json<SeriesList>, ApiError> {
    let tenant = caller.tenant(params.tenant_id.as_deref(), Role::Viewer)?;
    let limit = params.limit.unwrap_or(DEFAULT_SERIES_LIMIT);
    if limit == 0 || limit > MAX_SERIES_LIMIT {
        return Err(ApiError::bad_request(format!(
            "`limit` must be 1 to {MAX_SERIES_LIMIT}"
        )));
    }
    let found = effective_definition(&state.store, &tenant, &name)
        .ok_or_else(|| ApiError::not_found("metric", &name))?;
    let to = parse_time("to", params.to.as_deref())?.unwrap_or_else(now_millis);
    let from = parse_time("from", params.from.as_deref())?.unwrap_or(to - 3_600_000);
    if from >= to {
        return Err(ApiError::bad_request("`from` must be before `to`"));
    }
    let full_set = found
        .definition
        .dimension_sets()
        .into_iter()
        .next()
        .unwrap_or_default()
        .join(",");
    let mut rows = state
        .db
        .distinct_series(
            &SeriesScope {
                tenant: &tenant,
                metric: &name,
                dim_set: &full_set,
                from,
                to,
            },
            limit + 1,
        )
        .await?;
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    let mut dimensions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut series = Vec::with_capacity(rows.len());
    for text in rows {
        let Ok(dims) = serde_json::from_str::<BTreeMap<String, Option<String>>>(&text) else {
            continue;
        };
        for (dimension, value) in &dims {
            let values = dimensions.entry(dimension.clone()).or_default();
            if let Some(value) = value {
                values.insert(value.clone());
            }
        }
        series.push(dims);
    }
    Ok(Json(SeriesList {
        metric_name: name,
        dimensions: dimensions
            .into_iter()
            .map(|(name, values)| (name, values.into_iter().collect()))
            .collect(),
        series,
        truncated,
    }))
}
