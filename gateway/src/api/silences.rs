//! `/v1/silences`: mute a rule's notifications, or some of its series', until a time (see
//! [`rtdash_shared::silence`]). Stored in the config bucket (`silence.<tenant>.<id>`), read by
//! every aggregator's notifier. Expiring a silence (`DELETE`) ends it now and keeps it listed
//! until it is purged a week after its end, as Alertmanager does.

use super::{decode_stored, encode, versioned, ApiJson, ApiQuery};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::model::{is_valid_id, new_id};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rtdash_shared::auth::Role;
use rtdash_shared::names::{alert_config_key, silence_config_key};
use rtdash_shared::silence::{Silence, SilenceStatus};
use rtdash_shared::time::{format_rfc3339, now_millis, parse_rfc3339, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// How long an ended silence stays listed before it is purged.
pub const KEEP_EXPIRED_MS: i64 = 7 * 24 * 3600 * 1000;

/// Body of `POST /v1/silences`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceInput {
    /// Tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The rule muted (must exist); absent: every rule of the tenant.
    #[serde(default)]
    pub alert_id: Option<String>,
    /// Series muted: dimension -> value (`*`: any value); empty: every series.
    #[serde(default)]
    pub matchers: BTreeMap<String, String>,
    /// Start (RFC 3339; default now).
    #[serde(default)]
    pub starts_at: Option<String>,
    /// End (RFC 3339). Give this or `duration_secs`.
    #[serde(default)]
    pub ends_at: Option<String>,
    /// Length from `starts_at`, in seconds. Give this or `ends_at`.
    #[serde(default)]
    pub duration_secs: Option<u64>,
    /// Why.
    #[serde(default)]
    pub comment: String,
    /// Who (default: the name of the key, or `operator`).
    #[serde(default)]
    pub created_by: Option<String>,
}

/// A silence as answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceOut {
    /// Id.
    pub silence_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// The rule muted (absent: every rule).
    pub alert_id: Option<String>,
    /// Series muted.
    pub matchers: BTreeMap<String, String>,
    /// Start (RFC 3339).
    pub starts_at: String,
    /// End (RFC 3339).
    pub ends_at: String,
    /// `pending`, `active` or `expired`, now.
    pub status: SilenceStatus,
    /// Why.
    pub comment: String,
    /// Who.
    pub created_by: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Store revision.
    pub revision: u64,
}

impl SilenceOut {
    fn new(silence: Silence, revision: u64, now: UnixMillis) -> Self {
        Self {
            status: silence.status(now),
            silence_id: silence.id,
            tenant_id: silence.tenant_id,
            alert_id: silence.rule_id,
            matchers: silence.matchers,
            starts_at: format_rfc3339(silence.starts_at),
            ends_at: format_rfc3339(silence.ends_at),
            comment: silence.comment,
            created_by: silence.created_by,
            created_at: format_rfc3339(silence.created_at),
            revision,
        }
    }
}

/// `{"silences": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceList {
    /// In force first, then pending, then expired; newest end first within each.
    pub silences: Vec<SilenceOut>,
}

/// `?tenant_id=&alert_id=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SilenceQuery {
    /// Tenant.
    pub tenant_id: Option<String>,
    /// Only the silences of this rule (and those muting every rule).
    pub alert_id: Option<String>,
}

fn time_field(name: &str, text: &str) -> Result<UnixMillis, ApiError> {
    parse_rfc3339(text)
        .ok_or_else(|| ApiError::bad_request(format!("`{name}` must be an RFC 3339 time")))
}

/// The silence an input describes, checked.
fn silence_from(
    input: SilenceInput,
    id: String,
    tenant: String,
    now: UnixMillis,
) -> Result<Silence, ApiError> {
    let starts_at = match &input.starts_at {
        Some(text) => time_field("starts_at", text)?,
        None => now,
    };
    let ends_at = match (&input.ends_at, input.duration_secs) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give `ends_at` or `duration_secs`, not both",
            ))
        }
        (Some(text), None) => time_field("ends_at", text)?,
        (None, Some(secs)) => {
            starts_at.saturating_add(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX))
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "a silence needs an end: `ends_at` or `duration_secs`",
            ))
        }
    };
    if ends_at <= now {
        return Err(ApiError::bad_request("`ends_at` is in the past"));
    }
    let silence = Silence {
        id,
        tenant_id: tenant,
        rule_id: input.alert_id,
        matchers: input.matchers,
        starts_at,
        ends_at,
        comment: input.comment,
        created_by: input.created_by.unwrap_or_default(),
        created_at: now,
    };
    silence.validate().map_err(ApiError::bad_request)?;
    if silence.created_by.chars().count() > 200 {
        return Err(ApiError::bad_request(
            "`created_by` must be at most 200 characters",
        ));
    }
    Ok(silence)
}

/// The tenant's stored silences with their revisions.
fn stored(state: &AppState, tenant: &str) -> Vec<(Silence, u64)> {
    state
        .store
        .list(&silence_config_key(tenant, ""))
        .into_iter()
        .filter_map(|(key, value)| {
            decode_stored::<Silence>(&key, &value.value)
                .ok()
                .map(|silence| (silence, value.revision))
        })
        .filter(|(silence, _)| silence.tenant_id == tenant)
        .collect()
}

