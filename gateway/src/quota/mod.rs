//! Tenant quotas (issue #16): per-tenant limits on what a tenant may create and hold open,
//! defaults from `[quotas]`, the operator's settings per tenant in the keys bucket
//! (`quota.<tenant>`, see [`QuotaSettings`]), checked where things are created.
//!
//! - [`QuotaConfig`]: the `[quotas]` section, the defaults of every tenant;
//! - [`Limits`]: a tenant's effective limits (settings over defaults), also used for the use
//!   against them;
//! - [`streams`]: open live streams per tenant, held by a guard while a stream is open;
//! - [`report`]: every tenant's use against its limits on `/metrics`.
//!
//! Counts are read from this gateway's copy of the config bucket at the time of a create, so
//! creates racing on several gateways can exceed a count limit by the number of such
//! concurrent creates; the limits exist to stop a tenant growing without bound, not to be
//! exact to the unit.

pub mod report;
pub mod streams;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::ConfigStore;
use rtdash_runtime::keys::KeyStore;
use rtdash_shared::names::{
    alert_config_key, dashboard_config_key, metric_config_key, silence_config_key,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `[quotas]`: the limits of a tenant the operator has not set otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// Dashboards per tenant.
    pub dashboards: u64,
    /// Widgets on one dashboard.
    pub widgets_per_dashboard: u64,
    /// Alert rules per tenant.
    pub alert_rules: u64,
    /// The tenant's own metric definitions (global ones do not count).
    pub metric_definitions: u64,
    /// Silences per tenant (in force, pending or expired and not purged yet).
    pub silences: u64,
    /// Live streams of the tenant open at once on one gateway.
    pub open_streams: u64,
    /// The highest `max_series_per_window` a definition of the tenant may set.
    pub max_series_per_window: u64,
    /// Bytes the tenant's dashboards, rules, definitions and silences may take in the config
    /// bucket (keys and values).
    pub config_bytes: u64,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            dashboards: 100,
            widgets_per_dashboard: 50,
            alert_rules: 200,
            metric_definitions: 100,
            silences: 1000,
            open_streams: 2000,
            max_series_per_window: 100_000,
            config_bytes: 16 * 1024 * 1024,
        }
    }
}

impl QuotaConfig {
    /// The limits as [`Limits`].
    pub fn limits(&self) -> Limits {
        Limits {
            dashboards: self.dashboards,
            widgets_per_dashboard: self.widgets_per_dashboard,
            alert_rules: self.alert_rules,
            metric_definitions: self.metric_definitions,
            silences: self.silences,
            open_streams: self.open_streams,
            max_series_per_window: self.max_series_per_window,
            config_bytes: self.config_bytes,
        }
    }

    /// The first key that is out of range, with why.
    pub fn invalid(&self) -> Option<(&'static str, String)> {
        self.limits().invalid()
    }
}

/// A tenant's limits (or its use against them: counts now, the largest dashboard's widgets,
/// the highest `max_series_per_window` of its definitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    /// Dashboards.
    pub dashboards: u64,
    /// Widgets on one dashboard.
    pub widgets_per_dashboard: u64,
    /// Alert rules.
    pub alert_rules: u64,
    /// The tenant's own metric definitions.
    pub metric_definitions: u64,
    /// Silences (not yet purged).
    pub silences: u64,
    /// Live streams open at once (per gateway).
    pub open_streams: u64,
    /// The ceiling of a definition's `max_series_per_window`.
    pub max_series_per_window: u64,
    /// Bytes in the config bucket.
    pub config_bytes: u64,
}

/// Largest value a limit may be set to.
pub const MAX_LIMIT: u64 = u32::MAX as u64;

impl Limits {
    /// The first limit out of range (`max_series_per_window` at least 1, every limit at
    /// most [`MAX_LIMIT`]), with why.
    pub fn invalid(&self) -> Option<(&'static str, String)> {
        if self.max_series_per_window == 0 {
            return Some(("max_series_per_window", "must be at least 1".to_owned()));
        }
        self.named()
            .into_iter()
            .find(|(_, value)| *value > MAX_LIMIT)
            .map(|(name, _)| (name, format!("must be at most {MAX_LIMIT}")))
    }

    /// Every limit with its name.
    pub fn named(&self) -> [(&'static str, u64); 8] {
        [
            ("dashboards", self.dashboards),
            ("widgets_per_dashboard", self.widgets_per_dashboard),
            ("alert_rules", self.alert_rules),
            ("metric_definitions", self.metric_definitions),
            ("silences", self.silences),
            ("open_streams", self.open_streams),
            ("max_series_per_window", self.max_series_per_window),
            ("config_bytes", self.config_bytes),
        ]
    }
}

/// What the operator set for one tenant (`quota.<tenant>` in the keys bucket, and the body of
/// `PUT /v1/tenants/{tenant}/quotas`): a limit left out (or `null`) is the default of
/// `[quotas]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaSettings {
    /// Dashboards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboards: Option<u64>,
    /// Widgets on one dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widgets_per_dashboard: Option<u64>,
    /// Alert rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_rules: Option<u64>,
    /// The tenant's own metric definitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_definitions: Option<u64>,
    /// Silences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silences: Option<u64>,
    /// Live streams open at once (per gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_streams: Option<u64>,
    /// The ceiling of a definition's `max_series_per_window` (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_series_per_window: Option<u64>,
    /// Bytes in the config bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_bytes: Option<u64>,
    /// Events per second the tenant may send through each edge agent (enforced by the
    /// agents; 0: no limit; unset: the agent's `ingest.tenant_events_per_second`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_per_second: Option<u64>,
}

