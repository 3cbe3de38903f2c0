//! Who may send events: [`IngestAuth::authorize`] turns a request's headers into the
//! [`IngestScope`] its events are checked against, or the answer that refuses it. One small
//! function so every ingest endpoint (`POST /v1/events`, and the producer protocols) applies
//! the same rule:
//!
//! - `auth.mode = "keys"`: a key in `Authorization: Bearer <key>` or `X-Api-Key: <key>`;
//!   none: `401` with `WWW-Authenticate`; one that does not verify: `401` (counted per client
//!   address; past `auth.max_failed_per_minute`, `429`), except while the key store has not
//!   read the bucket yet (moments after a start, or while NATS is unreachable at start):
//!   then `503 keys_not_loaded` with `Retry-After`, since the key may well be valid; a key of
//!   another role: `403` (reading keys cannot send); an `ingest` key: its tenant; the
//!   operator key (verified from its file, also before the store is loaded): any tenant
//!   (events must name it).
//! - `auth.mode = "sidecar"`: no key; the configured tenant.

use super::response::Reply;
use axum::http::{header, HeaderMap, StatusCode};
use rtdash_runtime::keys::{FailedAuthLimiter, KeyStore};
use rtdash_shared::auth::{Principal, Role};
use std::net::IpAddr;

/// Requests refused for their credential; label `reason`: `missing`, `invalid`, `forbidden`,
/// `rate_limited`.
pub const AUTH_FAILURES: &str = "rtdash_agent_auth_failures_total";

/// `Retry-After` of a request refused because the key store is not loaded yet.
pub const KEYS_RETRY_AFTER_SECS: u64 = 1;

/// The tenant a request's events must be of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestScope {
    /// `Some`: events without `tenant_id` are this tenant's, events naming another are
    /// rejected (`tenant_mismatch`). `None` (the operator): events name their tenant.
    pub tenant: Option<String>,
}

/// How this agent authenticates producers.
#[derive(Debug)]
pub enum IngestAuth {
    /// Keys from the `rtdash_keys` bucket.
    Keys {
        /// The key store.
        keys: KeyStore,
        /// Failed attempts per client address.
        limiter: FailedAuthLimiter,
    },
    /// A trusted loopback sidecar of one tenant.
    Sidecar {
        /// The tenant.
        tenant: String,
    },
}

fn refuse(reason: &'static str, status: StatusCode, code: &'static str, message: &str) -> Reply {
    metrics::counter!(AUTH_FAILURES, "reason" => reason).increment(1);
    Reply::error(status, code, message)
}

/// The key a request presents: `Authorization: Bearer`, else `X-Api-Key`.
pub(crate) fn presented(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim()
        });
    bearer
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|key| !key.is_empty())
}

impl IngestAuth {
    /// The key store, when keys authenticate producers.
    pub fn key_store(&self) -> Option<KeyStore> {
        match self {
            IngestAuth::Keys { keys, .. } => Some(keys.clone()),
            IngestAuth::Sidecar { .. } => None,
        }
    }

    /// The scope of a request from `ip` with `headers`, or the reply refusing it.
    pub fn authorize(&self, headers: &HeaderMap, ip: IpAddr) -> Result<IngestScope, Reply> {
        let (keys, limiter) = match self {
            IngestAuth::Sidecar { tenant } => {
                return Ok(IngestScope {
                    tenant: Some(tenant.clone()),
                })
            }
            IngestAuth::Keys { keys, limiter } => (keys, limiter),
        };
        let Some(key) = presented(headers) else {
            return Err(refuse(
                "missing",
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an `ingest` key is required: `Authorization: Bearer <key>` or `X-Api-Key: <key>`",
            ));
        };
        if let Err(retry) = limiter.check(ip) {
            metrics::counter!(AUTH_FAILURES, "reason" => "rate_limited").increment(1);
            return Err(Reply::overloaded(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "too many failed authentications from this address; retry later",
                retry.as_secs().max(1),
            ));
        }
        match keys.verify(key) {
            None if !keys.is_loaded() => {
                // Not a failed attempt: the key may be one the store has not read yet.
                metrics::counter!(crate::metrics::REQUESTS_THROTTLED, "reason" => "keys_not_loaded")
                    .increment(1);
                Err(Reply::overloaded(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "keys_not_loaded",
                    "the agent has not read its API keys yet; retry in a moment",
                    KEYS_RETRY_AFTER_SECS,
                ))
            }
            None => {
                limiter.failed(ip);
                Err(refuse(
                    "invalid",
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the key is not valid (unknown, revoked or mistyped)",
                ))
            }
            Some(Principal::Operator) => Ok(IngestScope { tenant: None }),
            Some(Principal::Tenant {
                tenant,
                role: Role::Ingest,
                ..
            }) => Ok(IngestScope {
                tenant: Some(tenant),
            }),
            Some(Principal::Tenant { role, .. }) => Err(refuse(
                "forbidden",
                StatusCode::FORBIDDEN,
                "forbidden",
                &format!("sending events needs an `ingest` key (this key is `{role}`)"),
            )),
            Some(Principal::Link { .. }) => Err(refuse(
                "forbidden",
                StatusCode::FORBIDDEN,
                "forbidden",
                "a dashboard-link token cannot send events",
            )),
        }
    }
}

