//! `[auth]` of the gateway.

use rtdash_runtime::keys::limiter::DEFAULT_MAX_FAILED_PER_MINUTE;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How the gateway authenticates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// File holding the operator key (`./deploy/up.sh` writes `<state>/operator.key`, mode
    /// 0600). Without it there is no operator credential: only tenant keys authenticate, and
    /// nobody can create the first key of a tenant.
    pub operator_key_file: Option<PathBuf>,
    /// Serve `/metrics` without the operator credential. Off by default: its labels name
    /// tenants and show their traffic. Turn it on only where the port is reachable by a
    /// trusted scraper alone and that scraper cannot send a bearer token.
    pub metrics_public: bool,
    /// Failed authentications per client address and minute before the address is answered
    /// `429` until its minute ends (0: no limit).
    pub max_failed_per_minute: u32,
    /// Mark the session cookie `Secure` even on plain HTTP requests (behind a TLS-terminating
    /// proxy). It is always `Secure` on requests that came over https
    /// (`X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// How long a browser session lasts, in seconds (it also ends when its key is revoked).
    pub session_ttl_secs: u64,
    /// Most keys per tenant.
    pub max_keys_per_tenant: usize,
    /// Most links per dashboard.
    pub max_links_per_dashboard: usize,
    /// `frame-ancestors` of `/embed/<token>` pages: who may show an embedded dashboard in a
    /// frame (`*`: anyone holding a link; name the embedding product's origin to narrow it).
    /// Every other page may not be framed.
    pub embed_frame_ancestors: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            operator_key_file: None,
            metrics_public: false,
            max_failed_per_minute: DEFAULT_MAX_FAILED_PER_MINUTE,
            secure_cookies: false,
            session_ttl_secs: 12 * 3600,
            max_keys_per_tenant: 1_000,
            max_links_per_dashboard: 100,
            embed_frame_ancestors: "*".to_owned(),
        }
    }
}
