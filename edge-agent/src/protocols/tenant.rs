//! The one place an entry point learns whose events it receives.
//!
//! Today a tenant comes from configuration: Segment write keys map to tenants in
//! `segment.write_keys` (else `segment.tenant` serves every key), and `otlp.tenant`,
//! `statsd.tenant` name the tenant of their entry point (`POST /v1/events` names the tenant in
//! each event, as before). When access control lands (issue #16), the agent verifies ingest
//! keys (`rtd_...`, role `ingest`) and [`TenantResolver::resolve`] (the one function to
//! change: [`TenantResolver::by_key`]) returns the tenant of the verified key instead: the
//! entry points already hand it their credential (Segment's write key, the HTTP Basic user)
//! and need no change.

use std::collections::BTreeMap;

use axum::http::{header, HeaderMap};
use base64::Engine as _;

/// What a request presented to identify its producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// Nothing (OTLP without headers, StatsD datagrams).
    None,
    /// A Segment write key: the HTTP Basic user, or `writeKey` in the body.
    WriteKey(&'a str),
}

/// Why no tenant could be resolved; each maps to a `401`/`403` answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// The entry point needs a credential and the request had none.
    #[error("missing credentials: send the write key as the HTTP Basic user")]
    MissingCredential,
    /// The write key is not one of the configured keys.
    #[error("unknown write key")]
    UnknownKey,
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

    /// The tenant of a request that presented `credential`.
    pub fn resolve(&self, credential: Credential<'_>) -> Result<&str, TenantError> {
        match credential {
            Credential::None if self.credential_required => Err(TenantError::MissingCredential),
            Credential::WriteKey(key) if !self.keys.is_empty() => self.by_key(key),
            _ => self
                .tenant
                .as_deref()
                .ok_or(TenantError::NotConfigured(self.section)),
        }
    }

    /// The tenant of a write key. Today a configuration lookup; the hook the key store of
    /// access control (issue #16) replaces.
    fn by_key(&self, key: &str) -> Result<&str, TenantError> {
        self.keys
            .get(key)
            .map(String::as_str)
            .ok_or(TenantError::UnknownKey)
    }
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

    #[test]
    fn a_configured_tenant_needs_the_credential_it_requires() {
        let segment = TenantResolver::configured("segment", Some("acme".into()), true);
        assert_eq!(segment.resolve(Credential::WriteKey("k")), Ok("acme"));
        assert_eq!(
            segment.resolve(Credential::None),
            Err(TenantError::MissingCredential)
        );
        let keyed = TenantResolver::configured("segment", None, true).with_keys(
            [
                ("wk_a".to_owned(), "acme".to_owned()),
                ("wk_b".to_owned(), "globex".to_owned()),
            ]
            .into(),
        );
        assert_eq!(keyed.resolve(Credential::WriteKey("wk_b")), Ok("globex"));
        assert_eq!(keyed.resolve(Credential::WriteKey("wk_a")), Ok("acme"));
        assert_eq!(
            keyed.resolve(Credential::WriteKey("wk_c")),
            Err(TenantError::UnknownKey)
        );
        let otlp = TenantResolver::configured("otlp", None, false);
        assert_eq!(
            otlp.resolve(Credential::None),
            Err(TenantError::NotConfigured("otlp"))
        );
    }
}
