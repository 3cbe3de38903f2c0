//! The one place an entry point learns whose events it receives.
//!
//! When the agent authenticates producers with keys (`auth` on, the default), every HTTP
//! entry point needs a credential: an ingest key (`rtd_...`, role `ingest`: the tenant is the
//! key's), sent as Segment's write key (the HTTP Basic user or `writeKey`) or, for OTLP, as
//! `Authorization: Bearer` / `X-Api-Key` (the exporter's `headers`); or a Segment write key
//! the operator mapped to a tenant in `segment.write_keys`. The operator's key sends for the
//! tenant configured in `<section>.tenant`. An agent configured as a trusted loopback sidecar
//! of one tenant takes `<section>.tenant`, else its own tenant, without a credential.
//! StatsD (UDP, no credentials) serves `statsd.tenant` on a loopback listener.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::ingest::auth::IngestAuth;
use crate::ingest::response::Reply;
use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine as _;
use rtdash_shared::auth::{Principal, Role};

/// What a request presented to identify its producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// Nothing (OTLP without headers, StatsD datagrams).
    None,
    /// A Segment write key: the HTTP Basic user, or `writeKey` in the body.
    WriteKey(&'a str),
    /// An API key: `Authorization: Bearer` or `X-Api-Key`.
    ApiKey(&'a str),
}

/// Why no tenant could be resolved; each maps to a `401`/`403` answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// The entry point needs a credential and the request had none.
    #[error("missing credentials: send the write key as the HTTP Basic user")]
    MissingCredential,
    /// The key is neither a valid ingest key nor a configured write key.
    #[error("the key is not valid (unknown, revoked or mistyped)")]
    UnknownKey,
    /// Too many failed keys from this address (`429` with `Retry-After`, in seconds).
    #[error("too many failed authentications from this address; retry later")]
    RateLimited(u64),
    /// The agent has not read its keys yet: the key may be valid (`503` with `Retry-After`).
    #[error("the agent has not read its API keys yet; retry in a moment")]
    KeysNotLoaded,
    /// The key is valid but may not send events.
    #[error("{0}")]
    Forbidden(String),
    /// No tenant is configured for this entry point.
    #[error("no tenant is configured for this entry point (set `{0}.tenant` in the agent's configuration)")]
    NotConfigured(&'static str),
}

/// Resolves the tenant of a request (see the module docs).
#[derive(Clone, Debug)]
pub struct TenantResolver {
    /// The configuration section, for messages (`segment`, `otlp`, `statsd`).
    section: &'static str,
    /// The configured tenant.
    tenant: Option<String>,
    /// Whether a credential must be presented (Segment: its SDKs always send the write key).
    credential_required: bool,
    /// Write key -> tenant (`segment.write_keys`); when not empty, only these keys are let in.
    keys: BTreeMap<String, String>,
}

impl TenantResolver {
    /// The tenant configured in `section` (`<section>.tenant`).
    pub fn configured(
        section: &'static str,
        tenant: Option<String>,
        credential_required: bool,
    ) -> Self {
        Self {
            section,
            tenant,
            credential_required,
            keys: BTreeMap::new(),
        }
    }

    /// With the write keys of `keys` (key -> tenant): when not empty, a credential must be one
    /// of them and names its tenant.
    pub fn with_keys(mut self, keys: BTreeMap<String, String>) -> Self {
        self.keys = keys;
        self
    }

    /// The tenant of a request from `ip` that presented `credential`, authenticated by `auth`
    /// (a key that fails counts against the address, as on `POST /v1/events`).
    pub fn resolve(
        &self,
        credential: Credential<'_>,
        auth: &IngestAuth,
        ip: IpAddr,
    ) -> Result<String, TenantError> {
        let (keys, limiter) = match auth {
            IngestAuth::Sidecar { tenant } => {
                return match credential {
                    Credential::None if self.credential_required => {
                        Err(TenantError::MissingCredential)
                    }
                    Credential::WriteKey(key) if !self.keys.is_empty() => {
                        self.keys.get(key).cloned().ok_or(TenantError::UnknownKey)
                    }
                    _ => Ok(self.tenant.clone().unwrap_or_else(|| tenant.clone())),
                };
            }
            IngestAuth::Keys { keys, limiter } => (keys, limiter),
        };
        let key = match credential {
            Credential::None => return Err(TenantError::MissingCredential),
            Credential::WriteKey(key) | Credential::ApiKey(key) => key,
        };
        if let Some(tenant) = self.keys.get(key) {
            return Ok(tenant.clone());
        }
        if let Err(retry) = limiter.check(ip) {
            return Err(TenantError::RateLimited(retry.as_secs().max(1)));
        }
        match keys.verify(key) {
            None if !keys.is_loaded() => Err(TenantError::KeysNotLoaded),
            None => {
                limiter.failed(ip);
                Err(TenantError::UnknownKey)
            }
            Some(Principal::Tenant {
                tenant,
                role: Role::Ingest,
                ..
            }) => Ok(tenant),
            Some(Principal::Operator) => self
                .tenant
                .clone()
                .ok_or(TenantError::NotConfigured(self.section)),
            Some(Principal::Tenant { role, .. }) => Err(TenantError::Forbidden(format!(
                "sending events needs an `ingest` key (this key is `{role}`)"
            ))),
            Some(_) => Err(TenantError::Forbidden(
                "this credential cannot send events".to_owned(),
            )),
        }
    }
}

impl TenantError {
    /// The answer refusing a request for this reason (`code` names it for `401`/`403`).
    pub fn reply(&self, unauthorized_code: &'static str) -> Reply {
        let (status, code) = match self {
            TenantError::RateLimited(retry_after) => {
                metrics::counter!(crate::ingest::auth::AUTH_FAILURES, "reason" => "rate_limited")
                    .increment(1);
                return Reply::overloaded(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    self.to_string(),
                    *retry_after,
                );
            }
            TenantError::KeysNotLoaded => {
                metrics::counter!(crate::metrics::REQUESTS_THROTTLED, "reason" => "keys_not_loaded")
                    .increment(1);
                return Reply::overloaded(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "keys_not_loaded",
                    self.to_string(),
                    crate::ingest::auth::KEYS_RETRY_AFTER_SECS,
                );
            }
            TenantError::MissingCredential => (StatusCode::UNAUTHORIZED, "missing_credentials"),
            TenantError::UnknownKey => (StatusCode::UNAUTHORIZED, unauthorized_code),
            TenantError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            TenantError::NotConfigured(_) => (StatusCode::FORBIDDEN, "no_tenant"),
        };
        Reply::error(status, code, self.to_string())
    }
}

/// The client's address (the HTTP server's [`ClientAddr`]: the peer, or behind a proxy of
/// `http.trusted_proxies` the client it forwarded for; unspecified without a socket, in
/// tests).
pub fn client_ip(extensions: &axum::http::Extensions) -> IpAddr {
    rtdash_runtime::http::ClientAddr::of(extensions)
}

/// The user of an `Authorization: Basic` header (what Segment SDKs send: the write key, no
/// password), if there is one.
pub fn basic_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(user, _)| user);
    (!user.is_empty()).then(|| user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_basic_user_is_the_write_key() {
        let mut headers = HeaderMap::new();
        assert_eq!(basic_user(&headers), None);
        // base64("wk_123:")
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic d2tfMTIzOg=="),
        );
        assert_eq!(basic_user(&headers).as_deref(), Some("wk_123"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_user(&headers), None);
    }

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn a_sidecar_serves_the_configured_tenant_without_a_credential() {
        let sidecar = IngestAuth::Sidecar {
            tenant: "acme".into(),
        };
        let segment = TenantResolver::configured("segment", None, true);
        assert_eq!(
            segment.resolve(Credential::None, &sidecar, LOOPBACK),
            Err(TenantError::MissingCredential),
            "Segment SDKs always send their write key"
        );
        assert_eq!(
            segment
                .resolve(Credential::WriteKey("any"), &sidecar, LOOPBACK)
                .as_deref(),
            Ok("acme")
        );
        let keyed = TenantResolver::configured("segment", None, true)
            .with_keys([("wk_b".to_owned(), "globex".to_owned())].into());
        assert_eq!(
            keyed
                .resolve(Credential::WriteKey("wk_b"), &sidecar, LOOPBACK)
                .as_deref(),
            Ok("globex")
        );
        assert_eq!(
            keyed.resolve(Credential::WriteKey("wk_c"), &sidecar, LOOPBACK),
            Err(TenantError::UnknownKey)
        );
        let otlp = TenantResolver::configured("otlp", Some("globex".into()), false);
        assert_eq!(
            otlp.resolve(Credential::None, &sidecar, LOOPBACK)
                .as_deref(),
            Ok("globex")
        );
    }
}
