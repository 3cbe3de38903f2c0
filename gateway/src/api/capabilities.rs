//! `GET /v1/metrics/{name}/capabilities`: what a metric can answer, for an editor that must
//! never offer a choice that will be refused. Every window offered for a time range is
//! judged by the planner itself (the same call that validates widgets and serves queries).

use super::metrics::MAX_WINDOWS;
use super::ApiQuery;
use crate::api::definitions::effective_definition;
use crate::error::{ApiError, ErrorBody};
use crate::model::{parse_time_window, widget_window_count_error};
use crate::query::plan::{DEFAULT_GROUP_LIMIT, MAX_GROUP_LIMIT};
use crate::query::resolution::{AUTO_MAX_WINDOWS, AUTO_WINDOWS};
use crate::query::tiers::{Source, DAY_MS};
use crate::query::{self, format_duration, Ask, WindowAsk};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use rtdash_shared::stat::Stat;
use rtdash_shared::time::now_millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// Parameters of the capabilities call.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CapabilitiesQuery {
    /// Tenant.
    pub tenant_id: Option<String>,
    /// A widget range (`last_7d`): judge every window for it, and say what `auto` picks.
    pub time_window: Option<String>,
}

/// A stored resolution of the metric.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceOut {
    /// Its window (`1m`, `1h`...).
    pub window: String,
    /// Whether it is a rollup tier (else the metric's own windows).
    pub tier: bool,
    /// Days its table keeps (null: forever).
    #[schema(required = true)]
    pub retention_days: Option<i64>,
}

impl From<Source> for SourceOut {
    fn from(source: Source) -> Self {
        Self {
            window: format_duration(source.window_ms),
            tier: !source.is_base,
            retention_days: (source.retention_ms > 0).then_some(source.retention_ms / DAY_MS),
        }
    }
}

/// A window the metric can be served at.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowOption {
    /// The window.
    pub window: String,
    /// How far back it can be served, in days (the longest retention of the resolutions
    /// that divide it; null: forever).
    #[schema(required = true)]
    pub retention_days: Option<i64>,
    /// With `time_window`: whether a widget of that range can use it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<bool>,
    /// With `time_window`, when not allowed: why (the planner's message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `window=auto` picks for the range asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct AutoChoice {
    /// The window.
    pub window: String,
    /// The stored resolution read.
    pub source_window: String,
}

/// What a metric can answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricCapabilities {
    /// Metric.
    pub metric_name: String,
    /// The metric's own window.
    pub window: String,
    /// Stats it has (each for any window, filter and grouping below).
    pub stats: Vec<Stat>,
    /// Dimensions usable in `dimensions` filters and in `group_by` (any of them, any
    /// combination).
    pub dimensions: Vec<String>,
    /// Dimension sets kept as stored series (a filter on exactly one of them reads one
    /// series per window; others merge).
    pub dimension_sets: Vec<Vec<String>>,
    /// The stored resolutions, coarsest first.
    pub sources: Vec<SourceOut>,
    /// Windows offered (multiples of the metric's window), finest first.
    pub windows: Vec<WindowOption>,
    /// With `time_window`: what `window=auto` picks for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoChoice>,
    /// `window=auto` keeps answers at or under this many windows when it can.
    pub auto_max_windows: i64,
    /// Most windows in one answer.
    pub max_windows: i64,
    /// Default `limit` of a grouped answer.
    pub default_limit: usize,
    /// Largest `limit`.
    pub max_limit: usize,
}

/// What a metric can answer.
#[utoipa::path(get, path = "/v1/metrics/{name}/capabilities",
    operation_id = "metric_capabilities", tag = "metrics",
    params(("name" = String, Path, description = "Metric name"), CapabilitiesQuery),
    responses((status = 200, body = MetricCapabilities), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn capabilities(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<CapabilitiesQuery>,
) -> Result<Json<MetricCapabilities>, ApiError> {
    let tenant = caller.tenant(
        params.tenant_id.as_deref(),
        rtdash_shared::auth::Role::Viewer,
    )?;
    let found = effective_definition(&state.store, &tenant, &name)
        .ok_or_else(|| ApiError::not_found("metric", &name))?;
    let def = &found.definition;
    let range_ms = params
        .time_window
        .as_deref()
        .map(|text| {
            parse_time_window(text).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`time_window` {text:?} must look like last_15m, last_1h or last_7d (at most 31 days)"
                ))
            })
        })
        .transpose()?;
    let tiers = state.db.tiers();
    let base = def.window_ms();
    let mut windows: Vec<i64> = vec![base];
    windows.extend(AUTO_WINDOWS.iter().copied());
    windows.extend(tiers.list().iter().map(|tier| tier.window_ms));
    windows.retain(|w| *w >= base && w % base == 0);
    windows.sort_unstable();
    windows.dedup();
    let now = now_millis();
    let none = BTreeMap::new();
    let ask = |window: WindowAsk, range: i64| Ask {
        from: now - range,
        ..Ask::simple(&none, Stat::Count, window, now)
    };
    let options = windows
        .into_iter()
        .map(|window_ms| {
            // The longest retention among the resolutions serving it (0: forever).
            let retention_days = tiers
                .sources(base, window_ms)
                .iter()
                .map(|source| source.retention_ms)
                .try_fold(0, |longest: i64, ms| (ms != 0).then(|| longest.max(ms)))
                .map(|ms| ms / DAY_MS);
            let verdict = range_ms.map(|range| {
                query::plan(
                    def,
                    &tenant,
                    tiers,
                    &ask(WindowAsk::Fixed(window_ms), range),
                )
                .map_err(|err| err.to_string())
                .and_then(|plan| widget_window_count_error(&plan, range).map_or(Ok(()), Err))
            });
            WindowOption {
                window: format_duration(window_ms),
                retention_days,
                allowed: verdict.as_ref().map(Result::is_ok),
                reason: verdict.and_then(Result::err),
            }
        })
        .collect();
    let auto = match range_ms {
        Some(range) => query::plan(def, &tenant, tiers, &ask(WindowAsk::Auto, range))
            .ok()
            .map(|plan| AutoChoice {
                window: format_duration(plan.window_ms),
                source_window: format_duration(plan.source_window_ms),
            }),
        None => None,
    };
    Ok(Json(MetricCapabilities {
        metric_name: def.name.clone(),
        window: format_duration(base),
        stats: query::available_stats(def),
        dimensions: def.dimensions.clone(),
        dimension_sets: def.dimension_sets(),
        sources: tiers
            .all_sources(base)
            .into_iter()
            .map(SourceOut::from)
            .collect(),
        windows: options,
        auto,
        auto_max_windows: AUTO_MAX_WINDOWS,
        max_windows: MAX_WINDOWS,
        default_limit: DEFAULT_GROUP_LIMIT,
        max_limit: MAX_GROUP_LIMIT,
    }))
}
