//! `/v1/alerts`: alert rules in the config bucket (`alert.<tenant>.<id>`), as the shared
//! `AlertRule`; the core aggregators evaluate them. `/v1/alerts/{id}/events`: the rule's
//! transitions and delivery attempts, from the alert log (`RTDASH_ALERT_EVENTS`).

use super::{
    check_revision, decode_stored, encode, expected_revision, versioned, ApiJson, ApiQuery,
    TenantQuery,
};
use crate::api::definitions::effective_definition;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::model::{is_valid_id, new_id, requested_tenant};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rtdash_shared::alert::{
    AlertLogKind, AlertLogRecord, AlertRule, AlertState, Condition, DeliveryOutcome, EvaluateOn,
};
use rtdash_shared::auth::Role;
use rtdash_shared::names::{self, alert_config_key};
use rtdash_shared::stat::Stat;
use rtdash_shared::time::{format_rfc3339, now_millis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

const fn one() -> u32 {
    1
}

/// Body of create and update calls.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertInput {
    /// Tenant (required on create; on update may be the query parameter).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Name shown in the UI and in notifications (at most 200 characters; default: none, the
    /// id is shown).
    #[serde(default)]
    pub name: String,
    /// What the rule is for (at most 4000 characters).
    #[serde(default)]
    pub description: String,
    /// Metric watched.
    pub metric_name: String,
    /// Dimension filter.
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// Statistic compared (default `count`).
    #[serde(default)]
    pub stat: Stat,
    /// Comparison of the stat against `threshold`.
    pub condition: Condition,
    /// Threshold.
    pub threshold: f64,
    /// Webhook URL (`http://` or `https://`; not to loopback, private or link-local
    /// addresses unless the operator allows them). Required on create; write-only (answers
    /// show it masked); an update without it keeps the stored one.
    #[serde(default)]
    pub notify_channel: String,
    /// Consecutive breaching windows before firing (1 to 1000).
    #[serde(default = "one")]
    pub for_windows: u32,
    /// When windows are evaluated (default `final`).
    #[serde(default)]
    pub evaluate_on: EvaluateOn,
    /// Labels on notifications.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations on notifications.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Expected revision (update only; like `If-Match`).
    #[serde(default)]
    pub revision: Option<u64>,
    /// Ignored (answers carry it).
    #[serde(default)]
    pub alert_id: Option<String>,
    /// Ignored.
    #[serde(default)]
    pub id: Option<String>,
    /// Ignored.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub created_at: Option<serde_json::Value>,
    /// Ignored.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub updated_at: Option<serde_json::Value>,
}

/// A rule as answered: the stored rule's fields, `alert_id`, RFC 3339 times and `revision`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertOut {
    /// Id.
    pub alert_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Name (empty: none).
    pub name: String,
    /// Description.
    pub description: String,
    /// Metric watched.
    pub metric_name: String,
    /// Dimension filter.
    pub dimensions: BTreeMap<String, String>,
    /// Statistic compared.
    pub stat: Stat,
    /// Comparison of the stat against `threshold`.
    pub condition: Condition,
    /// Threshold.
    pub threshold: f64,
    /// Webhook URL, masked: scheme, host and port only (`https://hooks.slack.com/***`).
    pub notify_channel: String,
    /// Windows before firing.
    pub for_windows: u32,
    /// When windows are evaluated.
    pub evaluate_on: EvaluateOn,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// Store revision (also the `ETag`).
    pub revision: u64,
}

impl AlertOut {
    fn new(rule: AlertRule, revision: u64) -> Self {
        Self {
            alert_id: rule.id,
            tenant_id: rule.tenant_id,
            name: rule.name,
            description: rule.description,
            metric_name: rule.metric_name,
            dimensions: rule.dimensions,
            stat: rule.stat,
            condition: rule.condition,
            threshold: rule.threshold,
            notify_channel: super::webhook::masked(&rule.notify_channel),
            for_windows: rule.for_windows,
            evaluate_on: rule.evaluate_on,
            labels: rule.labels,
            annotations: rule.annotations,
            created_at: format_rfc3339(rule.created_at),
            updated_at: format_rfc3339(rule.updated_at),
            revision,
        }
    }
}

/// `{"alerts": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    /// The rules, by creation time.
    pub alerts: Vec<AlertOut>,
}

