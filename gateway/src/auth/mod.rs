//! Who a request is and what it may do (issue #16; the threat model and the roles table are
//! in docs/security.md).
//!
//! - [`credential`]: the credential of a request: `Authorization: Bearer <key or link
//!   token>`, the `rtdash_session` cookie, or `?access_token=<link token>` on a `GET` (the
//!   only way an `EventSource` in an embedded dashboard can send one);
//! - [`layer`]: the middleware in front of every route: verifies a presented credential
//!   (`401` when it does not verify, `429` after too many failures from one address), the
//!   CSRF rule for cookie-authenticated changes, and `/metrics` for the operator;
//! - [`caller`]: the [`Caller`] extractor every handler takes (`401` without a credential)
//!   and the tenant and role rules: the tenant comes from the key, a differing `tenant_id`
//!   is `403`, a role too low is `403`, the operator must name the tenant;
//! - [`config`]: the `auth` section of the configuration.
//!
//! The static UI, `/healthz`, `/readyz` and `/v1/openapi.json` need no credential; everything
//! else does.

pub mod caller;
pub mod config;
pub mod credential;
pub mod layer;

pub use caller::Caller;
pub use config::AuthConfig;

use rtdash_runtime::keys::{FailedAuthLimiter, KeyStore};

/// The `WWW-Authenticate` challenge of every `401`.
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"rtdash\"";
/// The browser session cookie.
pub const SESSION_COOKIE: &str = "rtdash_session";

/// The key store, the failed-attempt limiter and the settings. Shared by every request.
#[derive(Debug)]
pub struct Guard {
    /// Keys, links and sessions.
    pub keys: KeyStore,
    /// Failed authentications per client address.
    pub limiter: FailedAuthLimiter,
    /// `[auth]`.
    pub config: AuthConfig,
}

impl Guard {
    /// A guard over `keys` with `config`.
    pub fn new(keys: KeyStore, config: AuthConfig) -> Self {
        Self {
            limiter: FailedAuthLimiter::new(config.max_failed_per_minute),
            keys,
            config,
        }
    }
}
