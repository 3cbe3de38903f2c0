//! The state of alert rules, as the aggregators keep it (KV `rtdash_alert_state`, one key per
//! rule and series: `p<partition>.<tenant>.<rule>.<series>`), never guessed from the windows
//! a browser happens to show: `GET /v1/alerts/{id}/state` (per series) and
//! `GET /v1/alert-states` (per rule, for a tenant's dashboards and the alerts page).

use super::silences::active_silences;
use super::ApiQuery;
use crate::api::TenantQuery;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::model::is_valid_id;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use rtdash_runtime::kv::last_values;
use rtdash_shared::alert::AlertState;
use rtdash_shared::auth::Role;
use rtdash_shared::names::{self, alert_config_key};
use rtdash_shared::silence::Silence;
use rtdash_shared::time::{format_rfc3339, now_millis, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;

/// Most series listed per rule (the worst first).
pub const MAX_SERIES_LISTED: usize = 1000;

/// The part of an aggregator's persisted series state this API reads (the aggregator's
/// `SeriesAlert`; fields it adds later are ignored, fields it drops read as absent).
#[derive(Debug, Deserialize)]
struct StoredSeriesState {
    rule_id: String,
    tenant_id: String,
    #[serde(default)]
    dimensions: BTreeMap<String, Option<String>>,
    state: AlertState,
    #[serde(default)]
    last_start: Option<UnixMillis>,
    #[serde(default)]
    starts_at: Option<UnixMillis>,
    #[serde(default)]
    last: Option<StoredTransition>,
}

#[derive(Debug, Deserialize)]
struct StoredTransition {
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    evaluated_at: UnixMillis,
}

/// One series of a rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesState {
    /// The series' dimensions (`null`: the event had no value).
    pub dimensions: BTreeMap<String, Option<String>>,
    /// Its state.
    pub state: AlertState,
    /// When the breaching streak started (pending, firing, resolved), RFC 3339.
    pub since: Option<String>,
    /// Start of the newest window evaluated, RFC 3339.
    pub last_window_start: Option<String>,
    /// The stat's value at the last transition.
    pub value: Option<f64>,
    /// When the last transition was evaluated, RFC 3339.
    pub changed_at: Option<String>,
    /// The silence muting its notifications now, if any.
    pub silenced_by: Option<String>,
}

/// `GET /v1/alerts/{id}/state`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleState {
    /// The rule.
    pub alert_id: String,
    /// The worst state of its series (`firing` > `pending` > `resolved` > `ok`); `ok` when it
    /// watches no series yet.
    pub state: AlertState,
    /// Series firing.
    pub firing: usize,
    /// Series pending.
    pub pending: usize,
    /// Series with a state.
    pub total_series: usize,
    /// The series, worst first (at most 1000).
    pub series: Vec<SeriesState>,
}

/// `GET /v1/alert-states`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleStates {
    /// Every rule of the tenant with its summary (series left out).
    pub alerts: Vec<RuleState>,
}

const fn severity(state: AlertState) -> u8 {
    match state {
        AlertState::Firing => 3,
        AlertState::Pending => 2,
        AlertState::Resolved => 1,
        AlertState::Ok => 0,
    }
}

/// The stored states of `tenant`'s series, of one rule or of all, grouped by rule.
async fn read_states(
    state: &AppState,
    tenant: &str,
    rule: Option<&str>,
) -> Result<HashMap<String, Vec<StoredSeriesState>>, ApiError> {
    let filter = format!("*.{tenant}.{}.*", rule.unwrap_or("*"));
    let (entries, _) = last_values(&state.js, names::ALERT_STATE_BUCKET, &filter)
        .await
        .map_err(|err| {
            ApiError::unavailable(format!(
                "alert state unavailable: {}",
                rtdash_runtime::error_chain::ErrorChain(&err)
            ))
        })?;
    let mut by_rule: HashMap<String, Vec<StoredSeriesState>> = HashMap::new();
    for entry in entries.into_iter().filter(|e| !e.deleted) {
        match serde_json::from_slice::<StoredSeriesState>(&entry.value) {
            Ok(series) if series.tenant_id == tenant => {
                by_rule
                    .entry(series.rule_id.clone())
                    .or_default()
                    .push(series);
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(key = %entry.key, %err, "undecodable alert state; skipped"),
        }
    }
    Ok(by_rule)
}

fn summarize(
    rule_id: &str,
    tenant: &str,
    mut series: Vec<StoredSeriesState>,
    silences: &[Silence],
    with_series: bool,
    now: UnixMillis,
) -> RuleState {
    series.sort_by_key(|s| std::cmp::Reverse((severity(s.state), s.starts_at)));
    let count = |wanted: AlertState| series.iter().filter(|s| s.state == wanted).count();
    let worst = series.first().map_or(AlertState::Ok, |s| s.state);
    RuleState {
        alert_id: rule_id.to_owned(),
        state: worst,
        firing: count(AlertState::Firing),
        pending: count(AlertState::Pending),
        total_series: series.len(),
        series: if with_series {
            series
                .into_iter()
                .take(MAX_SERIES_LISTED)
                .map(|s| SeriesState {
                    silenced_by: silences
                        .iter()
                        .find(|silence| silence.mutes_series(tenant, rule_id, &s.dimensions, now))
                        .map(|silence| silence.id.clone()),
                    since: s
                        .starts_at
                        .filter(|_| s.state != AlertState::Ok)
                        .map(format_rfc3339),
                    last_window_start: s.last_start.map(format_rfc3339),
                    value: s.last.as_ref().and_then(|t| t.value),
                    changed_at: s.last.as_ref().map(|t| format_rfc3339(t.evaluated_at)),
                    dimensions: s.dimensions,
                    state: s.state,
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// The state of a rule per series, from the aggregators.
#[utoipa::path(get, path = "/v1/alerts/{id}/state", operation_id = "get_alert_state",
    tag = "alerts", params(("id" = String, Path, description = "Alert id"), TenantQuery),
    responses((status = 200, body = RuleState), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn rule_state(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Json<RuleState>, ApiError> {
    let tenant = caller.tenant(query.requested(), Role::Viewer)?;
    if !is_valid_id(&id) || state.store.get(&alert_config_key(&tenant, &id)).is_none() {
        return Err(ApiError::not_found("alert", &id));
    }
    let mut by_rule = read_states(&state, &tenant, Some(&id)).await?;
    let now = now_millis();
    let silences = active_silences(&state, &tenant, now);
    let series = by_rule.remove(&id).unwrap_or_default();
    Ok(Json(summarize(&id, &tenant, series, &silences, true, now)))
}

/// The state of every rule of a tenant (summaries, no series).
#[utoipa::path(get, path = "/v1/alert-states", operation_id = "list_alert_states",
    tag = "alerts", params(TenantQuery),
    responses((status = 200, body = RuleStates), (status = 400, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn rule_states(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Json<RuleStates>, ApiError> {
    let tenant = caller.tenant(query.requested(), Role::Viewer)?;
    let mut by_rule = read_states(&state, &tenant, None).await?;
    let now = now_millis();
    let mut alerts: Vec<RuleState> = state
        .store
        .list(&alert_config_key(&tenant, ""))
        .into_iter()
        .filter_map(|(key, _)| {
            key.strip_prefix(&alert_config_key(&tenant, ""))
                .map(str::to_owned)
        })
        .map(|rule| {
            let series = by_rule.remove(&rule).unwrap_or_default();
            summarize(&rule, &tenant, series, &[], false, now)
        })
        .collect();
    alerts.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
    Ok(Json(RuleStates { alerts }))
}