fn validate(state: &AppState, tenant: &str, input: &AlertInput) -> Result<(), ApiError> {
    let found =
        effective_definition(&state.store, tenant, &input.metric_name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "metric `{}` does not exist for tenant `{tenant}`",
                input.metric_name
            ))
        })?;
    if !crate::query::available_stats(&found.definition).contains(&input.stat) {
        return Err(ApiError::bad_request(format!(
            "metric `{}` has no `{}` stat (it has: {})",
            input.metric_name,
            input.stat,
            crate::query::available_stats(&found.definition)
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for name in input.dimensions.keys() {
        if !found.definition.dimensions.contains(name) {
            return Err(ApiError::bad_request(format!(
                "metric `{}` has no dimension `{name}`",
                input.metric_name
            )));
        }
    }
    Ok(())
}

fn rule_from(input: AlertInput, id: String, tenant: String, created_at: i64) -> AlertRule {
    AlertRule {
        id,
        tenant_id: tenant,
        name: input.name.trim().to_owned(),
        description: input.description,
        metric_name: input.metric_name,
        dimensions: input.dimensions,
        stat: input.stat,
        condition: input.condition,
        threshold: input.threshold,
        notify_channel: input.notify_channel.trim().to_owned(),
        for_windows: input.for_windows,
        evaluate_on: input.evaluate_on,
        labels: input.labels,
        annotations: input.annotations,
        created_at,
        updated_at: now_millis(),
    }
}

pub(crate) async fn fetch(
    state: &AppState,
    tenant: &str,
    id: &str,
) -> Result<(AlertRule, u64), ApiError> {
    if !is_valid_id(id) {
        return Err(ApiError::not_found("alert", id));
    }
    let key = alert_config_key(tenant, id);
    let stored = state
        .store
        .fetch(&key)
        .await?
        .ok_or_else(|| ApiError::not_found("alert", id))?;
    let rule: AlertRule = decode_stored(&key, &stored.value)?;
    if rule.tenant_id != tenant {
        return Err(ApiError::not_found("alert", id));
    }
    Ok((rule, stored.revision))
}

/// Creates a rule.
#[utoipa::path(post, path = "/v1/alerts", operation_id = "create_alert",
    tag = "alerts", request_body = AlertInput,
    responses((status = 201, body = AlertOut), (status = 400, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<AlertInput>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(input.tenant_id.as_deref(), Role::Editor)?;
    validate(&state, &tenant, &input)?;
    let limits = crate::quota::limits(&state.auth.keys, &state.config.quotas, &tenant);
    crate::quota::check(
        "alert_rules",
        crate::quota::alert_rules(&state.store, &tenant),
        1,
        limits.alert_rules,
    )?;
    if input.notify_channel.trim().is_empty() {
        return Err(ApiError::bad_request("`notify_channel` is required"));
    }
    let rule = rule_from(input, new_id(), tenant.clone(), now_millis());
    rule.validate().map_err(ApiError::bad_request)?;
    super::webhook::check(
        &rule.notify_channel,
        &state.config.webhook_allow_destinations,
    )
    .await?;
    let key = alert_config_key(&tenant, &rule.id);
    let value = crate::quota::within_config_bytes(&state, &tenant, &key, encode(&rule)?)?;
    let revision = state.store.create(&key, value).await?;
    tracing::info!(tenant = %tenant, alert = %rule.id, "alert rule created");
    Ok(versioned(
        StatusCode::CREATED,
        revision,
        &AlertOut::new(rule, revision),
    ))
}

/// Lists a tenant's rules.
#[utoipa::path(get, path = "/v1/alerts", operation_id = "list_alerts",
    tag = "alerts", params(TenantQuery),
    responses((status = 200, body = AlertList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Json<AlertList>, ApiError> {
    let tenant = caller.tenant(query.requested(), Role::Viewer)?;
    let mut alerts: Vec<(i64, AlertOut)> = state
        .store
        .list(&alert_config_key(&tenant, ""))
        .into_iter()
        .filter_map(|(_, stored)| {
            let rule: AlertRule = serde_json::from_slice(&stored.value).ok()?;
            (rule.tenant_id == tenant)
                .then(|| (rule.created_at, AlertOut::new(rule, stored.revision)))
        })
        .collect();
    alerts.sort_by(|a, b| (a.0, &a.1.alert_id).cmp(&(b.0, &b.1.alert_id)));
    Ok(Json(AlertList {
        alerts: alerts.into_iter().map(|(_, out)| out).collect(),
    }))
}

/// One rule.
#[utoipa::path(get, path = "/v1/alerts/{id}", operation_id = "get_alert",
    tag = "alerts",
    params(("id" = String, Path, description = "Alert id"), TenantQuery),
    responses((status = 200, body = AlertOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(query.requested(), Role::Viewer)?;
    if !is_valid_id(&id) {
        return Err(ApiError::not_found("alert", &id));
    }
    let key = alert_config_key(&tenant, &id);
    let stored = state
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found("alert", &id))?;
    let rule: AlertRule = decode_stored(&key, &stored.value)?;
    if rule.tenant_id != tenant {
        return Err(ApiError::not_found("alert", &id));
    }
    Ok(versioned(
        StatusCode::OK,
        stored.revision,
        &AlertOut::new(rule, stored.revision),
    ))
}

/// Replaces a rule.
#[utoipa::path(put, path = "/v1/alerts/{id}", operation_id = "put_alert",
    tag = "alerts", request_body = AlertInput,
    params(("id" = String, Path, description = "Alert id"), TenantQuery,
           ("If-Match" = Option<String>, Header, description = "Expected revision")),
    responses((status = 200, body = AlertOut), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<AlertInput>,
) -> Result<Response, ApiError> {
    let requested = requested_tenant(query.requested(), input.tenant_id.as_deref())?;
    let tenant = caller.tenant(requested, Role::Editor)?;
    let expected = expected_revision(&headers, input.revision)?;
    let (current_rule, current) = fetch(&state, &tenant, &id).await?;
    check_revision(expected, current)?;
    validate(&state, &tenant, &input)?;
    // Empty, or the masked form read back (a client that edits a rule it read): unchanged.
    let keep = input.notify_channel.trim().is_empty()
        || input.notify_channel.trim() == super::webhook::masked(&current_rule.notify_channel);
    let mut rule = rule_from(input, id.clone(), tenant.clone(), current_rule.created_at);
    if keep {
        rule.notify_channel = current_rule.notify_channel;
    }
    rule.validate().map_err(ApiError::bad_request)?;
    if !keep {
        super::webhook::check(
            &rule.notify_channel,
            &state.config.webhook_allow_destinations,
        )
        .await?;
    }
    let key = alert_config_key(&tenant, &id);
    let value = crate::quota::within_config_bytes(&state, &tenant, &key, encode(&rule)?)?;
    let revision = state.store.update(&key, value, current).await?;
    Ok(versioned(
        StatusCode::OK,
        revision,
        &AlertOut::new(rule, revision),
    ))
}

/// Deletes a rule.
#[utoipa::path(delete, path = "/v1/alerts/{id}", operation_id = "delete_alert",
    tag = "alerts",
    params(("id" = String, Path, description = "Alert id"), TenantQuery,
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
        .delete(&alert_config_key(&tenant, &id), current)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Records answered by default, and at most, by [`events`].
const DEFAULT_EVENTS: usize = 100;
const MAX_EVENTS: usize = 1_000;

/// `?tenant_id=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Tenant (`[A-Za-z0-9_-]`, 1 to 128).
    pub tenant_id: Option<String>,
    /// Most records answered, newest first: 1 to 1000, default 100.
    pub limit: Option<usize>,
}

/// A transition or a delivery attempt of a rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertEventOut {
    /// A transition or a delivery attempt.
    pub kind: AlertLogKind,
    /// When (RFC 3339).
    pub at: String,
    /// The transition's id (the webhook's `Idempotency-Key`).
    pub transition_id: String,
    /// The alert (rule and series).
    pub fingerprint: String,
    /// The series' dimensions (null: the event lacked the dimension).
    pub dimensions: BTreeMap<String, Option<String>>,
    /// State before.
    pub from: AlertState,
    /// State after.
    pub to: AlertState,
    /// The window evaluated (RFC 3339).
    pub window_start: String,
    /// Its end.
    pub window_end: String,
    /// The stat's value in it.
    #[schema(required = true)]
    pub value: Option<f64>,
    /// The rule's threshold.
    pub threshold: f64,
    /// Delivery: attempt number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Delivery: how the attempt ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<DeliveryOutcome>,
    /// Delivery: the webhook's HTTP status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Never present: the receiver's answer is not shown (a webhook pointed at an internal
    /// service would otherwise read it back); `http_status` and `error` say how it went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// Delivery: the error, or why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Delivery: duration of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl From<AlertLogRecord> for AlertEventOut {
    fn from(r: AlertLogRecord) -> Self {
        Self {
            kind: r.kind,
            at: format_rfc3339(r.at),
            transition_id: r.transition_id,
            fingerprint: r.fingerprint,
            dimensions: r.dimensions,
            from: r.from,
            to: r.to,
            window_start: format_rfc3339(r.window_start),
            window_end: format_rfc3339(r.window_end),
            value: r.value,
            threshold: r.threshold,
            attempt: r.attempt,
            outcome: r.outcome,
            http_status: r.http_status,
            response: None,
            error: r.error,
            duration_ms: r.duration_ms,
        }
    }
}

/// `{"alert_id", "events": [...]}`, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertEvents {
    /// The rule.
    pub alert_id: String,
    /// Its transitions and delivery attempts, newest first.
    pub events: Vec<AlertEventOut>,
}

/// A rule's transitions and delivery attempts, newest first.
#[utoipa::path(get, path = "/v1/alerts/{id}/events", operation_id = "list_alert_events",
    tag = "alerts",
    params(("id" = String, Path, description = "Alert id"), EventsQuery),
    responses((status = 200, body = AlertEvents), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<AlertEvents>, ApiError> {
    let tenant = caller.tenant(query.tenant_id.as_deref(), Role::Viewer)?;
    let limit = query.limit.unwrap_or(DEFAULT_EVENTS);
    if !(1..=MAX_EVENTS).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` must be 1 to {MAX_EVENTS}"
        )));
    }
    // 404 unless the tenant has this rule (another tenant's answers the same).
    fetch(&state, &tenant, &id).await?;
    let records = read_log(&state.js, &tenant, &id, limit).await?;
    Ok(Json(AlertEvents {
        alert_id: id,
        events: records.into_iter().map(AlertEventOut::from).collect(),
    }))
}

/// The newest `limit` records of a rule's log, newest first. The stream keeps at most
/// `alerts.log_max_per_rule` records per rule, which bounds what is read.
async fn read_log(
    js: &async_nats::jetstream::Context,
    tenant: &str,
    rule: &str,
    limit: usize,
) -> Result<Vec<AlertLogRecord>, ApiError> {
    use async_nats::jetstream::{consumer, context::GetStreamErrorKind};
    use futures::StreamExt;
    let unavailable = |e: &dyn std::fmt::Display| ApiError::unavailable(format!("alert log: {e}"));
    let stream = match js.get_stream(names::ALERT_EVENTS_STREAM).await {
        Ok(stream) => stream,
        Err(err) if matches!(err.kind(), GetStreamErrorKind::JetStream(_)) => {
            return Ok(Vec::new());
        }
        Err(err) => return Err(unavailable(&err)),
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: names::alertlog_subject(tenant, rule),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable(&e))?;
    let mut remaining = consumer.cached_info().num_pending;
    let mut newest: std::collections::VecDeque<AlertLogRecord> =
        std::collections::VecDeque::with_capacity(limit.min(remaining as usize) + 1);
    if remaining == 0 {
        return Ok(Vec::new());
    }
    let mut messages = consumer.messages().await.map_err(|e| unavailable(&e))?;
    while remaining > 0 {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), messages.next())
            .await
            .map_err(|_| ApiError::unavailable("alert log: timed out"))?;
        let Some(message) = next else { break };
        let message = message.map_err(|e| unavailable(&e))?;
        remaining = message.info().map(|i| i.pending).unwrap_or(0);
        match serde_json::from_slice::<AlertLogRecord>(&message.payload) {
            Ok(record) => {
                newest.push_back(record);
                if newest.len() > limit {
                    newest.pop_front();
                }
            }
            Err(err) => tracing::warn!(%err, "undecodable alert log record skipped"),
        }
    }
    Ok(newest.into_iter().rev().collect())
}
