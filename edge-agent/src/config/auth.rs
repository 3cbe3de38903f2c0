//! `[auth]`: who may send events to this agent.

use rtdash_runtime::config::ConfigError;
use rtdash_runtime::keys::limiter::DEFAULT_MAX_FAILED_PER_MINUTE;
use rtdash_shared::auth::is_tenant_id;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How producers authenticate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every request carries a key of role `ingest` (`Authorization: Bearer <key>` or
    /// `X-Api-Key: <key>`), checked against the `rtdash_keys` bucket; events take the key's
    /// tenant, and an event naming another is rejected (`tenant_mismatch`).
    #[default]
    Keys,
    /// A trusted sidecar of one tenant's service: no key, every event is of `auth.tenant`.
    /// Only on a loopback `listen` address (refused at start otherwise): whatever can reach
    /// the port is that tenant.
    Sidecar,
}

/// `[auth]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `keys` (default) or `sidecar`.
    pub mode: AuthMode,
    /// The one tenant of a sidecar (`mode = "sidecar"` only).
    pub tenant: Option<String>,
    /// File holding the operator key (`./deploy/up.sh` writes `<state>/operator.key`): the
    /// operator may send events of any tenant (naming it) and read `/metrics`.
    pub operator_key_file: Option<PathBuf>,
    /// Serve `/metrics` without the operator credential (its labels name tenants).
    pub metrics_public: bool,
    /// Failed authentications per client address and minute before the address is answered
    /// `429` until its minute ends (0: no limit).
    pub max_failed_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Keys,
            tenant: None,
            operator_key_file: None,
            metrics_public: false,
            max_failed_per_minute: DEFAULT_MAX_FAILED_PER_MINUTE,
        }
    }
}

impl AuthConfig {
    /// Checks the mode against the listen address; the error names the key.
    pub fn validate(&self, listen: &str) -> Result<(), ConfigError> {
        match self.mode {
            AuthMode::Sidecar => {
                let tenant = self.tenant.as_deref().unwrap_or_default();
                if !is_tenant_id(tenant) {
                    return Err(ConfigError::invalid(
                        "auth.tenant",
                        "must name the sidecar's tenant (1 to 128 of [A-Za-z0-9_-], not beginning with `_`) with auth.mode = \"sidecar\"",
                    ));
                }
                let loopback = listen
                    .parse::<std::net::SocketAddr>()
                    .is_ok_and(|addr| addr.ip().is_loopback());
                if !loopback {
                    return Err(ConfigError::invalid(
                        "auth.mode",
                        format!("`sidecar` needs a loopback `listen` address (127.0.0.1 or ::1), not {listen}: whatever reaches the port sends as the tenant"),
                    ));
                }
            }
            AuthMode::Keys => {
                if self.tenant.is_some() {
                    return Err(ConfigError::invalid(
                        "auth.tenant",
                        "is only for auth.mode = \"sidecar\" (keys carry their tenant)",
                    ));
                }
            }
        }
        if let Some(path) = &self.operator_key_file {
            rtdash_runtime::keys::read_operator_key(path).map_err(|err| {
                ConfigError::invalid(
                    "auth.operator_key_file",
                    rtdash_runtime::error_chain::ErrorChain(&err).to_string(),
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sidecar_needs_a_tenant_and_a_loopback_address() {
        let sidecar = AuthConfig {
            mode: AuthMode::Sidecar,
            tenant: Some("acme".into()),
            ..AuthConfig::default()
        };
        assert!(sidecar.validate("127.0.0.1:8081").is_ok());
        assert!(sidecar.validate("[::1]:8081").is_ok());
        let err = sidecar.validate("0.0.0.0:8081").unwrap_err().to_string();
        assert!(
            err.contains("auth.mode") && err.contains("loopback"),
            "{err}"
        );
        let no_tenant = AuthConfig {
            tenant: None,
            ..sidecar.clone()
        };
        assert!(no_tenant
            .validate("127.0.0.1:8081")
            .unwrap_err()
            .to_string()
            .contains("auth.tenant"));
        let reserved = AuthConfig {
            tenant: Some("_all".into()),
            ..sidecar
        };
        assert!(reserved.validate("127.0.0.1:8081").is_err());
        let keys_with_tenant = AuthConfig {
            tenant: Some("acme".into()),
            ..AuthConfig::default()
        };
        assert!(keys_with_tenant.validate("127.0.0.1:8081").is_err());
        assert!(AuthConfig::default().validate("0.0.0.0:8081").is_ok());
    }
}
