//! `/v1/dashboards/{id}/links`: signed links that show one dashboard read-only, optionally
//! until a time and within fixed dimension filters, to whoever holds the URL (an embedded
//! dashboard in another product). Managed by the tenant's `admin` keys (and the operator);
//! the bucket keeps only the SHA-256 of a link token's secret. A link grants `GET` of its
//! dashboard, its stream and the metric queries of its widgets, with its filters merged in:
//! nothing else (see `auth::Caller::link`).

use super::{ApiJson, ApiQuery, TenantQuery};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::model::requested_tenant;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rtdash_runtime::keys::KeyStoreError;
use rtdash_shared::auth::{LinkRecord, Role, Token, TokenKind};
use rtdash_shared::event::is_identifier;
use rtdash_shared::time::{format_rfc3339, now_millis, parse_rfc3339};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Most filters on one link.
const MAX_FILTERS: usize = 16;
/// Longest filter value, in characters.
const MAX_FILTER_VALUE: usize = 1024;

/// Body of `POST /v1/dashboards/{id}/links`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkInput {
    /// Tenant (or as the query parameter).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The link stops working at this time (RFC 3339); never, when absent.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Filters merged into every widget's query (they override the widget's own).
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
}

/// A link as answered (the token only when created).
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkOut {
    /// Public id.
    pub link_id: String,
    /// The dashboard.
    pub dashboard_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Fixed filters.
    pub dimensions: BTreeMap<String, String>,
    /// Expiry (RFC 3339), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// `operator` or the creating key's id.
    pub created_by: String,
    /// The token (`rtl_<link_id>_<secret>`): in the creating answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The page showing the dashboard (`/embed/<token>`, relative to the gateway): in the
    /// creating answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl From<LinkRecord> for LinkOut {
    fn from(link: LinkRecord) -> Self {
        Self {
            link_id: link.link_id,
            dashboard_id: link.dashboard_id,
            tenant_id: link.tenant_id,
            dimensions: link.dimensions,
            expires_at: link.expires_at,
            created_at: link.created_at,
            created_by: link.created_by,
            token: None,
            url: None,
        }
    }
}

/// `{"links": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkList {
    /// By creation time.
    pub links: Vec<LinkOut>,
}

fn check_filters(filters: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if filters.len() > MAX_FILTERS {
        return Err(ApiError::bad_request(format!(
            "a link has at most {MAX_FILTERS} filters"
        )));
    }
    for (name, value) in filters {
        if !is_identifier(name, 128) || value.chars().count() > MAX_FILTER_VALUE {
            return Err(ApiError::bad_request(format!(
                "filter `{name}`: names are 1 to 128 characters from [A-Za-z0-9_-], values at most {MAX_FILTER_VALUE} characters"
            )));
        }
    }
    Ok(())
}

/// Creates a link to a dashboard.
#[utoipa::path(post, path = "/v1/dashboards/{id}/links", operation_id = "create_dashboard_link",
    tag = "dashboards", request_body = LinkInput,
    params(("id" = String, Path, description = "Dashboard id"), TenantQuery),
    responses((status = 201, body = LinkOut), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
    ApiJson(input): ApiJson<LinkInput>,
) -> Result<Response, ApiError> {
    let requested = requested_tenant(query.requested(), input.tenant_id.as_deref())?;
    let tenant = caller.tenant(requested, Role::Admin)?;
    crate::api::dashboards::load(&state, &tenant, &id)?;
    check_filters(&input.dimensions)?;
    let now = now_millis();
    let expires_at_ms = input
        .expires_at
        .as_deref()
        .map(|text| {
            parse_rfc3339(text).ok_or_else(|| {
                ApiError::bad_request(
                    "`expires_at` must be an RFC 3339 time such as 2030-01-15T13:00:00Z",
                )
            })
        })
        .transpose()?;
    if expires_at_ms.is_some_and(|at| at <= now) {
        return Err(ApiError::bad_request("`expires_at` is in the past"));
    }
    let keys = &state.auth.keys;
    let limit = state.auth.config.max_links_per_dashboard;
    if keys.links(&tenant, &id).len() >= limit {
        return Err(ApiError::conflict(format!(
            "dashboard `{id}` has {limit} links, the most allowed; revoke one first"
        )));
    }
    for _ in 0..3 {
        let token = Token::generate(TokenKind::Link).map_err(KeyStoreError::from)?;
        let record = LinkRecord {
            link_id: token.id.clone(),
            tenant_id: tenant.clone(),
            dashboard_id: id.clone(),
            dimensions: input.dimensions.clone(),
            expires_at: expires_at_ms.map(format_rfc3339),
            expires_at_ms,
            secret_sha256: token.secret_sha256(),
            created_at: format_rfc3339(now),
            created_by: caller.actor(),
        };
        match keys.create_link(&record).await {
            Ok(()) => {
                tracing::info!(tenant = %tenant, dashboard = %id, link_id = %record.link_id, "dashboard link created");
                let secret = token.reveal();
                let mut out = LinkOut::from(record);
                out.url = Some(format!("/embed/{secret}"));
                out.token = Some(secret);
                return Ok((StatusCode::CREATED, Json(out)).into_response());
            }
            Err(KeyStoreError::Exists(_)) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(ApiError::internal("three link id collisions in a row"))
}

/// Lists a dashboard's links (without their tokens).
#[utoipa::path(get, path = "/v1/dashboards/{id}/links", operation_id = "list_dashboard_links",
    tag = "dashboards",
    params(("id" = String, Path, description = "Dashboard id"), TenantQuery),
    responses((status = 200, body = LinkList), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Json<LinkList>, ApiError> {
    let tenant = caller.tenant(query.requested(), Role::Admin)?;
    crate::api::dashboards::load(&state, &tenant, &id)?;
    let links = state
        .auth
        .keys
        .links(&tenant, &id)
        .into_iter()
        .map(LinkOut::from)
        .collect();
    Ok(Json(LinkList { links }))
}

/// Revokes a link.
#[utoipa::path(delete, path = "/v1/dashboards/{id}/links/{link_id}",
    operation_id = "delete_dashboard_link", tag = "dashboards",
    params(("id" = String, Path, description = "Dashboard id"),
           ("link_id" = String, Path, description = "Link id"), TenantQuery),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, link_id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(query.requested(), Role::Admin)?;
    let keys = &state.auth.keys;
    keys.link(&link_id)
        .filter(|link| link.tenant_id == tenant && link.dashboard_id == id)
        .ok_or_else(|| ApiError::not_found("link", &link_id))?;
    keys.delete_link(&link_id).await?;
    tracing::info!(tenant = %tenant, dashboard = %id, link_id = %link_id, "dashboard link revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}