/// Who may read `/metrics`: anyone with `auth.metrics_public`, else the operator key.
#[derive(Debug)]
pub struct MetricsAccess {
    /// `auth.metrics_public`.
    pub public: bool,
    /// The operator key, if configured.
    pub operator: Option<rtdash_shared::auth::Token>,
}

impl MetricsAccess {
    /// `Ok` when the request may read `/metrics`, else the status and message refusing it.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
        if self.public {
            return Ok(());
        }
        let presented = presented(headers).and_then(rtdash_shared::auth::Token::parse);
        match (&self.operator, presented) {
            (Some(operator), Some(token))
                if token.id == operator.id && token.matches(&operator.secret_sha256()) =>
            {
                Ok(())
            }
            (_, Some(_)) => Err((StatusCode::FORBIDDEN, "`/metrics` is for the operator key")),
            (_, None) => Err((
                StatusCode::UNAUTHORIZED,
                "`/metrics` needs the operator key (`Authorization: Bearer <key>`), or auth.metrics_public = true",
            )),
        }
    }
}

/// Why the agent cannot authenticate producers as configured.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// The operator key file is unusable.
    #[error(transparent)]
    OperatorKey(#[from] rtdash_runtime::keys::OperatorKeyError),
    /// The keys bucket cannot be opened.
    #[error(
        "bucket {bucket} (API keys) unavailable; at an edge site it is a mirror the site's \
         setup creates (deploy/edge/keys-mirror.json), or run the agent as a loopback sidecar \
         of one tenant (auth.mode = \"sidecar\")",
        bucket = rtdash_shared::names::KEYS_BUCKET
    )]
    Bucket(#[source] async_nats::jetstream::context::KeyValueError),
}

/// The agent's authentication as configured: the ingest rule, who reads `/metrics`, and the
/// key store's background task to run (keys mode).
pub struct AuthSetup {
    /// The ingest rule.
    pub ingest: IngestAuth,
    /// `/metrics`.
    pub metrics: MetricsAccess,
    /// Runs the key store until shutdown (keys mode).
    pub task: Option<rtdash_runtime::keys::KeyStoreTask>,
}

impl AuthSetup {
    /// Reads the operator key and, in keys mode, opens the keys bucket (`js` is the agent's
    /// JetStream domain).
    pub async fn build(
        config: &crate::config::AuthConfig,
        js: &async_nats::jetstream::Context,
    ) -> Result<Self, AuthSetupError> {
        let operator = config
            .operator_key_file
            .as_deref()
            .map(rtdash_runtime::keys::read_operator_key)
            .transpose()?;
        let (ingest, task) = match config.mode {
            crate::config::AuthMode::Sidecar => (
                IngestAuth::Sidecar {
                    tenant: config.tenant.clone().unwrap_or_default(),
                },
                None,
            ),
            crate::config::AuthMode::Keys => {
                let kv = js
                    .get_key_value(rtdash_shared::names::KEYS_BUCKET)
                    .await
                    .map_err(AuthSetupError::Bucket)?;
                let (keys, task) = KeyStore::new(kv, operator.as_ref());
                (
                    IngestAuth::Keys {
                        keys,
                        limiter: FailedAuthLimiter::new(config.max_failed_per_minute),
                    },
                    Some(task),
                )
            }
        };
        Ok(Self {
            ingest,
            metrics: MetricsAccess {
                public: config.metrics_public,
                operator,
            },
            task,
        })
    }
}

impl IngestAuth {
    /// Whether keys can be verified (the key store has caught up; always in sidecar mode).
    pub fn is_ready(&self) -> bool {
        match self {
            IngestAuth::Keys { keys, .. } => keys.is_loaded(),
            IngestAuth::Sidecar { .. } => true,
        }
    }
}

/// `/metrics` behind [`MetricsAccess`].
pub fn metrics_routes(
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
    access: MetricsAccess,
) -> axum::Router {
    let access = std::sync::Arc::new(access);
    rtdash_runtime::admin::metrics_routes(prometheus).route_layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let access = std::sync::Arc::clone(&access);
            async move {
                use axum::response::IntoResponse;
                match access.check(request.headers()) {
                    Ok(()) => next.run(request).await,
                    Err((status, message)) => {
                        let mut response =
                            Reply::error(status, "unauthorized", message).into_response();
                        if status == StatusCode::UNAUTHORIZED {
                            response.headers_mut().insert(
                                header::WWW_AUTHENTICATE,
                                axum::http::HeaderValue::from_static("Bearer realm=\"rtdash\""),
                            );
                        }
                        response
                    }
                }
            }
        },
    ))
}
