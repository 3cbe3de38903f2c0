//! The middleware in front of every route: a presented credential is verified here (the
//! handlers' [`Caller`](super::Caller) then requires one), and `/metrics` is kept for the
//! operator.

use super::credential::{self, Via};
use crate::error::ApiError;
use crate::metrics as names;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rtdash_runtime::http::ClientAddr;
use rtdash_shared::auth::Principal;
use std::net::IpAddr;

/// A verified credential, as a request extension.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// Who.
    pub principal: Principal,
    /// From where (the CSRF rule applies to the cookie).
    pub via: Via,
}

/// The client's address ([`ClientAddr`], set by the HTTP server: the TCP peer, or behind a
/// proxy of `http.trusted_proxies` the client it forwarded for; unspecified for requests that
/// did not come over a socket, such as tests' `oneshot`).
pub fn client_ip(request: &Request) -> IpAddr {
    ClientAddr::of(request.extensions())
}

/// The client's address as an extractor ([`client_ip`]).
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(ClientAddr::of(&parts.extensions)))
    }
}

fn refused(reason: &'static str, error: ApiError) -> Response {
    metrics::counter!(names::AUTH_FAILURES, "reason" => reason).increment(1);
    error.into_response()
}

/// Verifies the credential a request presents, if any:
/// - a bearer key or link token that does not verify: `401` (counted against the client's
///   address; past `auth.max_failed_per_minute`, `429` with `Retry-After`);
/// - a session cookie that no longer verifies (expired, signed out, key revoked) is ignored:
///   the request goes on without a principal, so signing in again works;
/// - a cookie-authenticated change without a same-origin proof: `403`;
/// - `?access_token=` must be a dashboard-link token (keys never travel in URLs).
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = match credential::presented(request.method(), request.uri(), request.headers())
    {
        Ok(Some(presented)) => presented,
        Ok(None) => return next.run(request).await,
        Err(problem) => return refused("invalid", ApiError::unauthorized(problem)),
    };
    let guard = &state.auth;
    let principal = match presented.via {
        Via::Cookie => match guard.keys.verify_session(&presented.token) {
            Some(principal) => {
                if !credential::same_origin(request.method(), request.headers()) {
                    return refused(
                        "csrf",
                        ApiError::forbidden(
                            "a change authenticated by the session cookie must come from this \
                             site's pages (same-origin `Origin` or `Sec-Fetch-Site`)",
                        ),
                    );
                }
                principal
            }
            None => return next.run(request).await,
        },
        Via::Bearer | Via::QueryToken => {
            let ip = client_ip(&request);
            if let Err(retry) = guard.limiter.check(ip) {
                return refused(
                    "rate_limited",
                    ApiError::TooManyRequests {
                        message: "too many failed authentications from this address; retry later"
                            .to_owned(),
                        retry_after_secs: retry.as_secs().max(1),
                    },
                );
            }
            match guard.keys.verify(&presented.token) {
                Some(principal @ Principal::Link { .. }) => principal,
                Some(_) if presented.via == Via::QueryToken => {
                    guard.limiter.failed(ip);
                    return refused(
                        "invalid",
                        ApiError::unauthorized(
                            "only dashboard-link tokens may be sent as `access_token`; send keys \
                             as `Authorization: Bearer <key>`",
                        ),
                    );
                }
                Some(principal) => principal,
                None => {
                    guard.limiter.failed(ip);
                    return refused(
                        "invalid",
                        ApiError::unauthorized(
                            "the credential is not valid (unknown, revoked, expired or mistyped)",
                        ),
                    );
                }
            }
        }
    };
    tracing::Span::current().record("enduser.id", principal.id());
    request.extensions_mut().insert(Authenticated {
        principal,
        via: presented.via,
    });
    next.run(request).await
}

/// `/metrics` for the operator only, unless `auth.metrics_public`.
pub async fn metrics_access(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.auth.config.metrics_public {
        return next.run(request).await;
    }
    match request.extensions().get::<Authenticated>() {
        Some(Authenticated {
            principal: Principal::Operator,
            ..
        }) => next.run(request).await,
        Some(_) => ApiError::forbidden("`/metrics` is for the operator credential").into_response(),
        None => ApiError::unauthorized(
            "`/metrics` needs the operator credential (`Authorization: Bearer <operator key>`), \
             or `auth.metrics_public = true`",
        )
        .into_response(),
    }
}
