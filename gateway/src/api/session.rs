//! `/v1/session`: browser sign-in with a key, kept as a cookie (`rtdash_session`: HttpOnly,
//! SameSite=Strict, Path=/, Secure on https or with `auth.secure_cookies`). The cookie holds
//! a stateless signed token `<key_id>.<expiry>.<mac>` (see `rtdash_shared::auth::session`):
//! every gateway sharing the bucket accepts it, and it is valid only while its key exists.

use super::ApiJson;
use crate::auth::layer::ClientIp;
use crate::auth::{Caller, SESSION_COOKIE};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rtdash_shared::auth::{Principal, Role, Token};
use rtdash_shared::time::now_millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Body of `POST /v1/session`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// A key of role `viewer` or higher, or the operator key.
    pub key: String,
}

/// Who the credential of the request is.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    /// `operator`, `key` or `link`.
    pub kind: String,
    /// Tenant (absent for the operator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Role (keys; `viewer` for a link).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Key id (keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Key name (keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The one dashboard (links).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard_id: Option<String>,
    /// Fixed filters (links).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<BTreeMap<String, String>>,
}

fn session_cookie(value: &str, max_age: u64, secure: bool) -> Result<HeaderValue, ApiError> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .map_err(|_| ApiError::internal("session cookie is not a header value"))
}

fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// Signs in: `204` with the session cookie.
#[utoipa::path(post, path = "/v1/session", operation_id = "create_session", tag = "session",
    request_body = SignIn, security(()),
    responses((status = 204, description = "Signed in; `Set-Cookie: rtdash_session=...`"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(input): ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    let https = over_https(&headers);
    let guard = &state.auth;
    if let Err(retry) = guard.limiter.check(ip) {
        return Err(ApiError::TooManyRequests {
            message: "too many failed authentications from this address; retry later".to_owned(),
            retry_after_secs: retry.as_secs().max(1),
        });
    }
    let Some(principal) = guard.keys.verify(&input.key) else {
        guard.limiter.failed(ip);
        return Err(ApiError::unauthorized(
            "the key is not valid (unknown, revoked or mistyped)",
        ));
    };
    let key_id =
        match principal {
            Principal::Tenant {
                role: Role::Ingest, ..
            } => return Err(ApiError::forbidden(
                "an `ingest` key cannot sign in: it reads nothing; use a `viewer` key or higher",
            )),
            Principal::Link { .. } => {
                return Err(ApiError::forbidden(
                    "a dashboard-link token does not sign in; open its `/embed/<token>` URL",
                ))
            }
            Principal::Tenant { key_id, .. } => key_id,
            Principal::Operator => Token::parse(&input.key)
                .map(|token| token.id)
                .ok_or_else(|| ApiError::internal("a verified key does not parse"))?,
        };
    let ttl = guard.config.session_ttl_secs;
    let expiry = now_millis() / 1000 + ttl as i64;
    let token = guard
        .keys
        .sign_session(&key_id, expiry)
        .ok_or_else(|| ApiError::unavailable("sessions are not set up yet; retry shortly"))?;
    let cookie = session_cookie(&token, ttl, https || guard.config.secure_cookies)?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Who the request's credential is (key, session or link): `401` when none.
#[utoipa::path(get, path = "/v1/session", operation_id = "get_session", tag = "session",
    responses((status = 200, body = SessionOut), (status = 401, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, caller: Caller) -> Json<SessionOut> {
    let out = match caller.principal {
        Principal::Operator => SessionOut {
            kind: "operator".into(),
            tenant_id: None,
            role: None,
            key_id: None,
            name: None,
            dashboard_id: None,
            dimensions: None,
        },
        Principal::Tenant {
            tenant,
            role,
            key_id,
        } => SessionOut {
            kind: "key".into(),
            name: state.auth.keys.key(&key_id).map(|record| record.name),
            tenant_id: Some(tenant),
            role: Some(role),
            key_id: Some(key_id),
            dashboard_id: None,
            dimensions: None,
        },
        Principal::Link {
            tenant,
            dashboard_id,
            filters,
            ..
        } => SessionOut {
            kind: "link".into(),
            tenant_id: Some(tenant),
            role: Some(Role::Viewer),
            key_id: None,
            name: None,
            dashboard_id: Some(dashboard_id),
            dimensions: Some(filters),
        },
    };
    Json(out)
}

/// Signs out: clears the cookie (`204`). The token itself stays valid until it expires or its
/// key is revoked: revoke the key to end every session of it at once.
#[utoipa::path(delete, path = "/v1/session", operation_id = "delete_session", tag = "session",
    security(()),
    responses((status = 204, description = "Signed out; the cookie is cleared")))]
pub async fn delete(headers: HeaderMap) -> Result<Response, ApiError> {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie("", 0, over_https(&headers))?,
    );
    Ok(response)
}