/// Deletes the tenant's silences that ended more than [`KEEP_EXPIRED_MS`] ago.
async fn purge_expired(state: &AppState, tenant: &str, now: UnixMillis) -> Result<(), ApiError> {
    for (silence, revision) in stored(state, tenant) {
        if silence.ends_at.saturating_add(KEEP_EXPIRED_MS) < now {
            let key = silence_config_key(tenant, &silence.id);
            if let Err(err) = state.store.delete(&key, revision).await {
                tracing::debug!(%key, %err, "expired silence not purged (changed meanwhile)");
            }
        }
    }
    Ok(())
}

/// Creates a silence.
#[utoipa::path(post, path = "/v1/silences", operation_id = "create_silence",
    tag = "alerts", request_body = SilenceInput,
    responses((status = 201, body = SilenceOut), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(mut input): ApiJson<SilenceInput>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(input.tenant_id.as_deref(), Role::Editor)?;
    input.created_by.get_or_insert_with(|| caller.actor());
    let now = now_millis();
    if let Some(rule) = &input.alert_id {
        if !is_valid_id(rule) || state.store.get(&alert_config_key(&tenant, rule)).is_none() {
            return Err(ApiError::bad_request(format!(
                "alert `{rule}` does not exist for tenant `{tenant}`"
            )));
        }
    }
    let silence = silence_from(input, new_id(), tenant.clone(), now)?;
    purge_expired(&state, &tenant, now).await?;
    // The `silences` quota counts every silence not purged yet (expired ones are purged a
    // week after their end).
    let limit = crate::quota::limits(&state.auth.keys, &state.config.quotas, &tenant).silences;
    crate::quota::check("silences", stored(&state, &tenant).len(), 1, limit)?;
    let key = silence_config_key(&tenant, &silence.id);
    let value = crate::quota::within_config_bytes(&state, &tenant, &key, encode(&silence)?)?;
    let revision = state.store.create(&key, value).await?;
    tracing::info!(%tenant, silence = %silence.id, rule = ?silence.rule_id, "silence created");
    Ok(versioned(
        StatusCode::CREATED,
        revision,
        &SilenceOut::new(silence, revision, now),
    ))
}

/// Lists a tenant's silences.
#[utoipa::path(get, path = "/v1/silences", operation_id = "list_silences",
    tag = "alerts", params(SilenceQuery),
    responses((status = 200, body = SilenceList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<SilenceQuery>,
) -> Result<Json<SilenceList>, ApiError> {
    let tenant = caller.tenant(query.tenant_id.as_deref(), Role::Viewer)?;
    let now = now_millis();
    let rank = |status: SilenceStatus| match status {
        SilenceStatus::Active => 0,
        SilenceStatus::Pending => 1,
        SilenceStatus::Expired => 2,
    };
    let mut silences: Vec<(Silence, u64)> = stored(&state, &tenant)
        .into_iter()
        .filter(|(silence, _)| match (&query.alert_id, &silence.rule_id) {
            (Some(wanted), Some(rule)) => wanted == rule,
            _ => true,
        })
        .collect();
    silences.sort_by_key(|(silence, _)| (rank(silence.status(now)), -silence.ends_at));
    Ok(Json(SilenceList {
        silences: silences
            .into_iter()
            .map(|(silence, revision)| SilenceOut::new(silence, revision, now))
            .collect(),
    }))
}

/// Reads a silence.
#[utoipa::path(get, path = "/v1/silences/{id}", operation_id = "get_silence",
    tag = "alerts", params(("id" = String, Path, description = "Silence id"), SilenceQuery),
    responses((status = 200, body = SilenceOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<SilenceQuery>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(query.tenant_id.as_deref(), Role::Viewer)?;
    let (silence, revision) = fetch(&state, &tenant, &id).await?;
    Ok(versioned(
        StatusCode::OK,
        revision,
        &SilenceOut::new(silence, revision, now_millis()),
    ))
}

/// Expires a silence: it ends now (a pending one never starts); it stays listed for a week.
#[utoipa::path(delete, path = "/v1/silences/{id}", operation_id = "expire_silence",
    tag = "alerts", params(("id" = String, Path, description = "Silence id"), SilenceQuery),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn expire(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<SilenceQuery>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(query.tenant_id.as_deref(), Role::Editor)?;
    let (mut silence, revision) = fetch(&state, &tenant, &id).await?;
    let now = now_millis();
    if silence.status(now) != SilenceStatus::Expired {
        silence.ends_at = now;
        silence.starts_at = silence.starts_at.min(now.saturating_sub(1));
        let key = silence_config_key(&tenant, &id);
        state
            .store
            .update(&key, encode(&silence)?, revision)
            .await?;
        tracing::info!(%tenant, silence = %id, "silence expired");
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn fetch(state: &AppState, tenant: &str, id: &str) -> Result<(Silence, u64), ApiError> {
    if !is_valid_id(id) {
        return Err(ApiError::not_found("silence", id));
    }
    let key = silence_config_key(tenant, id);
    let stored = state
        .store
        .fetch(&key)
        .await?
        .ok_or_else(|| ApiError::not_found("silence", id))?;
    let silence: Silence = decode_stored(&key, &stored.value)?;
    if silence.tenant_id != tenant {
        return Err(ApiError::not_found("silence", id));
    }
    Ok((silence, stored.revision))
}

/// The tenant's silences in force at `now`.
pub fn active_silences(state: &AppState, tenant: &str, now: UnixMillis) -> Vec<Silence> {
    stored(state, tenant)
        .into_iter()
        .map(|(silence, _)| silence)
        .filter(|silence| silence.status(now) == SilenceStatus::Active)
        .collect()
}
