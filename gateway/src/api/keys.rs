//! `/v1/keys`: a tenant's API keys (issue #16). The operator creates keys for any tenant, a
//! tenant's `admin` key for its own tenant. A key is shown once, in the answer that creates
//! it; the bucket keeps only the SHA-256 of its secret. Revoking takes effect on every
//! gateway and agent as soon as their watch delivers the delete (milliseconds).

use super::{ApiJson, ApiQuery, TenantQuery};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::model::MAX_TEXT;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rtdash_runtime::keys::KeyStoreError;
use rtdash_shared::auth::{KeyRecord, Principal, Role, Token, TokenKind};
use rtdash_shared::time::{format_rfc3339, now_millis};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /v1/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    /// Tenant (the caller's own for an admin key; required for the operator).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// What the key may do.
    pub role: Role,
    /// A name for people (1 to 200 characters): who or what uses the key.
    pub name: String,
}

/// A new key: the only answer that carries the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyCreated {
    /// Public id (also in the key).
    pub key_id: String,
    /// The key (`rtd_<key_id>_<secret>`): shown this once; store it now.
    pub key: String,
    /// Tenant.
    pub tenant_id: String,
    /// Role.
    pub role: Role,
    /// Name.
    pub name: String,
    /// Created (RFC 3339).
    pub created_at: String,
}

/// A key as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    /// Public id.
    pub key_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Role.
    pub role: Role,
    /// Name.
    pub name: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// `operator` or the id of the key that created it.
    pub created_by: String,
    /// Last use seen by a gateway or agent (RFC 3339; recorded at most once a minute per
    /// service), absent when never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
}

/// `{"keys": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// By creation time.
    pub keys: Vec<KeyOut>,
}

impl From<KeyStoreError> for ApiError {
    fn from(err: KeyStoreError) -> Self {
        match err {
            KeyStoreError::Exists(what) => ApiError::conflict(format!("{what} exists already")),
            KeyStoreError::Unavailable(_) => {
                ApiError::unavailable(rtdash_runtime::error_chain::ErrorChain(&err).to_string())
            }
            other => {
                ApiError::internal(rtdash_runtime::error_chain::ErrorChain(&other).to_string())
            }
        }
    }
}

/// Creates a key.
#[utoipa::path(post, path = "/v1/keys", operation_id = "create_key", tag = "keys",
    request_body = KeyInput,
    responses((status = 201, body = KeyCreated), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<KeyInput>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(input.tenant_id.as_deref(), Role::Admin)?;
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > MAX_TEXT {
        return Err(ApiError::bad_request(format!(
            "`name` must be 1 to {MAX_TEXT} characters"
        )));
    }
    let keys = &state.auth.keys;
    let limit = state.auth.config.max_keys_per_tenant;
    if keys.keys(Some(&tenant)).len() >= limit {
        return Err(ApiError::conflict(format!(
            "tenant `{tenant}` has {limit} keys, the most allowed; revoke one first"
        )));
    }
    let created_at = format_rfc3339(now_millis());
    // A key id collision (64 random bits) is retried with a new key.
    for _ in 0..3 {
        let token = Token::generate(TokenKind::Key).map_err(KeyStoreError::from)?;
        let record = KeyRecord {
            key_id: token.id.clone(),
            tenant_id: tenant.clone(),
            role: input.role,
            name: name.to_owned(),
            secret_sha256: token.secret_sha256(),
            created_at: created_at.clone(),
            created_by: caller.actor(),
        };
        match keys.create_key(&record).await {
            Ok(()) => {
                tracing::info!(tenant = %tenant, key_id = %record.key_id, role = %record.role, by = %record.created_by, "key created");
                let created = KeyCreated {
                    key_id: record.key_id,
                    key: token.reveal(),
                    tenant_id: record.tenant_id,
                    role: record.role,
                    name: record.name,
                    created_at: record.created_at,
                };
                return Ok((StatusCode::CREATED, Json(created)).into_response());
            }
            Err(KeyStoreError::Exists(_)) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(ApiError::internal("three key id collisions in a row"))
}

/// Lists keys: a tenant's (the operator without `tenant_id`: every tenant's).
#[utoipa::path(get, path = "/v1/keys", operation_id = "list_keys", tag = "keys",
    params(TenantQuery),
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Json<KeyList>, ApiError> {
    let tenant = match (&caller.principal, query.requested()) {
        (Principal::Operator, None) => None,
        _ => Some(caller.tenant(query.requested(), Role::Admin)?),
    };
    let keys = state
        .auth
        .keys
        .keys(tenant.as_deref())
        .into_iter()
        .map(|(record, last_used_at)| KeyOut {
            key_id: record.key_id,
            tenant_id: record.tenant_id,
            role: record.role,
            name: record.name,
            created_at: record.created_at,
            created_by: record.created_by,
            last_used_at,
        })
        .collect();
    Ok(Json(KeyList { keys }))
}

/// Revokes a key.
#[utoipa::path(delete, path = "/v1/keys/{key_id}", operation_id = "delete_key", tag = "keys",
    params(("key_id" = String, Path, description = "Key id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> Result<Response, ApiError> {
    let keys = &state.auth.keys;
    // Another tenant's key answers like a missing one.
    let record = keys
        .key(&key_id)
        .filter(|record| {
            caller
                .principal
                .tenant()
                .is_none_or(|own| own == record.tenant_id)
        })
        .ok_or_else(|| ApiError::not_found("key", &key_id))?;
    caller.tenant(Some(&record.tenant_id), Role::Admin)?;
    keys.delete_key(&key_id).await?;
    tracing::info!(tenant = %record.tenant_id, key_id = %key_id, by = %caller.actor(), "key revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}