impl QuotaSettings {
    /// These settings over `defaults`.
    pub fn over(&self, defaults: Limits) -> Limits {
        Limits {
            dashboards: self.dashboards.unwrap_or(defaults.dashboards),
            widgets_per_dashboard: self
                .widgets_per_dashboard
                .unwrap_or(defaults.widgets_per_dashboard),
            alert_rules: self.alert_rules.unwrap_or(defaults.alert_rules),
            metric_definitions: self
                .metric_definitions
                .unwrap_or(defaults.metric_definitions),
            silences: self.silences.unwrap_or(defaults.silences),
            open_streams: self.open_streams.unwrap_or(defaults.open_streams),
            max_series_per_window: self
                .max_series_per_window
                .unwrap_or(defaults.max_series_per_window),
            config_bytes: self.config_bytes.unwrap_or(defaults.config_bytes),
        }
    }
}

/// The operator's settings of `tenant` (none when there are none, or they do not decode: then
/// the defaults hold, and the problem is logged).
pub fn settings(keys: &KeyStore, tenant: &str) -> QuotaSettings {
    let Some(bytes) = keys.quota(tenant) else {
        return QuotaSettings::default();
    };
    serde_json::from_slice(&bytes).unwrap_or_else(|err| {
        tracing::warn!(%tenant, error = %err, "stored quota settings do not decode; defaults hold");
        QuotaSettings::default()
    })
}

/// The effective limits of `tenant`.
pub fn limits(keys: &KeyStore, config: &QuotaConfig, tenant: &str) -> Limits {
    settings(keys, tenant).over(config.limits())
}

/// `429 quota_exceeded` naming the limit, unless `used + adding` stays within `limit`.
pub fn check(name: &str, used: usize, adding: usize, limit: u64) -> Result<(), ApiError> {
    let after = u64::try_from(used.saturating_add(adding)).unwrap_or(u64::MAX);
    if after > limit {
        Err(ApiError::quota_exceeded(name, limit))
    } else {
        Ok(())
    }
}

/// How many keys of the config bucket begin with `prefix`.
fn count(store: &ConfigStore, prefix: &str) -> usize {
    store.list(prefix).len()
}

/// The tenant's dashboards.
pub fn dashboards(store: &ConfigStore, tenant: &str) -> usize {
    count(store, &dashboard_config_key(tenant, ""))
}

/// The tenant's alert rules.
pub fn alert_rules(store: &ConfigStore, tenant: &str) -> usize {
    count(store, &alert_config_key(tenant, ""))
}

/// The tenant's own metric definitions.
pub fn metric_definitions(store: &ConfigStore, tenant: &str) -> usize {
    count(store, &metric_config_key(Some(tenant), ""))
}

/// Config-bucket key prefixes that name a tenant as their second part.
pub const TENANT_PREFIXES: [&str; 4] = ["dashboard.", "alert.", "metric.", "silence."];

/// Bytes (keys and values) the tenant's entries take in the config bucket.
pub fn config_bytes(store: &ConfigStore, tenant: &str) -> usize {
    TENANT_PREFIXES
        .iter()
        .flat_map(|prefix| store.list(&format!("{prefix}{tenant}.")))
        .map(|(key, stored)| key.len() + stored.value.len())
        .sum()
}

/// `value`, to be stored under `key` of `tenant`, unless the tenant's entries would then take
/// more than its `config_bytes` (`429 quota_exceeded`).
pub fn within_config_bytes(
    state: &AppState,
    tenant: &str,
    key: &str,
    value: bytes::Bytes,
) -> Result<bytes::Bytes, ApiError> {
    let limit = limits(&state.auth.keys, &state.config.quotas, tenant).config_bytes;
    let replaced = state
        .store
        .get(key)
        .map_or(0, |stored| key.len() + stored.value.len());
    let used = config_bytes(&state.store, tenant).saturating_sub(replaced);
    check("config_bytes", used, key.len() + value.len(), limit)?;
    Ok(value)
}

/// The tenant's silences (not yet purged).
pub fn silences(store: &ConfigStore, tenant: &str) -> usize {
    count(store, &silence_config_key(tenant, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_override_defaults_and_checks_name_the_limit() {
        let defaults = QuotaConfig::default().limits();
        let set = QuotaSettings {
            dashboards: Some(2),
            ..QuotaSettings::default()
        };
        let limits = set.over(defaults);
        assert_eq!(limits.dashboards, 2);
        assert_eq!(limits.alert_rules, 200);
        assert_eq!(limits.max_series_per_window, 100_000);
        assert!(check("dashboards", 1, 1, 2).is_ok());
        let err = check("dashboards", 2, 1, 2).unwrap_err();
        assert_eq!(err.status(), 429);
        assert_eq!(err.code(), "quota_exceeded");
        assert_eq!(err.to_string(), "dashboards is 2");
        assert!(QuotaConfig::default().invalid().is_none());
        let zero_ceiling = QuotaSettings {
            max_series_per_window: Some(0),
            ..QuotaSettings::default()
        };
        assert_eq!(
            zero_ceiling.over(defaults).invalid().map(|(name, _)| name),
            Some("max_series_per_window")
        );
        let parsed: QuotaSettings =
            serde_json::from_str(r#"{"dashboards": 3, "silences": null}"#).unwrap();
        assert_eq!(parsed.dashboards, Some(3));
        assert!(serde_json::from_str::<QuotaSettings>(r#"{"dashbords": 3}"#).is_err());
    }
}
